//! GitHub's "new App" pages as the admin's browser meets them in the manifest flow:
//! `POST /settings/apps/new` (a personal account) and
//! `POST /organizations/{org}/settings/apps/new`, with the form field `manifest` (JSON) and an
//! optional `state` in the query.
//!
//! The manifest is checked as GitHub checks it before it shows the confirmation page: a JSON
//! object with only the manifest's keys, an http(s) `url`, a `redirect_url`, a webhook URL when
//! `hook_attributes` is given, a name of at most 34 characters, permission levels GitHub knows
//! and no event GitHub refuses to list. Real GitHub then asks the person to confirm; the
//! simulator confirms at once and redirects to `redirect_url?code=…&state=…`, the code being
//! single-use and good for an hour (`POST /app-manifests/{code}/conversions`).

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use super::super::{
    encoding::random_hex,
    reply::{ApiError, ApiResult, Reply, Req},
    state::{ManifestRec, Shared},
};

/// Every key a manifest may have.
const MANIFEST_KEYS: &[&str] = &[
    "name",
    "url",
    "description",
    "hook_attributes",
    "redirect_url",
    "callback_urls",
    "setup_url",
    "public",
    "default_events",
    "default_permissions",
    "request_oauth_on_install",
    "setup_on_update",
];

/// Events delivered to every App, which GitHub refuses in `default_events`.
const UNLISTABLE_EVENTS: &[&str] = &["installation", "installation_repositories", "ping"];

/// `POST /settings/apps/new`
pub(crate) fn for_user(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    new_app(shared, req, "octo-admin", "User")
}

/// `POST /organizations/{org}/settings/apps/new`
pub(crate) fn for_organization(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let org = req.param("org").to_owned();
    new_app(shared, req, &org, "Organization")
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(422, message)
}

fn is_http_url(v: &Value) -> bool {
    v.as_str()
        .and_then(|s| url::Url::parse(s).ok())
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// Checks a manifest the way GitHub's page does before showing it.
pub(crate) fn check_manifest(manifest: &Value) -> Result<(), ApiError> {
    let Some(fields) = manifest.as_object() else {
        return Err(invalid("Invalid manifest: not a JSON object"));
    };
    if let Some(unknown) = fields.keys().find(|k| !MANIFEST_KEYS.contains(&k.as_str())) {
        return Err(invalid(format!(
            "Invalid manifest: unknown key {unknown:?}"
        )));
    }
    if !fields.get("url").is_some_and(is_http_url) {
        return Err(invalid("Invalid manifest: url must be an http(s) URL"));
    }
    if !fields.get("redirect_url").is_some_and(is_http_url) {
        return Err(invalid(
            "Invalid manifest: redirect_url must be an http(s) URL",
        ));
    }
    if let Some(setup) = fields.get("setup_url")
        && !is_http_url(setup)
    {
        return Err(invalid(
            "Invalid manifest: setup_url must be an http(s) URL",
        ));
    }
    if let Some(hook) = fields.get("hook_attributes")
        && !hook.get("url").is_some_and(is_http_url)
    {
        return Err(invalid(
            "Invalid manifest: hook_attributes.url must be an http(s) URL",
        ));
    }
    if let Some(name) = fields.get("name") {
        let ok = name
            .as_str()
            .is_some_and(|n| !n.trim().is_empty() && n.chars().count() <= 34);
        if !ok {
            return Err(invalid("Name is too long (maximum is 34 characters)"));
        }
    }
    if let Some(permissions) = fields.get("default_permissions") {
        let Some(map) = permissions.as_object() else {
            return Err(invalid(
                "Invalid manifest: default_permissions is not an object",
            ));
        };
        if let Some((k, _)) = map
            .iter()
            .find(|(_, v)| !matches!(v.as_str(), Some("read" | "write" | "admin")))
        {
            return Err(invalid(format!("Invalid permission level for {k}")));
        }
    }
    if let Some(events) = fields.get("default_events") {
        let Some(list) = events.as_array() else {
            return Err(invalid("Invalid manifest: default_events is not a list"));
        };
        for event in list {
            match event.as_str() {
                Some(e) if UNLISTABLE_EVENTS.contains(&e) => {
                    return Err(invalid(format!("Default events unsupported: {e}")));
                }
                Some(_) => {}
                None => return Err(invalid("Invalid manifest: events are strings")),
            }
        }
    }
    Ok(())
}

fn new_app(
    shared: &Arc<Shared>,
    req: &Req<'_>,
    owner: &str,
    owner_type: &'static str,
) -> ApiResult {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(req.body).into_owned().collect();
    let Some((_, raw)) = form.iter().find(|(k, _)| k == "manifest") else {
        return Err(invalid("No manifest was posted"));
    };
    let manifest: Value =
        serde_json::from_str(raw).map_err(|_| invalid("Invalid manifest: not JSON"))?;
    check_manifest(&manifest)?;
    let code = random_hex(20);
    let mut redirect = url::Url::parse(manifest["redirect_url"].as_str().unwrap_or_default())
        .map_err(|_| invalid("Invalid manifest: redirect_url"))?;
    {
        let mut query = redirect.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(state) = req.query.get("state") {
            query.append_pair("state", state);
        }
    }
    shared.lock().manifests.insert(
        code,
        ManifestRec {
            manifest,
            owner: owner.to_owned(),
            owner_type,
            created_at: Utc::now(),
            used: false,
        },
    );
    Ok(Reply {
        status: 302,
        body: Vec::new(),
        content_type: "text/html; charset=utf-8",
        headers: vec![("location", redirect.to_string())],
    })
}
