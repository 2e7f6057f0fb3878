//! The "Register GitHub App" flow driven the way an admin's browser drives it: open previewd's
//! setup page, enter the setup code, follow the form that posts the manifest to (simulated)
//! GitHub, and follow GitHub's redirect back — carrying previewd's state cookie as a browser
//! does, and following no redirect by itself so each step can be looked at.

use anyhow::{Context as _, bail};
use serde_json::Value;

/// A browser with one cookie jar entry: previewd's setup state.
pub struct Browser {
    http: reqwest::Client,
    cookie: Option<String>,
}

/// What the trip to GitHub and back showed.
#[derive(Debug)]
pub struct Trip {
    /// The manifest previewd's page posted to GitHub.
    pub manifest: Value,
    /// Where GitHub's page was (the form's action).
    pub github_page: String,
    /// Where GitHub sent the browser back to (previewd's callback, with code and state).
    pub callback: String,
    /// previewd's answer to the callback.
    pub status: u16,
    /// Its `Location`, when it redirects (to install the App).
    pub location: Option<String>,
    pub body: String,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            cookie: None,
        }
    }

    /// `GET url` with the cookie; returns (status, `Location`, body).
    pub async fn get(&self, url: &str) -> anyhow::Result<(u16, Option<String>, String)> {
        let mut request = self.http.get(url);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.with_context(|| format!("GET {url}"))?;
        Ok(read(response).await)
    }

    /// Posts the setup form; returns (status, body) and keeps the state cookie it sets.
    pub async fn start(
        &mut self,
        app_url: &str,
        code: &str,
        organization: &str,
        name: &str,
    ) -> anyhow::Result<(u16, String)> {
        let response = self
            .http
            .post(format!("{app_url}/setup"))
            .header("content-type", FORM)
            .body(form(&[
                ("code", code),
                ("organization", organization),
                ("name", name),
            ]))
            .send()
            .await
            .context("POST /setup")?;
        if let Some(set) = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
        {
            self.cookie = set.split(';').next().map(str::to_owned);
        }
        let (status, _, body) = read(response).await;
        Ok((status, body))
    }

    /// From the page `start` answered: posts its manifest form to GitHub, then follows
    /// GitHub's redirect back to previewd.
    pub async fn to_github_and_back(&self, page: &str) -> anyhow::Result<Trip> {
        let action = attribute_after(page, "<form method=\"post\" action=\"", "action")?;
        let manifest_text = attribute_after(page, "name=\"manifest\" value=\"", "manifest")?;
        let manifest: Value =
            serde_json::from_str(&manifest_text).context("the manifest field is JSON")?;
        let response = self
            .http
            .post(&action)
            .header("content-type", FORM)
            .body(form(&[("manifest", manifest_text.as_str())]))
            .send()
            .await
            .context("POST the manifest to GitHub")?;
        let (status, location, body) = read(response).await;
        let Some(callback) = location.filter(|_| status == 302) else {
            bail!("GitHub's page answered {status}, not a redirect: {body}");
        };
        let (status, location, body) = self.get(&callback).await?;
        Ok(Trip {
            manifest,
            github_page: action,
            callback,
            status,
            location,
            body,
        })
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// An urlencoded form body, as a browser sends one.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn read(response: reqwest::Response) -> (u16, Option<String>, String) {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    (status, location, body)
}

/// The HTML attribute value that follows `marker` up to the closing quote, unescaped.
fn attribute_after(page: &str, marker: &str, what: &str) -> anyhow::Result<String> {
    let start = page
        .rfind(marker)
        .with_context(|| format!("no {what} in the page: {page}"))?
        + marker.len();
    let end = page[start..]
        .find('"')
        .with_context(|| format!("unterminated {what}"))?;
    Ok(unescape(&page[start..start + end]))
}

