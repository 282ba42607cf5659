//! Code at a URL pinned by SHA-256: a gzipped tarball of module files (`.tar.gz`, `.tgz`) or a
//! single module named by the URL's last path segment. Nothing is used before the digest matches.

use std::collections::BTreeMap;
use std::io::Read as _;

use futures::StreamExt as _;

use super::{Cache, FetchError, Fetched, Fetcher, module_name, sha256_hex, with_retries};
use crate::crd::UrlSource;

/// Whether the URL names a gzipped tarball (by its path, ignoring any query string).
pub fn is_tarball(url: &reqwest::Url) -> bool {
    let path = url.path().to_ascii_lowercase();
    path.ends_with(".tar.gz") || path.ends_with(".tgz")
}

/// Parse and check `spec.worker.source.url.url` (no credentials in it: they would end up in logs).
pub fn parse_url(raw: &str) -> Result<reqwest::Url, FetchError> {
    let url = reqwest::Url::parse(raw).map_err(|e| FetchError::Reference(format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(FetchError::Reference("the URL must use https:// or http://".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::Reference("the URL must not contain credentials".into()));
    }
    if url.path_segments().and_then(|mut s| s.next_back()).is_none_or(str::is_empty) {
        return Err(FetchError::Reference("the URL must end with a file name".into()));
    }
    Ok(url)
}

/// The URL without its query string, for messages.
fn display(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

impl Fetcher {
    /// Download (or read from the cache), verify, unpack and size-check a URL source.
    pub async fn url(&self, src: &UrlSource) -> Result<Fetched, FetchError> {
        let url = parse_url(&src.url)?;
        let expected = src.sha256.to_ascii_lowercase();
        if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FetchError::Reference("spec.worker.source.url.sha256 must be 64 hex digits".into()));
        }
        let digest = format!("sha256:{expected}");
        let key = Cache::key("url", &digest);
        if let Some(files) = self.cache.get(&key) {
            self.check_size(&files)?;
            return Ok(Fetched { files, digest, downloaded: false });
        }
        let what = format!("URL {}", display(&url));
        let cap = self.limits.max_uncompressed.max(self.limits.max_compressed);
        let body = with_retries(self.retry, || self.download(&url, &what, cap)).await?;
        let actual = sha256_hex(&body);
        if actual != expected {
            return Err(FetchError::DigestMismatch { what, expected: digest, actual: format!("sha256:{actual}") });
        }
        let files = if is_tarball(&url) {
            unpack(&body, self.limits.max_uncompressed)?
        } else {
            let name = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default();
            BTreeMap::from([(module_name(name)?, body)])
        };
        self.check_size(&files)?;
        self.cache.put(&key, &files)?;
        Ok(Fetched { files, digest, downloaded: true })
    }

    async fn download(&self, url: &reqwest::Url, what: &str, cap: u64) -> Result<Vec<u8>, FetchError> {
        let unavailable = |message: String| FetchError::Unavailable { what: what.to_string(), attempts: 1, message };
        let resp = self.http.get(url.clone()).send().await.map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(FetchError::NotFound { what: what.to_string() });
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(FetchError::Unauthorized { what: what.to_string() });
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(unavailable(format!("HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(FetchError::Invalid(format!("{what}: HTTP {}", status.as_u16())));
        }
        let too_large = || FetchError::TooLarge(format!("{what} is larger than the {cap}-byte download limit"));
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| unavailable(e.without_url().to_string()))?;
            if (body.len() + chunk.len()) as u64 > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Regular files of a gzipped tarball (directories skipped, links refused), reading at most
/// `max_total` bytes of content.
pub fn unpack(gz: &[u8], max_total: u64) -> Result<BTreeMap<String, Vec<u8>>, FetchError> {
    let bad = |e: std::io::Error| FetchError::Invalid(format!("not a readable .tar.gz: {e}"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        let raw = entry.path().map_err(bad)?.to_string_lossy().to_string();
        if kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        if !kind.is_file() {
            return Err(FetchError::Invalid(format!("tarball entry {raw:?} is not a regular file")));
        }
        let name = module_name(&raw)?;
        let mut content = Vec::new();
        entry.take(max_total - total + 1).read_to_end(&mut content).map_err(bad)?;
        total += content.len() as u64;
        if total > max_total {
            return Err(FetchError::TooLarge(format!(
                "the tarball unpacks to more than the {max_total}-byte uncompressed Worker size limit"
            )));
        }
        files.insert(name, content);
    }
    if files.is_empty() {
        return Err(FetchError::Invalid("the tarball contains no files".into()));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut b = tar::Builder::new(gz);
        for (name, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *content).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn unpacks_files_and_bounds_the_total() {
        let t = tarball(&[("./index.js", b"export default {}"), ("lib/data.txt", b"hello")]);
        let files = unpack(&t, 1024).unwrap();
        assert_eq!(files.keys().cloned().collect::<Vec<_>>(), vec!["index.js", "lib/data.txt"]);
        let e = unpack(&t, 10).unwrap_err();
        assert_eq!(e.reason(), "ArtifactTooLarge");
        assert_eq!(unpack(b"not gzip", 10).unwrap_err().reason(), "InvalidArtifact");
    }

    #[test]
    fn urls_are_checked() {
        assert!(is_tarball(&parse_url("https://x.example/b/bundle.tar.gz?sig=1").unwrap()));
        assert!(!is_tarball(&parse_url("https://x.example/worker.js").unwrap()));
        let u = parse_url("http://127.0.0.1:8080/b/x.tgz?token=secret").unwrap();
        assert_eq!(display(&u), "http://127.0.0.1:8080/b/x.tgz");
        for bad in ["ftp://x/a.js", "https://u:p@x.example/a.js", "https://x.example/", "nope"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
