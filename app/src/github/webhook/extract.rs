//! The one webhook extractor: an axum request becomes a [`Delivery`] — signature checked over
//! the raw body, `X-GitHub-Event` and `X-GitHub-Delivery` read and checked, the payload parsed
//! once into an [`Event`] — or a [`Refusal`] that says what GitHub should be told.
//!
//! Order matters: the signature comes first, and nothing about an unsigned request is believed
//! (not even its event header). What an unauthenticated sender can cost is bounded before a
//! byte of the body is read: a request without a well-formed `X-Hub-Signature-256` is refused
//! (401) at once; one without `Content-Length` gets 411 and one announcing more than 25 MB 413
//! (GitHub always sends the length); the bytes of bodies not yet verified are capped in total
//! ([`UnverifiedBodies`]) — past the cap, 503, so GitHub may redeliver — and a body must arrive
//! within [`BODY_READ_TIMEOUT`].

use std::{sync::Arc, time::Duration};

use axum::{
    body::Bytes,
    extract::{FromRef, FromRequest, Request},
    http::{HeaderMap, StatusCode, header::CONTENT_LENGTH},
};
use bytes::BytesMut;
use http_body_util::BodyExt as _;
use secrecy::SecretString;
use tokio::sync::Semaphore;

use super::{Event, ParseError, parse, verify::verify_signature_parts};

/// The webhook secret, as the extractor finds it in the router's state.
#[derive(Clone)]
pub struct WebhookSecret(pub Arc<SecretString>);

/// GitHub's own limit on webhook payloads.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// How long a delivery's body may take to arrive once its headers have (GitHub sends its
/// deliveries whole and gives up on them after 10 s).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of bodies not yet verified held at once, over every request.
pub const UNVERIFIED_BUDGET: usize = 32 * 1024 * 1024;

/// The budget of bytes for bodies being read and not yet verified, shared by every request of
/// the process (in KiB permits).
#[derive(Clone, Debug)]
pub struct UnverifiedBodies {
    permits: Arc<Semaphore>,
    total: usize,
}

impl UnverifiedBodies {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let total = bytes.div_ceil(1024);
        Self {
            permits: Arc::new(Semaphore::new(total)),
            total,
        }
    }
}

/// A body's share of the budget. Given back when dropped; when it was a big share and the
/// budget is idle again, the memory the bodies took is handed back to the system
/// ([`crate::memory`]): a flood of large unsigned uploads leaves the process where it started.
struct Held<'a> {
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
    budget: &'a UnverifiedBodies,
}

/// A body this big or bigger (in KiB) is worth a [`crate::memory::release_freed_soon`].
const BIG_BODY_KIB: u32 = 1024;

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let big = self
            .permit
            .as_ref()
            .is_some_and(|p| p.num_permits() >= BIG_BODY_KIB as usize);
        drop(self.permit.take());
        if big && self.budget.permits.available_permits() == self.budget.total {
            crate::memory::release_freed_soon();
        }
    }
}

impl Default for UnverifiedBodies {
    fn default() -> Self {
        Self::new(UNVERIFIED_BUDGET)
    }
}

/// A delivery that passed the edge.
#[derive(Debug)]
pub struct Delivery {
    /// `X-GitHub-Delivery`: GitHub's id of the delivery, the same on a redelivery.
    pub guid: String,
    /// `X-GitHub-Event`.
    pub event_name: String,
    pub event: Event,
    /// The raw body (the delivery record keeps its `action`).
    pub body: Bytes,
}

/// Why a request is not a delivery previewd accepts.
#[derive(Debug)]
pub enum Refusal {
    /// No, a malformed or a wrong `X-Hub-Signature-256`: 401.
    Unsigned,
    /// Too many bytes of unverified bodies are in flight: 503 (GitHub may redeliver).
    Busy,
    /// Signed, but without `X-GitHub-Event`: 400.
    NoEvent,
    /// Signed, but without a plausible `X-GitHub-Delivery`: 400.
    BadDeliveryId,
    /// Signed, but the body is not the event it claims: 400.
    Malformed {
        guid: String,
        event_name: String,
        error: ParseError,
    },
    /// The body could not be read (over the limit: 413).
    Body { status: StatusCode, message: String },
}

impl Refusal {
    /// The HTTP status GitHub gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unsigned => StatusCode::UNAUTHORIZED,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::NoEvent | Self::BadDeliveryId | Self::Malformed { .. } => StatusCode::BAD_REQUEST,
            Self::Body { status, .. } => *status,
        }
    }

    /// The error text of the answer.
    pub fn message(&self) -> String {
        match self {
            Self::Unsigned => "missing or invalid X-Hub-Signature-256".to_owned(),
            Self::Busy => "too many deliveries being received; try again".to_owned(),
            Self::NoEvent => "missing X-GitHub-Event".to_owned(),
            Self::BadDeliveryId => "missing or invalid X-GitHub-Delivery".to_owned(),
            Self::Malformed { error, .. } => error.to_string(),
            Self::Body { message, .. } => message.clone(),
        }
    }
}

