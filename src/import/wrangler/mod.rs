//! `import wrangler`: a `wrangler.toml` / `wrangler.json` / `wrangler.jsonc` project into
//! clodo-operator resources, with wrangler's environment inheritance rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

mod map;

use super::{ImportError, Imported};
use crate::crd::Environment;

/// Config file names wrangler looks for, in its order of preference.
pub const CONFIG_FILES: [&str; 3] = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];

/// Keys wrangler does NOT inherit from the top level into `[env.NAME]` (they must be repeated
/// per environment). Matches the "not automatically inherited" keys of wrangler's
/// `config-schema.json` (a test compares them against the published schema).
pub const NON_INHERITABLE: &[&str] = &[
    "define",
    "vars",
    "secrets",
    "durable_objects",
    "workflows",
    "cloudchamber",
    "containers",
    "kv_namespaces",
    "send_email",
    "queues",
    "r2_buckets",
    "d1_databases",
    "vectorize",
    "ai_search_namespaces",
    "ai_search",
    "hyperdrive",
    "services",
    "analytics_engine_datasets",
    "browser",
    "ai",
    "images",
    "media",
    "stream",
    "unsafe",
    "mtls_certificates",
    "tail_consumers",
    "streaming_tail_consumers",
    "dispatch_namespaces",
    "pipelines",
    "secrets_store_secrets",
    "artifacts",
    "unsafe_hello_world",
    "flagship",
    "ratelimits",
    "worker_loaders",
    "vpc_services",
    "vpc_networks",
];

/// Build settings wrangler applies while bundling: already applied in a `--bundle` directory.
pub(super) const BUILD_KEYS: &[&str] = &[
    "build",
    "no_bundle",
    "minify",
    "keep_names",
    "tsconfig",
    "jsx_factory",
    "jsx_fragment",
    "rules",
    "find_additional_modules",
    "base_dir",
    "preserve_file_names",
    "alias",
    "define",
    "python_modules",
];

/// Settings for local development or the wrangler CLI itself; nothing to deploy.
pub(super) const LOCAL_KEYS: &[&str] = &["$schema", "dev", "send_metrics", "keep_vars", "legacy_env"];

/// What to import and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A wrangler config file, or a directory holding one.
    pub path: PathBuf,
    /// `[env.NAME]` to import; top level when None.
    pub env: Option<String>,
    pub customer: Option<String>,
    pub namespace: String,
    pub account_id: Option<String>,
    /// Output of `wrangler deploy --dry-run --outdir DIR`.
    pub bundle: Option<PathBuf>,
    /// Target environment; default from the `--env` name (production without one).
    pub environment: Option<Environment>,
}

/// Find the config file: `path` itself, or the first of [`CONFIG_FILES`] inside it.
pub fn find_config(path: &Path) -> Result<PathBuf, ImportError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    CONFIG_FILES.iter().map(|f| path.join(f)).find(|p| p.is_file()).ok_or_else(|| {
        ImportError::invalid(
            "PATH",
            format!("{}: no wrangler.json, wrangler.jsonc or wrangler.toml found", path.display()),
        )
    })
}

/// Parse a wrangler config (TOML, JSON or JSONC) into JSON.
pub fn parse_config(file: &Path) -> Result<Value, ImportError> {
    let text = super::read_text(file)?;
    let parse_err = |message: String| ImportError::Parse { path: file.to_path_buf(), message };
    let value = if file.extension().and_then(|e| e.to_str()) == Some("toml") {
        let table: toml::Table = toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?;
        toml_to_json(toml::Value::Table(table))
    } else {
        jsonc_parser::parse_to_serde_value::<Value>(&text, &jsonc_parser::ParseOptions::default())
            .map_err(|e| parse_err(e.to_string()))?
    };
    if !value.is_object() {
        return Err(parse_err("the top level must be an object".into()));
    }
    Ok(value)
}

fn toml_to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        // An unquoted `compatibility_date = 2024-01-01` is a TOML date: keep its text.
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect()),
    }
}

