//! The GitHub REST client previewd uses: JSON over HTTPS with App or installation auth.
//!
//! Policies live here, once, for every call:
//! - **401** with an installation token: the token is dropped and the call retried once with a
//!   fresh one (tokens can be revoked early).
//! - **5xx and connection errors**: up to [`SERVER_ERROR_RETRIES`] retries with exponential backoff.
//! - **Rate limits** (403/429 with `Retry-After`, or `x-ratelimit-remaining: 0`): wait as told (up
//!   to [`MAX_RATE_LIMIT_WAIT`]) and retry, at most [`RATE_LIMIT_RETRIES`] times.
//! - **Writes** (anything but GET) for one installation go one at a time, as GitHub asks of
//!   integrations to stay clear of secondary rate limits.
//!
//! What still fails comes back as a [`GitHubError`] that says whether trying later may help.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use reqwest::{Method, StatusCode, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Semaphore;
use url::Url;

use super::auth::{AppAuth, InstallationToken, TokenCache};
use crate::config::GithubConfig;

/// Retries after a 5xx or a connection error.
pub const SERVER_ERROR_RETRIES: u32 = 2;
/// Retries after a rate-limit answer.
pub const RATE_LIMIT_RETRIES: u32 = 3;
/// Longest wait for a rate limit inside one call; longer limits fail the call (retryable).
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Timeout of one HTTP exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A GitHub call that did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("GitHub {operation}: {message}")]
pub struct GitHubError {
    /// What was attempted, e.g. `POST /repos/{owner}/{repo}/check-runs`.
    pub operation: String,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// GitHub's message or the transport error.
    pub message: String,
    /// True when the same call may succeed later (5xx, rate limit, network).
    pub retryable: bool,
}

impl GitHubError {
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
}

/// Who a call acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The App itself (JWT): `/app/...` endpoints.
    App,
    /// An installation (installation token).
    Installation(i64),
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
    pub headers: HeaderMap,
}

/// The GitHub REST client; cheap to clone.
#[derive(Clone)]
pub struct GitHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api", &self.inner.api)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    api: String,
    app: AppAuth,
    tokens: TokenCache,
    write_slots: Mutex<HashMap<i64, Arc<Semaphore>>>,
    calls: AtomicU64,
    rate_limit_remaining: AtomicI64,
}

impl GitHub {
    /// A client for the App configured in `config`.
    pub fn new(config: &GithubConfig) -> Result<Self, String> {
        // reqwest is built without a bundled crypto provider; use ring, as kube does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("previewd/", env!("CARGO_PKG_VERSION")))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Self::with_http(config, http)
    }

