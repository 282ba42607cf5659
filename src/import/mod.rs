//! `clodo-operator import`: turn an existing wrangler project or Clodo framework service into
//! Customer, CloudflareService, ConfigMap and Secret-stub manifests. Importers never copy secret
//! values: Secret stubs carry the key names with empty values and the [`STUB_ANNOTATION`].
//! Whatever the CloudflareService CRD cannot express yet is returned as [`Unmapped`] so the CLI
//! lists it with its config key; nothing is dropped silently.

pub mod clodo;
pub mod wrangler;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ObjectMeta;

use crate::crd::{CloudflareService, Customer, Environment};

/// Marks a Secret written by `import` whose values the user still has to fill in.
pub const STUB_ANNOTATION: &str = "clodo.dev/import-stub";

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("writing manifests: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ImportError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }
}

pub(crate) fn read_text(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|source| ImportError::Read { path: path.to_path_buf(), source })
}

/// A source setting the CloudflareService CRD cannot express (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// Config key path in the source, e.g. `env.staging.kv_namespaces[0]`.
    pub key: String,
    pub why: String,
}

/// The resources an import produces.
#[derive(Debug, Clone)]
pub struct Imported {
    pub customer: Customer,
    pub service: CloudflareService,
    pub config_maps: Vec<ConfigMap>,
    /// Stubs: key names with empty values, annotated with [`STUB_ANNOTATION`].
    pub secrets: Vec<Secret>,
    pub unmapped: Vec<Unmapped>,
    /// Decisions the user should know about (guessed zones, secret names found, ...).
    pub notes: Vec<String>,
}

impl Imported {
    /// The manifests as (file name, multi-document YAML), in apply order.
    pub fn files(&self) -> Result<Vec<(String, String)>, ImportError> {
        let mut out = vec![("01-customer.yaml".to_string(), doc(&self.customer)?)];
        if !self.secrets.is_empty() {
            out.push(("02-secrets.yaml".into(), docs(&self.secrets)?));
        }
        if !self.config_maps.is_empty() {
            out.push(("03-configmaps.yaml".into(), docs(&self.config_maps)?));
        }
        out.push(("04-service.yaml".into(), doc(&self.service)?));
        Ok(out)
    }

    /// All manifests as one YAML stream.
    pub fn to_yaml(&self) -> Result<String, ImportError> {
        Ok(self.files()?.into_iter().map(|(_, y)| y).collect::<Vec<_>>().join(""))
    }

    /// Write one file per kind into `dir` (created if missing); returns the paths written.
    pub fn write_dir(&self, dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImportError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let mut written = Vec::new();
        for (name, yaml) in self.files()? {
            let path = dir.join(name);
            std::fs::write(&path, yaml).map_err(err(&path))?;
            written.push(path);
        }
        Ok(written)
    }
}

fn doc<T: serde::Serialize>(v: &T) -> Result<String, ImportError> {
    Ok(format!("---\n{}", serde_norway::to_string(v)?))
}

fn docs<T: serde::Serialize>(vs: &[T]) -> Result<String, ImportError> {
    Ok(vs.iter().map(doc).collect::<Result<Vec<_>, _>>()?.join(""))
}

pub(crate) fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_string()), namespace: Some(namespace.to_string()), ..Default::default() }
}

/// A Secret stub: the keys with empty values, to be filled in before deploying.
pub(crate) fn secret_stub(name: &str, namespace: &str, keys: &[String]) -> Secret {
    let mut m = meta(name, namespace);
    m.annotations = Some(BTreeMap::from([(STUB_ANNOTATION.to_string(), "true".to_string())]));
    Secret {
        metadata: m,
        type_: Some("Opaque".into()),
        string_data: Some(keys.iter().map(|k| (k.clone(), String::new())).collect()),
        ..Default::default()
    }
}

/// A ConfigMap holding files: UTF-8 files in `data`, others in `binaryData`.
pub(crate) fn files_config_map(name: &str, namespace: &str, files: BTreeMap<String, Vec<u8>>) -> ConfigMap {
    let mut data = BTreeMap::new();
    let mut binary = BTreeMap::new();
    for (k, bytes) in files {
        match String::from_utf8(bytes) {
            Ok(text) => {
                data.insert(k, text);
            }
            Err(e) => {
                binary.insert(k, ByteString(e.into_bytes()));
            }
        }
    }
    ConfigMap {
        metadata: meta(name, namespace),
        data: (!data.is_empty()).then_some(data),
        binary_data: (!binary.is_empty()).then_some(binary),
        ..Default::default()
    }
}

/// Whether `key` is a valid ConfigMap key (`[-._a-zA-Z0-9]+`).
pub(crate) fn valid_config_map_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A DNS-1123 label made from any name: lowercase, other characters become `-`.
pub(crate) fn dns_label(s: &str) -> String {
    let mut out: String =
        s.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out: String = out.trim_matches('-').chars().take(63).collect();
    out.trim_end_matches('-').to_string()
}