/// The config wrangler deploys for one environment, with each key's source path.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    pub config: Map<String, Value>,
    /// key -> config key path it came from (`vars` or `env.staging.vars`).
    pub origin: BTreeMap<String, String>,
}

impl Effective {
    pub(super) fn path(&self, key: &str) -> String {
        self.origin.get(key).cloned().unwrap_or_else(|| key.to_string())
    }
}

/// Apply wrangler's inheritance: inheritable top-level keys flow into `[env.NAME]` unless it sets
/// them; non-inheritable keys come from the environment only; the name gets `-NAME` appended
/// (wrangler's default `legacy_env`). Ignored top-level values are noted.
pub fn effective(raw: &Value, env: Option<&str>, notes: &mut Vec<String>) -> Result<Effective, ImportError> {
    let top = raw.as_object().cloned().unwrap_or_default();
    let mut out = Effective::default();
    let Some(env) = env else {
        for (k, v) in top {
            if k != "env" {
                out.origin.insert(k.clone(), k.clone());
                out.config.insert(k, v);
            }
        }
        return Ok(out);
    };
    let envs = top.get("env").and_then(Value::as_object);
    let Some(env_table) = envs.and_then(|e| e.get(env)).and_then(Value::as_object) else {
        let known: Vec<&String> = envs.map(|e| e.keys().collect()).unwrap_or_default();
        return Err(ImportError::invalid(
            "--env",
            format!(
                "environment {env:?} is not defined (env.{env}); defined: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                }
            ),
        ));
    };
    for (k, v) in &top {
        if k == "env" {
            continue;
        }
        if NON_INHERITABLE.contains(&k.as_str()) {
            if !env_table.contains_key(k) {
                notes.push(format!(
                    "{k}: not inherited into env.{env} (wrangler's rule); the top-level value is not used"
                ));
            }
            continue;
        }
        out.origin.insert(k.clone(), k.clone());
        out.config.insert(k.clone(), v.clone());
    }
    for (k, v) in env_table {
        out.origin.insert(k.clone(), format!("env.{env}.{k}"));
        out.config.insert(k.clone(), v.clone());
    }
    let legacy = top.get("legacy_env").and_then(Value::as_bool).unwrap_or(true);
    if legacy
        && !env_table.contains_key("name")
        && let Some(name) = top.get("name").and_then(Value::as_str)
    {
        out.config.insert("name".into(), Value::String(format!("{name}-{env}")));
    }
    Ok(out)
}

/// Import a wrangler project.
pub fn import(opts: &Options) -> Result<Imported, ImportError> {
    let file = find_config(&opts.path)?;
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let raw = parse_config(&file)?;
    let mut notes = Vec::new();
    let eff = effective(&raw, opts.env.as_deref(), &mut notes)?;
    map::Mapper::new(&eff, notes).build(opts, &dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_inheritance_follows_wrangler() {
        let raw = json!({
            "name": "api", "main": "index.js", "compatibility_date": "2025-01-01",
            "routes": ["a.example.com/*"], "vars": {"A": "1"}, "kv_namespaces": [{"binding": "KV"}],
            "env": {"staging": {"vars": {"B": "2"}}}
        });
        let mut notes = Vec::new();
        let eff = effective(&raw, Some("staging"), &mut notes).unwrap();
        assert_eq!(eff.config["name"], "api-staging");
        assert_eq!(eff.config["routes"], json!(["a.example.com/*"]));
        assert_eq!(eff.config["vars"], json!({"B": "2"}));
        assert!(!eff.config.contains_key("kv_namespaces"));
        assert_eq!(eff.origin["vars"], "env.staging.vars");
        assert!(notes.iter().any(|n| n.starts_with("kv_namespaces: not inherited")), "{notes:?}");
        let err = effective(&raw, Some("prod"), &mut notes).unwrap_err().to_string();
        assert!(err.contains("defined: staging"), "{err}");
    }

    #[test]
    fn toml_dates_are_text() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("wrangler.toml");
        std::fs::write(&f, "name = \"x\"\ncompatibility_date = 2024-09-23\n").unwrap();
        assert_eq!(parse_config(&f).unwrap()["compatibility_date"], "2024-09-23");
    }
}
