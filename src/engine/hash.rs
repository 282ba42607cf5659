//! Stable digests: the Worker content hash and small helpers.

use sha2::{Digest, Sha256};

/// Incremental, length-prefixed hasher so that field boundaries cannot collide.
#[derive(Default)]
pub struct ContentHasher(Sha256);

impl ContentHasher {
    pub fn new() -> Self {
        Self(Sha256::new())
    }
    pub fn field(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        self.0.update((label.len() as u64).to_le_bytes());
        self.0.update(label.as_bytes());
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }
    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}

/// Digest of a list of strings.
pub fn digest_strings(items: &[String]) -> String {
    let mut h = ContentHasher::new();
    for i in items {
        h.field("item", i.as_bytes());
    }
    h.finish()
}

/// Digest of a secret value for inclusion in a content hash (never stored on its own).
pub fn secret_digest(name: &str, value: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"clodo-secret\0");
    h.update(name.as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    h.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_matter() {
        let mut a = ContentHasher::new();
        a.field("x", b"ab").field("y", b"c");
        let mut b = ContentHasher::new();
        b.field("x", b"a").field("y", b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn deterministic() {
        let s = vec!["a".to_string(), "b".to_string()];
        assert_eq!(digest_strings(&s), digest_strings(&s));
        assert!(digest_strings(&s).starts_with("sha256:"));
    }
}
