//! The GitHub client: octocrab for the transport (its HTTP stack with the API base, GitHub's
//! version header, tracing, and its error-body mapping), previewd's own policies around it, once,
//! for every call:
//!
//! - **Credentials**: the App's JWT on `/app/…`, an installation token everywhere else, minted
//!   one at a time per installation ([`super::auth::TokenCache`]). A **401** with an installation
//!   token drops it and the call is tried once more with a fresh one.
//! - **Conditional reads** ([`super::cache`]): a GET sends `If-None-Match` for what it read
//!   before; a `304` (free of rate limit) is answered from the cache, transparently.
//! - **Every page**: listings follow `Link: rel="next"` to the end (at most [`MAX_PAGES`]), and
//!   only to the same API.
//! - **Retries**: reads and in-place updates (`PATCH`) retry 5xx and broken connections up to
//!   [`SERVER_ERROR_RETRIES`] times with backoff. A **creating** write (`POST`) is retried only
//!   when GitHub cannot have applied it (the connection was refused, GitHub refused the
//!   credential, a rate limit); after a time-out or a 5xx it comes back with
//!   [`GitHubError::maybe_applied`], and the operation looks the object up before trying again
//!   (see `api`).
//! - **Rate limits** (403/429 with `Retry-After`, `x-ratelimit-remaining: 0`, or a secondary
//!   limit): the caller is paused as told (up to [`MAX_RATE_LIMIT_WAIT`]) and the call retried,
//!   at most [`RATE_LIMIT_RETRIES`] times.
//! - **Pacing** ([`super::pacing`]): an installation's writes go one at a time, each holding the
//!   slot for at most a short lease.
//! - **Time-outs**: [`READ_TIMEOUT`] per read, the shorter [`WRITE_TIMEOUT`] per write.
//!
//! octocrab's own retry layer is off (it would repeat a `POST` after a 5xx), and its builders
//! are not used: they cannot send conditional requests, do not show the rate-limit headers of a
//! success, and some send bodies GitHub's schema refuses; previewd sends its own typed bodies
//! through octocrab's raw request path instead.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt as _;
use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};
use url::Url;

use super::{
    auth::{AppAuth, InstallationToken, TokenCache},
    cache::{self, ConditionalCache},
    error::GitHubError,
    pacing::{self, Pacer},
    urls, wire,
};
use crate::config::GithubConfig;

/// Retries after a 5xx or a broken connection (reads and in-place updates).
pub const SERVER_ERROR_RETRIES: u32 = 2;
/// Retries after a rate-limit answer.
pub const RATE_LIMIT_RETRIES: u32 = 3;
/// Longest wait for a rate limit inside one call; longer limits fail the call (retryable).
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Time-out of one read exchange (answer and body).
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Time-out of one write exchange: short, so a hung write neither holds a job for long nor
/// makes the caller wait past the point where a look-up tells what happened.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most pages one listing reads; more is an error rather than a silently partial list.
pub const MAX_PAGES: usize = 100;

/// Who a call acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// The App itself (JWT): `/app/...` endpoints.
    App,
    /// An installation (installation token).
    Installation(i64),
}

/// What a request does, which decides how it may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// GET: retried freely, conditional.
    Read,
    /// Replaces state in place (`PATCH`): repeating it changes nothing.
    Update,
    /// Makes something new (`POST`): repeating it may make a second one.
    Create,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The `Link: rel="next"` target, if any.
    fn next_link(&self) -> Option<String> {
        let link = self.headers.get(header::LINK)?.to_str().ok()?;
        next_from_link(link)
    }
}

/// The GitHub client; cheap to clone.
#[derive(Clone)]
pub struct GitHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api", &self.inner.api.as_str())
            .finish_non_exhaustive()
    }
}

struct Inner {
    octo: Octocrab,
    api: Url,
    app: AppAuth,
    tokens: TokenCache,
    pacer: Pacer,
    cache: ConditionalCache,
    calls: AtomicU64,
    not_modified: AtomicU64,
    rate_limit_remaining: AtomicI64,
}

/// How one exchange failed before an answer came.
enum Transport {
    /// The request cannot have reached GitHub (connection refused, no route, connect time-out).
    NotSent(String),
    /// It may have reached GitHub (time-out, connection broken mid-way).
    Broken(String),
}

