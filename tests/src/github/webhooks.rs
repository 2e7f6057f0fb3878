//! Webhook deliveries as GitHub's Hookshot makes them: the exact body bytes signed with
//! HMAC-SHA256 of the webhook secret (`X-Hub-Signature-256: sha256=<hex>`), GitHub's headers,
//! POSTed with a 10-second timeout, and every attempt recorded with its outcome for
//! `GET /app/hook/deliveries`. A redelivery is a new delivery with the same GUID and
//! `redelivery: true`.
//!
//! A delivery is recorded once it has finished (as GitHub lists only finished ones). Without a
//! webhook URL, or while `drop_next_deliveries` is counting down, nothing is sent and the delivery
//! is recorded as failed with no status code. While `forge_next_deliveries` is counting down,
//! deliveries are signed with a wrong secret (as after a secret rotated on one side only).

use std::{sync::Arc, time::Instant};

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{
    model::Delivery,
    state::{DeliveryRec, HOOK_ID, Shared},
};

/// `sha256=<hex>` of the body under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Signs and sends `body` as event `event`, records the attempt, and returns it.
pub(crate) async fn send(shared: &Arc<Shared>, event: &str, body: Vec<u8>) -> Delivery {
    let guid = uuid::Uuid::new_v4().to_string();
    attempt(shared, event, body, guid, false).await
}

/// Sends recorded delivery `id` again (same GUID, `redelivery: true`). `None` if there is no
/// such delivery.
pub(crate) async fn redeliver(shared: &Arc<Shared>, id: i64) -> Option<Delivery> {
    let (event, body, guid) = {
        let st = shared.lock();
        let d = st.delivery(id)?;
        (
            d.delivery.event.clone(),
            d.body.clone(),
            d.delivery.guid.clone(),
        )
    };
    Some(attempt(shared, &event, body, guid, true).await)
}

async fn attempt(
    shared: &Arc<Shared>,
    event: &str,
    body: Vec<u8>,
    guid: String,
    redelivery: bool,
) -> Delivery {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (id, url, dropped, forged, registered_secret) = {
        let mut st = shared.lock();
        let id = st.ids.delivery();
        let dropped = st.faults.take_drop();
        let forged = st.faults.take_forge();
        let secret = st.webhook_secret(&shared.opts.webhook_secret).to_owned();
        (id, st.webhook_url.clone(), dropped, forged, secret)
    };
    let secret = if forged {
        "not-the-webhook-secret"
    } else {
        registered_secret.as_str()
    };
    let headers: Vec<(String, String)> = vec![
        ("Accept".into(), "*/*".into()),
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), "GitHub-Hookshot/sim".into()),
        ("X-GitHub-Delivery".into(), guid.clone()),
        ("X-GitHub-Event".into(), event.to_owned()),
        ("X-GitHub-Hook-ID".into(), HOOK_ID.to_string()),
        (
            "X-GitHub-Hook-Installation-Target-ID".into(),
            shared.opts.app_id.to_string(),
        ),
        (
            "X-GitHub-Hook-Installation-Target-Type".into(),
            "integration".into(),
        ),
        ("X-Hub-Signature-256".into(), signature(secret, &body)),
    ];
    let started = Instant::now();
    let (status_code, status_text, response_body) = match (url, dropped) {
        (Some(url), false) => {
            let mut request = shared.http.post(&url).body(body.clone());
            for (k, v) in &headers {
                request = request.header(k.as_str(), v.as_str());
            }
            match request.send().await {
                Ok(response) => {
                    let code = response.status().as_u16();
                    let text = if response.status().is_success() {
                        "OK".to_owned()
                    } else {
                        format!("Invalid HTTP Response: {code}")
                    };
                    let body = response.text().await.unwrap_or_default();
                    (Some(code), text, body)
                }
                Err(e) if e.is_timeout() => (None, "timed out".to_owned(), String::new()),
                Err(_) => (None, "failed to connect".to_owned(), String::new()),
            }
        }
        _ => (None, "failed to connect".to_owned(), String::new()),
    };
    let delivery = Delivery {
        id,
        guid,
        event: event.to_owned(),
        action: parsed
            .get("action")
            .and_then(Value::as_str)
            .map(str::to_owned),
        status_code,
        redelivery,
        installation_id: parsed.pointer("/installation/id").and_then(Value::as_i64),
        repository_id: parsed.pointer("/repository/id").and_then(Value::as_i64),
    };
    shared.lock().deliveries.push(DeliveryRec {
        delivery: delivery.clone(),
        body,
        request_headers: headers,
        response_body,
        delivered_at: Utc::now(),
        duration_secs: started.elapsed().as_secs_f64(),
        status_text,
    });
    delivery
}