    fn with_http(config: &GithubConfig, http: reqwest::Client) -> Result<Self, String> {
        let app = AppAuth::new(config.app_id, &config.private_key)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api: base_url(&config.api_url),
                app,
                tokens: TokenCache::default(),
                write_slots: Mutex::new(HashMap::new()),
                calls: AtomicU64::new(0),
                rate_limit_remaining: AtomicI64::new(-1),
            }),
        })
    }

    /// The App's id.
    pub fn app_id(&self) -> u64 {
        self.inner.app.app_id()
    }

    /// Calls made so far (every HTTP exchange, retries included).
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// The last `x-ratelimit-remaining` GitHub reported, or -1 before any call.
    pub fn rate_limit_remaining(&self) -> i64 {
        self.inner.rate_limit_remaining.load(Ordering::Relaxed)
    }

    /// Forgets an installation's token (uninstalled or suspended).
    pub fn forget_installation(&self, installation: i64) {
        self.inner.tokens.remove(installation);
    }

    /// GET `path` (relative to the API base, starting with `/`).
    pub async fn get(&self, auth: Auth, path: &str) -> Result<ApiResponse, GitHubError> {
        self.send(auth, Method::GET, path, None).await
    }

    /// POST JSON.
    pub async fn post(
        &self,
        auth: Auth,
        path: &str,
        body: &Value,
    ) -> Result<ApiResponse, GitHubError> {
        self.send(auth, Method::POST, path, Some(body)).await
    }

    /// PATCH JSON.
    pub async fn patch(
        &self,
        auth: Auth,
        path: &str,
        body: &Value,
    ) -> Result<ApiResponse, GitHubError> {
        self.send(auth, Method::PATCH, path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, auth: Auth, path: &str) -> Result<ApiResponse, GitHubError> {
        self.send(auth, Method::DELETE, path, None).await
    }

    /// An installation token for `installation` (for the build's git clone).
    pub async fn installation_token(&self, installation: i64) -> Result<SecretString, GitHubError> {
        self.inner
            .tokens
            .get(installation, || self.mint_token(installation))
            .await
    }

    async fn mint_token(&self, installation: i64) -> Result<InstallationToken, GitHubError> {
        let path = format!("/app/installations/{installation}/access_tokens");
        let response = self
            .exchange(
                Auth::App,
                &Method::POST,
                &path,
                Some(&Value::Object(Default::default())),
                None,
            )
            .await?;
        let token = response.body["token"].as_str().ok_or_else(|| GitHubError {
            operation: "POST /app/installations/{id}/access_tokens".into(),
            status: Some(response.status),
            message: "answer has no token".into(),
            retryable: true,
        })?;
        let expires_at = response.body["expires_at"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map_or_else(
                || SystemTime::now() + Duration::from_secs(3000),
                |t| SystemTime::from(t.with_timezone(&chrono::Utc)),
            );
        Ok(InstallationToken {
            token: SecretString::from(token),
            expires_at,
        })
    }

    /// One call with every policy of this module applied.
    async fn send(
        &self,
        auth: Auth,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, GitHubError> {
        // One write at a time per installation (reads are not limited).
        let _permit = match auth {
            Auth::Installation(id) if method != Method::GET => Some(
                self.write_slot(id)
                    .acquire_owned()
                    .await
                    .map_err(|_| error(&method, path, None, "client closed".into(), false))?,
            ),
            _ => None,
        };
        let mut refreshed = false;
        loop {
            let token = match auth {
                Auth::App => None,
                Auth::Installation(id) => Some(self.installation_token(id).await?),
            };
            match self
                .exchange(auth, &method, path, body, token.as_ref())
                .await
            {
                Err(e) if e.status == Some(401) && !refreshed => {
                    if let (Auth::Installation(id), Some(token)) = (auth, &token) {
                        tracing::warn!(
                            installation = id,
                            "GitHub refused the installation token; minting a new one"
                        );
                        self.inner.tokens.invalidate(id, token).await;
                        refreshed = true;
                        continue;
                    }
                    return Err(e);
                }
                other => return other,
            }
        }
    }

    fn write_slot(&self, installation: i64) -> Arc<Semaphore> {
        let mut slots = self
            .inner
            .write_slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots
            .entry(installation)
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone()
    }

    /// Sends one request, retrying server errors and rate limits; 401 is returned to the caller.
    async fn exchange(
        &self,
        auth: Auth,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&SecretString>,
    ) -> Result<ApiResponse, GitHubError> {
        let url = format!("{}{path}", self.inner.api);
        let mut server_errors = 0;
        let mut rate_limits = 0;
        loop {
            let authorization = match (auth, token) {
                (Auth::App, _) => {
                    let jwt = self
                        .inner
                        .app
                        .jwt()
                        .map_err(|m| error(method, path, None, m, false))?;
                    format!("Bearer {}", jwt.expose_secret())
                }
                (Auth::Installation(_), Some(t)) => format!("token {}", t.expose_secret()),
                (Auth::Installation(_), None) => {
                    return Err(error(
                        method,
                        path,
                        None,
                        "no installation token".into(),
                        false,
                    ));
                }
            };
            let mut request = self
                .inner
                .http
                .request(method.clone(), &url)
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28")
                .header("authorization", authorization);
            if let Some(body) = body {
                request = request.json(body);
            }
            self.inner.calls.fetch_add(1, Ordering::Relaxed);
            let outcome = request.send().await;
            let response = match outcome {
                Ok(r) => r,
                Err(e) => {
                    let message = describe_transport_error(&e);
                    if server_errors < SERVER_ERROR_RETRIES {
                        server_errors += 1;
                        tokio::time::sleep(backoff(server_errors)).await;
                        continue;
                    }
                    return Err(error(method, path, None, message, true));
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            if let Some(remaining) = header_i64(&headers, "x-ratelimit-remaining") {
                self.inner
                    .rate_limit_remaining
                    .store(remaining, Ordering::Relaxed);
            }
            let bytes = response.bytes().await.unwrap_or_default();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            if status.is_success() {
                return Ok(ApiResponse {
                    status: status.as_u16(),
                    body,
                    headers,
                });
            }
            let message = body["message"].as_str().unwrap_or("no message").to_owned();
            if let Some(wait) = rate_limit_wait(status, &headers, &message) {
                if rate_limits < RATE_LIMIT_RETRIES && wait <= MAX_RATE_LIMIT_WAIT {
                    rate_limits += 1;
                    tracing::warn!(
                        path,
                        wait_ms = wait.as_millis() as u64,
                        "GitHub rate limit; waiting"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(error(
                    method,
                    path,
                    Some(status.as_u16()),
                    format!("rate limited: {message}"),
                    true,
                ));
            }
            if status.is_server_error() {
                if server_errors < SERVER_ERROR_RETRIES {
                    server_errors += 1;
                    tokio::time::sleep(backoff(server_errors)).await;
                    continue;
                }
                return Err(error(method, path, Some(status.as_u16()), message, true));
            }
            return Err(error(method, path, Some(status.as_u16()), message, false));
        }
    }
}

/// The API base without a trailing slash.
fn base_url(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

fn error(
    method: &Method,
    path: &str,
    status: Option<u16>,
    message: String,
    retryable: bool,
) -> GitHubError {
    GitHubError {
        operation: format!("{method} {}", route_template(path)),
        status,
        message: crate::sanitize::sanitize(&message, 500),
        retryable,
    }
}

/// The path with numbers and names replaced, for logs and errors (no ids of other people's
/// repositories end up in metrics labels).
fn route_template(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let mut out = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        if i > 0 && segments[i - 1] == "contents" {
            out.push("{path}");
            break;
        }
        let previous = if i > 0 { segments[i - 1] } else { "" };
        let templated = match previous {
            "repos" => "{owner}",
            _ if i >= 2 && segments[i - 2] == "repos" => "{repo}",
            _ if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() => "{id}",
            "labels" | "collaborators" => "{name}",
            _ => s,
        };
        out.push(templated);
    }
    out.join("/")
}

fn header_i64(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// How long GitHub asks us to wait, if this answer is a rate limit.
fn rate_limit_wait(status: StatusCode, headers: &HeaderMap, message: &str) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    if let Some(secs) = header_i64(headers, "retry-after") {
        return Some(Duration::from_secs(secs.max(0).unsigned_abs()));
    }
    if header_i64(headers, "x-ratelimit-remaining") == Some(0) {
        let reset = header_i64(headers, "x-ratelimit-reset")?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs();
        let wait = reset.max(0).unsigned_abs().saturating_sub(now);
        return Some(Duration::from_secs(wait + 1));
    }
    if message
        .to_ascii_lowercase()
        .contains("secondary rate limit")
    {
        return Some(Duration::from_secs(60));
    }
    (status == StatusCode::TOO_MANY_REQUESTS).then_some(Duration::from_secs(60))
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(attempt.min(6)))
}

fn describe_transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "connection failed".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templated() {
        assert_eq!(
            route_template("/repos/acme/web/check-runs/123"),
            "/repos/{owner}/{repo}/check-runs/{id}"
        );
        assert_eq!(
            route_template("/repos/acme/web/contents/.github/preview.yml?ref=abc"),
            "/repos/{owner}/{repo}/contents/{path}"
        );
        assert_eq!(
            route_template("/app/installations/42/access_tokens"),
            "/app/installations/{id}/access_tokens"
        );
    }

    #[test]
    fn rate_limit_answers_are_recognised() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &headers, "Resource not accessible"),
            None
        );
        headers.insert("retry-after", "3".parse().expect("header"));
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &headers, ""),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &headers, ""),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            rate_limit_wait(StatusCode::INTERNAL_SERVER_ERROR, &headers, ""),
            None
        );
        let none = HeaderMap::new();
        assert_eq!(
            rate_limit_wait(
                StatusCode::FORBIDDEN,
                &none,
                "You have exceeded a secondary rate limit"
            ),
            Some(Duration::from_secs(60))
        );
    }
}