impl GitHub {
    /// A client for the App configured in `config`. Needs a Tokio runtime (octocrab's request
    /// queue runs on it).
    pub fn new(config: &GithubConfig) -> Result<Self, String> {
        // octocrab's rustls uses the process-wide provider when one is installed; kube uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let octo = Octocrab::builder()
            .base_uri(urls::api_base(&config.api_url))
            .map_err(|_| "GITHUB_API_URL is not a valid URI".to_owned())?
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("cannot build the GitHub client: {e}"))?;
        let app = AppAuth::new(config.app_id, &config.private_key)?;
        Ok(Self {
            inner: Arc::new(Inner {
                octo,
                api: config.api_url.clone(),
                app,
                tokens: TokenCache::default(),
                pacer: Pacer::default(),
                cache: ConditionalCache::default(),
                calls: AtomicU64::new(0),
                not_modified: AtomicU64::new(0),
                rate_limit_remaining: AtomicI64::new(-1),
            }),
        })
    }

    /// The App's id.
    pub fn app_id(&self) -> u64 {
        self.inner.app.app_id()
    }

    /// The configured API URL.
    pub fn api_url(&self) -> &Url {
        &self.inner.api
    }

    /// The transport, for calls made with a person's credential (`super::person`).
    pub(crate) fn octo(&self) -> &Octocrab {
        &self.inner.octo
    }

    /// Counts one HTTP exchange made outside [`Self::send`].
    pub(crate) fn count_call(&self) {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// HTTP exchanges made so far (retries included).
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// How many of them GitHub answered `304 Not Modified` (free of rate limit).
    pub fn not_modified(&self) -> u64 {
        self.inner.not_modified.load(Ordering::Relaxed)
    }

    /// The last `x-ratelimit-remaining` GitHub reported, or -1 before any call.
    pub fn rate_limit_remaining(&self) -> i64 {
        self.inner.rate_limit_remaining.load(Ordering::Relaxed)
    }

    /// Forgets an installation's token (uninstalled or suspended).
    pub fn forget_installation(&self, installation: i64) {
        self.inner.tokens.remove(installation);
    }

    /// An installation token for `installation`, minted when none is cached.
    pub async fn installation_token(&self, installation: i64) -> Result<SecretString, GitHubError> {
        self.inner
            .tokens
            .get(installation, || async move {
                self.mint(installation, &wire::TokenRequest::default())
                    .await
            })
            .await
    }

    /// Mints an installation token with `request`'s scope (nothing cached).
    pub(crate) async fn mint(
        &self,
        installation: i64,
        request: &wire::TokenRequest,
    ) -> Result<InstallationToken, GitHubError> {
        let path = format!("/app/installations/{installation}/access_tokens");
        // Minting makes nothing visible; repeating it is harmless, so it retries like an update.
        // As the App it needs no installation token (and must not ask for one: that is us).
        let answer = self
            .with_retries(
                Auth::App,
                Kind::Update,
                &Method::POST,
                &path,
                Some(request),
                None,
            )
            .await?;
        let token: octocrab::models::InstallationToken = decode(&answer, &Method::POST, &path)?;
        let expires_at = token
            .expires_at
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map_or_else(
                || SystemTime::now() + Duration::from_secs(3000),
                |t| SystemTime::from(t.with_timezone(&chrono::Utc)),
            );
        Ok(InstallationToken {
            token: SecretString::from(token.token),
            expires_at,
        })
    }

    // ----- typed calls -----

    /// GET `path` and decode it.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        auth: Auth,
        path: &str,
    ) -> Result<T, GitHubError> {
        let answer = self
            .send(auth, Kind::Read, Method::GET, path, None::<&()>)
            .await?;
        decode(&answer, &Method::GET, path)
    }

    /// GET `path`; `None` when GitHub answers 404.
    pub(crate) async fn get_optional<T: DeserializeOwned>(
        &self,
        auth: Auth,
        path: &str,
    ) -> Result<Option<T>, GitHubError> {
        match self.get(auth, path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET every page of a listing, starting at `path`.
    pub(crate) async fn get_all<P: wire::Listing>(
        &self,
        auth: Auth,
        path: &str,
    ) -> Result<Vec<P::Item>, GitHubError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_owned());
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(GitHubError::new(
                    operation(&Method::GET, path),
                    None,
                    &format!("more than {MAX_PAGES} pages"),
                ));
            }
            let answer = self
                .send(auth, Kind::Read, Method::GET, &url, None::<&()>)
                .await?;
            let page: P = decode(&answer, &Method::GET, path)?;
            items.extend(page.into_items());
            next = answer.next_link();
        }
        Ok(items)
    }

    /// GET one page of a listing; returns its items and the next page's URL.
    pub(crate) async fn get_page<P: wire::Listing>(
        &self,
        auth: Auth,
        path: &str,
    ) -> Result<(Vec<P::Item>, Option<String>), GitHubError> {
        let answer = self
            .send(auth, Kind::Read, Method::GET, path, None::<&()>)
            .await?;
        let page: P = decode(&answer, &Method::GET, path)?;
        Ok((page.into_items(), answer.next_link()))
    }

    /// POST a creating write and decode the answer.
    pub(crate) async fn create<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        auth: Auth,
        path: &str,
        body: &B,
    ) -> Result<T, GitHubError> {
        let answer = self
            .send(auth, Kind::Create, Method::POST, path, Some(body))
            .await?;
        decode(&answer, &Method::POST, path)
    }

    /// POST a write whose answer previewd does not read.
    pub(crate) async fn post_ignoring_answer<B: Serialize + ?Sized>(
        &self,
        auth: Auth,
        path: &str,
        body: &B,
    ) -> Result<(), GitHubError> {
        self.send(auth, Kind::Create, Method::POST, path, Some(body))
            .await
            .map(drop)
    }

    /// PATCH an update in place and decode the answer.
    pub(crate) async fn update<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        auth: Auth,
        path: &str,
        body: &B,
    ) -> Result<T, GitHubError> {
        let answer = self
            .send(auth, Kind::Update, Method::PATCH, path, Some(body))
            .await?;
        decode(&answer, &Method::PATCH, path)
    }

    // ----- policies -----

    /// One call with every policy of this module applied.
    async fn send<B: Serialize + ?Sized>(
        &self,
        auth: Auth,
        kind: Kind,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Answer, GitHubError> {
        let slot = match auth {
            Auth::Installation(id) if kind != Kind::Read => self.inner.pacer.write_slot(id).await,
            _ => None,
        };
        let call = self.with_fresh_token(auth, kind, &method, path, body);
        pacing::within_lease(slot, pacing::WRITE_SLOT_LEASE, call).await
    }

    /// Tries a call, once more with a new token if GitHub refused the cached one.
    async fn with_fresh_token<B: Serialize + ?Sized>(
        &self,
        auth: Auth,
        kind: Kind,
        method: &Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Answer, GitHubError> {
        let mut refreshed = false;
        loop {
            let token = match auth {
                Auth::App => None,
                Auth::Installation(id) => Some(self.installation_token(id).await?),
            };
            match self
                .with_retries(auth, kind, method, path, body, token.as_ref())
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

    /// Sends one request, retrying what its kind allows; 401 is returned to the caller.
    async fn with_retries<B: Serialize + ?Sized>(
        &self,
        auth: Auth,
        kind: Kind,
        method: &Method,
        path: &str,
        body: Option<&B>,
        token: Option<&SecretString>,
    ) -> Result<Answer, GitHubError> {
        let op = operation(method, path);
        let relative = self.relative(path).ok_or_else(|| {
            GitHubError::new(op.clone(), None, "refusing to follow a link off the API")
        })?;
        let cache_key = (kind == Kind::Read).then(|| cache::Key {
            auth,
            url: relative.clone(),
        });
        let timeout = if kind == Kind::Read {
            READ_TIMEOUT
        } else {
            WRITE_TIMEOUT
        };
        let mut server_errors = 0;
        let mut rate_limits = 0;
        loop {
            self.inner
                .pacer
                .wait_out_pause(auth, MAX_RATE_LIMIT_WAIT)
                .await;
            let cached = cache_key.as_ref().and_then(|k| self.inner.cache.get(k));
            let sent = self
                .exchange(
                    auth,
                    method,
                    &relative,
                    body,
                    token,
                    cached.as_ref().map(|c| c.etag.as_str()),
                    timeout,
                )
                .await;
            let (status, headers, bytes) = match sent {
                Ok(answer) => answer,
                Err(Transport::NotSent(why)) => {
                    if server_errors < SERVER_ERROR_RETRIES {
                        server_errors += 1;
                        tokio::time::sleep(backoff(server_errors)).await;
                        continue;
                    }
                    return Err(GitHubError::new(op, None, &why).retryable());
                }
                Err(Transport::Broken(why)) => {
                    if kind != Kind::Create && server_errors < SERVER_ERROR_RETRIES {
                        server_errors += 1;
                        tokio::time::sleep(backoff(server_errors)).await;
                        continue;
                    }
                    return Err(GitHubError::new(op, None, &why)
                        .retryable()
                        .maybe_applied(kind == Kind::Create));
                }
            };
            if let Some(remaining) = header_i64(&headers, "x-ratelimit-remaining") {
                self.inner
                    .rate_limit_remaining
                    .store(remaining, Ordering::Relaxed);
            }
            if status == StatusCode::NOT_MODIFIED {
                if let Some(c) = cached {
                    self.inner.not_modified.fetch_add(1, Ordering::Relaxed);
                    let mut headers = headers;
                    if let Some(link) = c
                        .link
                        .as_deref()
                        .and_then(|l| HeaderValue::from_str(l).ok())
                    {
                        headers.insert(header::LINK, link);
                    }
                    return Ok(Answer {
                        status: 200,
                        headers,
                        body: c.body,
                    });
                }
                // A 304 without a cached answer: forget and read again in full.
                if let Some(k) = &cache_key {
                    self.inner.cache.forget(k);
                }
                return Err(
                    GitHubError::new(op, Some(304), "304 without a cached answer").retryable(),
                );
            }
            if status.is_success() {
                if let (Some(k), Some(etag)) = (
                    cache_key.clone(),
                    headers.get(header::ETAG).and_then(|v| v.to_str().ok()),
                ) {
                    self.inner.cache.put(
                        k,
                        cache::Entry {
                            etag: etag.to_owned(),
                            body: bytes.clone(),
                            link: headers
                                .get(header::LINK)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned),
                        },
                    );
                }
                return Ok(Answer {
                    status: status.as_u16(),
                    headers,
                    body: bytes,
                });
            }
            let message = error_message(&bytes, status);
            if let Some(wait) = rate_limit_wait(status, &headers, &message) {
                self.inner.pacer.pause(auth, wait.min(MAX_RATE_LIMIT_WAIT));
                if rate_limits < RATE_LIMIT_RETRIES && wait <= MAX_RATE_LIMIT_WAIT {
                    rate_limits += 1;
                    tracing::warn!(
                        operation = %op,
                        wait_ms = wait.as_millis() as u64,
                        "GitHub rate limit; waiting"
                    );
                    continue;
                }
                return Err(GitHubError::new(
                    op,
                    Some(status.as_u16()),
                    &format!("rate limited: {message}"),
                )
                .retryable());
            }
            if status.is_server_error() {
                if kind != Kind::Create && server_errors < SERVER_ERROR_RETRIES {
                    server_errors += 1;
                    tokio::time::sleep(backoff(server_errors)).await;
                    continue;
                }
                return Err(GitHubError::new(op, Some(status.as_u16()), &message)
                    .retryable()
                    .maybe_applied(kind == Kind::Create));
            }
            return Err(GitHubError::new(op, Some(status.as_u16()), &message));
        }
    }

    /// `path` relative to the API base (a `Link` target is absolute); `None` for another host.
    fn relative(&self, path: &str) -> Option<String> {
        if path.starts_with('/') {
            return Some(path.to_owned());
        }
        let link = Url::parse(path).ok()?;
        if !urls::same_api(&self.inner.api, &link) {
            return None;
        }
        let base = self.inner.api.path().trim_end_matches('/');
        let rest = link.path().strip_prefix(base).unwrap_or(link.path());
        Some(match link.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_owned(),
        })
    }

    /// One HTTP exchange through octocrab, bounded by `timeout`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one private call site; each value is a distinct part of the request"
    )]
    async fn exchange<B: Serialize + ?Sized>(
        &self,
        auth: Auth,
        method: &Method,
        relative: &str,
        body: Option<&B>,
        token: Option<&SecretString>,
        if_none_match: Option<&str>,
        timeout: Duration,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Transport> {
        let credential = match (auth, token) {
            (Auth::App, _) => self.inner.app.jwt().map_err(Transport::NotSent)?,
            (Auth::Installation(_), Some(t)) => t.clone(),
            (Auth::Installation(_), None) => {
                return Err(Transport::NotSent("no installation token".into()));
            }
        };
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", credential.expose_secret()))
                .map_err(|_| Transport::NotSent("credential is not a header value".into()))?;
        authorization.set_sensitive(true);
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(relative)
            .header(header::ACCEPT, "application/vnd.github+json")
            .header(header::AUTHORIZATION, authorization);
        if let Some(etag) = if_none_match.and_then(|e| HeaderValue::from_str(e).ok()) {
            builder = builder.header(header::IF_NONE_MATCH, etag);
        }
        let request = self
            .inner
            .octo
            .build_request(builder, body)
            .map_err(|e| Transport::NotSent(format!("request: {e}")))?;
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            let response = self
                .inner
                .octo
                .execute(request)
                .await
                .map_err(|e| describe_transport_error(&e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|_| Transport::Broken("the answer broke off".into()))?
                .to_bytes();
            Ok((status, headers, bytes))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Transport::Broken(format!(
                "no answer within {} s",
                timeout.as_secs()
            ))),
        }
    }
}

