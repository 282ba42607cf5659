//! Load Kubernetes manifests from YAML files for the one-shot commands, and serve them to the
//! engine through [`ObjectSource`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::Deserialize;

use crate::crd::{CloudflareService, Customer, Portfolio};
use crate::engine::resolve::{Generated, ObjectSource, SourceError};
use crate::engine::secret::{self, SecretValue};
use crate::source::Fetcher;

/// Every object found in the given files.
#[derive(Debug, Default, Clone)]
pub struct Manifests {
    pub customers: Vec<Customer>,
    pub services: Vec<CloudflareService>,
    pub portfolios: Vec<Portfolio>,
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
}

/// Collect `.yaml`/`.yml`/`.json` files from files and directories (directories non-recursively,
/// sorted by name).
pub fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
                .collect();
            entries.sort();
            out.extend(entries);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or directory", p.display());
        }
    }
    if out.is_empty() {
        bail!(
            "no manifest files found in {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(out)
}

/// Parse all documents of the given files.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Manifests> {
    let mut m = Manifests::default();
    for file in collect_files(paths)? {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        for (i, doc) in serde_norway::Deserializer::from_str(&text).enumerate() {
            let value = serde_norway::Value::deserialize(doc)
                .with_context(|| format!("{}: document {} is not valid YAML", file.display(), i + 1))?;
            if value.is_null() {
                continue;
            }
            add(&mut m, &file, i + 1, value)?;
        }
    }
    for s in &mut m.services {
        s.metadata.namespace.get_or_insert_with(|| "default".into());
    }
    for c in &mut m.customers {
        c.metadata.namespace.get_or_insert_with(|| "default".into());
    }
    for p in &mut m.portfolios {
        p.metadata.namespace.get_or_insert_with(|| "default".into());
    }
    for s in &mut m.secrets {
        s.metadata.namespace.get_or_insert_with(|| "default".into());
    }
    for c in &mut m.config_maps {
        c.metadata.namespace.get_or_insert_with(|| "default".into());
    }
    Ok(m)
}

fn add(m: &mut Manifests, file: &Path, doc: usize, value: serde_norway::Value) -> anyhow::Result<()> {
    let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string();
    let api_version = value.get("apiVersion").and_then(|k| k.as_str()).unwrap_or_default().to_string();
    let at = || format!("{}: document {doc} ({kind})", file.display());
    let clodo = api_version == "clodo.dev/v1alpha1";
    match (kind.as_str(), clodo) {
        ("CloudflareService", true) => m.services.push(parse(value).with_context(at)?),
        ("Customer", true) => m.customers.push(parse(value).with_context(at)?),
        ("Portfolio", true) => m.portfolios.push(parse(value).with_context(at)?),
        ("Secret", false) if api_version == "v1" => m.secrets.push(parse(value).with_context(at)?),
        ("ConfigMap", false) if api_version == "v1" => m.config_maps.push(parse(value).with_context(at)?),
        ("List", false) if api_version == "v1" => {
            if let Some(items) = value.get("items").and_then(|i| i.as_sequence()) {
                for item in items.clone() {
                    add(m, file, doc, item)?;
                }
            }
        }
        _ => bail!("{}: unsupported kind {kind:?} with apiVersion {api_version:?}", at()),
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(value: serde_norway::Value) -> anyhow::Result<T> {
    // Secrets may use stringData: fold it into data like the API server does.
    let mut json: serde_json::Value = serde_json::to_value(value)?;
    if let Some(sd) = json.get("stringData").cloned().and_then(|v| v.as_object().cloned()) {
        use base64::Engine as _;
        let data = json.as_object_mut().map(|o| o.entry("data").or_insert_with(|| serde_json::json!({})));
        if let Some(serde_json::Value::Object(data)) = data {
            for (k, v) in sd {
                let s = v.as_str().unwrap_or_default();
                data.insert(k, serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(s)));
            }
        }
        if let Some(o) = json.as_object_mut() {
            o.remove("stringData");
        }
    }
    Ok(serde_json::from_value(json)?)
}

/// An [`ObjectSource`] over loaded manifests. Generated secrets are kept in memory and, when a
/// state file is given, persisted there (mode 0600) so later runs reuse them.
pub struct ManifestSource {
    manifests: Manifests,
    generated: Mutex<BTreeMap<String, String>>,
    state_file: Option<PathBuf>,
    fetcher: Option<Arc<Fetcher>>,
    offline: bool,
}

impl ManifestSource {
    pub fn new(manifests: Manifests, state_file: Option<PathBuf>) -> anyhow::Result<Self> {
        let generated = match &state_file {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
            }
            _ => BTreeMap::new(),
        };
        Ok(Self { manifests, generated: Mutex::new(generated), state_file, fetcher: None, offline: false })
    }

    /// Load OCI and URL code sources with this fetcher.
    pub fn with_fetcher(mut self, fetcher: Option<Arc<Fetcher>>) -> Self {
        self.fetcher = fetcher;
        self
    }

    /// Check OCI and URL code sources without fetching them (`validate` without `--online`).
    pub fn offline(mut self) -> Self {
        self.offline = true;
        self
    }

    pub fn manifests(&self) -> &Manifests {
        &self.manifests
    }

    fn persist(&self, map: &BTreeMap<String, String>) -> Result<(), SourceError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let err =
            |e: std::io::Error| SourceError { what: "generated secrets state file".into(), message: e.to_string() };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
            super::deploy::ignore_state_dir(dir).map_err(err)?;
        }
        let text = serde_json::to_string_pretty(map).unwrap_or_default();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        use std::io::Write;
        opts.open(path).and_then(|mut f| f.write_all(text.as_bytes())).map_err(err)
    }
}

