//! Names previewd gives Kubernetes things: the preview namespace and label values.
//!
//! Kubernetes is strict about both (a namespace is a DNS-1123 label; a label value is at most 63
//! characters of `[A-Za-z0-9._-]` with alphanumeric ends) while repository names are not, and the
//! namespace name must be stable (every job derives it again from the repository and the PR) and
//! distinct for distinct previews (two previews in one namespace would overwrite each other). So
//! the rule is: keep the readable form when it is unambiguous and fits, otherwise append
//! `-<8 hex of sha256(input)>` to a shortened readable form. Everything here is pure and total:
//! any string in, a valid name out.

use sha2::{Digest as _, Sha256};

/// Longest DNS-1123 label, and longest label value.
pub const MAX_LABEL_LEN: usize = 63;

/// Hex digits of the hash suffix.
const HASH_LEN: usize = 8;

/// The namespace of the preview of pull request `pr_number` of `repo_full_name` (`owner/repo`).
///
/// `acme/web` #12 → `acme-web-pr-12`. GitHub names are case-insensitive, so the input is
/// ASCII-lowercased first: `Acme/Web` and `acme/web` are the same repository and get the same
/// namespace. The readable form is kept only when it can be read back unambiguously — an owner
/// without `-` (GitHub owners have no `.` or `_`), a repository of `[a-z0-9]` words joined by
/// single `-`, starting with a letter, fitting in 63 characters. Any other input (`acme-corp/web`,
/// `acme/web.app`, unicode, very long names…) gets the 8-hex hash suffix of the full input, so
/// that `acme/web-app` and `acme-web/app` cannot share a namespace.
pub fn namespace_name(repo_full_name: &str, pr_number: u64) -> String {
    let lower = repo_full_name.to_ascii_lowercase();
    let slug = slugify(&lower);
    let readable = if slug.is_empty() {
        format!("pr-{pr_number}")
    } else {
        format!("{slug}-pr-{pr_number}")
    };
    let starts_with_letter = readable.starts_with(|c: char| c.is_ascii_lowercase());
    if is_plain_repo(&lower) && starts_with_letter && readable.len() <= MAX_LABEL_LEN {
        return readable;
    }
    let readable = if starts_with_letter {
        readable
    } else {
        format!("p-{readable}")
    };
    let hash = short_hash(&format!("{lower}#{pr_number}"));
    // `readable` is ASCII, so byte slicing is character slicing.
    let keep = readable.len().min(MAX_LABEL_LEN - HASH_LEN - 1);
    let head = readable[..keep].trim_end_matches('-');
    format!("{head}-{hash}")
}

/// The namespace of attempt `attempt_id`'s image build for the preview in `preview_namespace`:
/// `<preview namespace>--b<attempt>`, the preview part shortened to fit 63 characters. Preview
/// namespaces never contain `--` (see [`namespace_name`]), so a build namespace can never be a
/// preview's, and each attempt's build gets a fresh one.
pub fn build_namespace_name(preview_namespace: &str, attempt_id: i64) -> String {
    let suffix = format!("--b{attempt_id}");
    let keep = preview_namespace
        .len()
        .min(MAX_LABEL_LEN.saturating_sub(suffix.len()));
    // Preview namespaces are ASCII, so byte slicing is character slicing.
    let head = preview_namespace
        .get(..keep)
        .unwrap_or(preview_namespace)
        .trim_end_matches('-');
    format!("{head}{suffix}")
}

/// Whether `s` is a DNS-1123 label as previewd makes them: 1–63 characters of `[a-z0-9-]`,
/// starting with a letter (stricter than RFC 1123, which allows a leading digit) and ending with
/// a letter or digit.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Whether `s` is a valid Kubernetes label value (the empty string is one).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= MAX_LABEL_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// `s` as a Kubernetes label value: `s` itself when it already is one, otherwise its valid
/// characters (runs of others become one `-`), shortened, with `-<8 hex of sha256(s)>` appended.
/// `acme/web` → `acme-web-<hash>`: every repository full name is hashed, since `/` is not allowed.
pub fn label_value(s: &str) -> String {
    if is_label_value(s) {
        return s.to_owned();
    }
    let mut cleaned = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            cleaned.push(c);
        } else if !cleaned.ends_with('-') {
            cleaned.push('-');
        }
    }
    let hash = short_hash(s);
    let keep = cleaned.len().min(MAX_LABEL_LEN - HASH_LEN - 1);
    let head = cleaned[..keep].trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if head.is_empty() {
        hash
    } else {
        format!("{head}-{hash}")
    }
}

/// First 8 hex digits of the SHA-256 of `s`.
pub(crate) fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    hex::encode(&digest[..HASH_LEN / 2])
}

