//! Dashboard sessions: server-side rows in `sessions`, found by a random cookie.
//!
//! The cookie (`__Host-previewd`: HttpOnly, Secure, SameSite=Lax, Path=/, no Domain) carries 244
//! random bits; the row's id is the SHA-256 of that value, so reading the table hands out no
//! usable cookie. The row holds the signed-in user, the CSRF token every state-changing form
//! carries, the pending OAuth round trip (state, PKCE verifier, where to go after) and the
//! person's GitHub tokens, which never leave the server — sealed (ChaCha20-Poly1305) with a key
//! derived from the cookie's value, so a copy of the database, a backup or a log of its rows
//! holds no usable GitHub token: only a request bearing the cookie unseals it. A sign-in makes
//! a new session (the one of the round trip is deleted), so a cookie planted before sign-in is
//! worth nothing after.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use http::{HeaderMap, HeaderValue, header};
use previewd_entity::{session, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The session cookie's name; the `__Host-` prefix makes browsers refuse it unless it is
/// Secure, for `/` and without a Domain.
pub const COOKIE: &str = "__Host-previewd";
/// How long a signed-in session lasts (then the person signs in again).
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// How long a sign-in round trip may take.
pub const SIGN_IN_LIFETIME: Duration = Duration::minutes(10);

/// What a session row's `data` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionData {
    /// The token every state-changing request must carry.
    #[serde(default)]
    pub csrf: String,
    /// The OAuth round trip under way (before sign-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<PendingSignIn>,
    /// The person's GitHub tokens (after sign-in). Never written as they are: the row holds
    /// them sealed ([`SessionData::sealed`]) with a key only the browser's cookie gives.
    #[serde(skip)]
    pub token: Option<StoredToken>,
    /// [`SessionData::token`] sealed: base64 of nonce and ChaCha20-Poly1305 ciphertext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sealed: Option<String>,
    /// One message to show on the next page (what an action did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flash: Option<Flash>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingSignIn {
    pub state: String,
    pub verifier: String,
    pub return_to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredToken {
    pub access: String,
    pub refresh: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

/// A session as a request found it.
#[derive(Clone)]
pub struct Session {
    /// The row's id (the cookie value's hash).
    pub id: String,
    pub user: Option<user::Model>,
    pub data: SessionData,
    /// The key the GitHub tokens are sealed with, derived from the cookie's value: the
    /// database alone cannot unseal them.
    key: [u8; 32],
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

/// The sealing key of the session whose cookie holds `value` (independent of the row's id,
/// which is the value's plain hash).
fn key_of(value: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(b"previewd session token key\0");
    digest.update(value.as_bytes());
    digest.finalize().into()
}

fn aead_key(key: &[u8; 32]) -> Option<ring::aead::LessSafeKey> {
    let unbound = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key).ok()?;
    Some(ring::aead::LessSafeKey::new(unbound))
}

/// `token` sealed with `key` under a fresh random nonce.
fn seal(key: &[u8; 32], token: &StoredToken) -> Result<String, DbErr> {
    use ring::rand::SecureRandom as _;
    let failed = || DbErr::Custom("could not seal the session's GitHub token".into());
    let mut nonce = [0u8; ring::aead::NONCE_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| failed())?;
    let mut text = serde_json::to_vec(token).map_err(|_| failed())?;
    aead_key(key)
        .ok_or_else(failed)?
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::empty(),
            &mut text,
        )
        .map_err(|_| failed())?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&text);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

/// The token `sealed` holds, if `key` opens it (a wrong key or a changed byte: none).
fn unseal(key: &[u8; 32], sealed: &str) -> Option<StoredToken> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .ok()?;
    if bytes.len() < ring::aead::NONCE_LEN {
        return None;
    }
    let (nonce, text) = bytes.split_at(ring::aead::NONCE_LEN);
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut text = text.to_vec();
    let plain = aead_key(key)?
        .open_in_place(nonce, ring::aead::Aad::empty(), &mut text)
        .ok()?;
    serde_json::from_slice(plain).ok()
}

/// `data` as a row stores it: the token sealed with `key`.
fn stored(key: &[u8; 32], data: &SessionData) -> Result<serde_json::Value, DbErr> {
    let mut row = data.clone();
    row.sealed = match &data.token {
        Some(token) => Some(seal(key, token)?),
        None => None,
    };
    serde_json::to_value(&row).map_err(|e| DbErr::Custom(e.to_string()))
}

/// A row's data, its token unsealed with `key`.
fn unstored(key: &[u8; 32], value: serde_json::Value) -> SessionData {
    let mut data: SessionData = serde_json::from_value(value).unwrap_or_default();
    data.token = data.sealed.take().and_then(|s| unseal(key, &s));
    data
}

/// 244 random bits (two version-4 UUIDs from the system's generator), URL-safe.
pub fn random_token() -> String {
    let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| u.as_bytes().to_vec())
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// The session cookie's value in a request, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty() && value.len() <= 128).then(|| value.to_owned())
        })
}

/// The `Set-Cookie` header for a session cookie (`None`: one that clears it).
pub fn set_cookie(value: Option<&str>) -> HeaderValue {
    let text = match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
            SESSION_LIFETIME.num_seconds()
        ),
        None => format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The live session a request's cookie names, with its user.
