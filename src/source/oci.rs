//! OCI artifacts: each layer is one module file named by its `org.opencontainers.image.title`
//! annotation, as `oras push registry/repo:tag index.js:application/javascript` writes it.
//!
//! Layer media types are not interpreted (the module type follows the file name, as for a
//! ConfigMap); the documented ones are `application/javascript` (`.js`/`.mjs` ES modules),
//! `application/javascript+commonjs` (`.cjs`), `application/wasm` (`.wasm`), `text/plain`
//! (`.txt`, `.html`, ...) and `application/octet-stream` (`.bin` data). Directory layers
//! (`oras push` of a folder, a tar+gzip layer) are refused: push the files one by one.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};

use super::{Cache, FetchError, Fetched, Fetcher, module_name, sha256_hex, with_retries};
use crate::crd::OciSource;

/// The annotation `oras push` sets to a layer's file name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// Credentials for a registry from a `kubernetes.io/dockerconfigjson` (or legacy `.dockercfg`)
/// payload. `Ok(Anonymous)` when the file has no entry for the registry.
pub fn auth_from_docker_config(json: &[u8], registry: &str) -> Result<RegistryAuth, String> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|_| "is not valid JSON".to_string())?;
    let auths = v.get("auths").unwrap_or(&v).as_object().ok_or("has no \"auths\" object")?;
    let want = normalize_registry(registry);
    let Some(entry) = auths.iter().find(|(k, _)| normalize_registry(k) == want).map(|(_, e)| e) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let field = |k: &str| entry.get(k).and_then(|x| x.as_str()).filter(|s| !s.is_empty());
    if let Some(token) = field("registrytoken") {
        return Ok(RegistryAuth::Bearer(token.to_string()));
    }
    if let (Some(u), Some(p)) = (field("username"), field("password")) {
        return Ok(RegistryAuth::Basic(u.to_string(), p.to_string()));
    }
    if let Some(token) = field("identitytoken") {
        let user = field("username").unwrap_or("<token>");
        return Ok(RegistryAuth::Basic(user.to_string(), token.to_string()));
    }
    if let Some(auth) = field("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("entry for {registry} has an \"auth\" that is not base64 user:password"))?;
        let (u, p) = decoded
            .split_once(':')
            .ok_or_else(|| format!("entry for {registry} has an \"auth\" without a ':' separator"))?;
        return Ok(RegistryAuth::Basic(u.to_string(), p.to_string()));
    }
    Err(format!("entry for {registry} has no auth, username/password, identitytoken or registrytoken"))
}

/// `https://index.docker.io/v1/` and `docker.io` name the same registry.
fn normalize_registry(s: &str) -> String {
    let s = s.trim().trim_start_matches("https://").trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or_default().to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "registry-1.docker.io" => "index.docker.io".to_string(),
        _ => host,
    }
}

/// Parse `spec.worker.source.oci.ref`.
pub fn parse_reference(raw: &str) -> Result<Reference, FetchError> {
    raw.parse::<Reference>().map_err(|e| FetchError::Reference(format!("{raw:?} is not an OCI reference: {e}")))
}

fn classify(what: &str, e: OciDistributionError) -> FetchError {
    let unavailable = |message: String| FetchError::Unavailable { what: what.to_string(), attempts: 1, message };
    match e {
        OciDistributionError::RequestError(e) => unavailable(without_url(&e)),
        OciDistributionError::ServerError { code, message, .. } => match code {
            401 | 403 => FetchError::Unauthorized { what: what.to_string() },
            404 => FetchError::NotFound { what: what.to_string() },
            408 | 429 | 500..=599 => unavailable(format!("HTTP {code}")),
            _ => FetchError::Invalid(format!("{what}: registry answered HTTP {code}: {message}")),
        },
        OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => {
            FetchError::Unauthorized { what: what.to_string() }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => FetchError::NotFound { what: what.to_string() },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<_> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                FetchError::NotFound { what: what.to_string() }
            } else if codes.iter().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                FetchError::Unauthorized { what: what.to_string() }
            } else if codes.iter().any(|c| matches!(c, OciErrorCode::Toomanyrequests)) {
                unavailable("too many requests".into())
            } else {
                FetchError::Invalid(format!("{what}: registry error: {envelope}"))
            }
        }
        OciDistributionError::DigestError(e) => {
            FetchError::ContentMismatch { what: what.to_string(), detail: e.to_string() }
        }
        other => FetchError::Invalid(format!("{what}: {other}")),
    }
}

/// A reqwest error's text without the URL (it may carry a query string).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(s) => format!("{kind}: {s}"),
        None => kind.to_string(),
    }
}

