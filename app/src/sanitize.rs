//! Sanitizing text before it becomes visible on GitHub (check runs, comments, deployment
//! statuses) or the dashboard: build logs, pod logs, Kubernetes events and error messages can
//! carry credentials, and GitHub is not the place for them (DESIGN.md §8).
//!
//! [`sanitize`] removes GitHub tokens, bearer and basic credentials, credentials inside URLs,
//! PEM private keys, JWTs (Kubernetes service-account tokens are JWTs) and the cluster's
//! internal hostnames, then caps the length on a character boundary. It is deliberately greedy:
//! a false positive costs a few characters of log, a false negative leaks a secret.

use std::sync::LazyLock;

use regex::Regex;

/// What a removed secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

struct Rule {
    pattern: Regex,
    replacement: &'static str,
}

#[expect(
    clippy::expect_used,
    reason = "the patterns are constants checked by the tests"
)]
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |pattern: &str, replacement: &'static str| Rule {
        pattern: Regex::new(pattern).expect("valid sanitizer pattern"),
        replacement,
    };
    vec![
        // PEM blocks (private keys, certificates with keys), even when truncated.
        rule(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(-----END [A-Z ]*PRIVATE KEY-----|\z)",
            "[REDACTED PRIVATE KEY]",
        ),
        // user:password@ inside URLs (git clone URLs with tokens, database URLs).
        rule(
            r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]*@",
            "${1}[REDACTED]@",
        ),
        rule(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+@", "${1}[REDACTED]@"),
        // Authorization headers.
        rule(
            r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{8,}",
            "${1} [REDACTED]",
        ),
        // GitHub tokens: installation (ghs_), personal (ghp_), OAuth (gho_), user-to-server
        // (ghu_), refresh (ghr_), fine-grained PATs (github_pat_).
        rule(
            r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
            REDACTED,
        ),
        // JWTs, including Kubernetes service-account tokens.
        rule(
            r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
            REDACTED,
        ),
        // key=value / key: value secrets in logs and env dumps.
        rule(
            // A value that itself starts with such a key (`password: token: x`) is skipped
            // over, so the secret after it goes too.
            r#"(?i)\b([a-z0-9_]*(?:password|passwd|secret|token|api_?key|private_?key)[a-z0-9_]*)\s*([=:])\s*(?:[a-z0-9_]*(?:password|passwd|secret|token|api_?key|private_?key)[a-z0-9_]*\s*[=:]\s*)*["']?[^\s"',;]+"#,
            "${1}${2}[REDACTED]",
        ),
        // Cluster-internal hostnames tell an attacker the cluster's layout.
        rule(
            r"\b[a-z0-9]([a-z0-9-]*\.)+(svc\.cluster\.local|cluster\.local|svc|internal)\b",
            "[internal-host]",
        ),
    ]
});

/// Removes secrets from `text` and caps it to `max_chars` characters (an ellipsis marks a cut).
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut clean = text.to_owned();
    for rule in RULES.iter() {
        if rule.pattern.is_match(&clean) {
            clean = rule
                .pattern
                .replace_all(&clean, rule.replacement)
                .into_owned();
        }
    }
    cap(&clean, max_chars)
}

/// Keeps the *end* of a log (where the failure is), sanitized, within `max_chars`.
pub fn sanitize_tail(text: &str, max_chars: usize) -> String {
    let clean = sanitize(text, usize::MAX);
    let count = clean.chars().count();
    if count <= max_chars {
        return clean;
    }
    let skip = count - max_chars.saturating_sub(1);
    format!("…{}", clean.chars().skip(skip).collect::<String>())
}

/// Caps `text` to `max_chars` characters, marking a cut with an ellipsis.
pub fn cap(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        sanitize(s, 10_000)
    }

    #[test]
    fn github_tokens_are_removed() {
        for token in [
            "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        ] {
            let out = clean(&format!("fatal: auth failed for {token} here"));
            assert!(!out.contains(token), "{out}");
            assert!(out.contains(REDACTED), "{out}");
        }
    }

    #[test]
    fn credentials_in_urls_and_headers_are_removed() {
        let out = clean(
            "cloning https://x-access-token:ghs_abc123456789012345678901@github.com/acme/web.git",
        );
        assert!(!out.contains("ghs_abc"), "{out}");
        assert!(
            out.contains("https://[REDACTED]@github.com/acme/web.git"),
            "{out}"
        );
        let out = clean("postgres://admin:hunter2@db:5432/app and redis://:pw@r:6379");
        assert!(!out.contains("hunter2") && !out.contains(":pw@"), "{out}");
        let out = clean("Authorization: Bearer abcdefghijklmnop1234 rest");
        assert!(!out.contains("abcdefghijklmnop1234"), "{out}");
        let out = clean("curl -H 'Authorization: token 0123456789abcdef0123'");
        assert!(!out.contains("0123456789abcdef0123"), "{out}");
    }

    #[test]
    fn a_secret_behind_a_chain_of_keys_is_removed() {
        // Found by app/tests/fuzz.rs: the value of the first key was the second key.
        let out = clean("cpassword: hupassword: hunter2 and token=secret=s3cr3t");
        assert!(!out.contains("hunter2") && !out.contains("s3cr3t"), "{out}");
        assert!(out.contains("cpassword:[REDACTED]"), "{out}");
    }

    #[test]
    fn keys_jwts_and_assignments_are_removed() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----";
        let out = clean(&format!("key: {pem} done"));
        assert!(!out.contains("MIIEow"), "{out}");
        assert!(out.ends_with("done"), "{out}");
        let truncated = clean("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN");
        assert!(!truncated.contains("MIIEvQ"), "{truncated}");
        let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJl";
        let out = clean(&format!("token={jwt}"));
        assert!(!out.contains("eyJpc3Mi"), "{out}");
        let out = clean("DB_PASSWORD=s3cr3t API_KEY: abc123 secret=\"q\"");
        for leaked in ["s3cr3t", "abc123", "\"q\""] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
    }

    #[test]
    fn internal_hostnames_are_masked() {
        let out = clean("dial tcp: lookup registry.previewd.svc.cluster.local: no such host");
        assert!(!out.contains("registry.previewd"), "{out}");
        assert!(out.contains("[internal-host]"), "{out}");
    }

    #[test]
    fn ordinary_text_is_kept() {
        let text = "Error: listen EADDRINUSE: address already in use :::8080\n    at Server.listen";
        assert_eq!(clean(text), text);
    }

    #[test]
    fn length_is_capped_on_char_boundaries() {
        let text = "ü".repeat(100);
        let out = sanitize(&text, 10);
        assert_eq!(out.chars().count(), 10);
        assert!(out.ends_with('…'));
        let tail = sanitize_tail("first line\nsecond line\nlast line", 12);
        assert_eq!(tail.chars().count(), 12);
        assert!(tail.ends_with("last line"), "{tail}");
    }
}
