//! The few HTML pages of the setup flow, written by hand: the form asking for the setup code and
//! the account, the page that posts the manifest to GitHub, and one-message pages for what went
//! wrong or what comes next. Every value placed in a page goes through [`escape`]; no page shows
//! a secret (the setup code is typed in, never echoed).

use url::Url;

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<title>{title} · previewd</title>\
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}\
label{{display:block;margin:1rem 0 .25rem}}input[type=text],input[type=password]{{width:100%;padding:.4rem}}\
button{{margin-top:1.5rem;padding:.5rem 1rem}}code{{background:#f3f3f3;padding:0 .2rem}}</style>\
</head><body><h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title),
    )
}

/// The first page: setup code, account and App name.
pub fn start(public_url: &Url, github_web: &Url, default_name: &str, note: Option<&str>) -> String {
    let note = note
        .map(|n| format!("<p><strong>{}</strong></p>", escape(n)))
        .unwrap_or_default();
    layout(
        "Register GitHub App",
        &format!(
            "{note}<p>This previewd at <code>{public}</code> has no GitHub App yet. Registering \
creates one on <code>{github}</code> from previewd's manifest (<code>app.yml</code>), with its \
webhooks pointing here; GitHub then hands previewd the App's key and secrets, and you install \
the App on the repositories that should get previews.</p>\
<form method=\"post\" action=\"setup\">\
<label for=\"code\">Setup code (printed in previewd's log)</label>\
<input type=\"password\" id=\"code\" name=\"code\" autocomplete=\"off\" required>\
<label for=\"organization\">Organization that owns the App (empty: your personal account)</label>\
<input type=\"text\" id=\"organization\" name=\"organization\" autocomplete=\"off\">\
<label for=\"name\">App name (GitHub may ask you to change it if it is taken)</label>\
<input type=\"text\" id=\"name\" name=\"name\" value=\"{name}\" maxlength=\"34\" required>\
<button type=\"submit\">Continue</button></form>",
            public = escape(public_url.as_str()),
            github = escape(github_web.as_str()),
            name = escape(default_name),
        ),
    )
}

/// The page that sends the manifest to GitHub's "new App" page.
pub fn to_github(new_app_url: &Url, manifest_json: &str) -> String {
    layout(
        "Create the App on GitHub",
        &format!(
            "<p>GitHub will show the App it is about to create; confirm there, and GitHub sends \
you back here to finish.</p>\
<form method=\"post\" action=\"{action}\">\
<input type=\"hidden\" name=\"manifest\" value=\"{manifest}\">\
<button type=\"submit\">Create the App on GitHub</button></form>",
            action = escape(new_app_url.as_str()),
            manifest = escape(manifest_json),
        ),
    )
}

/// A page with one message and an optional link.
pub fn message(title: &str, text: &str, link: Option<(&str, &str)>) -> String {
    let link = link
        .map(|(href, label)| format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(label)))
        .unwrap_or_default();
    layout(title, &format!("<p>{}</p>{link}", escape(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let page = to_github(
            &Url::parse("https://github.com/settings/apps/new?state=s").expect("url"),
            r#"{"name":"x\"><script>"}"#,
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("state=s"));
    }
}
