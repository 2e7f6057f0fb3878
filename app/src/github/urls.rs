//! GitHub.com and GitHub Enterprise Server: the one place that knows where an instance's REST
//! API and web pages (and so git remotes) live, given the configured API URL (`GITHUB_API_URL`);
//! `GITHUB_URL` overrides the derived web address.
//!
//! | instance | API | web and git |
//! |---|---|---|
//! | GitHub.com | `https://api.github.com` | `https://github.com` |
//! | Enterprise Server | `https://HOST/api/v3` | `https://HOST` |
//! | anything else (a simulator) | `http://HOST:PORT` | the same host |

use url::Url;

/// The API base as requests are built on it: no trailing slash.
pub fn api_base(api: &Url) -> String {
    api.as_str().trim_end_matches('/').to_owned()
}

/// The web URL of a GitHub instance from its API URL: `https://api.github.com` →
/// `https://github.com`; GitHub Enterprise Server `https://HOST/api/v3` → `https://HOST`.
pub fn web_url(api: &Url) -> Url {
    let mut web = api.clone();
    web.set_query(None);
    if web.host_str() == Some("api.github.com") {
        let _ = web.set_host(Some("github.com"));
        web.set_path("/");
    } else {
        let path = web
            .path()
            .trim_end_matches('/')
            .trim_end_matches("/api/v3")
            .to_owned();
        web.set_path(if path.is_empty() { "/" } else { &path });
    }
    web
}

/// A page of GitHub's web side: `path` (no leading slash) under the web URL, which may itself
/// have a path (Enterprise Server behind a prefix).
pub fn web_path(web: &Url, path: &str) -> Url {
    let mut url = web.clone();
    url.set_query(None);
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/{path}"));
    url
}

/// Whether `link` (a `Link` header target) points at the same API as `api`: only those are
/// followed with previewd's credentials.
pub(crate) fn same_api(api: &Url, link: &Url) -> bool {
    link.scheme() == api.scheme()
        && link.host_str() == api.host_str()
        && link.port_or_known_default() == api.port_or_known_default()
        && link.path().starts_with(api.path().trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn web_urls() {
        assert_eq!(
            web_url(&u("https://api.github.com")).as_str(),
            "https://github.com/"
        );
        assert_eq!(
            web_url(&u("https://ghe.acme.internal/api/v3")).as_str(),
            "https://ghe.acme.internal/"
        );
        assert_eq!(
            web_url(&u("https://ghe.acme.internal/api/v3/")).as_str(),
            "https://ghe.acme.internal/"
        );
        assert_eq!(
            web_url(&u("http://127.0.0.1:4000")).as_str(),
            "http://127.0.0.1:4000/"
        );
        assert_eq!(
            api_base(&u("https://ghe.acme.internal/api/v3/")),
            "https://ghe.acme.internal/api/v3"
        );
    }

    #[test]
    fn only_links_to_the_same_api_are_followed() {
        let api = u("https://ghe.acme.internal/api/v3");
        assert!(same_api(
            &api,
            &u("https://ghe.acme.internal/api/v3/repos?page=2")
        ));
        assert!(!same_api(
            &api,
            &u("https://evil.example/api/v3/repos?page=2")
        ));
        assert!(!same_api(&api, &u("http://ghe.acme.internal/api/v3/repos")));
        assert!(!same_api(&api, &u("https://ghe.acme.internal/other")));
        let sim = u("http://127.0.0.1:4000");
        assert!(same_api(
            &sim,
            &u("http://127.0.0.1:4000/app/installations?page=2")
        ));
        assert!(!same_api(
            &sim,
            &u("http://127.0.0.1:4001/app/installations")
        ));
    }
}
