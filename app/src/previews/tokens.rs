//! API tokens: the bearer tokens the REST API and MCP will take, each acting as the person who
//! made it — with that person's access as it is when the token is used, never a copy of it.
//!
//! A token is `pvd_` and 43 URL-safe random characters. Only its SHA-256 is stored
//! (`api_tokens.token_hash`), with its first [`SHOWN`] characters to recognise it in a list;
//! the token itself is shown once, when it is made. People make and revoke their own on the
//! dashboard (`/tokens`); an operator can make one for any person who has signed in, and list and
//! revoke them, from the command line (`previewd token …`, for automation and first set-up).

use chrono::{DateTime, Utc};
use previewd_entity::{api_token, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

/// What every token starts with (so a leaked one is recognisable, e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "pvd_";
/// Characters of a token kept in the clear to recognise it by.
pub const SHOWN: usize = 12;
/// The longest name a token may have.
pub const MAX_NAME: usize = 100;
/// Live (not revoked, not expired) tokens one person may hold.
pub const MAX_PER_USER: u64 = 50;
/// The longest a token may live.
pub const MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);
/// How often a token's `last_used_at` is written, at most.
const USE_RESOLUTION: chrono::Duration = chrono::Duration::minutes(1);

/// Why a token was not made or found.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// What was asked cannot be done, in words for the person who asked.
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Store(#[from] DbErr),
}

/// A token just made: its row, and the token itself (shown once, then gone).
#[derive(Debug)]
pub struct Created {
    pub token: api_token::Model,
    pub secret: SecretString,
}

/// The stored hash of `token`.
fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a token row is in force at `now`.
pub fn is_live(token: &api_token::Model, now: DateTime<Utc>) -> bool {
    token.revoked_at.is_none() && token.expires_at.is_none_or(|at| at > now)
}

/// Makes a token for `user_id` named `name`, expiring after `lifetime` (None: when revoked).
pub async fn create(
    db: &impl ConnectionTrait,
    user_id: i64,
    name: &str,
    lifetime: Option<std::time::Duration>,
) -> Result<Created, TokenError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(TokenError::Invalid(format!(
            "a token needs a name of 1 to {MAX_NAME} characters (no control characters)"
        )));
    }
    let now = Utc::now();
    let expires_at = match lifetime {
        None => None,
        Some(d) if d.is_zero() || d > MAX_LIFETIME => {
            return Err(TokenError::Invalid(
                "a token's lifetime must be more than zero and at most 366 days".into(),
            ));
        }
        Some(d) => Some(
            now + chrono::Duration::from_std(d)
                .map_err(|_| TokenError::Invalid("that lifetime is too long".into()))?,
        ),
    };
    let live = api_token::Entity::find()
        .filter(api_token::Column::UserId.eq(user_id))
        .filter(api_token::Column::RevokedAt.is_null())
        .filter(
            sea_orm::Condition::any()
                .add(api_token::Column::ExpiresAt.is_null())
                .add(api_token::Column::ExpiresAt.gt(now)),
        )
        .count(db)
        .await?;
    if live >= MAX_PER_USER {
        return Err(TokenError::Invalid(format!(
            "you already hold {MAX_PER_USER} tokens; revoke one first"
        )));
    }
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        crate::web::dashboard::session::random_token()
    );
    let token = api_token::ActiveModel {
        user_id: Set(user_id),
        name: Set(name.to_owned()),
        token_hash: Set(hash(&secret)),
        token_prefix: Set(secret.chars().take(SHOWN).collect()),
        created_at: Set(now),
        last_used_at: Set(None),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(Created {
        token,
        secret: SecretString::from(secret),
    })
}

/// `user_id`'s tokens, newest first, revoked and expired ones included.
pub async fn of_user(
    db: &impl ConnectionTrait,
    user_id: i64,
) -> Result<Vec<api_token::Model>, DbErr> {
    api_token::Entity::find()
        .filter(api_token::Column::UserId.eq(user_id))
        .order_by_desc(api_token::Column::Id)
        .all(db)
        .await
}

/// Every token with its person, newest first (an operator's listing).
pub async fn all(
    db: &impl ConnectionTrait,
) -> Result<Vec<(api_token::Model, Option<user::Model>)>, DbErr> {
    api_token::Entity::find()
        .find_also_related(user::Entity)
        .order_by_desc(api_token::Column::Id)
        .all(db)
        .await
}

/// Revokes token `id` — only if it is `owner`'s, when given (a person revoking their own; the
/// command line gives none). False: no such token (of theirs), or already revoked.
pub async fn revoke(db: &impl ConnectionTrait, id: i64, owner: Option<i64>) -> Result<bool, DbErr> {
    let mut update = api_token::Entity::update_many()
        .col_expr(
            api_token::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(api_token::Column::Id.eq(id))
        .filter(api_token::Column::RevokedAt.is_null());
    if let Some(owner) = owner {
        update = update.filter(api_token::Column::UserId.eq(owner));
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// The live token `presented` is, with its person; `None` for anything else (unknown, revoked,
/// expired, not a token at all). Notes the use, at most once a minute per token.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    presented: &SecretString,
) -> Result<Option<(api_token::Model, user::Model)>, DbErr> {
    let presented = presented.expose_secret();
    if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 200 {
        return Ok(None);
    }
    let found = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(hash(presented)))
        .find_also_related(user::Entity)
        .one(db)
        .await?;
    let now = Utc::now();
    let Some((token, Some(person))) = found else {
        return Ok(None);
    };
    if !is_live(&token, now) {
        return Ok(None);
    }
    if token
        .last_used_at
        .is_none_or(|at| now - at >= USE_RESOLUTION)
    {
        api_token::Entity::update_many()
            .col_expr(
                api_token::Column::LastUsedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(api_token::Column::Id.eq(token.id))
            .exec(db)
            .await?;
    }
    Ok(Some((token, person)))
}

/// The person who signed in with `login` (case-insensitive), if they ever did.
pub async fn person(db: &impl ConnectionTrait, login: &str) -> Result<Option<user::Model>, DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait as _, Func};
    user::Entity::find()
        .filter(Expr::expr(Func::lower(Expr::col(user::Column::Login))).eq(login.to_lowercase()))
        .one(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        let h = hash("pvd_x");
        assert_eq!(h.len(), 64);
        assert_ne!(h, hash("pvd_y"));
    }

    #[test]
    fn liveness_counts_revocation_and_expiry() {
        let now = Utc::now();
        let mut t = api_token::Model {
            id: 1,
            user_id: 1,
            name: "n".into(),
            token_hash: String::new(),
            token_prefix: String::new(),
            created_at: now,
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        };
        assert!(is_live(&t, now));
        t.expires_at = Some(now);
        assert!(!is_live(&t, now), "expired at its expiry");
        t.expires_at = Some(now + chrono::Duration::seconds(1));
        assert!(is_live(&t, now));
        t.revoked_at = Some(now);
        assert!(!is_live(&t, now));
    }
}
