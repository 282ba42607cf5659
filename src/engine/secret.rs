//! A secret value that never prints.

use std::fmt;

/// Secret bytes as text. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself, for the few places that must send it (upload body, test header).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Generate a random secret with a CSPRNG from an alphabet of 62 URL-safe characters.
pub fn generate(length: u32) -> SecretValue {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // ThreadRng is a CSPRNG (ChaCha12) seeded from the operating system.
    let mut rng = rand::rng();
    let value: String = (0..length)
        .map(|_| {
            let i = rng.random_range(0..ALPHABET.len());
            ALPHABET[i] as char
        })
        .collect();
    SecretValue(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = SecretValue::new("hunter2-hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2-hunter2");
    }

    #[test]
    fn generated_values_are_long_random_and_distinct() {
        let a = generate(48);
        let b = generate(48);
        assert_eq!(a.expose().len(), 48);
        assert_ne!(a, b);
        assert!(crate::engine::security::entropy(a.expose()) > 4.0);
    }
}
