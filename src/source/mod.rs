//! Worker code from OCI artifacts and pinned URLs: fetch with retries, verify digests, enforce
//! size limits and cache by digest on disk, so a resync never downloads again.
//!
//! The engine reaches this through [`crate::engine::resolve::ObjectSource::code_fetcher`]; the
//! operator and the CLI build one [`Fetcher`] from [`SourceArgs`].

pub mod cache;
pub mod oci;
pub mod url;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

pub use cache::Cache;

/// Cloudflare's Worker size limit after compression (paid plans).
pub const DEFAULT_MAX_COMPRESSED_BYTES: u64 = 10 * 1024 * 1024;
/// Cloudflare's limit on the uncompressed size of a Worker's modules.
pub const DEFAULT_MAX_UNCOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;
/// Default bound of the on-disk artifact cache.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 512 * 1024 * 1024;

/// Flags shared by `run`, `deploy`, `plan` and `validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// Directory for artifacts cached by digest [default: <temp dir>/clodo-artifacts].
    #[arg(long, env = "CLODO_ARTIFACT_CACHE_DIR")]
    pub artifact_cache_dir: Option<PathBuf>,
    /// Bound of the artifact cache; least recently used artifacts are evicted beyond it.
    #[arg(long, env = "CLODO_ARTIFACT_CACHE_MAX_BYTES", default_value_t = DEFAULT_CACHE_MAX_BYTES)]
    pub artifact_cache_max_bytes: u64,
    /// Largest Worker bundle after gzip compression (Cloudflare: 10 MiB paid, 3 MiB free plans).
    #[arg(long, env = "CLODO_ARTIFACT_MAX_COMPRESSED_BYTES", default_value_t = DEFAULT_MAX_COMPRESSED_BYTES)]
    pub artifact_max_compressed_bytes: u64,
    /// Largest Worker bundle uncompressed (also the most a download may read).
    #[arg(long, env = "CLODO_ARTIFACT_MAX_UNCOMPRESSED_BYTES", default_value_t = DEFAULT_MAX_UNCOMPRESSED_BYTES)]
    pub artifact_max_uncompressed_bytes: u64,
}

impl Default for SourceArgs {
    fn default() -> Self {
        Self {
            artifact_cache_dir: None,
            artifact_cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            artifact_max_compressed_bytes: DEFAULT_MAX_COMPRESSED_BYTES,
            artifact_max_uncompressed_bytes: DEFAULT_MAX_UNCOMPRESSED_BYTES,
        }
    }
}

/// Size limits a bundle must meet before anything reaches Cloudflare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_compressed: u64,
    pub max_uncompressed: u64,
}

/// How often and how patiently a registry or URL is retried within one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self { attempts: 4, first_delay: Duration::from_millis(250) }
    }
}

/// Why an artifact could not be used. Messages never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Reference(String),
    #[error("the registry refused the credentials for {what}")]
    Unauthorized { what: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} unreachable after {attempts} attempt(s): {message}")]
    Unavailable { what: String, attempts: u32, message: String },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("digest mismatch for {what}: {detail}")]
    ContentMismatch { what: String, detail: String },
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Invalid(String),
    #[error("artifact cache: {0}")]
    Cache(#[source] std::io::Error),
}

impl FetchError {
    /// Condition reason (bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Reference(_) => "InvalidSpec",
            Self::Unauthorized { .. } => "ArtifactUnauthorized",
            Self::NotFound { .. } => "ArtifactNotFound",
            Self::Unavailable { .. } => "ArtifactUnavailable",
            Self::DigestMismatch { .. } | Self::ContentMismatch { .. } => "DigestMismatch",
            Self::TooLarge(_) => "ArtifactTooLarge",
            Self::Invalid(_) => "InvalidArtifact",
            Self::Cache(_) => "ArtifactCacheError",
        }
    }

    /// Worth retrying with backoff (the registry or disk may recover); the others need an edit.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Cache(_))
    }
}

/// Module files of an artifact and the digest that identifies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub files: BTreeMap<String, Vec<u8>>,
    /// `sha256:<hex>`.
    pub digest: String,
    /// False when the files came from the on-disk cache.
    pub downloaded: bool,
}

/// Fetches, verifies, size-checks and caches artifacts.
pub struct Fetcher {
    cache: Cache,
    limits: Limits,
    retry: Retry,
    http: reqwest::Client,
}

