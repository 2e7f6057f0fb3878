//! The HTTP front door: one axum fallback handler receives every request and walks it through
//! what GitHub does before and after a handler runs: delay it (latency option and faults),
//! authenticate it, spend its rate-limit budget, fire injected failures, keep a scoped token
//! inside its scope, call the handler, answer a conditional GET whose ETag still matches with
//! `304` (given back to the budget and not counted), count it, fire the faults that act after the
//! request was applied, and stamp every answer with `ETag`, `x-ratelimit-*` and
//! `x-github-request-id` headers.
//!
//! A request no route matches gets a loud 501 naming its method and path, printed to stderr and
//! recorded in `Calls::unimplemented`, so a gap in the simulator cannot pass for a GitHub answer.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use axum::{
    body::{Body, Bytes},
    extract::State as AxumState,
    http::{HeaderMap, HeaderName, HeaderValue, Method, Response, Uri},
};
use chrono::Utc;

use super::{
    auth,
    faults::FaultKind,
    reply::{ApiError, Reply, Req},
    routes,
    state::{Bucket, RateWindow, RecordedResponse, Shared, State},
};

/// Rate limits per hour, as GitHub grants them (`hourly` for Apps and installations).
fn limit_of(bucket: Bucket, hourly: u64) -> u64 {
    match bucket {
        Bucket::Anonymous => 60,
        Bucket::App | Bucket::Installation(_) | Bucket::User(_) => hourly,
    }
}

/// Where a request stands with its rate limit, for the headers.
struct Rate {
    limit: u64,
    used: u64,
    reset: i64,
    exceeded: bool,
}

/// Spends one request of `bucket`'s hourly budget (the anonymous budget is reported, not enforced).
fn spend(state: &mut State, bucket: Bucket, hourly: u64) -> Rate {
    let now = Instant::now();
    let window = state.rate.entry(bucket).or_insert_with(|| RateWindow {
        started: now,
        reset_epoch: Utc::now().timestamp() + 3600,
        used: 0,
    });
    if now.duration_since(window.started).as_secs() >= 3600 {
        *window = RateWindow {
            started: now,
            reset_epoch: Utc::now().timestamp() + 3600,
            used: 0,
        };
    }
    let limit = limit_of(bucket, hourly);
    let exceeded = bucket != Bucket::Anonymous && window.used >= limit;
    if !exceeded {
        window.used += 1;
    }
    Rate {
        limit,
        used: window.used.min(limit),
        reset: window.reset_epoch,
        exceeded,
    }
}

/// A request id in GitHub's `XXXX:XXXX:XXXXXX:XXXXXX:XXXXXXXX` shape.
fn request_id() -> String {
    let h = super::encoding::random_hex(28).to_ascii_uppercase();
    format!(
        "{}:{}:{}:{}:{}",
        &h[0..4],
        &h[4..8],
        &h[8..14],
        &h[14..20],
        &h[20..28]
    )
}

/// A weak ETag of an answer's bytes, as GitHub sends on every GET.
fn etag_of(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("W/\"{}\"", &hex::encode(Sha256::digest(body))[..32])
}

