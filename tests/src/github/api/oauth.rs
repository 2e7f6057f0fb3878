//! Signing people in with the App's OAuth client, as GitHub's web flow does it, and the
//! endpoints a user-to-server token reaches.
//!
//! - `GET /login/oauth/authorize` is the browser page. The person signed in to GitHub is the one
//!   named by the `user_session` cookie (a test sets it), else `signed_in_user` of the options;
//!   without either the page is GitHub's login form (200, HTML, no redirect). With it, GitHub redirects to `redirect_uri` with a one-time
//!   `code` (10 minutes) and the `state` it was given. PKCE: a `code_challenge` with method
//!   `S256` (the only one GitHub accepts here) binds the code to its verifier.
//! - `POST /login/oauth/access_token` exchanges a code, or a refresh token, for a `ghu_` token
//!   (8 hours) and a `ghr_` refresh token (single-use: a refresh returns a new pair and the old
//!   refresh token stops working). Like GitHub it answers **200 with an `error` field** for a bad
//!   code, verifier or client secret, and form-encoded unless asked for JSON.
//! - With the user token: `GET /user`, `GET /user/installations` (the App's installations where
//!   the user can reach a repository) and `GET /user/installations/{id}/repositories` (those
//!   repositories, with the user's `permissions`).

use std::{collections::BTreeMap, sync::Arc};

use base64::Engine as _;
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::{
    auth::Caller,
    encoding::{random_alnum, user_id},
    payloads,
    reply::{ApiError, ApiResult, Reply, Req, paginate},
    state::{OAuthCode, Shared, State, UserToken},
};

/// How long a user-to-server token lives (GitHub: 8 hours).
pub const USER_TOKEN_LIFETIME: Duration = Duration::hours(8);
/// How long its refresh token lives (GitHub: 6 months).
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::days(184);

/// The OAuth client id of the App the simulator was started for (as installations report it).
pub fn client_id_of(app_id: u64) -> String {
    format!("Iv1.{app_id:016x}")
}

fn html(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.as_bytes().to_vec(),
        content_type: "text/html; charset=utf-8",
        headers: Vec::new(),
    }
}

/// Whether `client_id` (and, when given, `secret`) names the App's OAuth client.
fn client_matches(shared: &Shared, st: &State, client_id: &str, secret: Option<&str>) -> bool {
    let configured = client_id == client_id_of(shared.opts.app_id)
        && secret.is_none_or(|s| s == shared.opts.oauth_client_secret);
    let registered = st
        .registered
        .as_ref()
        .is_some_and(|r| r.client_id == client_id && secret.is_none_or(|s| s == r.client_secret));
    configured || registered
}

/// GitHub's rule for an App registered with callback URLs: the redirect's scheme, host and port
/// are one callback URL's and its path is at or under that URL's path. (The App the simulator
/// starts with has no list and takes any http(s) URL.)
fn callback_allowed(st: &State, client_id: &str, redirect: &url::Url) -> bool {
    let Some(app) = st.registered.as_ref().filter(|r| r.client_id == client_id) else {
        return true;
    };
    let Some(callbacks) = app.manifest.get("callback_urls").and_then(Value::as_array) else {
        return true;
    };
    callbacks
        .iter()
        .filter_map(|c| c.as_str().and_then(|c| url::Url::parse(c).ok()))
        .any(|c| {
            c.scheme() == redirect.scheme()
                && c.host_str() == redirect.host_str()
                && c.port_or_known_default() == redirect.port_or_known_default()
                && redirect.path().starts_with(c.path().trim_end_matches('/'))
        })
}

/// The login named by the browser's `user_session` cookie.
fn browser_user(req: &Req<'_>) -> Option<String> {
    req.headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == "user_session" && !value.is_empty()).then(|| value.to_owned())
        })
}