pub async fn load(
    db: &impl ConnectionTrait,
    headers: &HeaderMap,
) -> Result<Option<Session>, DbErr> {
    let Some(value) = cookie_value(headers) else {
        return Ok(None);
    };
    let found = session::Entity::find_by_id(hash(&value))
        .find_also_related(user::Entity)
        .one(db)
        .await?;
    let Some((row, user)) = found else {
        return Ok(None);
    };
    if row.expires_at <= Utc::now() {
        session::Entity::delete_by_id(row.id).exec(db).await?;
        return Ok(None);
    }
    let key = key_of(&value);
    let data = unstored(&key, row.data);
    Ok(Some(Session {
        id: row.id,
        user,
        data,
        key,
    }))
}

/// A new session; returns the cookie value (shown to nobody but the browser) and the session.
pub async fn create(
    db: &impl ConnectionTrait,
    user_id: Option<i64>,
    data: SessionData,
    lifetime: Duration,
) -> Result<(String, Session), DbErr> {
    let value = random_token();
    let id = hash(&value);
    let key = key_of(&value);
    let stored = stored(&key, &data)?;
    let now = Utc::now();
    session::ActiveModel {
        id: Set(id.clone()),
        user_id: Set(user_id),
        data: Set(stored),
        expires_at: Set(now + lifetime),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    let user = match user_id {
        Some(id) => user::Entity::find_by_id(id).one(db).await?,
        None => None,
    };
    Ok((
        value,
        Session {
            id,
            user,
            data,
            key,
        },
    ))
}

/// Writes `session.data`.
pub async fn save(db: &impl ConnectionTrait, session: &Session) -> Result<(), DbErr> {
    let data = stored(&session.key, &session.data)?;
    session::Entity::update_many()
        .col_expr(session::Column::Data, sea_orm::sea_query::Expr::value(data))
        .filter(session::Column::Id.eq(session.id.clone()))
        .exec(db)
        .await
        .map(drop)
}

/// Reads a session's data again (another request may have refreshed its token); false when
/// the session is gone.
pub async fn reload(db: &impl ConnectionTrait, session: &mut Session) -> Result<bool, DbErr> {
    let Some(row) = session::Entity::find_by_id(session.id.clone())
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    session.data = unstored(&session.key, row.data);
    Ok(true)
}

/// Ends a session.
pub async fn destroy(db: &impl ConnectionTrait, id: &str) -> Result<(), DbErr> {
    session::Entity::delete_by_id(id.to_owned())
        .exec(db)
        .await
        .map(drop)
}

/// Ends every session of a user (their authorization was revoked); returns how many.
pub async fn destroy_all_of(db: &impl ConnectionTrait, user_id: i64) -> Result<u64, DbErr> {
    Ok(session::Entity::delete_many()
        .filter(session::Column::UserId.eq(user_id))
        .exec(db)
        .await?
        .rows_affected)
}

/// Records a sign-in: the user's row, created or brought up to date.
pub async fn upsert_user(
    db: &impl ConnectionTrait,
    person: &crate::github::person::Person,
    operator: bool,
) -> Result<(), DbErr> {
    let now = Utc::now();
    user::Entity::insert(user::ActiveModel {
        id: Set(person.id),
        login: Set(person.login.clone()),
        name: Set(person.name.clone()),
        avatar_url: Set(person.avatar_url.clone()),
        is_operator: Set(operator),
        created_at: Set(now),
        last_login_at: Set(Some(now)),
    })
    .on_conflict(
        OnConflict::column(user::Column::Id)
            .update_columns([
                user::Column::Login,
                user::Column::Name,
                user::Column::AvatarUrl,
                user::Column::IsOperator,
                user::Column::LastLoginAt,
            ])
            .to_owned(),
    )
    .exec(db)
    .await
    .map(drop)
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_and_bounded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; __Host-previewd=xyz; c=d"),
        );
        assert_eq!(cookie_value(&h).as_deref(), Some("xyz"));
        h.insert(header::COOKIE, HeaderValue::from_static("previewd=xyz"));
        assert_eq!(cookie_value(&h), None);
        let set = set_cookie(Some("v")).to_str().expect("ascii").to_owned();
        for part in [
            "__Host-previewd=v",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set.contains("Domain"));
    }

    #[test]
    fn github_tokens_are_sealed_to_the_cookie() {
        let token = StoredToken {
            access: "ghu_accessaccessaccessaccessaccess0000".into(),
            refresh: Some("ghr_refreshrefreshrefreshrefresh0000".into()),
            expires_at: None,
        };
        let data = SessionData {
            csrf: "c".into(),
            token: Some(token.clone()),
            ..SessionData::default()
        };
        let key = key_of("the cookie");
        let row = stored(&key, &data).expect("sealed");
        let text = row.to_string();
        assert!(!text.contains("ghu_") && !text.contains("ghr_"), "{text}");
        assert_eq!(unstored(&key, row.clone()).token, Some(token));
        assert_eq!(unstored(&key_of("another cookie"), row.clone()).token, None);
        let mut tampered = row.clone();
        let sealed = tampered["sealed"].as_str().expect("sealed").to_owned();
        let flipped = if sealed.ends_with('A') { "B" } else { "A" };
        tampered["sealed"] = format!("{}{flipped}", &sealed[..sealed.len() - 1]).into();
        assert_eq!(unstored(&key, tampered).token, None);
        // Two seals of one token differ (a fresh nonce each time).
        assert_ne!(stored(&key, &data).expect("sealed"), row);
        // A row from before sealing (a plain `token`) yields no token, not a plaintext one.
        let old = serde_json::json!({"csrf": "c", "token": {"access": "ghu_x", "refresh": null}});
        assert_eq!(unstored(&key, old).token, None);
    }

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret("ab", "abc"));
    }
}