impl axum::response::IntoResponse for Refusal {
    fn into_response(self) -> axum::response::Response {
        (
            self.status(),
            axum::Json(serde_json::json!({ "error": self.message() })),
        )
            .into_response()
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// GitHub's delivery ids are GUIDs; anything else is not from GitHub.
fn valid_guid(guid: &str) -> bool {
    guid.len() <= 64 && guid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Whether `value` has the form of a signature (`sha256=` and 64 hex digits), so the body is
/// worth reading.
fn signature_shaped(value: Option<&str>) -> bool {
    value
        .and_then(|v| v.strip_prefix("sha256="))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn body_refusal(status: StatusCode, message: &str) -> Refusal {
    Refusal::Body {
        status,
        message: message.to_owned(),
    }
}

/// Reads exactly `length` bytes of body within [`BODY_READ_TIMEOUT`], as the parts it arrived
/// in: an unverified body is never copied into one large buffer (memory the allocator may keep
/// after a flood of forged uploads), only a verified one is ([`join`]).
async fn read_body(request: Request, length: usize) -> Result<Vec<Bytes>, Refusal> {
    let mut body = request.into_body();
    let mut parts = Vec::new();
    let mut received = 0;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| {
                body_refusal(StatusCode::BAD_REQUEST, "the body broke off before its end")
            })?;
            if let Ok(data) = frame.into_data() {
                received += data.len();
                if received > length {
                    return Err(body_refusal(
                        StatusCode::BAD_REQUEST,
                        "the body is longer than its Content-Length",
                    ));
                }
                parts.push(data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(())) if received == length => Ok(parts),
        Ok(Ok(())) => Err(body_refusal(
            StatusCode::BAD_REQUEST,
            "the body is shorter than its Content-Length",
        )),
        Ok(Err(refusal)) => Err(refusal),
        Err(_) => Err(body_refusal(
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive in time",
        )),
    }
}

/// A verified body in one buffer (the parser reads contiguous bytes).
fn join(mut parts: Vec<Bytes>) -> Bytes {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    let mut whole = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    for part in parts {
        whole.extend_from_slice(&part);
    }
    whole.freeze()
}

impl<S> FromRequest<S> for Delivery
where
    S: Send + Sync,
    WebhookSecret: FromRef<S>,
    UnverifiedBodies: FromRef<S>,
{
    type Rejection = Refusal;

    async fn from_request(request: Request, state: &S) -> Result<Self, Refusal> {
        let secret = WebhookSecret::from_ref(state);
        let headers = request.headers().clone();
        let signature = header(&headers, "x-hub-signature-256");
        if !signature_shaped(signature) {
            return Err(Refusal::Unsigned);
        }
        let Some(length) = header(&headers, CONTENT_LENGTH.as_str()) else {
            return Err(body_refusal(
                StatusCode::LENGTH_REQUIRED,
                "Content-Length is required",
            ));
        };
        let length = match length.parse::<usize>() {
            Ok(n) if n <= MAX_BODY => n,
            Ok(_) => {
                return Err(body_refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload larger than 25 MB",
                ));
            }
            Err(_) => {
                return Err(body_refusal(
                    StatusCode::BAD_REQUEST,
                    "Content-Length is not a number",
                ));
            }
        };
        // Held until the signature is checked: the bytes an unknown sender makes us keep.
        let kib = u32::try_from(length.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let budget = UnverifiedBodies::from_ref(state);
        let Ok(permit) = budget.permits.try_acquire_many(kib) else {
            return Err(Refusal::Busy);
        };
        let permit = Held {
            permit: Some(permit),
            budget: &budget,
        };
        let parts = read_body(request, length).await?;
        let signed = verify_signature_parts(&secret.0, parts.iter().map(|p| &p[..]), signature);
        if !signed {
            return Err(Refusal::Unsigned);
        }
        drop(permit);
        let body = join(parts);
        let event_name = header(&headers, "x-github-event")
            .ok_or(Refusal::NoEvent)?
            .to_owned();
        let guid = header(&headers, "x-github-delivery")
            .filter(|g| valid_guid(g))
            .ok_or(Refusal::BadDeliveryId)?
            .to_owned();
        match parse(&event_name, &body) {
            Ok(event) => Ok(Self {
                guid,
                event_name,
                event,
                body,
            }),
            Err(error) => Err(Refusal::Malformed {
                guid,
                event_name,
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http, routing::post};
    use tower::ServiceExt as _;

    use super::*;
    use crate::github::webhook::sign;

    const SECRET: &str = "s3cret";

    async fn receive(delivery: Result<Delivery, Refusal>) -> (StatusCode, String) {
        match delivery {
            Ok(d) => (StatusCode::OK, format!("{}:{}", d.event_name, d.guid)),
            Err(r) => (r.status(), r.message()),
        }
    }

    #[derive(Clone)]
    struct TestState {
        secret: WebhookSecret,
        budget: UnverifiedBodies,
    }

    impl FromRef<TestState> for WebhookSecret {
        fn from_ref(state: &TestState) -> Self {
            state.secret.clone()
        }
    }

    impl FromRef<TestState> for UnverifiedBodies {
        fn from_ref(state: &TestState) -> Self {
            state.budget.clone()
        }
    }

    fn state(budget: usize) -> TestState {
        TestState {
            secret: WebhookSecret(Arc::new(SecretString::from(SECRET))),
            budget: UnverifiedBodies::new(budget),
        }
    }

    async fn send_to(
        state: TestState,
        headers: &[(&str, &str)],
        body: Body,
    ) -> (StatusCode, String) {
        let app = Router::new().route("/", post(receive)).with_state(state);
        let mut request = http::Request::post("/");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = app
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("answer");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Sends `body` with its `Content-Length`, as GitHub (and any HTTP client) does.
    async fn send(headers: &[(&str, &str)], body: &str) -> (StatusCode, String) {
        let length = body.len().to_string();
        let mut all = headers.to_vec();
        all.push(("content-length", length.as_str()));
        send_to(state(UNVERIFIED_BUDGET), &all, Body::from(body.to_owned())).await
    }

    /// A body that never ends: whoever reads it waits forever.
    fn endless() -> Body {
        Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>())
    }

    #[tokio::test]
    async fn unsigned_requests_are_refused_before_their_body_is_read() {
        let headers = [
            ("x-github-event", "push"),
            ("content-length", "1000"),
            ("x-hub-signature-256", "sha256=nothex"),
        ];
        let (status, _) = send_to(state(UNVERIFIED_BUDGET), &headers, endless()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = send_to(state(UNVERIFIED_BUDGET), &headers[..2], endless()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn unverified_bodies_are_bounded_in_length_and_in_total() {
        let sig = format!("sha256={}", "0".repeat(64));
        let signed = ("x-hub-signature-256", sig.as_str());
        // No length: 411; too long: 413; both before a byte is read.
        let (status, _) = send_to(state(UNVERIFIED_BUDGET), &[signed], endless()).await;
        assert_eq!(status, StatusCode::LENGTH_REQUIRED);
        let over = (MAX_BODY + 1).to_string();
        let (status, _) = send_to(
            state(UNVERIFIED_BUDGET),
            &[signed, ("content-length", over.as_str())],
            endless(),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        // More than the budget at once: 503, so GitHub may redeliver.
        let (status, message) = send_to(
            state(4096),
            &[signed, ("content-length", "8192")],
            endless(),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{message}");
        // A body that stops short of its length is refused, and its budget given back.
        let budget = state(4096);
        let (status, _) = send_to(
            budget.clone(),
            &[signed, ("content-length", "10")],
            Body::from("short"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(budget.budget.permits.available_permits(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_is_cut_off() {
        let sig = format!("sha256={}", "0".repeat(64));
        let (status, _) = send_to(
            state(UNVERIFIED_BUDGET),
            &[
                ("x-hub-signature-256", sig.as_str()),
                ("content-length", "10"),
            ],
            endless(),
        )
        .await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn signature_first_then_headers_then_payload() {
        let body = "{}";
        let sig = sign(SECRET, body.as_bytes());
        let ok = [
            ("x-hub-signature-256", sig.as_str()),
            ("x-github-event", "ping"),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ];
        assert_eq!(
            send(&ok, body).await,
            (
                StatusCode::OK,
                "ping:72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned()
            )
        );
        let forged = sign("other", body.as_bytes());
        let (status, _) = send(
            &[("x-hub-signature-256", forged.as_str()), ok[1], ok[2]],
            body,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            send(&[ok[1], ok[2]], body).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(send(&[ok[0], ok[2]], body).await.0, StatusCode::BAD_REQUEST);
        let bad_guid = [ok[0], ok[1], ("x-github-delivery", "../etc/passwd")];
        assert_eq!(send(&bad_guid, body).await.0, StatusCode::BAD_REQUEST);
        let text = "[1]";
        let sig = sign(SECRET, text.as_bytes());
        let (status, message) =
            send(&[("x-hub-signature-256", sig.as_str()), ok[1], ok[2]], text).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.contains("not a JSON object"), "{message}");
    }
}