impl Fetcher {
    /// Resolve, pull (or read from the cache), verify and size-check an OCI artifact.
    pub async fn oci(&self, src: &OciSource, auth: &RegistryAuth) -> Result<Fetched, FetchError> {
        let reference = parse_reference(&src.reference)?;
        let what = format!("OCI artifact {}", src.reference);
        let client = oci_client::Client::new(ClientConfig {
            protocol: if src.insecure { ClientProtocol::Http } else { ClientProtocol::Https },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            platform_resolver: None,
            ..Default::default()
        });
        let authed = |r: Reference| {
            let client = &client;
            let what = &what;
            async move {
                client.auth(&r, auth, RegistryOperation::Pull).await.map_err(|e| classify(what, e))?;
                Ok::<_, FetchError>(r)
            }
        };
        let digest = match reference.digest() {
            Some(d) => d.to_string(),
            None => {
                with_retries(self.retry, || async {
                    let r = authed(reference.clone()).await?;
                    client.fetch_manifest_digest(&r, auth).await.map_err(|e| classify(&what, e))
                })
                .await?
            }
        };
        let key = Cache::key("oci", &digest);
        if let Some(files) = self.cache.get(&key) {
            self.check_size(&files)?;
            return Ok(Fetched { files, digest, downloaded: false });
        }
        let pinned = Reference::with_digest(
            reference.registry().to_string(),
            reference.repository().to_string(),
            digest.clone(),
        );
        let media = [OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE];
        let (raw, _) = with_retries(self.retry, || async {
            let r = authed(pinned.clone()).await?;
            client.pull_manifest_raw(&r, auth, &media).await.map_err(|e| classify(&what, e))
        })
        .await?;
        let actual = format!("sha256:{}", sha256_hex(&raw));
        if actual != digest {
            return Err(FetchError::DigestMismatch { what, expected: digest, actual });
        }
        let manifest: OciImageManifest = serde_json::from_slice(&raw)
            .map_err(|e| FetchError::Invalid(format!("{what}: the manifest is not an OCI image manifest: {e}")))?;
        let layers = self.layer_names(&what, &manifest)?;
        let mut files = BTreeMap::new();
        for (name, layer) in layers {
            let content = with_retries(self.retry, || async {
                let mut buf = Vec::with_capacity(layer.size.max(0) as usize);
                client.pull_blob(&pinned, layer, &mut buf).await.map_err(|e| classify(&what, e))?;
                Ok(buf)
            })
            .await?;
            if content.len() as i64 != layer.size {
                return Err(FetchError::Invalid(format!("{what}: layer {name} is not the size its manifest declares")));
            }
            files.insert(name, content);
        }
        self.check_size(&files)?;
        self.cache.put(&key, &files)?;
        Ok(Fetched { files, digest, downloaded: true })
    }

    /// File names of the layers, checked before anything is downloaded (sizes included).
    fn layer_names<'m>(
        &self,
        what: &str,
        manifest: &'m OciImageManifest,
    ) -> Result<Vec<(String, &'m oci_client::manifest::OciDescriptor)>, FetchError> {
        if manifest.layers.is_empty() {
            return Err(FetchError::Invalid(format!("{what} has no layers")));
        }
        let declared: u64 = manifest.layers.iter().map(|l| l.size.max(0) as u64).sum();
        if declared > self.limits.max_uncompressed {
            return Err(FetchError::TooLarge(format!(
                "{what}: layers total {declared} bytes, over the {}-byte uncompressed Worker size limit",
                self.limits.max_uncompressed
            )));
        }
        let mut out: Vec<(String, &oci_client::manifest::OciDescriptor)> = Vec::new();
        for layer in &manifest.layers {
            if layer.media_type.ends_with("tar+gzip") || layer.media_type.ends_with(".tar") {
                return Err(FetchError::Invalid(format!(
                    "{what}: layer {} is a directory archive ({}); push the module files individually",
                    layer.digest, layer.media_type
                )));
            }
            let title = layer.annotations.as_ref().and_then(|a| a.get(TITLE_ANNOTATION)).ok_or_else(|| {
                FetchError::Invalid(format!("{what}: layer {} has no {TITLE_ANNOTATION} annotation", layer.digest))
            })?;
            let name = module_name(title)?;
            if out.iter().any(|(n, _)| *n == name) {
                return Err(FetchError::Invalid(format!("{what}: two layers are named {name:?}")));
            }
            out.push((name, layer));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn docker_config_entries() {
        let cfg = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"127.0.0.1:5000":{{"username":"u","password":"p"}},"tok.example":{{"registrytoken":"t"}}}}}}"#,
            b64("alice:s3cret:x")
        );
        let a = auth_from_docker_config(cfg.as_bytes(), "index.docker.io").unwrap();
        assert_eq!(a, RegistryAuth::Basic("alice".into(), "s3cret:x".into()));
        let a = auth_from_docker_config(cfg.as_bytes(), "127.0.0.1:5000").unwrap();
        assert_eq!(a, RegistryAuth::Basic("u".into(), "p".into()));
        assert_eq!(auth_from_docker_config(cfg.as_bytes(), "tok.example").unwrap(), RegistryAuth::Bearer("t".into()));
        assert_eq!(auth_from_docker_config(cfg.as_bytes(), "other:1").unwrap(), RegistryAuth::Anonymous);
        let err = auth_from_docker_config(br#"{"auths":{"r":{"auth":"!!"}}}"#, "r").unwrap_err();
        assert!(err.contains("base64") && !err.contains("!!"), "{err}");
        assert!(auth_from_docker_config(b"nope", "r").is_err());
    }

    #[test]
    fn references() {
        let r = parse_reference("127.0.0.1:5000/acme/app:1.4.2").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.tag(), Some("1.4.2"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse_reference(&format!("registry.example.com/acme/app@{d}")).unwrap();
        assert_eq!(r.digest(), Some(d.as_str()));
        assert!(parse_reference("UPPER/case:tag:bad").is_err());
    }
}