fn generated_key(service: &CloudflareService, secret_name: &str) -> String {
    format!(
        "{}/{}/{secret_name}",
        service.metadata.namespace.as_deref().unwrap_or("default"),
        service.metadata.name.as_deref().unwrap_or_default()
    )
}

fn matches(meta: &kube::api::ObjectMeta, namespace: &str, name: &str) -> bool {
    meta.name.as_deref() == Some(name) && meta.namespace.as_deref().unwrap_or("default") == namespace
}

#[async_trait]
impl ObjectSource for ManifestSource {
    async fn customer(&self, namespace: &str, name: &str) -> Result<Option<Customer>, SourceError> {
        Ok(self.manifests.customers.iter().find(|c| matches(&c.metadata, namespace, name)).cloned())
    }
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        Ok(self.manifests.secrets.iter().find(|c| matches(&c.metadata, namespace, name)).cloned())
    }
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, SourceError> {
        Ok(self.manifests.config_maps.iter().find(|c| matches(&c.metadata, namespace, name)).cloned())
    }
    async fn stored_generated_secret(
        &self,
        service: &CloudflareService,
        secret_name: &str,
    ) -> Result<Option<SecretValue>, SourceError> {
        let map = self
            .generated
            .lock()
            .map_err(|_| SourceError { what: "generated secrets".into(), message: "lock poisoned".into() })?;
        Ok(map.get(&generated_key(service, secret_name)).map(|v| SecretValue::new(v.clone())))
    }

    async fn generated_secret(
        &self,
        service: &CloudflareService,
        secret_name: &str,
        length: u32,
    ) -> Result<Generated, SourceError> {
        let key = generated_key(service, secret_name);
        let mut map = self
            .generated
            .lock()
            .map_err(|_| SourceError { what: "generated secrets".into(), message: "lock poisoned".into() })?;
        if let Some(v) = map.get(&key) {
            return Ok(Generated { value: SecretValue::new(v.clone()), created: false });
        }
        let value = secret::generate(length);
        map.insert(key, value.expose().to_string());
        self.persist(&map)?;
        Ok(Generated { value, created: true })
    }
    fn code_fetcher(&self) -> Option<&Fetcher> {
        self.fetcher.as_deref()
    }
    fn code_offline(&self) -> bool {
        self.offline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_every_kind_and_folds_string_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            r#"
apiVersion: v1
kind: Secret
metadata: { name: s, namespace: acme }
stringData: { token: abc }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: code, namespace: acme }
data: { index.js: "export default {}" }
"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let m = load(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(m.secrets.len(), 1);
        assert_eq!(m.secrets[0].data.as_ref().unwrap()["token"].0, b"abc");
        assert_eq!(m.config_maps.len(), 1);
    }

    #[test]
    fn unknown_kinds_and_bad_fields_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.yaml");
        std::fs::write(&f, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n").unwrap();
        let err = load(std::slice::from_ref(&f)).unwrap_err().to_string();
        assert!(err.contains("bad.yaml") && err.contains("Deployment"), "{err}");
        std::fs::write(
            &f,
            "apiVersion: clodo.dev/v1alpha1\nkind: Customer\nmetadata: {name: x}\nspec: {accountId: 1}\n",
        )
        .unwrap();
        let err = format!("{:#}", load(std::slice::from_ref(&f)).unwrap_err());
        assert!(err.contains("bad.yaml: document 1 (Customer)"), "{err}");
    }

    #[tokio::test]
    async fn generated_secrets_persist_across_sources() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state/secrets.json");
        let svc = crate::engine::fixtures::service();
        let a = ManifestSource::new(Manifests::default(), Some(state.clone())).unwrap();
        let v1 = a.generated_secret(&svc, "K", 40).await.unwrap();
        assert!(v1.created);
        assert_eq!(v1.value.expose().len(), 40);
        let b = ManifestSource::new(Manifests::default(), Some(state.clone())).unwrap();
        let again = b.generated_secret(&svc, "K", 40).await.unwrap();
        assert!(!again.created);
        assert_eq!(again.value, v1.value);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
