//! The one webhook extractor: an axum request becomes a [`Delivery`] — signature checked over
//! the raw body, `X-GitHub-Event` and `X-GitHub-Delivery` read and checked, the payload parsed
//! once into an [`Event`] — or a [`Refusal`] that says what GitHub should be told.
//!
//! Order matters: the signature comes first, and nothing about an unsigned request is believed
//! (not even its event header, beyond naming it in a metric). The body limit is the route's
//! (`DefaultBodyLimit`); a body over it is refused with its 413.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{FromRef, FromRequest, Request},
    http::{HeaderMap, StatusCode},
};
use secrecy::SecretString;

use super::{Event, ParseError, parse, verify_signature};

/// The webhook secret, as the extractor finds it in the router's state.
#[derive(Clone)]
pub struct WebhookSecret(pub Arc<SecretString>);

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
    /// No or a wrong `X-Hub-Signature-256`: 401. `event_name` is only what the request claims.
    Unsigned { event_name: Option<String> },
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
            Self::Unsigned { .. } => StatusCode::UNAUTHORIZED,
            Self::NoEvent | Self::BadDeliveryId | Self::Malformed { .. } => StatusCode::BAD_REQUEST,
            Self::Body { status, .. } => *status,
        }
    }

    /// The error text of the answer.
    pub fn message(&self) -> String {
        match self {
            Self::Unsigned { .. } => "missing or invalid X-Hub-Signature-256".to_owned(),
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

impl<S> FromRequest<S> for Delivery
where
    S: Send + Sync,
    WebhookSecret: FromRef<S>,
{
    type Rejection = Refusal;

    async fn from_request(request: Request, state: &S) -> Result<Self, Refusal> {
        let secret = WebhookSecret::from_ref(state);
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| Refusal::Body {
                status: e.status(),
                message: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "payload larger than 25 MB".to_owned()
                } else {
                    "cannot read the body".to_owned()
                },
            })?;
        if !verify_signature(&secret.0, &body, header(&headers, "x-hub-signature-256")) {
            return Err(Refusal::Unsigned {
                event_name: header(&headers, "x-github-event").map(str::to_owned),
            });
        }
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

    async fn send(headers: &[(&str, &str)], body: &str) -> (StatusCode, String) {
        let app = Router::new()
            .route("/", post(receive))
            .with_state(WebhookSecret(Arc::new(SecretString::from(SECRET))));
        let mut request = http::Request::post("/");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = app
            .oneshot(request.body(Body::from(body.to_owned())).expect("request"))
            .await
            .expect("answer");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
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