impl Fetcher {
    pub fn new(args: &SourceArgs) -> Result<Self, FetchError> {
        let dir = args.artifact_cache_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("clodo-artifacts"));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| FetchError::Invalid(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            cache: Cache::open(dir, args.artifact_cache_max_bytes)?,
            limits: Limits {
                max_compressed: args.artifact_max_compressed_bytes,
                max_uncompressed: args.artifact_max_uncompressed_bytes,
            },
            retry: Retry::default(),
            http,
        })
    }

    /// Use a different retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Fail with [`FetchError::TooLarge`] when the files exceed a limit.
    pub fn check_size(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<(), FetchError> {
        check_size(&self.limits, files)
    }
}

/// Total and gzip-compressed size of the files against the limits.
pub fn check_size(limits: &Limits, files: &BTreeMap<String, Vec<u8>>) -> Result<(), FetchError> {
    let total: u64 = files.values().map(|f| f.len() as u64).sum();
    if total > limits.max_uncompressed {
        return Err(FetchError::TooLarge(format!(
            "modules total {total} bytes, over the {}-byte uncompressed Worker size limit",
            limits.max_uncompressed
        )));
    }
    let mut compressed = 0u64;
    for content in files.values() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(content)
            .and_then(|_| gz.finish())
            .map(|v| compressed += v.len() as u64)
            .map_err(FetchError::Cache)?;
    }
    if compressed > limits.max_compressed {
        return Err(FetchError::TooLarge(format!(
            "modules are {compressed} bytes gzip-compressed, over the {}-byte Worker size limit",
            limits.max_compressed
        )));
    }
    Ok(())
}

/// A module file name from an archive or annotation: relative, no `..`, no empty segments.
pub fn module_name(raw: &str) -> Result<String, FetchError> {
    let name = raw.trim_start_matches("./");
    let ok = !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && name.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if ok { Ok(name.to_string()) } else { Err(FetchError::Invalid(format!("unusable module file name {raw:?}"))) }
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Run `op` up to `retry.attempts` times with doubling delays while it fails retryably.
pub(crate) async fn with_retries<T, F, Fut>(retry: Retry, mut op: F) -> Result<T, FetchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, FetchError>>,
{
    let mut delay = retry.first_delay;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(FetchError::Unavailable { what, .. }) if attempt < retry.attempts.max(1) => {
                tracing::warn!(attempt, what = %what, "artifact fetch failed, retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
                attempt += 1;
            }
            Err(FetchError::Unavailable { what, message, .. }) => {
                return Err(FetchError::Unavailable { what, attempts: attempt, message });
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(c: u64, u: u64) -> Limits {
        Limits { max_compressed: c, max_uncompressed: u }
    }

    #[test]
    fn size_limits_apply_to_total_and_compressed() {
        let files = BTreeMap::from([("a.js".to_string(), vec![b'a'; 4096])]);
        assert!(check_size(&limits(4096, 4096), &files).is_ok());
        let e = check_size(&limits(4096, 4095), &files).unwrap_err();
        assert_eq!(e.reason(), "ArtifactTooLarge");
        assert!(e.to_string().contains("uncompressed"), "{e}");
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let files = BTreeMap::from([("a.bin".to_string(), noise)]);
        let e = check_size(&limits(1024, 1 << 20), &files).unwrap_err();
        assert!(e.to_string().contains("gzip-compressed"), "{e}");
    }

    #[test]
    fn module_names_stay_inside_the_bundle() {
        assert_eq!(module_name("./index.js").unwrap(), "index.js");
        assert_eq!(module_name("lib/util.mjs").unwrap(), "lib/util.mjs");
        for bad in ["", "/etc/passwd", "../x.js", "a/../../x", "a//b", "a\\b"] {
            assert!(module_name(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn retries_only_unavailable_and_reports_attempts() {
        let retry = Retry { attempts: 3, first_delay: Duration::from_millis(1) };
        let mut calls = 0;
        let r: Result<(), _> = with_retries(retry, || {
            calls += 1;
            async { Err(FetchError::Unavailable { what: "r".into(), attempts: 0, message: "down".into() }) }
        })
        .await;
        assert_eq!(calls, 3);
        assert!(matches!(r, Err(FetchError::Unavailable { attempts: 3, .. })));
        let mut calls = 0;
        let r: Result<(), _> = with_retries(retry, || {
            calls += 1;
            async { Err(FetchError::NotFound { what: "r".into() }) }
        })
        .await;
        assert_eq!(calls, 1);
        assert!(r.is_err());
    }
}