/// Whether `s` is a JavaScript identifier (binding names).
pub(crate) fn js_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A Cloudflare account id: 32 lowercase hex characters.
pub(crate) fn account_id_ok(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The clodo environment for a wrangler/framework environment name.
pub fn environment_for(name: Option<&str>) -> Option<Environment> {
    match name.map(str::to_ascii_lowercase).as_deref() {
        None | Some("production" | "prod" | "live" | "main") => Some(Environment::Production),
        Some("staging" | "stage" | "preview" | "qa" | "test" | "uat") => Some(Environment::Staging),
        Some("development" | "dev" | "local") => Some(Environment::Development),
        Some(_) => None,
    }
}

/// The host of a route pattern or hostname: `*.api.example.com/v1/*` -> `api.example.com`.
pub(crate) fn pattern_host(pattern: &str) -> String {
    let host = pattern.split("://").last().unwrap_or(pattern);
    let host = host.split('/').next().unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    host.trim_start_matches('*').trim_start_matches('.').to_ascii_lowercase()
}

/// Best guess of the zone of a host: its last two labels (wrong for e.g. `co.uk`; reported).
pub(crate) fn guess_zone(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    (labels.len() >= 2).then(|| labels[labels.len() - 2..].join("."))
}

/// Whether `z` is a lowercase domain name the Customer CRD accepts in `zones`.
pub(crate) fn zone_ok(z: &str) -> bool {
    let labels: Vec<&str> = z.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels.last().is_some_and(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
}

/// Read the Worker modules of a bundle directory (`wrangler deploy --dry-run --outdir DIR`):
/// the top-level module files. Source maps and wrangler's README are skipped with a note.
pub(crate) fn bundle_modules(dir: &Path, notes: &mut Vec<String>) -> Result<BTreeMap<String, Vec<u8>>, ImportError> {
    let read_err = |source| ImportError::Read { path: dir.to_path_buf(), source };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(read_err)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let mut files = BTreeMap::new();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if p.is_dir() {
            return Err(ImportError::invalid(
                "--bundle",
                format!(
                    "{} has a subdirectory {name:?}; Worker modules must be top-level files (ConfigMap keys cannot contain '/')",
                    dir.display()
                ),
            ));
        }
        if name.ends_with(".map") || name.eq_ignore_ascii_case("README.md") {
            notes.push(format!("bundle: skipped {name} (not a Worker module)"));
            continue;
        }
        if !valid_config_map_key(&name) {
            return Err(ImportError::invalid(
                "--bundle",
                format!("module file name {name:?} is not a valid ConfigMap key"),
            ));
        }
        let bytes = std::fs::read(&p).map_err(|source| ImportError::Read { path: p.clone(), source })?;
        files.insert(name, bytes);
    }
    Ok(files)
}

/// Pick the entry module of a bundle: the file named like `main` (with a JavaScript extension),
/// else the only JavaScript module.
pub(crate) fn bundle_entry(files: &BTreeMap<String, Vec<u8>>, main: Option<&str>) -> Result<String, ImportError> {
    let is_js = |n: &str| n.ends_with(".js") || n.ends_with(".mjs") || n.ends_with(".cjs");
    let js: Vec<&String> = files.keys().filter(|k| is_js(k)).collect();
    if let Some(stem) = main.and_then(|m| Path::new(m).file_stem()).and_then(|s| s.to_str()) {
        for ext in ["js", "mjs", "cjs"] {
            let candidate = format!("{stem}.{ext}");
            if files.contains_key(&candidate) {
                return Ok(candidate);
            }
        }
    }
    match js.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ImportError::invalid("--bundle", "the bundle directory has no JavaScript module")),
        many => Err(ImportError::invalid(
            "--bundle",
            format!(
                "cannot tell the entry module among {}",
                many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// SQL migration files of a directory (`*.sql`, top level), or None when the directory is absent.
pub(crate) fn migration_files(dir: &Path) -> Result<Option<BTreeMap<String, Vec<u8>>>, ImportError> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let read_err = |source| ImportError::Read { path: dir.to_path_buf(), source };
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir).map_err(read_err)? {
        let p = e.map_err(read_err)?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if p.is_file() && name.ends_with(".sql") {
            let bytes = std::fs::read(&p).map_err(|source| ImportError::Read { path: p.clone(), source })?;
            files.insert(name, bytes);
        }
    }
    Ok((!files.is_empty()).then_some(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hosts() {
        assert_eq!(dns_label("My_Worker--App!"), "my-worker-app");
        assert_eq!(pattern_host("*.api.example.com/v1/*"), "api.example.com");
        assert_eq!(pattern_host("https://shop.example.com/*"), "shop.example.com");
        assert_eq!(guess_zone("api.example.com").as_deref(), Some("example.com"));
        assert!(zone_ok("example.com") && !zone_ok("Example.com") && !zone_ok("com"));
        assert!(js_identifier("MY_VAR") && js_identifier("$x") && !js_identifier("1x") && !js_identifier("a-b"));
        assert!(valid_config_map_key("index.js") && !valid_config_map_key("src/index.js"));
        assert_eq!(environment_for(Some("Staging")), Some(Environment::Staging));
        assert_eq!(environment_for(None), Some(Environment::Production));
        assert_eq!(environment_for(Some("eu-west")), None);
    }

    #[test]
    fn binary_files_go_to_binary_data() {
        let cm = files_config_map(
            "c",
            "ns",
            BTreeMap::from([("a.js".into(), b"x".to_vec()), ("m.wasm".into(), vec![0, 0x61, 0xff])]),
        );
        assert_eq!(cm.data.unwrap()["a.js"], "x");
        assert_eq!(cm.binary_data.unwrap()["m.wasm"].0, vec![0, 0x61, 0xff]);
    }
}
