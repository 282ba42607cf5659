//! On-disk artifact cache: one uncompressed tar per digest, least recently used evicted first
//! once the directory holds more than its bound.

use std::collections::BTreeMap;
use std::fs::{self, File, FileTimes};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::FetchError;

/// Artifacts by key (`oci-<hex>`, `url-<hex>`).
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    /// Serialises writes and evictions within this process.
    lock: Mutex<()>,
}

impl Cache {
    /// Open (creating) the cache directory.
    pub fn open(dir: PathBuf, max_bytes: u64) -> Result<Self, FetchError> {
        fs::create_dir_all(&dir).map_err(FetchError::Cache)?;
        Ok(Self { dir, max_bytes, lock: Mutex::new(()) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Cache key for a `sha256:<hex>` digest of a kind (`oci`, `url`).
    pub fn key(kind: &str, digest: &str) -> String {
        format!("{kind}-{}", digest.trim_start_matches("sha256:"))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.tar"))
    }

    /// The files stored under `key`, marking them recently used. A damaged entry is removed and
    /// reported as absent.
    pub fn get(&self, key: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let path = self.path(key);
        let file = File::options().read(true).write(true).open(&path).ok()?;
        let _ = file.set_times(FileTimes::new().set_modified(SystemTime::now()));
        match read_tar(file) {
            Ok(files) if !files.is_empty() => Some(files),
            _ => {
                tracing::warn!(key, "dropping unreadable artifact cache entry");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Store files under `key` (atomically), then evict least recently used entries beyond the bound.
    pub fn put(&self, key: &str, files: &BTreeMap<String, Vec<u8>>) -> Result<(), FetchError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut b = tar::Builder::new(File::create(&tmp)?);
            for (name, content) in files {
                let mut h = tar::Header::new_gnu();
                h.set_size(content.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, name, content.as_slice())?;
            }
            b.into_inner()?.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(FetchError::Cache(e));
        }
        fs::rename(&tmp, self.path(key)).map_err(FetchError::Cache)?;
        self.evict(key).map_err(FetchError::Cache)
    }

    /// Remove the oldest entries (never `keep`) until the total fits.
    fn evict(&self, keep: &str) -> std::io::Result<()> {
        let mut entries = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            if !name.ends_with(".tar") || name.starts_with('.') {
                continue;
            }
            let meta = e.metadata()?;
            entries.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), name));
        }
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        let keep = format!("{keep}.tar");
        for (_, len, name) in entries {
            if total <= self.max_bytes {
                break;
            }
            if name == keep {
                continue;
            }
            fs::remove_file(self.dir.join(&name))?;
            tracing::debug!(entry = %name, "evicted artifact from cache");
            total -= len;
        }
        Ok(())
    }

    /// Keys currently stored.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".tar")).map(str::to_string))
            .filter(|n| !n.starts_with('.'))
            .collect();
        keys.sort();
        keys
    }
}

fn read_tar(file: File) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().to_string();
        let mut content = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut content)?;
        files.insert(name, content);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(n: usize) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([("index.js".to_string(), vec![b'x'; n]), ("lib/a.mjs".to_string(), b"export {}".to_vec())])
    }

    #[test]
    fn round_trip_and_damaged_entries_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path().to_path_buf(), 1 << 20).unwrap();
        assert!(c.get("oci-aa").is_none());
        c.put("oci-aa", &files(10)).unwrap();
        assert_eq!(c.get("oci-aa").unwrap(), files(10));
        std::fs::write(dir.path().join("oci-bb.tar"), b"not a tar").unwrap();
        assert!(c.get("oci-bb").is_none());
        assert_eq!(c.keys(), vec!["oci-aa"]);
    }

    #[test]
    fn evicts_least_recently_used_beyond_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path().to_path_buf(), 30_000).unwrap();
        c.put("url-1", &files(10_000)).unwrap();
        c.put("url-2", &files(10_000)).unwrap();
        // Make url-1 the oldest explicitly (mtime resolution may be coarse), then use url-2.
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        File::options()
            .write(true)
            .open(dir.path().join("url-1.tar"))
            .unwrap()
            .set_times(FileTimes::new().set_modified(old))
            .unwrap();
        assert!(c.get("url-2").is_some());
        c.put("url-3", &files(10_000)).unwrap();
        assert_eq!(c.keys(), vec!["url-2", "url-3"]);
        // An entry larger than the bound is still kept (it is the one just written).
        c.put("url-4", &files(40_000)).unwrap();
        assert_eq!(c.keys(), vec!["url-4"]);
    }
}
