//! `import clodo`: a Clodo framework service directory (`clodo-service-manifest.json`, the
//! service's `wrangler.toml`, and `config/customers/<customer>/<env>.env`) into clodo-operator
//! resources. The wrangler config gives code, D1 and routes; the manifest gives the service name,
//! type and domain; the customer `.env` gives the account, zone/domain and variables (secret-like
//! keys become Secret-stub names, their values are never copied).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ImportError, Imported, Unmapped, wrangler};
use crate::crd::{Environment, EnvironmentSettings, SecretKeyRef, SecretSpec, ServiceType, ValueFrom};

/// The framework's manifest file.
pub const MANIFEST: &str = "clodo-service-manifest.json";

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dir: PathBuf,
    /// Customer directory under `config/customers/`; default: the only one.
    pub customer: Option<String>,
    /// Environment file to read (`<env>.env`); default production.
    pub environment: Option<Environment>,
    pub namespace: String,
    pub account_id: Option<String>,
    pub bundle: Option<PathBuf>,
}

/// `.env` keys the importer consumes itself (not copied into Customer vars).
const CONSUMED: &[&str] = &[
    "CUSTOMER_ID",
    "CUSTOMER_NAME",
    "ENVIRONMENT",
    "CLOUDFLARE_ACCOUNT_ID",
    "CLOUDFLARE_ZONE_ID",
    "DOMAIN",
    "DATABASE_NAME",
];

/// Whether a `.env` key names a credential (imported as a Secret-stub key, never as a var).
fn secret_like(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "PRIVATE", "API_KEY", "_KEY", "CREDENTIAL"].iter().any(|s| k.contains(s))
}

/// Parse a `.env` file: `KEY=value` lines, optional quotes and `export`, `#` comments.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                .unwrap_or(v);
            out.insert(k.trim().to_string(), v.to_string());
        }
    }
    out
}

fn is_template(v: &str) -> bool {
    v.contains("{{") && v.contains("}}")
}

fn pick_customer(dir: &Path, wanted: Option<&str>) -> Result<String, ImportError> {
    let base = dir.join("config").join("customers");
    if let Some(w) = wanted {
        return Ok(w.to_string());
    }
    let mut names: Vec<String> = std::fs::read_dir(&base)
        .map_err(|source| ImportError::Read { path: base.clone(), source })?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ImportError::invalid("config/customers", "no customer directories")),
        many => Err(ImportError::invalid(
            "--customer",
            format!("several customers in config/customers ({}); pick one", many.join(", ")),
        )),
    }
}

/// Import a Clodo framework service directory.
pub fn import(opts: &Options) -> Result<Imported, ImportError> {
    let manifest_path = opts.dir.join(MANIFEST);
    let manifest: Value = serde_json::from_str(&super::read_text(&manifest_path)?)
        .map_err(|e| ImportError::Parse { path: manifest_path.clone(), message: e.to_string() })?;
    let environment = opts.environment.unwrap_or(Environment::Production);
    let customer_dir = pick_customer(&opts.dir, opts.customer.as_deref())?;
    let env_path = opts.dir.join("config").join("customers").join(&customer_dir).join(format!("{environment}.env"));
    let env = parse_env(&super::read_text(&env_path)?);
    let env_file = env_path.display().to_string();

    let account =
        opts.account_id.clone().or_else(|| env.get("CLOUDFLARE_ACCOUNT_ID").filter(|v| !is_template(v)).cloned());
    let wrangler_cfg = wrangler::find_config(&opts.dir)?;
    let raw = wrangler::parse_config(&wrangler_cfg)?;
    // The framework deploys production from the top level and other environments with `--env`.
    let has_env = raw.get("env").and_then(|e| e.get(environment.as_str())).is_some();
    let wopts = wrangler::Options {
        path: wrangler_cfg.clone(),
        env: has_env.then(|| environment.as_str().to_string()),
        customer: Some(env.get("CUSTOMER_ID").cloned().unwrap_or_else(|| customer_dir.clone())),
        namespace: opts.namespace.clone(),
        account_id: account,
        bundle: opts.bundle.clone(),
        environment: Some(environment),
    };
    let mut imp = wrangler::import(&wopts).map_err(|e| match e {
        ImportError::Invalid { field, message } if field == "account_id" => ImportError::invalid(
            format!("{env_file}: CLOUDFLARE_ACCOUNT_ID"),
            format!("{message} (the .env value is missing or a {{{{template}}}})"),
        ),
        other => other,
    })?;

    let domain = apply_manifest(&mut imp, &manifest, &env)?;
    apply_env(&mut imp, &env, &env_file, environment, domain);
    Ok(imp)
}

