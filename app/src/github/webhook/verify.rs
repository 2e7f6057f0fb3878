//! The webhook signature: `X-Hub-Signature-256` is `sha256=<hex>` of HMAC-SHA256 over the exact
//! body bytes with the webhook secret; checked in constant time, before anything else about a
//! delivery is believed.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Checks `X-Hub-Signature-256` (`sha256=<hex>`) over the exact body bytes, in constant time.
pub fn verify_signature(secret: &SecretString, body: &[u8], header: Option<&str>) -> bool {
    verify_signature_parts(secret, [body], header)
}

/// [`verify_signature`] over a body held in parts, in order (as it arrived).
pub fn verify_signature_parts<'a>(
    secret: &SecretString,
    parts: impl IntoIterator<Item = &'a [u8]>,
    header: Option<&str>,
) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).is_ok()
}

/// Signs `body` as GitHub does (for tools and tests that send deliveries).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let secret = SecretString::from("It's a Secret to Everybody");
        let body = b"Hello, World!";
        // The example from GitHub's webhook documentation.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_signature(&secret, body, Some(header)));
        let parts: [&[u8]; 3] = [b"Hello", b", ", b"World!"];
        assert!(verify_signature_parts(&secret, parts, Some(header)));
        assert_eq!(sign("It's a Secret to Everybody", body), header);
        assert!(!verify_signature(&secret, b"Hello, World?", Some(header)));
        assert!(!verify_signature(&secret, body, None));
        assert!(!verify_signature(&secret, body, Some("sha1=757107")));
        assert!(!verify_signature(&secret, body, Some("sha256=zz")));
        assert!(!verify_signature(
            &SecretString::from("other"),
            body,
            Some(header)
        ));
    }
}