/// `GET /login/oauth/authorize`
pub(crate) fn authorize(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let q = |k: &str| req.query.get(k).map(String::as_str);
    let client_id = q("client_id").unwrap_or_default();
    let mut st = shared.lock();
    if !client_matches(shared, &st, client_id, None) {
        return Ok(html(
            404,
            "<h1>404</h1><p>The OAuth application was not found.</p>",
        ));
    }
    let Some(redirect) = q("redirect_uri").and_then(|r| url::Url::parse(r).ok()) else {
        return Ok(html(
            400,
            "<h1>Be careful!</h1><p>The redirect_uri is not associated with this application.</p>",
        ));
    };
    if !matches!(redirect.scheme(), "http" | "https")
        || !callback_allowed(&st, client_id, &redirect)
    {
        return Ok(html(
            400,
            "<h1>Be careful!</h1><p>The redirect_uri is not associated with this application.</p>",
        ));
    }
    let challenge = match (q("code_challenge"), q("code_challenge_method")) {
        (None, None) => None,
        (Some(c), Some("S256")) if c.len() == 43 => Some(c.to_owned()),
        _ => {
            return Ok(redirect_error(
                &redirect,
                "invalid_request",
                "code_challenge must be a 43-character S256 challenge",
                q("state"),
            ));
        }
    };
    let Some(login) = browser_user(req).or_else(|| shared.opts.signed_in_user.clone()) else {
        return Ok(html(
            200,
            "<!doctype html><title>Sign in to GitHub</title><form action=\"/session\" method=\"post\">\
             <input name=\"login\"><input name=\"password\" type=\"password\"></form>",
        ));
    };
    let code = random_alnum(20);
    st.oauth_codes.insert(
        code.clone(),
        OAuthCode {
            login: login.clone(),
            client_id: client_id.to_owned(),
            redirect_uri: redirect.to_string(),
            challenge,
            expires_at: Utc::now() + Duration::minutes(10),
        },
    );
    st.calls.oauth_authorizations += 1;
    let mut target = redirect;
    {
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(state) = q("state") {
            pairs.append_pair("state", state);
        }
    }
    Ok(html(302, "").with_header("location", Some(target.to_string())))
}

fn redirect_error(
    redirect: &url::Url,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Reply {
    let mut target = redirect.clone();
    {
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("error", error);
        pairs.append_pair("error_description", description);
        if let Some(state) = state {
            pairs.append_pair("state", state);
        }
    }
    html(302, "").with_header("location", Some(target.to_string()))
}

/// The fields of an access-token request: form-encoded or JSON, as GitHub takes either.
fn token_fields(req: &Req<'_>) -> BTreeMap<String, String> {
    let json_body = req
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut fields: BTreeMap<String, String> = req.query.clone();
    if json_body {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(req.body) {
            for (k, v) in map {
                if let Some(s) = v.as_str() {
                    fields.insert(k, s.to_owned());
                }
            }
        }
    } else {
        fields.extend(url::form_urlencoded::parse(req.body).into_owned());
    }
    fields
}

/// An answer in the format the client asked for (`Accept: application/json`), else
/// form-encoded, as GitHub does.
fn token_reply(req: &Req<'_>, value: &Value) -> Reply {
    let wants_json = req
        .headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if wants_json {
        return Reply::ok(value);
    }
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    if let Value::Object(map) = value {
        for (k, v) in map {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            form.append_pair(k, &v);
        }
    }
    Reply {
        status: 200,
        body: form.finish().into_bytes(),
        content_type: "application/x-www-form-urlencoded; charset=utf-8",
        headers: Vec::new(),
    }
}

fn oauth_error(req: &Req<'_>, error: &str, description: &str) -> Reply {
    token_reply(
        req,
        &json!({
            "error": error,
            "error_description": description,
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
        }),
    )
}

/// Mints a token pair for `login`.
pub(crate) fn mint_pair(st: &mut State, login: &str, client_id: &str) -> Value {
    let access = format!("ghu_{}", random_alnum(36));
    let refresh = format!("ghr_{}", random_alnum(76));
    let now = Utc::now();
    let id = user_id(login);
    st.users.insert(id, login.to_owned());
    st.user_tokens.insert(
        access.clone(),
        UserToken {
            user_id: id,
            client_id: client_id.to_owned(),
            expires_at: now + st.user_token_lifetime.unwrap_or(USER_TOKEN_LIFETIME),
        },
    );
    st.refresh_tokens.insert(
        refresh.clone(),
        UserToken {
            user_id: id,
            client_id: client_id.to_owned(),
            expires_at: now + REFRESH_TOKEN_LIFETIME,
        },
    );
    st.calls.user_tokens_minted += 1;
    let lifetime = st.user_token_lifetime.unwrap_or(USER_TOKEN_LIFETIME);
    json!({
        "access_token": access,
        "expires_in": lifetime.num_seconds().to_string(),
        "refresh_token": refresh,
        "refresh_token_expires_in": REFRESH_TOKEN_LIFETIME.num_seconds().to_string(),
        "scope": "",
        "token_type": "bearer",
    })
}

/// `POST /login/oauth/access_token`
pub(crate) fn access_token(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let f = token_fields(req);
    let get = |k: &str| f.get(k).map(String::as_str);
    let client_id = get("client_id").unwrap_or_default();
    let mut st = shared.lock();
    if !client_matches(shared, &st, client_id, get("client_secret").or(Some(""))) {
        return Ok(oauth_error(
            req,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        ));
    }
    if get("grant_type") == Some("refresh_token") {
        let presented = get("refresh_token").unwrap_or_default();
        let Some(rec) = st.refresh_tokens.remove(presented) else {
            return Ok(oauth_error(
                req,
                "bad_refresh_token",
                "The refresh token passed is incorrect or expired.",
            ));
        };
        if rec.expires_at <= Utc::now() || rec.client_id != client_id {
            return Ok(oauth_error(
                req,
                "bad_refresh_token",
                "The refresh token passed is incorrect or expired.",
            ));
        }
        let login = st.users.get(&rec.user_id).cloned().unwrap_or_default();
        st.calls.user_token_refreshes += 1;
        let pair = mint_pair(&mut st, &login, client_id);
        return Ok(token_reply(req, &pair));
    }
    let bad_code = || {
        oauth_error(
            req,
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        )
    };
    // A code is single-use whatever the outcome of its exchange.
    let Some(code) = st.oauth_codes.remove(get("code").unwrap_or_default()) else {
        return Ok(bad_code());
    };
    if code.expires_at <= Utc::now() || code.client_id != client_id {
        return Ok(bad_code());
    }
    if get("redirect_uri").is_some_and(|r| r != code.redirect_uri) {
        return Ok(oauth_error(
            req,
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        ));
    }
    if let Some(challenge) = &code.challenge {
        let verifier = get("code_verifier").unwrap_or_default();
        let computed =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
        if verifier.len() < 43 || computed != *challenge {
            return Ok(bad_code());
        }
    }
    let pair = mint_pair(&mut st, &code.login, client_id);
    Ok(token_reply(req, &pair))
}

/// The login behind a user caller.
fn login_of(st: &State, caller: Caller) -> Result<String, ApiError> {
    match caller {
        Caller::User(id) => st
            .users
            .get(&id)
            .cloned()
            .ok_or_else(ApiError::bad_credentials),
        _ => Err(ApiError::bad_credentials()),
    }
}

/// `GET /user`
pub(crate) fn user(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let st = shared.lock();
    let login = login_of(&st, req.caller)?;
    // The authenticated user's own view: GitHub's "private user".
    let mut v = payloads::user(&shared.base_url, &login);
    let joined = super::super::encoding::timestamp(Utc::now() - Duration::days(400));
    let private = json!({
        "name": format!("{login} (simulated)"),
        "company": null, "blog": "", "location": null, "email": null, "hireable": null,
        "bio": null, "twitter_username": null,
        "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
        "created_at": joined, "updated_at": joined,
        "private_gists": 0, "total_private_repos": 0, "owned_private_repos": 0,
        "disk_usage": 0, "collaborators": 0, "two_factor_authentication": true,
    });
    if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), private) {
        v.extend(extra);
    }
    Ok(Reply::ok(&v))
}