/// Whether `If-None-Match` names `etag` (a list, weak or strong, or `*`).
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    headers
        .get_all(axum::http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// The axum handler behind every path.
pub(crate) async fn dispatch(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let request_id = request_id();
    let path = uri.path().to_owned();
    let found = routes::find(method.as_str(), &path);
    let route_key = found
        .as_ref()
        .map_or_else(|| format!("{method} {path}"), |(r, _)| r.key());

    let extra_delay = shared.lock().faults.take_latency(&route_key, &path);
    let delay = shared.opts.latency + extra_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let Some((route, params)) = found else {
        let what = format!("{method} {path}");
        eprintln!("github simulator: not implemented: {what}");
        let rate = {
            let mut state = shared.lock();
            state.count_call(&route_key);
            state.record_unimplemented(&what);
            spend(&mut state, Bucket::Anonymous, shared.opts.rate_limit)
        };
        let err = ApiError::new(501, format!("github simulator: not implemented: {what}"));
        return finish(error_reply(&err), &rate, &request_id, &err.headers);
    };

    // Authentication, budget and injected failures, under one lock.
    let outcome = {
        let mut state = shared.lock();
        let caller = auth::authenticate(&shared, &mut state, route.auth, &headers, &route_key);
        let bucket = caller
            .as_ref()
            .map_or(Bucket::Anonymous, |(c, _)| c.bucket());
        let rate = spend(&mut state, bucket, shared.opts.rate_limit);
        let failure = state.faults.take_failure(&route_key, &path);
        let after = state.faults.take_after_apply(&route_key, &path);
        (caller, bucket, rate, failure, after)
    };
    let (caller, bucket, mut rate, failure, after) = outcome;

    let installation = match &caller {
        Ok((auth::Caller::Installation(id), _)) => Some(*id),
        _ => None,
    };
    let result = match (failure, caller) {
        (Some(kind), _) => Err(injected(&kind, &request_id)),
        (None, Err(e)) => Err(e),
        (None, Ok(_)) if rate.exceeded => Err(rate_limited(route.auth)),
        (None, Ok((caller, scope))) => {
            let query: BTreeMap<String, String> = uri
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default();
            let req = Req {
                caller,
                scope,
                params,
                query,
                headers: &headers,
                body: &body,
            };
            match scope_refusal(route, &req) {
                Some(refused) => Err(refused),
                None => (route.handler)(&shared, &req),
            }
        }
    };
    // Conditional GETs: GitHub's ETag on every answer; `If-None-Match` that still matches gets
    // 304 with no body, and 304s do not count against the rate limit.
    let result = match result {
        Ok(reply) if method == Method::GET && reply.status == 200 => {
            let etag = etag_of(&reply.body);
            if matches_etag(&headers, &etag) {
                Ok(Reply {
                    status: 304,
                    body: Vec::new(),
                    content_type: reply.content_type,
                    headers: vec![("etag", etag)],
                })
            } else {
                Ok(reply.with_header("etag", Some(etag)))
            }
        }
        other => other,
    };
    let not_modified = matches!(&result, Ok(r) if r.status == 304);
    {
        let mut state = shared.lock();
        if not_modified {
            state.calls.not_modified += 1;
            *state
                .calls
                .not_modified_by_route
                .entry(route_key.clone())
                .or_default() += 1;
            if let Some(window) = state.rate.get_mut(&bucket) {
                window.used = window.used.saturating_sub(1);
            }
            rate.used = rate.used.saturating_sub(1);
        } else {
            state.count_call(&route_key);
            if let (Some(id), false) = (installation, rate.exceeded) {
                *state.calls.by_installation.entry(id).or_default() += 1;
            }
        }
    }
    // Faults that act once the request has changed GitHub's state.
    let result = match (after, result) {
        (Some(FaultKind::FailAfterApply(code)), Ok(_)) => {
            Err(injected(&FaultKind::Status(code), &request_id))
        }
        (Some(FaultKind::SlowAfterApply(wait)), ok @ Ok(_)) => {
            tokio::time::sleep(wait).await;
            ok
        }
        (_, other) => other,
    };
    let response_body = match &result {
        Ok(reply) => (reply.status, reply.body.clone()),
        Err(err) => (
            err.status,
            serde_json::to_vec(&err.body()).unwrap_or_default(),
        ),
    };
    {
        let mut state = shared.lock();
        if state.recording {
            state.recorded.push(RecordedResponse {
                route: route_key.clone(),
                status: response_body.0,
                body: response_body.1,
            });
        }
    }
    match result {
        Ok(reply) => {
            let headers = reply.headers.clone();
            finish(reply, &rate, &request_id, &headers)
        }
        Err(err) => finish(error_reply(&err), &rate, &request_id, &err.headers),
    }
}

/// What GitHub answers a scoped installation token outside its scope: 404 for a repository it
/// does not reach, 403 for a permission it lacks.
fn scope_refusal(route: &routes::Route, req: &Req<'_>) -> Option<ApiError> {
    let scope = req.scope.as_ref()?;
    if route.template.starts_with("/repos/{owner}/{repo}")
        && scope
            .repositories
            .as_ref()
            .is_some_and(|only| !only.contains(&State::key(&req.repo_name())))
    {
        return Some(ApiError::not_found());
    }
    match route.permission {
        Some((permission, level)) if !scope.allows(permission, level) => {
            let mut e = ApiError::new(403, "Resource not accessible by integration");
            e.documentation_url = "https://docs.github.com/rest".to_owned();
            Some(e)
        }
        _ => None,
    }
}

fn error_reply(err: &ApiError) -> Reply {
    Reply::json(err.status, &err.body())
}

/// The answer an injected failure gives.
fn injected(kind: &FaultKind, request_id: &str) -> ApiError {
    match kind {
        FaultKind::Status(code) => {
            let reason = axum::http::StatusCode::from_u16(*code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Server Error");
            ApiError::new(*code, reason)
        }
        FaultKind::SecondaryRateLimit {
            status,
            retry_after_secs,
        } => {
            let mut e = ApiError::new(
                *status,
                format!(
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID {request_id}."
                ),
            );
            e.documentation_url = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits".to_owned();
            e.headers
                .push(("retry-after", retry_after_secs.to_string()));
            e
        }
        // Never taken as failures (they act in auth, before dispatch, or after applying).
        FaultKind::UnauthorizedOnFirstUse
        | FaultKind::Latency(_)
        | FaultKind::FailAfterApply(_)
        | FaultKind::SlowAfterApply(_) => ApiError::new(500, "Server Error"),
    }
}

/// GitHub's primary rate limit answer.
fn rate_limited(kind: routes::AuthKind) -> ApiError {
    let who = match kind {
        routes::AuthKind::App => "app",
        routes::AuthKind::Installation => "installation",
        routes::AuthKind::User => "user",
        routes::AuthKind::Public => "this IP",
    };
    let mut e = ApiError::new(403, format!("API rate limit exceeded for {who}."));
    e.documentation_url =
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limit".to_owned();
    e.headers.push(("x-ratelimit-remaining", "0".to_owned()));
    e
}

/// Builds the HTTP response with GitHub's standard headers.
fn finish(
    reply: Reply,
    rate: &Rate,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Response<Body> {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = axum::http::StatusCode::from_u16(reply.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    let mut set = |name: &str, value: String| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            h.insert(n, v);
        }
    };
    if reply.status != 204 {
        set("content-type", reply.content_type.to_owned());
    }
    set("x-github-request-id", request_id.to_owned());
    set("x-github-api-version-selected", "2022-11-28".to_owned());
    set("x-github-media-type", "github.v3; format=json".to_owned());
    set("x-ratelimit-limit", rate.limit.to_string());
    set(
        "x-ratelimit-remaining",
        (rate.limit - rate.used).to_string(),
    );
    set("x-ratelimit-reset", rate.reset.to_string());
    set("x-ratelimit-used", rate.used.to_string());
    set("x-ratelimit-resource", "core".to_owned());
    set("server", "github.com".to_owned());
    for (name, value) in extra {
        set(name, value.clone());
    }
    response
}
