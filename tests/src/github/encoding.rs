//! Small encodings GitHub's wire format needs and that the crate's dependencies do not give us
//! directly: base64 (the contents API), random tokens and shas, node ids, percent-decoding of path
//! segments, and GitHub's timestamp format.

use chrono::{DateTime, SecondsFormat, Utc};

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base64 the way the contents API sends it: lines of 60 characters, each ending in `\n`.
pub fn base64_lines(bytes: &[u8]) -> String {
    let flat = base64(bytes);
    let mut out = String::with_capacity(flat.len() + flat.len() / 60 + 1);
    for line in flat.as_bytes().chunks(60) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(n);
    out
}

/// `n` random lowercase hex digits (a commit sha is 40).
pub fn random_hex(n: usize) -> String {
    hex::encode(random_bytes(n.div_ceil(2)))[..n].to_owned()
}

/// `n` random ASCII letters and digits (an installation token is `ghs_` + 36).
pub fn random_alnum(n: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    random_bytes(n)
        .into_iter()
        .map(|b| char::from(ALNUM[usize::from(b) % ALNUM.len()]))
        .collect()
}

/// A GitHub-looking global node id, e.g. `PR_kwDOMTIzNA`.
pub fn node_id(prefix: &str, id: i64) -> String {
    let b = base64(id.to_string().as_bytes());
    format!("{prefix}_kwDO{}", b.trim_end_matches('='))
}

/// Decodes `%XX` escapes in a path segment; anything malformed is kept as is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1..i + 3].iter().all(u8::is_ascii_hexdigit)
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// GitHub's timestamp: RFC 3339, whole seconds, `Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A stable id for a login, so the same user has the same id everywhere without a registry.
pub fn user_id(login: &str) -> i64 {
    // FNV-1a over the lowercase login, folded into a GitHub-sized positive id.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in login.to_ascii_lowercase().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    1_000_000 + i64::try_from(h % 90_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let long = base64_lines(&[b'x'; 100]);
        assert!(long.lines().all(|l| l.len() <= 60));
        assert!(long.ends_with('\n'));
    }

    #[test]
    fn percent_decoding_handles_escapes_and_leaves_junk() {
        assert_eq!(percent_decode("preview%3Aapproved"), "preview:approved");
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn random_values_have_the_right_shape() {
        let sha = random_hex(40);
        assert_eq!(sha.len(), 40);
        assert!(sha.chars().all(|c| c.is_ascii_hexdigit()));
        let token = random_alnum(36);
        assert_eq!(token.len(), 36);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
