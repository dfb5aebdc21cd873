//! Bearer tokens: 256 random bits behind a recognisable prefix, stored only as a hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every parkhub token starts with this, so a leaked one is easy to recognise and scan for.
pub const PREFIX: &str = "phk_";
const SECRET_BYTES: usize = 32;
/// Base64url without padding of 32 bytes.
const SECRET_CHARS: usize = 43;

/// A freshly made token: the secret to show once, and what is stored.
pub struct NewToken {
    pub secret: String,
    pub hash: String,
    pub hint: String,
}

/// 256 random bits, base64url, behind `prefix`.
fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Is `text` `prefix` followed by what [`random_secret`] makes?
fn has_shape(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == SECRET_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

pub fn generate() -> NewToken {
    let secret = random_secret(PREFIX);
    NewToken {
        hash: hash(&secret),
        hint: hint(&secret),
        secret,
    }
}

/// A WebSocket connect ticket: the same 256 random bits behind its own prefix, so it can
/// never be mistaken for (or used as) a bearer token.
pub const TICKET_PREFIX: &str = "wst_";

/// A new connect ticket: its hash (stored) and the ticket itself (shown once).
pub fn generate_ticket() -> (String, String) {
    let secret = random_secret(TICKET_PREFIX);
    (hash(&secret), secret)
}

/// Does `text` have the shape of a connect ticket?
pub fn is_ticket(text: &str) -> bool {
    has_shape(text, TICKET_PREFIX)
}

/// SHA-256, hex. The token carries 256 random bits, so a fast hash is enough.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The prefix and the first few characters: enough to tell tokens apart, useless to an attacker.
pub fn hint(secret: &str) -> String {
    let shown: String = secret.chars().take(PREFIX.len() + 6).collect();
    format!("{shown}…")
}

/// Does `text` have the shape of a parkhub token? Checked before any database lookup.
pub fn is_well_formed(text: &str) -> bool {
    has_shape(text, PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_distinct_and_hashed() {
        let a = generate();
        let b = generate();
        assert!(is_well_formed(&a.secret), "{}", a.secret);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, hash(&a.secret));
        assert_ne!(a.hash, a.secret);
        assert_eq!(a.hash.len(), 64);
        assert!(a.secret.starts_with(PREFIX));
        assert!(a.hint.starts_with(PREFIX) && a.hint.len() < a.secret.len());
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("phk_short"));
        assert!(!is_well_formed(&format!("xyz_{}", "a".repeat(43))));
        assert!(!is_well_formed(&format!("phk_{}", "a".repeat(44))));
        assert!(!is_well_formed(&format!("phk_{}!", "a".repeat(42))));
        assert!(is_well_formed(&format!("phk_{}", "a".repeat(43))));
    }
}
