//! The HTTP front door: one axum fallback handler receives every request and walks it through
//! what GitHub does before and after a handler runs: count it, delay it (latency option and
//! faults), authenticate it, spend its rate-limit budget, fire injected failures, call the
//! handler, and stamp every answer with `x-ratelimit-*` and `x-github-request-id` headers.
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
    state::{Bucket, RateWindow, Shared, State},
};

/// Rate limits per hour, as GitHub grants them (`hourly` for Apps and installations).
fn limit_of(bucket: Bucket, hourly: u64) -> u64 {
    match bucket {
        Bucket::Anonymous => 60,
        Bucket::App | Bucket::Installation(_) => hourly,
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

    let extra_delay = {
        let mut state = shared.lock();
        state.count_call(&route_key);
        state.faults.take_latency(&route_key)
    };
    let delay = shared.opts.latency + extra_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let Some((route, params)) = found else {
        let what = format!("{method} {path}");
        eprintln!("github simulator: not implemented: {what}");
        let rate = {
            let mut state = shared.lock();
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
        let bucket = caller.as_ref().map_or(Bucket::Anonymous, |c| c.bucket());
        let rate = spend(&mut state, bucket, shared.opts.rate_limit);
        if let (Ok(auth::Caller::Installation(id)), false) = (&caller, rate.exceeded) {
            *state.calls.by_installation.entry(*id).or_default() += 1;
        }
        let failure = state.faults.take_failure(&route_key);
        (caller, rate, failure)
    };
    let (caller, rate, failure) = outcome;

    let result = match (failure, caller) {
        (Some(kind), _) => Err(injected(&kind, &request_id)),
        (None, Err(e)) => Err(e),
        (None, Ok(_)) if rate.exceeded => Err(rate_limited(route.auth)),
        (None, Ok(caller)) => {
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
                params,
                query,
                headers: &headers,
                body: &body,
            };
            (route.handler)(&shared, &req)
        }
    };
    match result {
        Ok(reply) => {
            let headers = reply.headers.clone();
            finish(reply, &rate, &request_id, &headers)
        }
        Err(err) => finish(error_reply(&err), &rate, &request_id, &err.headers),
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
        // Never taken as failures (they act in auth and before dispatch).
        FaultKind::UnauthorizedOnFirstUse | FaultKind::Latency(_) => {
            ApiError::new(500, "Server Error")
        }
    }
}

/// GitHub's primary rate limit answer.
fn rate_limited(kind: routes::AuthKind) -> ApiError {
    let who = match kind {
        routes::AuthKind::App => "app",
        routes::AuthKind::Installation => "installation",
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