/// Sorts a transport failure: could the request have reached GitHub?
fn describe_transport_error(e: &octocrab::Error) -> Transport {
    use std::io::ErrorKind;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                ErrorKind::ConnectionRefused
                | ErrorKind::AddrNotAvailable
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::TimedOut => Transport::NotSent("cannot connect".into()),
                _ => Transport::Broken("connection failed".into()),
            };
        }
        source = err.source();
    }
    Transport::Broken("connection failed".into())
}

/// Decodes a successful answer into previewd's typed view of it.
fn decode<T: DeserializeOwned>(
    answer: &Answer,
    method: &Method,
    path: &str,
) -> Result<T, GitHubError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        GitHubError::new(
            operation(method, path),
            Some(answer.status),
            &format!("unexpected answer: {e}"),
        )
    })
}

/// `METHOD /route/template`, for errors and logs.
fn operation(method: &Method, path: &str) -> String {
    format!("{method} {}", route_template(path))
}

/// GitHub's `message`, through octocrab's error-body model.
fn error_message(bytes: &Bytes, status: StatusCode) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        message: Option<String>,
    }
    serde_json::from_slice::<Body>(bytes)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned())
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_from_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// The path with numbers and names replaced, for logs and errors (no ids of other people's
/// repositories end up in metrics labels).
fn route_template(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let path = match Url::parse(path) {
        Ok(u) => u.path().to_owned(),
        Err(_) => path.to_owned(),
    };
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
            "orgs" => "{org}",
            "teams" => "{team}",
            "memberships" => "{name}",
            _ if i >= 2 && segments[i - 2] == "repos" => "{repo}",
            _ if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() => "{id}",
            "labels" | "collaborators" | "commits" => "{name}",
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
            route_template("/orgs/acme/teams/platform/memberships/olga"),
            "/orgs/{org}/teams/{team}/memberships/{name}"
        );
        assert_eq!(
            route_template("/app/installations/42/access_tokens"),
            "/app/installations/{id}/access_tokens"
        );
        assert_eq!(
            route_template("http://127.0.0.1:9/repos/acme/web/pulls?page=2"),
            "/repos/{owner}/{repo}/pulls"
        );
    }

    #[test]
    fn next_links_are_found() {
        let link = r#"<https://api.github.com/repos/a/b/pulls?page=2>; rel="next", <https://api.github.com/repos/a/b/pulls?page=5>; rel="last""#;
        assert_eq!(
            next_from_link(link).as_deref(),
            Some("https://api.github.com/repos/a/b/pulls?page=2")
        );
        let last = r#"<https://api.github.com/x?page=1>; rel="first", <https://api.github.com/x?page=4>; rel="prev""#;
        assert_eq!(next_from_link(last), None);
        assert_eq!(
            next_from_link(
                r#"<https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_9>; rel="next""#
            )
            .as_deref(),
            Some("https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_9")
        );
    }

    #[test]
    fn rate_limit_answers_are_recognised() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &headers, "Resource not accessible"),
            None
        );
        headers.insert("retry-after", HeaderValue::from_static("3"));
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
