//! Credentials as GitHub checks them: the App's JWT (RS256 against the App's public key, with
//! GitHub's rules on `iat`, `exp` and `iss`) on `/app/*`, installation tokens (`ghs_…`, minted
//! by `POST /app/installations/{id}/access_tokens`, expiring) on the repository endpoints, and
//! nothing on the few public ones (the manifest flow: its one-time code is the credential).
//!
//! A token is only good for its own installation's repositories; using it on another's answers 401
//! (real GitHub answers 404 or 403 there; the simulator is deliberately louder). A token minted
//! with a scope (`repositories` / `repository_ids`, `permissions`) carries it: other
//! repositories are 404 and routes needing a permission it lacks are 403 "Resource not
//! accessible by integration", as on GitHub (checked by the front door, `server`).

use axum::http::HeaderMap;
use chrono::Utc;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::{
    encoding::random_alnum,
    reply::ApiError,
    routes::AuthKind,
    state::{Bucket, Shared, State, TokenRec, TokenScope},
};

/// Who made a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The App, by JWT.
    App,
    /// An installation, by token.
    Installation(i64),
    /// A person, by the user-to-server token they got signing in (`ghu_…`).
    User(i64),
    /// Nobody in particular: a public route.
    Anonymous,
}

impl Caller {
    pub fn bucket(self) -> Bucket {
        match self {
            Caller::App => Bucket::App,
            Caller::Installation(id) => Bucket::Installation(id),
            Caller::User(id) => Bucket::User(id),
            Caller::Anonymous => Bucket::Anonymous,
        }
    }
}

/// Checks the request's credential against what the route wants.
pub(crate) fn authenticate(
    shared: &Shared,
    state: &mut State,
    kind: AuthKind,
    headers: &HeaderMap,
    route_key: &str,
) -> Result<(Caller, Option<TokenScope>), ApiError> {
    if kind == AuthKind::Public {
        return Ok((Caller::Anonymous, None));
    }
    let credential = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, value) = v.trim().split_once(' ')?;
            let scheme = scheme.to_ascii_lowercase();
            (scheme == "bearer" || scheme == "token").then(|| value.trim().to_owned())
        });
    let Some(credential) = credential else {
        return Err(ApiError::new(401, "Requires authentication"));
    };
    match kind {
        AuthKind::App => verify_jwt(shared, &credential).map(|()| (Caller::App, None)),
        AuthKind::Installation => use_token(state, &credential, route_key),
        AuthKind::User => match state.user_tokens.get(&credential) {
            Some(t) if t.expires_at > Utc::now() => Ok((Caller::User(t.user_id), None)),
            _ => Err(ApiError::bad_credentials()),
        },
        AuthKind::Public => Ok((Caller::Anonymous, None)),
    }
}

fn jwt_error(message: &str) -> ApiError {
    ApiError::new(401, message)
}

/// Verifies an App JWT the way GitHub does: RS256 signed by the App's key, `iss` the App id
/// (number or string), not expired, `exp` at most 10 minutes ahead, `iat` not in the future
/// (60 s of clock skew allowed).
fn verify_jwt(shared: &Shared, jwt: &str) -> Result<(), ApiError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(jwt, &shared.jwt_key, &validation)
        .map_err(|_| jwt_error("A JSON web token could not be decoded"))?
        .claims;
    let now = Utc::now().timestamp();
    let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
        return Err(jwt_error(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        ));
    };
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Err(jwt_error(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        ));
    };
    let iss = match claims.get("iss") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        _ => None,
    };
    if iss != Some(shared.opts.app_id) {
        return Err(jwt_error("A JSON web token could not be decoded"));
    }
    if iat > now + 60 {
        return Err(jwt_error(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        ));
    }
    if exp <= now || exp <= iat {
        return Err(jwt_error(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        ));
    }
    if exp > now + 600 {
        return Err(jwt_error(
            "'Expiration time' claim ('exp') is too far in the future",
        ));
    }
    Ok(())
}

fn use_token(
    state: &mut State,
    token: &str,
    route_key: &str,
) -> Result<(Caller, Option<TokenScope>), ApiError> {
    let Some(rec) = state.tokens.get(token) else {
        return Err(ApiError::bad_credentials());
    };
    let installation_id = rec.installation_id;
    if rec.expires_at <= Utc::now() {
        return Err(ApiError::bad_credentials());
    }
    match state.installations.get(&installation_id) {
        Some(i) if !i.deleted => {
            if i.suspended {
                return Err(ApiError::new(403, "This installation has been suspended"));
            }
        }
        _ => return Err(ApiError::bad_credentials()),
    }
    let first_use = rec.uses == 0;
    let scope = rec.scope.clone();
    if let Some(rec) = state.tokens.get_mut(token) {
        rec.uses += 1;
    }
    if first_use && state.faults.take_unauthorized_first_use(route_key) {
        return Err(ApiError::bad_credentials());
    }
    Ok((Caller::Installation(installation_id), Some(scope)))
}

/// Mints a token for the installation; the caller already checked it may.
pub(crate) fn mint(
    shared: &Shared,
    state: &mut State,
    installation_id: i64,
    scope: TokenScope,
) -> (String, chrono::DateTime<Utc>) {
    let token = format!("ghs_{}", random_alnum(36));
    let lifetime = chrono::Duration::from_std(shared.opts.token_lifetime)
        .unwrap_or_else(|_| chrono::Duration::hours(1));
    let expires_at = Utc::now() + lifetime;
    state.tokens.insert(
        token.clone(),
        TokenRec {
            installation_id,
            expires_at,
            uses: 0,
            scope,
        },
    );
    state.calls.tokens_minted += 1;
    (token, expires_at)
}

/// Fails unless the caller's installation holds the repository (404 if there is no such
/// repository). Returns the repository's state key.
pub(crate) fn repo_access(
    state: &State,
    caller: Caller,
    full_name: &str,
) -> Result<String, ApiError> {
    let key = State::key(full_name);
    let Some(repo) = state.repos.get(&key) else {
        return Err(ApiError::not_found());
    };
    match caller {
        Caller::Installation(id) if repo.installation_id == Some(id) => Ok(key),
        Caller::Installation(_) => Err(ApiError::bad_credentials()),
        Caller::App => Ok(key),
        Caller::User(_) => Err(ApiError::new(403, "Resource not accessible by integration")),
        Caller::Anonymous => Err(ApiError::new(401, "Requires authentication")),
    }
}
