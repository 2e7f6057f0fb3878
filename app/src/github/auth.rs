//! GitHub App authentication: the App's own JWT, and installation tokens cached per installation.
//!
//! The JWT is octocrab's (`octocrab::auth::create_jwt`): RS256, `iat` 60 s in the past (GitHub's
//! allowance for clock drift), `exp` 9 minutes ahead (GitHub refuses more than 10), integer
//! seconds, `iss` the App id; one is reused for [`JWT_REUSE`] (4 minutes), so signing costs one
//! RSA operation per 4 minutes, not one per request as the App. Installation tokens live an hour; [`TokenCache`] hands out a cached
//! token until it is within [`REFRESH_MARGIN`] of expiry, and each installation has its own async
//! mutex, so concurrent callers wait for one mint instead of minting a token each (octocrab's own
//! installation clients mint one per concurrent caller and keep a cache per client).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use octocrab::models::AppId;
use secrecy::{ExposeSecret, SecretString};

/// A token this close to expiry is replaced before use.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How long one App JWT is handed out again. It is good for 9 minutes from its making; reused
/// for 4, it always has at least 5 left when sent — while a signature each call would be an
/// RSA operation per GitHub request made as the App (every token mint and retry of one).
pub const JWT_REUSE: Duration = Duration::from_secs(240);

/// The App's identity: its id and signing key.
#[derive(Clone)]
pub struct AppAuth {
    app_id: u64,
    key: octocrab::auth::AppAuth,
    /// The JWT made last, and until when it is handed out again.
    recent: Arc<Mutex<Option<(SecretString, SystemTime)>>>,
}

impl std::fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppAuth")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl AppAuth {
    /// Prepares signing with the App's RSA private key (PEM).
    pub fn new(app_id: u64, private_key_pem: &SecretString) -> Result<Self, String> {
        let key =
            octocrab::EncodingKey::from_rsa_pem(private_key_pem.expose_secret().as_bytes())
                .map_err(|_| "the GitHub App private key is not a valid RSA PEM key".to_owned())?;
        Ok(Self {
            app_id,
            key: octocrab::auth::AppAuth {
                app_id: AppId(app_id),
                key,
            },
            recent: Arc::default(),
        })
    }

    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    /// An App JWT: the one made within [`JWT_REUSE`], else a new one.
    pub fn jwt(&self) -> Result<SecretString, String> {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = SystemTime::now();
        if let Some((jwt, until)) = recent.as_ref()
            && now < *until
        {
            return Ok(jwt.clone());
        }
        let jwt = self
            .key
            .generate_bearer_token()
            .map(SecretString::from)
            .map_err(|_| "cannot sign the App JWT".to_owned())?;
        *recent = Some((jwt.clone(), now + JWT_REUSE));
        Ok(jwt)
    }
}

/// An installation token and when it stops working.
#[derive(Clone)]
pub struct InstallationToken {
    pub token: SecretString,
    pub expires_at: SystemTime,
}

impl InstallationToken {
    fn fresh(&self) -> bool {
        SystemTime::now() + REFRESH_MARGIN < self.expires_at
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<InstallationToken>>>;

/// Installation tokens by installation id.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<i64, Slot>>,
}

impl TokenCache {
    fn slot(&self, installation: i64) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(installation).or_default().clone()
    }

    /// Returns a fresh token for `installation`, calling `mint` only when none is cached; callers
    /// for the same installation wait for one mint.
    pub async fn get<F, Fut, E>(&self, installation: i64, mint: F) -> Result<SecretString, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<InstallationToken, E>>,
    {
        let slot = self.slot(installation);
        let mut guard = slot.lock().await;
        if let Some(token) = guard.as_ref().filter(|t| t.fresh()) {
            return Ok(token.token.clone());
        }
        let token = mint().await?;
        let secret = token.token.clone();
        *guard = Some(token);
        Ok(secret)
    }

    /// Forgets `token` (GitHub answered 401 with it) unless it was already replaced.
    pub async fn invalidate(&self, installation: i64, token: &SecretString) {
        let slot = self.slot(installation);
        let mut guard = slot.lock().await;
        if guard
            .as_ref()
            .is_some_and(|t| t.token.expose_secret() == token.expose_secret())
        {
            *guard = None;
        }
    }

    /// Forgets the installation entirely (uninstalled).
    pub fn remove(&self, installation: i64) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.remove(&installation);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn token(valid_for: Duration) -> InstallationToken {
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        InstallationToken {
            token: SecretString::from(format!("ghs_test{}", SERIAL.fetch_add(1, Ordering::SeqCst))),
            expires_at: SystemTime::now() + valid_for,
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_mint() {
        let cache = Arc::new(TokenCache::default());
        let mints = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, mints) = (cache.clone(), mints.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(7, || async {
                        mints.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok::<_, ()>(token(Duration::from_secs(3600)))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.expect("task").is_ok());
        }
        assert_eq!(mints.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn near_expiry_and_invalidated_tokens_are_replaced() {
        let cache = TokenCache::default();
        let mints = AtomicU32::new(0);
        let mint = |valid| {
            mints.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, ()>(token(valid)) }
        };
        let t = cache
            .get(1, || mint(Duration::from_secs(60)))
            .await
            .expect("token");
        // Within the refresh margin: replaced on next use.
        cache
            .get(1, || mint(Duration::from_secs(3600)))
            .await
            .expect("token");
        assert_eq!(mints.load(Ordering::SeqCst), 2);
        cache.invalidate(1, &t).await; // an old token: no effect
        cache
            .get(1, || mint(Duration::from_secs(3600)))
            .await
            .expect("token");
        assert_eq!(mints.load(Ordering::SeqCst), 2);
        let current = cache
            .get(1, || mint(Duration::from_secs(3600)))
            .await
            .expect("token");
        cache.invalidate(1, &current).await;
        cache
            .get(1, || mint(Duration::from_secs(3600)))
            .await
            .expect("token");
        assert_eq!(mints.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn jwt_claims_follow_githubs_rules() {
        let pem = SecretString::from(include_str!("../../../tests/fixtures/app-key.pem"));
        let auth = AppAuth::new(42, &pem).expect("key");
        let jwt = auth.jwt().expect("jwt");
        let payload = jwt.expose_secret().split('.').nth(1).expect("payload");
        use base64::Engine as _;
        #[derive(serde::Deserialize)]
        struct Claims {
            iat: u64,
            exp: u64,
            iss: serde_json::Number,
        }
        let claims: Claims = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("b64"),
        )
        .expect("json");
        let (iat, exp) = (claims.iat, claims.exp);
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        assert!(iat <= now - 59 && iat >= now - 61, "iat is 60 s back");
        assert!(exp - iat <= 600, "at most 10 minutes");
        assert!(exp > now, "not expired");
        assert_eq!(
            claims.iss.as_u64(),
            Some(42),
            "the App id, as GitHub accepts it"
        );
        // Reused while it has more than 5 minutes left; a clone shares it.
        assert!(exp >= now + 300 + JWT_REUSE.as_secs() - 1);
        let again = auth.clone().jwt().expect("jwt");
        assert_eq!(again.expose_secret(), jwt.expose_secret());
    }
}
