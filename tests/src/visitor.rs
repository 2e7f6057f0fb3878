//! A person visiting the dashboard over plain HTTP, as a browser would: it keeps the session
//! cookie the app sets (a `Secure`, `__Host-` cookie, which is why it is kept by hand — a
//! client's cookie store would not send it over `http://127.0.0.1`), follows the sign-in
//! round trip through the simulated GitHub's authorize page (signed in there as `login` by
//! GitHub's `user_session` cookie), and reads the CSRF token from the pages it is shown.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::{StatusCode, header};

/// One person's browser.
pub struct Visitor {
    pub login: String,
    app_url: String,
    http: reqwest::Client,
    /// The value of the `__Host-previewd` cookie, once set.
    pub cookie: Option<String>,
    /// The CSRF token from the last page that carried one.
    pub csrf: Option<String>,
}

/// An answer: status, `Location` (for redirects) and body.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Visitor {
    pub fn new(app_url: &str, login: &str) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Self {
            login: login.to_owned(),
            app_url: app_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()?,
            cookie: None,
            csrf: None,
        })
    }

    fn keep_cookie(&mut self, response: &reqwest::Response) {
        for set in response.headers().get_all(header::SET_COOKIE) {
            let Ok(set) = set.to_str() else { continue };
            let Some(pair) = set.split(';').next() else {
                continue;
            };
            if let Some(value) = pair.strip_prefix("__Host-previewd=") {
                self.cookie = (!value.is_empty()).then(|| value.to_owned());
            }
        }
    }

    async fn read(&mut self, response: reqwest::Response) -> anyhow::Result<Page> {
        self.keep_cookie(&response);
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await?;
        if let Some(token) = csrf_of(&body) {
            self.csrf = Some(token);
        }
        Ok(Page {
            status,
            location,
            body,
        })
    }

    fn with_cookie(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(c) => request.header(header::COOKIE, format!("__Host-previewd={c}")),
            None => request,
        }
    }

    /// GET a path of the app.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Page> {
        let request = self.with_cookie(self.http.get(format!("{}{path}", self.app_url)));
        let response = request.send().await?;
        self.read(response).await
    }

    /// GET a path of the app whose body streams (server-sent events): the response, its body
    /// unread, for [`read_until`].
    pub async fn open_stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let request = self
            .with_cookie(self.http.get(format!("{}{path}", self.app_url)))
            .header(header::ACCEPT, "text/event-stream");
        Ok(request.send().await?)
    }

    /// POST a form to a path of the app, with `headers` added.
    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Page> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .with_cookie(self.http.post(format!("{}{path}", self.app_url)))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        self.read(response).await
    }

    /// POST an action form with this visitor's CSRF token, as the page's button does.
    pub async fn act(&mut self, path: &str, extra: &[(&str, &str)]) -> anyhow::Result<Page> {
        let csrf = self.csrf.clone().unwrap_or_default();
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(extra);
        self.post(path, &form, &[("sec-fetch-site", "same-origin")])
            .await
    }

    /// Signs in through the app's "Sign in with GitHub" and the simulated GitHub; ends on the
    /// page the app sends the person back to.
    pub async fn sign_in(&mut self, return_to: &str) -> anyhow::Result<Page> {
        let first = self.get(return_to).await?;
        if first.status != StatusCode::SEE_OTHER {
            bail!("{return_to} did not send a stranger to sign in: {first:?}");
        }
        let login_path = first.location.context("no Location to the sign-in")?;
        let to_github = self.get(&login_path).await?;
        let authorize = to_github
            .location
            .clone()
            .with_context(|| format!("the sign-in did not go to GitHub: {to_github:?}"))?;
        // GitHub's page, with the person signed in to GitHub (an empty login: no GitHub cookie,
        // for a simulator that signs every browser in).
        let mut at_github = self.http.get(&authorize);
        if !self.login.is_empty() {
            at_github = at_github.header(header::COOKIE, format!("user_session={}", self.login));
        }
        let at_github = at_github.send().await?;
        let back = at_github
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .with_context(|| format!("GitHub did not redirect back ({})", at_github.status()))?;
        let back = url::Url::parse(&back)?;
        let callback = format!("{}?{}", back.path(), back.query().unwrap_or_default());
        let signed_in = self.get(&callback).await?;
        let Some(next) = signed_in.location.clone() else {
            bail!("the callback did not sign in: {signed_in:?}");
        };
        self.get(&next).await
    }
}

/// The value of the first `name="csrf"` field in a page.
/// Reads a streaming body into `seen` until it contains `needle` (within 30 s); false if the
/// stream ended first.
pub async fn read_until(
    response: &mut reqwest::Response,
    seen: &mut String,
    needle: &str,
) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .with_context(|| format!("waiting for {needle:?} in the stream; got {seen:?}"))??;
        match chunk {
            Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            None => return Ok(false),
        }
    }
    Ok(true)
}

pub fn csrf_of(body: &str) -> Option<String> {
    let at = body.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let rest = &body[at..];
    Some(rest[..rest.find('"')?].to_owned())
}