/// Lowercase letters and digits kept, every other run (including non-ASCII) one `-`, no `-` at
/// either end. Expects ASCII-lowercased input.
fn slugify(lower: &str) -> String {
    let mut out = String::with_capacity(lower.len());
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Whether `owner/repo` (lowercased) maps to its slug without ambiguity: one `/`, an owner of
/// `[a-z0-9]` only (so the first `-` of the slug is the `/`), and a repository of `[a-z0-9]` words
/// joined by single `-` (so nothing was collapsed or trimmed).
fn is_plain_repo(lower: &str) -> bool {
    let Some((owner, repo)) = lower.split_once('/') else {
        return false;
    };
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    word(owner) && repo.split('-').all(word)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// Inputs a hostile or merely unusual repository name could produce.
    fn hostile_inputs() -> Vec<String> {
        let mut inputs: Vec<String> = [
            "acme/web",
            "Acme/Web",
            "acme/web-app",
            "acme-web/app",
            "acme/web.app",
            "acme/web_app",
            "acme/web--app",
            "acme/-web",
            "acme/web-",
            "ünï/代码",
            "ünï/代碼",
            "日本/語",
            "🚀/🔥",
            "🚀/🔥🔥",
            "",
            "/",
            "--",
            "---/---",
            "...",
            "!!!/@@@",
            "1password/app",
            "p/1password-app",
            "0/0",
            "a.b.c/d.e.f",
            "UPPER/CASE.REPO",
            "owner/repo/extra",
            "no-slash",
            " spaced / name ",
            "tab\tand\nnewline/x",
            "a/b\u{0}c",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        inputs.push(format!("{}/{}", "o".repeat(100), "r".repeat(154)));
        inputs.push(format!("{}/{}", "o".repeat(100), "r".repeat(155)));
        inputs.push("x".repeat(255));
        inputs.push("ü".repeat(255));
        inputs.push(format!("acme/{}", "a".repeat(60)));
        inputs.push(format!("acme/{}", "a".repeat(61)));
        // Pseudo-random strings over a hostile alphabet (deterministic: no flaky failures).
        let alphabet: Vec<char> = "aZ09-._/ü代🚀 \t#:@".chars().collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let len = (next() % 90) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            inputs.push(s);
        }
        inputs
    }

    #[test]
    fn readable_names_for_ordinary_repositories() {
        assert_eq!(namespace_name("acme/web", 12), "acme-web-pr-12");
        assert_eq!(namespace_name("Acme/Web", 12), "acme-web-pr-12");
        assert_eq!(namespace_name("acme/web-app", 7), "acme-web-app-pr-7");
        assert_eq!(namespace_name("a1/b2", 0), "a1-b2-pr-0");
    }

    #[test]
    fn ambiguous_names_get_a_hash_suffix() {
        // Both would read `acme-web-app-pr-1`; only one of them may.
        let a = namespace_name("acme/web-app", 1);
        let b = namespace_name("acme-web/app", 1);
        assert_eq!(a, "acme-web-app-pr-1");
        assert_ne!(a, b);
        assert!(b.starts_with("acme-web-app-pr-1-"), "{b}");
        for hashed in [
            "acme/web.app",
            "acme/web_app",
            "acme/web--app",
            "1password/app",
        ] {
            let name = namespace_name(hashed, 3);
            let (_, suffix) = name.rsplit_once('-').unwrap();
            assert_eq!(suffix.len(), HASH_LEN, "{hashed} → {name}");
        }
        assert!(namespace_name("1password/app", 3).starts_with("p-1password-app-pr-3-"));
    }

    #[test]
    fn long_names_are_truncated_with_a_stable_hash() {
        let long = format!("acme/{}", "a".repeat(250));
        let name = namespace_name(&long, 123_456);
        assert_eq!(name.len(), MAX_LABEL_LEN);
        assert!(is_dns1123_label(&name), "{name}");
        assert_eq!(name, namespace_name(&long, 123_456));
        assert_ne!(name, namespace_name(&long, 123_457));
        assert_ne!(name, namespace_name(&format!("{long}b"), 123_456));
        // Exactly at the limit stays readable; one more character is hashed.
        let fits = format!("acme/{}", "a".repeat(63 - "acme--pr-1".len()));
        assert_eq!(namespace_name(&fits, 1).len(), 63);
        assert!(namespace_name(&fits, 1).ends_with("-pr-1"));
        let over = format!("{fits}a");
        assert!(!namespace_name(&over, 1).ends_with("-pr-1"));
    }

    #[test]
    fn namespace_names_are_valid_deterministic_and_distinct() {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for input in hostile_inputs() {
            for pr in [0, 1, 42, u64::MAX] {
                let name = namespace_name(&input, pr);
                assert!(is_dns1123_label(&name), "{input:?} #{pr} → {name:?}");
                assert_eq!(name, namespace_name(&input, pr), "not deterministic");
                // Distinct up to ASCII case, which GitHub ignores.
                let key = format!("{}#{pr}", input.to_ascii_lowercase());
                if let Some(previous) = seen.insert(name.clone(), key.clone()) {
                    assert_eq!(previous, key, "{previous:?} and {key:?} both → {name}");
                }
            }
        }
    }

    #[test]
    fn label_values_are_valid_deterministic_and_distinct() {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for input in hostile_inputs() {
            let value = label_value(&input);
            assert!(is_label_value(&value), "{input:?} → {value:?}");
            assert_eq!(value, label_value(&input));
            if let Some(previous) = seen.insert(value.clone(), input.clone()) {
                assert_eq!(previous, input, "{previous:?} and {input:?} both → {value}");
            }
        }
        assert_eq!(label_value("v1.2_3-x"), "v1.2_3-x");
        assert_eq!(label_value(""), "");
        assert!(label_value("acme/web").starts_with("acme-web-"));
        assert_eq!(label_value(&"x".repeat(255)).len(), MAX_LABEL_LEN);
    }

    #[test]
    fn label_checks_reject_what_kubernetes_rejects() {
        for bad in ["", "-a", "a-", "1abc", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad:?}");
        }
        for bad in ["-a", "a-", ".a", "a/b", "ü", &"a".repeat(64)] {
            assert!(!is_label_value(bad), "{bad:?}");
        }
        let distinct: BTreeSet<_> = ["a", "a-b", "a.b", "A_b"]
            .iter()
            .map(|s| label_value(s))
            .collect();
        assert_eq!(distinct.len(), 4);
    }
}