/// The manifest: name, type and domain; the rest is reported as unmapped. Returns the domain
/// (from the .env's DOMAIN, else the manifest).
fn apply_manifest(
    imp: &mut Imported,
    manifest: &Value,
    env: &BTreeMap<String, String>,
) -> Result<Option<String>, ImportError> {
    if let Some(name) = manifest.get("serviceName").and_then(Value::as_str) {
        let n = super::dns_label(name);
        if !n.is_empty() {
            imp.service.metadata.name = Some(n);
        }
    }
    if let Some(t) = manifest.get("serviceType") {
        imp.service.spec.body.service_type = serde_json::from_value::<ServiceType>(t.clone()).map_err(|_| {
            ImportError::invalid(
                format!("{MANIFEST}: serviceType"),
                format!("{t} is not one of data-service, auth-service, content-service, api-gateway, generic"),
            )
        })?;
    }
    let domain = env
        .get("DOMAIN")
        .filter(|d| !is_template(d))
        .cloned()
        .or_else(|| manifest.get("domain").and_then(Value::as_str).map(str::to_ascii_lowercase));
    if let Some(d) = &domain {
        if super::zone_ok(d) && !imp.service.spec.body.custom_domains.contains(d) {
            imp.service.spec.body.custom_domains.push(d.clone());
        }
        if let Some(z) = super::guess_zone(d).filter(|z| super::zone_ok(z))
            && !imp.customer.spec.zones.contains(&z)
        {
            imp.notes.push(format!("Customer zone {z} guessed from domain {d}; check it"));
            imp.customer.spec.zones.push(z);
        }
    }
    for (k, v) in manifest.as_object().into_iter().flatten() {
        if !matches!(k.as_str(), "serviceName" | "serviceType" | "domain") {
            let why = if k == "configuration" {
                format!("framework configuration ({}) has no CloudflareService field", summarize(v))
            } else {
                "no CloudflareService field".to_string()
            };
            imp.unmapped.push(Unmapped { key: format!("{MANIFEST}: {k}"), why });
        }
    }

    Ok(domain)
}

/// The customer's .env: database name, variables and secret names (values never copied).
fn apply_env(
    imp: &mut Imported,
    env: &BTreeMap<String, String>,
    env_file: &str,
    environment: Environment,
    domain: Option<String>,
) {
    if let Some(db) = env.get("DATABASE_NAME").filter(|v| !is_template(v))
        && let [only] = imp.service.spec.body.d1_databases.as_mut_slice()
    {
        only.name = Some(db.clone());
    }
    let mut vars = BTreeMap::new();
    let mut secret_keys = Vec::new();
    for (k, v) in env {
        if CONSUMED.contains(&k.as_str()) {
            continue;
        }
        if !super::js_identifier(k) {
            imp.unmapped.push(Unmapped { key: format!("{env_file}: {k}"), why: "not a variable name".into() });
        } else if secret_like(k) {
            secret_keys.push(k.clone());
        } else {
            if is_template(v) {
                imp.notes.push(format!("{env_file}: {k} is a template ({v}); it is rendered from Customer vars"));
            }
            vars.insert(k.clone(), v.clone());
        }
    }
    let settings = EnvironmentSettings { domain, vars, policy: None };
    match environment {
        Environment::Development => imp.customer.spec.environments.development = Some(settings),
        Environment::Staging => imp.customer.spec.environments.staging = Some(settings),
        Environment::Production => imp.customer.spec.environments.production = Some(settings),
    }
    if !secret_keys.is_empty() {
        let ns = imp.service.metadata.namespace.clone().unwrap_or_default();
        let name = format!("{}-customer-secrets", imp.service.metadata.name.as_deref().unwrap_or_default());
        for k in &secret_keys {
            if imp.service.spec.body.worker.secrets.iter().all(|s| &s.name != k) {
                imp.service.spec.body.worker.secrets.push(SecretSpec {
                    name: k.clone(),
                    value_from: Some(ValueFrom { secret_key_ref: SecretKeyRef { name: name.clone(), key: k.clone() } }),
                    generate: None,
                });
            }
        }
        imp.notes.push(format!("{env_file}: {} treated as secrets (values not copied)", secret_keys.join(", ")));
        imp.secrets.push(super::secret_stub(&name, &ns, &secret_keys));
    }
}

fn summarize(v: &Value) -> String {
    match v.as_object() {
        Some(o) => o.keys().cloned().collect::<Vec<_>>().join(", "),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse() {
        let env = parse_env("# Deployment\nCUSTOMER_ID=acme\nexport DOMAIN=\"api.acme.com\"\nX='{{DOMAIN}}'\n");
        assert_eq!(env["CUSTOMER_ID"], "acme");
        assert_eq!(env["DOMAIN"], "api.acme.com");
        assert!(is_template(&env["X"]));
        assert!(secret_like("JWT_SECRET") && secret_like("STRIPE_API_KEY") && !secret_like("LOG_LEVEL"));
    }
}
