// previewd's dashboard script: the live follow of a container's log on a detail page, and
// nothing else (every page works without it). The server sends each log line as a
// server-sent event; `problem` says why reading stopped, `end` that the log is over.
(function () {
  "use strict";
  var pre = document.querySelector("pre[data-follow]");
  if (!pre || !window.EventSource) {
    return;
  }
  var state = document.getElementById("follow-state");
  var say = function (text) {
    if (state) {
      state.textContent = text;
    }
  };
  var source = new EventSource(pre.getAttribute("data-follow"));
  // Each (re)connection starts with the tail again: it replaces what is shown.
  var fresh = true;
  source.onopen = function () {
    fresh = true;
    say("following live");
  };
  source.onmessage = function (event) {
    var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (fresh) {
      pre.textContent = "";
      fresh = false;
    }
    pre.appendChild(document.createTextNode(event.data + "\n"));
    if (atEnd) {
      pre.scrollTop = pre.scrollHeight;
    }
  };
  source.addEventListener("problem", function (event) {
    say(event.data);
  });
  source.addEventListener("end", function (event) {
    say("stopped: " + event.data);
    source.close();
  });
  source.onerror = function () {
    say("connection lost; trying again");
  };
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();