/// Whether `login` has a role on the repository.
fn reaches(repo: &super::super::state::RepoRec, login: &str) -> bool {
    repo.role(login) != "none"
}

/// `GET /user/installations`
pub(crate) fn installations(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let st = shared.lock();
    let login = login_of(&st, req.caller)?;
    let all: Vec<Value> = st
        .installations
        .values()
        .filter(|i| !i.deleted)
        .filter(|i| {
            st.repos
                .values()
                .any(|r| r.installation_id == Some(i.id) && reaches(r, &login))
        })
        .map(|i| payloads::installation(shared, i))
        .collect();
    let (page, link) = paginate(&all, req, &shared.base_url, "/user/installations");
    Ok(
        Reply::ok(&json!({"total_count": all.len(), "installations": page}))
            .with_header("link", link),
    )
}

/// `GET /user/installations/{id}/repositories`
pub(crate) fn installation_repositories(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let id = req.id("id")?;
    let st = shared.lock();
    let login = login_of(&st, req.caller)?;
    if st.installations.get(&id).is_none_or(|i| i.deleted) {
        return Err(ApiError::not_found());
    }
    let all: Vec<Value> = st
        .repos
        .values()
        .filter(|r| r.installation_id == Some(id) && reaches(r, &login))
        .map(|r| {
            let role = r.role(&login);
            let at_least = |levels: &[&str]| levels.contains(&role.as_str());
            let mut v = payloads::repo(&shared.base_url, r);
            v["permissions"] = json!({
                "admin": at_least(&["admin"]),
                "maintain": at_least(&["admin", "maintain"]),
                "push": at_least(&["admin", "maintain", "write"]),
                "triage": at_least(&["admin", "maintain", "write", "triage"]),
                "pull": true,
            });
            v
        })
        .collect();
    if all.is_empty() {
        return Err(ApiError::not_found());
    }
    let path = format!("/user/installations/{id}/repositories");
    let (page, link) = paginate(&all, req, &shared.base_url, &path);
    Ok(Reply::ok(&json!({
        "total_count": all.len(),
        "repository_selection": "selected",
        "repositories": page,
    }))
    .with_header("link", link))
}