/// Undoes HTML escaping of `&`, `<`, `>`, `"` and `'`.
pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Field manager of the objects a test creates itself (told apart from previewd's requests in
/// the simulated cluster's request log).
pub const TEST_FIELD_MANAGER: &str = "previewd-test";

/// The Kubernetes-Secret variant of the flow, in this process: an app started without an App,
/// storing into Secret `namespace/name` (created empty first, as the Helm chart does), is
/// registered under organization `acme` through its setup page. What came of it.
pub struct SecretRegistration {
    /// What the setup server returned: the App's configuration, live.
    pub config: Option<previewd::config::GithubConfig>,
    pub trip: Trip,
    /// The Secret as the cluster holds it afterwards.
    pub secret: Value,
    /// Every request the app sent the simulated cluster.
    pub app_requests: Vec<crate::kube::Target>,
    /// What previewd answered a forged redirect (the right state, from a browser without the
    /// state cookie), sent before the real one.
    pub forged_status: u16,
    /// previewd's base URL.
    pub app_url: String,
}

/// Runs [`SecretRegistration`]'s story against `gh` and `kube`.
pub async fn register_into_secret(
    gh: &crate::github::GitHubSim,
    kube: &crate::kube::KubeSim,
    namespace: &str,
    name: &str,
) -> anyhow::Result<SecretRegistration> {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::{Api, PostParams};
    use previewd::config::{RegistrationConfig, SecretName, ServerConfig};

    let client = kube.client().await?;
    let create = PostParams {
        field_manager: Some(TEST_FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    // Idempotent, as `helm upgrade` is: an existing namespace or Secret is kept as it is.
    let exists = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        other => other,
    };
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?;
    exists(
        Api::<Namespace>::all(client.clone())
            .create(&create, &ns)
            .await
            .map(drop),
    )?;
    let empty: Secret = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    exists(
        Api::<Secret>::namespaced(client, namespace)
            .create(&create, &empty)
            .await
            .map(drop),
    )?;

    let db = crate::db::TestDatabase::create(crate::db::Engine::Sqlite).await?;
    let prefix = crate::redis_prefix();
    let store_config = previewd::config::StoreConfig {
        database_url: db.url.clone().into(),
        redis_url: crate::redis_url().into(),
        redis_prefix: prefix.clone(),
    };
    let stores = previewd::store::Stores::open(&store_config).await?;
    let listener = previewd::web::bind_std("127.0.0.1:0".parse()?)?;
    let app_url = format!("http://{}", listener.local_addr()?);
    let server = ServerConfig {
        listen_addr: listener.local_addr()?,
        public_url: url::Url::parse(&app_url)?,
        preview_domain: "preview.example.test".to_owned(),
        operators: Vec::new(),
        operator_teams: Vec::new(),
        preview_ttl: std::time::Duration::from_secs(72 * 3600),
        kubeconfig: None,
    };
    let never_written = std::env::temp_dir()
        .join("previewd-tests")
        .join(format!("unmounted-{}", uuid::Uuid::new_v4().simple()))
        .join("github-app.json");
    let registration = RegistrationConfig {
        credentials_file: never_written,
        secret: Some(SecretName {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        kubeconfig: Some(kube.kubeconfig_path()),
        api_url: url::Url::parse(&gh.url())?,
        web_url: url::Url::parse(&gh.url())?,
    };
    let before = kube.requests().by_target.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let stores = stores.clone();
        async move {
            previewd::setup::serve_until_registered(
                &listener,
                stores,
                server,
                registration,
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
        }
    });
    let handshake = previewd::setup::handshake::Handshake::new(stores.redis.clone(), &prefix);
    let browse = async {
        let code = crate::wait::until("the setup code", std::time::Duration::from_secs(30), || {
            let handshake = handshake.clone();
            async move { handshake.code().await.ok() }
        })
        .await?;
        let mut browser = Browser::new();
        crate::wait::until("the setup page", std::time::Duration::from_secs(30), || {
            let (browser, url) = (&browser, format!("{app_url}/setup"));
            async move { browser.get(&url).await.ok().filter(|r| r.0 == 200) }
        })
        .await?;
        let (status, page) = browser
            .start(&app_url, &code, "acme", "previewd-acme")
            .await?;
        anyhow::ensure!(status == 200, "POST /setup answered {status}: {page}");
        let action = attribute_after(&page, "<form method=\"post\" action=\"", "action")?;
        let state = url::Url::parse(&action)?
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let forged = Browser::new()
            .get(&format!(
                "{app_url}/setup/github/callback?code=forged&state={state}"
            ))
            .await?
            .0;
        Ok((browser.to_github_and_back(&page).await?, forged))
    };
    let browsed = browse.await;
    // A successful registration ends the server by itself; otherwise stop it.
    let ended = crate::wait::until(
        "the setup server to end",
        std::time::Duration::from_secs(5),
        || {
            let finished = serving.is_finished();
            async move { finished.then_some(()) }
        },
    )
    .await;
    if ended.is_err() {
        let _ = stop_tx.send(());
    }
    let config = serving.await??;
    let after = kube.requests().by_target;
    stores.db.clone().close().await?;
    db.drop_database().await?;
    crate::clear_redis_prefix(&prefix).await?;
    let (trip, forged_status) = browsed?;
    let secret = kube
        .get("secrets", Some(namespace), name)
        .context("the Secret is still there")?;
    let app_requests = after
        .into_iter()
        .filter(|(t, n)| before.get(t) != Some(n))
        .map(|(t, _)| t)
        .filter(|t| t.field_manager.as_deref() != Some(TEST_FIELD_MANAGER))
        .collect();
    Ok(SecretRegistration {
        config,
        trip,
        secret,
        app_requests,
        forged_status,
        app_url,
    })
}
