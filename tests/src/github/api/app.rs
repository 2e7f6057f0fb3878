//! Endpoints the App calls with its JWT: the App itself, its installations, installation tokens,
//! the installation of a repository, and the webhook delivery log with redelivery.

use std::sync::Arc;

use serde_json::{Value, json};

use super::super::{
    auth,
    encoding::timestamp,
    payloads,
    reply::{ApiError, ApiResult, Reply, Req, paginate},
    state::{DeliveryRec, Shared},
    webhooks,
};

/// `GET /app`
pub(crate) fn get_app(shared: &Arc<Shared>, _req: &Req<'_>) -> ApiResult {
    let n = shared
        .lock()
        .installations
        .values()
        .filter(|i| !i.deleted)
        .count();
    Ok(Reply::ok(&payloads::app(shared, n)))
}

/// `GET /app/installations`
pub(crate) fn list_installations(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let all: Vec<Value> = {
        let st = shared.lock();
        st.installations
            .values()
            .filter(|i| !i.deleted)
            .map(|i| payloads::installation(shared, i))
            .collect()
    };
    let (page, link) = paginate(&all, req, &shared.base_url, "/app/installations");
    Ok(Reply::ok(&Value::Array(page)).with_header("link", link))
}

/// `GET /app/installations/{id}`
pub(crate) fn get_installation(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let id = req.id("id")?;
    let st = shared.lock();
    match st.installations.get(&id) {
        Some(i) if !i.deleted => Ok(Reply::ok(&payloads::installation(shared, i))),
        _ => Err(ApiError::not_found()),
    }
}

/// `POST /app/installations/{id}/access_tokens`
pub(crate) fn create_token(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let id = req.id("id")?;
    req.json()?;
    let mut st = shared.lock();
    match st.installations.get(&id) {
        Some(i) if !i.deleted => {
            if i.suspended {
                return Err(ApiError::new(403, "This installation has been suspended"));
            }
        }
        _ => return Err(ApiError::not_found()),
    }
    let (token, expires_at) = auth::mint(shared, &mut st, id);
    Ok(Reply::created(&json!({
        "token": token,
        "expires_at": timestamp(expires_at),
        "permissions": payloads::permissions(),
        "repository_selection": "selected",
    })))
}

/// `GET /repos/{owner}/{repo}/installation`
pub(crate) fn repo_installation(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let st = shared.lock();
    let inst = st
        .repo(&req.repo_name())
        .and_then(|r| r.installation_id)
        .and_then(|id| st.installations.get(&id))
        .filter(|i| !i.deleted)
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::ok(&payloads::installation(shared, inst)))
}

fn delivery_item(d: &DeliveryRec) -> Value {
    let p = &d.delivery;
    json!({
        "id": p.id,
        "guid": p.guid,
        "delivered_at": timestamp(d.delivered_at),
        "redelivery": p.redelivery,
        "duration": d.duration_secs,
        "status": d.status_text,
        "status_code": p.status_code.unwrap_or(0),
        "event": p.event,
        "action": p.action,
        "installation_id": p.installation_id,
        "repository_id": p.repository_id,
        "throttled_at": null,
    })
}

/// `GET /app/hook/deliveries` — newest first, `per_page` (≤ 100) and an opaque `cursor`.
pub(crate) fn list_deliveries(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let per_page = req
        .query
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let before: Option<i64> = match req.query.get("cursor") {
        Some(c) => Some(
            c.strip_prefix('v')
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| ApiError::new(400, "Invalid cursor"))?,
        ),
        None => None,
    };
    let st = shared.lock();
    let mut all: Vec<&DeliveryRec> = st
        .deliveries
        .iter()
        .filter(|d| before.is_none_or(|b| d.delivery.id < b))
        .collect();
    all.sort_by_key(|d| std::cmp::Reverse(d.delivery.id));
    let page: Vec<Value> = all
        .iter()
        .take(per_page)
        .map(|d| delivery_item(d))
        .collect();
    let link = (all.len() > per_page).then(|| {
        let last = all[per_page - 1].delivery.id;
        format!(
            "<{}/app/hook/deliveries?per_page={per_page}&cursor=v{last}>; rel=\"next\"",
            shared.base_url
        )
    });
    Ok(Reply::ok(&Value::Array(page)).with_header("link", link))
}

/// `GET /app/hook/deliveries/{id}` — the item plus the request and response.
pub(crate) fn get_delivery(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let id = req.id("id")?;
    let st = shared.lock();
    let d = st.delivery(id).ok_or_else(ApiError::not_found)?;
    let mut v = delivery_item(d);
    let headers: serde_json::Map<String, Value> = d
        .request_headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    v["url"] = Value::String(st.webhook_url.clone().unwrap_or_default());
    v["request"] = json!({
        "headers": headers,
        "payload": serde_json::from_slice::<Value>(&d.body).unwrap_or(Value::Null),
    });
    v["response"] = json!({"headers": {}, "payload": d.response_body});
    Ok(Reply::ok(&v))
}

/// `POST /app/hook/deliveries/{id}/attempts` — 202, then the delivery is sent again in the
/// background with the same GUID.
pub(crate) fn redeliver(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let id = req.id("id")?;
    if shared.lock().delivery(id).is_none() {
        return Err(ApiError::not_found());
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let _ = webhooks::redeliver(&shared, id).await;
    });
    Ok(Reply::json(202, &json!({})))
}
