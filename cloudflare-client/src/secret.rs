//! Newtypes for values that must never be printed: the API token and secret binding values.
//!
//! Both print `***` through `Debug` and `Display`. The only way to read the value is an explicit
//! `expose()` call, which the client uses exactly where the value goes on the wire.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

const REDACTED: &str = "***";

/// A Cloudflare API token. Surrounding whitespace (a trailing newline from `echo > file` or a
/// Kubernetes Secret created from a file) is trimmed on construction.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl ApiToken {
    pub fn new(token: impl AsRef<str>) -> Self {
        Self(Arc::from(token.as_ref().trim()))
    }

    /// The raw token, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Stable, non-reversible identity of the token (SHA-256), used to key per-token state.
    pub fn key(&self) -> TokenKey {
        let digest = Sha256::digest(self.0.as_bytes());
        TokenKey(digest.into())
    }
}

impl PartialEq for ApiToken {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ApiToken {}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for ApiToken {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for ApiToken {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// SHA-256 of a token. Safe to keep in maps; its `Debug` shows only a short prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// Short hex prefix (12 chars), enough to tell keys apart in debug output.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey({})", self.short())
    }
}

/// A secret value (Worker secret, `secret_text` binding). Serializes transparently because it must
/// reach the request body, but never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_never_prints() {
        let t = ApiToken::new("cf-token-abcdef0123456789\n");
        assert_eq!(format!("{t}"), "***");
        assert_eq!(format!("{t:?}"), "***");
        assert_eq!(format!("{:?}", Some(t.clone())), "Some(***)");
        assert_eq!(t.expose(), "cf-token-abcdef0123456789", "whitespace trimmed");
        let k = format!("{:?}", t.key());
        assert!(!k.contains("cf-token"), "{k}");
    }

    #[test]
    fn key_is_stable_and_distinct() {
        let a = ApiToken::new("token-a");
        let a2 = ApiToken::new(" token-a ");
        let b = ApiToken::new("token-b");
        assert_eq!(a.key(), a2.key());
        assert_ne!(a.key(), b.key());
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_eq!(a.key().short().len(), 12);
    }

    #[test]
    fn secret_string_serializes_value_but_never_prints_it() {
        let s = SecretString::new("hunter2-hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2-hunter2\"");
        let back: SecretString = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(back.expose(), "x");
    }
}
