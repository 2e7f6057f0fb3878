//! Endpoints the App calls with its JWT: the App itself, its installations, installation tokens,
//! the installation of a repository, and the webhook delivery log with redelivery; and the one
//! it calls before it has a JWT: the manifest flow's code exchange.

use std::{collections::BTreeSet, sync::Arc};

use serde_json::{Value, json};

use super::super::{
    auth,
    encoding::{node_id, random_alnum, random_hex, timestamp},
    payloads,
    reply::{ApiError, ApiResult, Problem, Reply, Req, paginate},
    state::{DeliveryRec, RegisteredApp, Shared, TokenScope},
    webhooks,
};

/// The private key handed out for an App the manifest flow creates: the test App's own, whose
/// public half the simulator verifies JWTs with.
const REGISTERED_APP_KEY: &str = include_str!("../../../fixtures/app-key.pem");

/// How long a manifest code is good for (GitHub: the whole flow within an hour).
const MANIFEST_CODE_LIFETIME_SECS: i64 = 3600;

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

/// `POST /app/installations/{id}/access_tokens` — optionally scoped: `repositories` (names,
/// without the owner) or `repository_ids` of the installation, and `permissions` no wider than
/// the installation's; GitHub refuses anything else with 422.
pub(crate) fn create_token(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let id = req.id("id")?;
    let body = req.json()?;
    let mut st = shared.lock();
    match st.installations.get(&id) {
        Some(i) if !i.deleted => {
            if i.suspended {
                return Err(ApiError::new(403, "This installation has been suspended"));
            }
        }
        _ => return Err(ApiError::not_found()),
    }
    let granted = TokenScope::installation();
    let not_accessible = || {
        ApiError::new(
            422,
            "There is at least one repository that does not exist or is not accessible to the parent installation.",
        )
    };
    let mut repositories: Option<BTreeSet<String>> = None;
    if let Some(v) = body.get("repositories").filter(|v| !v.is_null()) {
        let names = v
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .ok_or_else(|| {
                ApiError::validation("AccessToken", vec![Problem::invalid("repositories", None)])
            })?;
        let set = repositories.get_or_insert_with(BTreeSet::new);
        for name in names {
            let key = st
                .repos
                .iter()
                .find(|(_, r)| r.installation_id == Some(id) && r.name.eq_ignore_ascii_case(name))
                .map(|(k, _)| k.clone())
                .ok_or_else(not_accessible)?;
            set.insert(key);
        }
    }
    if let Some(v) = body.get("repository_ids").filter(|v| !v.is_null()) {
        let ids = v
            .as_array()
            .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
            .ok_or_else(|| {
                ApiError::validation(
                    "AccessToken",
                    vec![Problem::invalid("repository_ids", None)],
                )
            })?;
        let set = repositories.get_or_insert_with(BTreeSet::new);
        for rid in ids {
            let key = st
                .repos
                .iter()
                .find(|(_, r)| r.installation_id == Some(id) && r.id == rid)
                .map(|(k, _)| k.clone())
                .ok_or_else(not_accessible)?;
            set.insert(key);
        }
    }
    let mut permissions = granted.permissions.clone();
    if let Some(v) = body.get("permissions").filter(|v| !v.is_null()) {
        let asked = v.as_object().ok_or_else(|| {
            ApiError::validation("AccessToken", vec![Problem::invalid("permissions", None)])
        })?;
        permissions.clear();
        for (name, level) in asked {
            let level = level.as_str().unwrap_or_default();
            if !["read", "write", "admin"].contains(&level) || !granted.allows(name, level) {
                return Err(ApiError::new(
                    422,
                    "The permissions requested are not granted to this installation.",
                ));
            }
            permissions.insert(name.clone(), level.to_owned());
        }
        // Metadata comes with every token.
        permissions
            .entry("metadata".to_owned())
            .or_insert_with(|| "read".to_owned());
    }
    let scope = TokenScope {
        repositories: repositories.clone(),
        permissions: permissions.clone(),
    };
    let (token, expires_at) = auth::mint(shared, &mut st, id, scope);
    let mut answer = json!({
        "token": token,
        "expires_at": timestamp(expires_at),
        "permissions": permissions,
        "repository_selection": "selected",
    });
    if let Some(keys) = repositories {
        answer["repositories"] = Value::Array(
            keys.iter()
                .filter_map(|k| st.repos.get(k))
                .map(|r| payloads::repo(&shared.base_url, r))
                .collect(),
        );
    }
    Ok(Reply::created(&answer))
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

/// An App's URL name from its display name, as GitHub makes slugs.
fn slug_of(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_owned()
}

/// `POST /app-manifests/{code}/conversions` — no credential: the code is one. Unknown, used or
/// expired codes are 404, as on GitHub; a good code is spent at once and answers 201 with the
/// new App and, this once, its private key, webhook secret and client secret. From then on the
/// simulator signs deliveries with that secret and sends them to the manifest's webhook URL.
pub(crate) fn convert_manifest(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let code = req.param("code").to_owned();
    let mut st = shared.lock();
    let now = chrono::Utc::now();
    let Some(rec) = st.manifests.get_mut(&code) else {
        return Err(ApiError::not_found());
    };
    if rec.used || (now - rec.created_at).num_seconds() > MANIFEST_CODE_LIFETIME_SECS {
        return Err(ApiError::not_found());
    }
    rec.used = true;
    let manifest = rec.manifest.clone();
    let (owner, owner_type) = (rec.owner.clone(), rec.owner_type);
    let name = manifest["name"]
        .as_str()
        .map_or_else(|| format!("app-{}", random_hex(6)), str::to_owned);
    let slug = slug_of(&name);
    let id = shared.opts.app_id;
    let html_url = format!("{}/apps/{slug}", shared.base_url);
    let hook = &manifest["hook_attributes"];
    let webhook_url = (hook["active"] != Value::Bool(false))
        .then(|| hook["url"].as_str().map(str::to_owned))
        .flatten();
    let registered = RegisteredApp {
        id,
        slug: slug.clone(),
        name: name.clone(),
        owner: owner.clone(),
        html_url: html_url.clone(),
        webhook_url: webhook_url.clone(),
        webhook_secret: random_hex(40),
        client_id: format!("Iv23li{}", random_alnum(14)),
        client_secret: random_hex(40),
        manifest: manifest.clone(),
    };
    let body = json!({
        "id": id,
        "slug": slug,
        "node_id": node_id("A", i64::try_from(id).unwrap_or_default()),
        "owner": payloads::account(&shared.base_url, &owner, owner_type),
        "name": name,
        "description": manifest["description"],
        "external_url": manifest["url"],
        "html_url": html_url,
        "created_at": timestamp(now),
        "updated_at": timestamp(now),
        "permissions": manifest.get("default_permissions").cloned().unwrap_or_else(|| json!({})),
        "events": manifest.get("default_events").cloned().unwrap_or_else(|| json!([])),
        "client_id": registered.client_id,
        "client_secret": registered.client_secret,
        "webhook_secret": registered.webhook_secret,
        "pem": REGISTERED_APP_KEY,
    });
    if webhook_url.is_some() {
        st.webhook_url = webhook_url;
    }
    st.registered = Some(registered);
    Ok(Reply::created(&body))
}
