//! GitHub's App manifest flow, on the wire: the manifest previewd registers itself with, where
//! the admin's browser posts it, and the exchange of GitHub's one-time code for the new App's
//! credentials (`POST /app-manifests/{code}/conversions`).
//!
//! The manifest is `app.yml` (compiled in) with this install's `PUBLIC_URL` filled into every
//! URL GitHub calls back: the homepage, the webhook URL, the redirect after registration and the
//! setup page after installation. The exchange needs no credential — the code is the credential,
//! single-use and valid for an hour — and its answer is the only time GitHub hands out the
//! private key and the secrets, so [`Registration`] keeps them as [`SecretString`]s and its
//! `Debug` and errors never show them. The setup pages (`crate::setup`) drive the flow.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::{GitHubError, encode_segment};

/// `app.yml`, the App manifest with placeholder URLs.
pub const APP_YML: &str = include_str!("../../../app.yml");

/// Longest App name GitHub accepts.
pub const MAX_NAME_CHARS: usize = 34;

/// Whose account the App is registered under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The admin's personal account.
    User,
    /// An organization the admin owns, by login.
    Organization(String),
}

impl Owner {
    /// Parses an organization login as GitHub spells them (letters, digits, inner hyphens).
    pub fn organization(login: &str) -> Option<Self> {
        let login = login.trim();
        let ok = !login.is_empty()
            && login.len() <= 39
            && login
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !login.starts_with('-')
            && !login.ends_with('-');
        ok.then(|| Self::Organization(login.to_owned()))
    }
}

/// `PUBLIC_URL` + `relative`, keeping any path prefix `PUBLIC_URL` has.
pub fn public_path(public_url: &Url, relative: &str) -> Url {
    let mut base = public_url.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.set_query(None);
    base.join(relative.trim_start_matches('/')).unwrap_or(base)
}

/// The webhook URL GitHub posts deliveries to.
pub fn webhook_url(public_url: &Url) -> Url {
    public_path(public_url, "webhooks/github")
}

/// Where GitHub sends the admin back with the one-time code.
pub fn redirect_url(public_url: &Url) -> Url {
    public_path(public_url, "setup/github/callback")
}

/// Where GitHub sends a person back after they sign in to the dashboard with the App.
pub fn callback_url(public_url: &Url) -> Url {
    public_path(public_url, "auth/callback")
}

/// Where GitHub sends the admin after installing the App.
pub fn setup_url(public_url: &Url) -> Url {
    public_path(public_url, "setup/installed")
}

/// The manifest as GitHub wants it in the form's `manifest` field: `app_yml` as JSON, named
/// `name`, with the URLs of this install.
pub fn manifest_json(app_yml: &str, public_url: &Url, name: &str) -> Result<String, String> {
    let mut manifest: Value =
        serde_yaml::from_str(app_yml).map_err(|e| format!("app.yml is not valid YAML: {e}"))?;
    let Some(fields) = manifest.as_object_mut() else {
        return Err("app.yml is not a mapping".to_owned());
    };
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "the App name must have 1 to {MAX_NAME_CHARS} characters"
        ));
    }
    fields.insert("name".to_owned(), name.into());
    fields.insert(
        "url".to_owned(),
        public_path(public_url, "").as_str().into(),
    );
    fields.insert(
        "redirect_url".to_owned(),
        redirect_url(public_url).as_str().into(),
    );
    fields.insert(
        "setup_url".to_owned(),
        setup_url(public_url).as_str().into(),
    );
    fields.insert(
        "callback_urls".to_owned(),
        Value::Array(vec![callback_url(public_url).as_str().into()]),
    );
    let hook = fields
        .entry("hook_attributes")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Some(hook) = hook.as_object_mut() else {
        return Err("app.yml: hook_attributes is not a mapping".to_owned());
    };
    hook.insert("url".to_owned(), webhook_url(public_url).as_str().into());
    serde_json::to_string(&manifest).map_err(|e| e.to_string())
}

/// Where the admin's browser posts the manifest: GitHub's "new App" page of the account, with
/// `state` for the callback to check.
pub fn new_app_url(web_url: &Url, owner: &Owner, state: &str) -> Url {
    let relative = match owner {
        Owner::User => "settings/apps/new".to_owned(),
        Owner::Organization(org) => {
            format!("organizations/{}/settings/apps/new", encode_segment(org))
        }
    };
    let mut url = public_path(web_url, &relative);
    url.query_pairs_mut().append_pair("state", state);
    url
}

