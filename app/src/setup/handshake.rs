//! The secrets of one registration, kept in Redis so that every app replica shares them: the
//! setup code that guards the setup page, and the `state` values that tie GitHub's redirect back
//! to the browser that started it.
//!
//! - The **setup code** (`{prefix}:setup:code`) is made by the first replica that needs it
//!   (`SET NX`) and printed in every replica's log; whoever reads the log may register the App.
//!   It has 16 characters from a 32-letter alphabet (about 79 random bits), is compared in
//!   constant time, and is deleted once the App is registered, so it opens the page once.
//! - A **state** (`{prefix}:setup:state:{state}`) is made when the code is accepted, sent to
//!   GitHub with the manifest and set as a cookie on the browser; the callback accepts GitHub's
//!   redirect only if the query's state equals the cookie and exists in Redis, and deletes it
//!   (`GETDEL`): a forged redirect (CSRF) or a replayed one finds nothing. States expire with
//!   GitHub's own limit for the flow, one hour.

use redis::aio::ConnectionManager;

/// How long a state is good for: GitHub wants the whole flow done within an hour.
pub const STATE_TTL_SECONDS: u64 = 3600;

const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// The Redis side of the setup flow.
#[derive(Clone)]
pub struct Handshake {
    redis: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
        }
    }

    fn code_key(&self) -> String {
        format!("{}:setup:code", self.prefix)
    }

    fn state_key(&self, state: &str) -> String {
        format!("{}:setup:state:{state}", self.prefix)
    }

    /// The setup code, made now if no replica made one yet.
    pub async fn code(&self) -> redis::RedisResult<String> {
        let mut conn = self.redis.clone();
        // `OK` when this call made the code, nil when another replica had made it.
        let _made: Option<String> = redis::cmd("SET")
            .arg(self.code_key())
            .arg(new_code())
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        redis::cmd("GET")
            .arg(self.code_key())
            .query_async(&mut conn)
            .await
    }

    /// Whether `given` is the setup code (spaces, dashes and case are ignored).
    pub async fn check_code(&self, given: &str) -> redis::RedisResult<bool> {
        let mut conn = self.redis.clone();
        let stored: Option<String> = redis::cmd("GET")
            .arg(self.code_key())
            .query_async(&mut conn)
            .await?;
        Ok(stored.is_some_and(|code| same_code(&code, given)))
    }

    /// A new state for one trip to GitHub and back.
    pub async fn new_state(&self) -> redis::RedisResult<String> {
        let state = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut conn = self.redis.clone();
        redis::cmd("SET")
            .arg(self.state_key(&state))
            .arg("1")
            .arg("EX")
            .arg(STATE_TTL_SECONDS)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(state)
    }

    /// Consumes `state`: true if it was issued here and not used or expired yet.
    pub async fn take_state(&self, state: &str) -> redis::RedisResult<bool> {
        if state.is_empty() || state.len() > 128 || !state.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let mut conn = self.redis.clone();
        let found: Option<String> = redis::cmd("GETDEL")
            .arg(self.state_key(state))
            .query_async(&mut conn)
            .await?;
        Ok(found.is_some())
    }

    /// Ends the setup: the code stops opening the page.
    pub async fn close(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        redis::cmd("DEL")
            .arg(self.code_key())
            .query_async::<()>(&mut conn)
            .await
    }
}

/// A fresh code, `XXXX-XXXX-XXXX-XXXX`.
fn new_code() -> String {
    // Bytes 6 and 8 of a v4 UUID carry version and variant bits: skip them.
    let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| {
            u.as_bytes()
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 6 && *i != 8)
                .map(|(_, b)| *b)
                .collect::<Vec<u8>>()
        })
        .collect();
    let letters: Vec<char> = bytes
        .iter()
        .take(16)
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    letters
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

fn normalize(code: &str) -> Vec<u8> {
    code.bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'-')
        .map(|b| b.to_ascii_uppercase())
        .collect()
}

/// Compares two codes in time independent of where they differ.
fn same_code(stored: &str, given: &str) -> bool {
    let (a, b) = (normalize(stored), normalize(given));
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_look_right_and_differ() {
        let a = new_code();
        assert_eq!(a.len(), 19, "{a}");
        assert!(
            a.split('-')
                .all(|g| g.len() == 4 && g.bytes().all(|b| ALPHABET.contains(&b))),
            "{a}"
        );
        assert_ne!(a, new_code());
    }

    #[test]
    fn codes_compare_loosely_but_exactly() {
        assert!(same_code("ABCD-EFGH-JKLM-NPQR", "abcd efgh jklm npqr"));
        assert!(same_code("ABCD-EFGH-JKLM-NPQR", "ABCDEFGHJKLMNPQR"));
        assert!(!same_code("ABCD-EFGH-JKLM-NPQR", "ABCD-EFGH-JKLM-NPQS"));
        assert!(!same_code("ABCD-EFGH-JKLM-NPQR", "ABCD-EFGH-JKLM"));
        assert!(!same_code("ABCD", ""));
        assert!(!same_code("", ""));
    }
}