/// The new App, as the conversion returned it.
#[derive(Clone)]
pub struct Registration {
    pub id: u64,
    pub slug: String,
    pub html_url: String,
    /// Login of the account owning the App.
    pub owner: String,
    pub pem: SecretString,
    pub webhook_secret: SecretString,
    pub client_id: String,
    pub client_secret: SecretString,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .field("slug", &self.slug)
            .field("html_url", &self.html_url)
            .field("owner", &self.owner)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Conversion {
    id: u64,
    slug: String,
    html_url: String,
    owner: Option<OwnerField>,
    pem: String,
    webhook_secret: Option<String>,
    client_id: String,
    client_secret: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

#[derive(Deserialize)]
struct OwnerField {
    login: String,
}

const OPERATION: &str = "POST /app-manifests/{code}/conversions";

/// Exchanges the one-time `code` GitHub put on the redirect for the new App's credentials.
pub async fn convert(api_url: &Url, code: &str) -> Result<Registration, GitHubError> {
    let error = |status: Option<u16>, message: String, retryable: bool| {
        let e = GitHubError::new(OPERATION.to_owned(), status, &message);
        if retryable { e.retryable() } else { e }
    };
    let code = code.trim();
    if code.is_empty() || code.len() > 200 {
        return Err(error(None, "no code on the redirect".to_owned(), false));
    }
    // No credential: the code is the credential, so the client carries no token.
    let octo = octocrab::Octocrab::builder()
        .base_uri(super::urls::api_base(api_url))
        .map_err(|_| error(None, "GITHUB_API_URL is not a valid URI".to_owned(), false))?
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
        .set_connect_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| error(None, format!("cannot build the HTTP client: {e}"), false))?;
    let relative = format!("/app-manifests/{}/conversions", encode_segment(code));
    let builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(relative)
        .header(http::header::ACCEPT, "application/vnd.github+json");
    let request = octo
        .build_request(builder, None::<&()>)
        .map_err(|e| error(None, format!("request: {e}"), false))?;
    let exchange = async {
        let response = octo
            .execute(request)
            .await
            .map_err(|_| error(None, "GitHub did not answer".to_owned(), true))?;
        let status = response.status().as_u16();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|_| error(Some(status), "the answer broke off".to_owned(), true))?
            .to_bytes();
        Ok::<_, GitHubError>((status, body))
    };
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| error(None, "no answer within 30 s".to_owned(), true))??;
    if status == 404 {
        return Err(error(
            Some(404),
            "GitHub does not know this code: it was used already or is over an hour old".to_owned(),
            false,
        ));
    }
    if !(200..300).contains(&status) {
        // GitHub's error bodies carry a message and no secret.
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map_or_else(|_| format!("HTTP {status}"), |b| b.message);
        return Err(error(Some(status), message, status >= 500));
    }
    let c: Conversion = serde_json::from_slice(&body).map_err(|e| {
        error(
            Some(status),
            format!(
                "unexpected answer (line {}, column {})",
                e.line(),
                e.column()
            ),
            false,
        )
    })?;
    let Some(webhook_secret) = c.webhook_secret.filter(|s| !s.is_empty()) else {
        return Err(error(
            Some(status),
            "the App has no webhook secret (was hook_attributes dropped from the manifest?)"
                .to_owned(),
            false,
        ));
    };
    Ok(Registration {
        id: c.id,
        slug: c.slug,
        html_url: c.html_url,
        owner: c.owner.map(|o| o.login).unwrap_or_default(),
        pem: SecretString::from(c.pem),
        webhook_secret: SecretString::from(webhook_secret),
        client_id: c.client_id,
        client_secret: SecretString::from(c.client_secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn the_manifest_carries_this_installs_urls() {
        let json = manifest_json(APP_YML, &url("https://previewd.acme.dev"), "previewd-acme")
            .expect("manifest");
        let m: Value = serde_json::from_str(&json).expect("json");
        assert_eq!(m["name"], "previewd-acme");
        assert_eq!(m["url"], "https://previewd.acme.dev/");
        assert_eq!(
            m["hook_attributes"]["url"],
            "https://previewd.acme.dev/webhooks/github"
        );
        assert_eq!(m["hook_attributes"]["active"], true);
        assert_eq!(
            m["redirect_url"],
            "https://previewd.acme.dev/setup/github/callback"
        );
        assert_eq!(m["setup_url"], "https://previewd.acme.dev/setup/installed");
        assert_eq!(
            m["callback_urls"],
            serde_json::json!(["https://previewd.acme.dev/auth/callback"])
        );
        assert_eq!(m["public"], false);
        assert_eq!(m["default_permissions"]["checks"], "write");
        assert!(
            !json.contains("example.com"),
            "no placeholder URL survives: {json}"
        );
    }

    #[test]
    fn a_path_prefix_is_kept_and_names_are_bounded() {
        let json =
            manifest_json(APP_YML, &url("https://tools.acme.dev/previewd"), "p").expect("manifest");
        let m: Value = serde_json::from_str(&json).expect("json");
        assert_eq!(
            m["hook_attributes"]["url"],
            "https://tools.acme.dev/previewd/webhooks/github"
        );
        assert!(manifest_json(APP_YML, &url("https://a.dev"), "").is_err());
        assert!(manifest_json(APP_YML, &url("https://a.dev"), &"x".repeat(35)).is_err());
    }

    #[test]
    fn new_app_pages_for_users_organizations_and_enterprise_server() {
        assert_eq!(
            new_app_url(&url("https://github.com"), &Owner::User, "s1").as_str(),
            "https://github.com/settings/apps/new?state=s1"
        );
        let org = Owner::organization("acme-corp").expect("valid");
        assert_eq!(
            new_app_url(&url("https://ghe.acme.internal/"), &org, "s2").as_str(),
            "https://ghe.acme.internal/organizations/acme-corp/settings/apps/new?state=s2"
        );
        for bad in ["", "-acme", "acme/x", "ac me", &"a".repeat(40)] {
            assert!(Owner::organization(bad).is_none(), "{bad:?}");
        }
    }
}
