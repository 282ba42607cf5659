//! `import wrangler`: a `wrangler.toml` / `wrangler.json` / `wrangler.jsonc` project into
//! clodo-operator resources, with wrangler's environment inheritance rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{ImportError, Imported, Unmapped};
use crate::crd::{
    CloudflareService, CloudflareServiceSpec, ConfigMapSource, Customer, CustomerSpec, D1DatabaseSpec, Environment,
    LocalObjectRef, RouteSpec, SecretKeyRef, SecretSpec, ServiceBody, ServiceType, ValueFrom, WorkerSpec,
};

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
const BUILD_KEYS: &[&str] = &[
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
const LOCAL_KEYS: &[&str] = &["$schema", "dev", "send_metrics", "keep_vars", "legacy_env"];

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
    fn path(&self, key: &str) -> String {
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
    let mut m = Mapper { eff: &eff, unmapped: Vec::new(), notes, used: BTreeSet::new() };
    m.build(opts, &dir)
}

struct Mapper<'a> {
    eff: &'a Effective,
    unmapped: Vec<Unmapped>,
    notes: Vec<String>,
    used: BTreeSet<&'static str>,
}

impl Mapper<'_> {
    fn get(&mut self, key: &'static str) -> Option<&Value> {
        self.used.insert(key);
        self.eff.config.get(key)
    }

    fn str_of(&mut self, key: &'static str) -> Result<Option<String>, ImportError> {
        let path = self.eff.path(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ImportError::invalid(path, "must be a string")),
        }
    }

    fn skip(&mut self, key: String, why: impl Into<String>) {
        self.unmapped.push(Unmapped { key, why: why.into() });
    }

    fn build(&mut self, opts: &Options, dir: &Path) -> Result<Imported, ImportError> {
        let ns = if opts.namespace.is_empty() { "default".to_string() } else { opts.namespace.clone() };
        let worker_name = self
            .str_of("name")?
            .ok_or_else(|| ImportError::invalid("name", "the Worker name is required (set `name` in the config)"))?;
        let svc_name = super::dns_label(&worker_name);
        if svc_name.is_empty() {
            return Err(ImportError::invalid("name", format!("{worker_name:?} gives no usable resource name")));
        }
        let top_name =
            super::dns_label(worker_name.trim_end_matches(&format!("-{}", opts.env.as_deref().unwrap_or(""))));
        let customer_name = opts.customer.clone().map(|c| super::dns_label(&c)).unwrap_or(top_name);
        let environment = match opts.environment {
            Some(e) => e,
            None => super::environment_for(opts.env.as_deref()).ok_or_else(|| {
                ImportError::invalid(
                    "--env",
                    format!(
                        "cannot tell whether {:?} is development, staging or production; pass --environment",
                        opts.env.as_deref().unwrap_or_default()
                    ),
                )
            })?,
        };
        let account_id = match (&opts.account_id, self.str_of("account_id")?) {
            (Some(a), _) => a.clone(),
            (None, Some(a)) => a,
            (None, None) => {
                return Err(ImportError::invalid(
                    "account_id",
                    "not in the config; pass --account-id with the 32-character Cloudflare account id",
                ));
            }
        };
        if !super::account_id_ok(&account_id) {
            return Err(ImportError::invalid("account_id", "must be 32 lowercase hexadecimal characters"));
        }
        let compatibility_date = self.str_of("compatibility_date")?.ok_or_else(|| {
            ImportError::invalid("compatibility_date", "required: the Worker's compatibility date (YYYY-MM-DD)")
        })?;
        if !(compatibility_date.len() == 10
            && compatibility_date
                .char_indices()
                .all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() }))
        {
            return Err(ImportError::invalid(
                self.eff.path("compatibility_date"),
                format!("{compatibility_date:?} is not a YYYY-MM-DD date"),
            ));
        }
        let compatibility_flags = self.string_list("compatibility_flags")?;

        let mut config_maps = Vec::new();
        let (main_module, modules) = self.code(opts, dir)?;
        let code_cm = format!("{svc_name}-code");
        config_maps.push(super::files_config_map(&code_cm, &ns, modules));

        let vars = self.vars();
        let secret_names = self.secret_names(dir, opts.env.as_deref(), &vars);
        let secrets_name = format!("{svc_name}-secrets");
        let secrets: Vec<SecretSpec> = secret_names
            .iter()
            .map(|n| SecretSpec {
                name: n.clone(),
                value_from: Some(ValueFrom {
                    secret_key_ref: SecretKeyRef { name: secrets_name.clone(), key: n.clone() },
                }),
                generate: None,
            })
            .collect();
        let databases = self.databases(dir, &svc_name, &ns, &mut config_maps)?;
        let (routes, custom_domains, zones) = self.routes();
        self.leftovers(opts.bundle.is_some());

        let token_secret = format!("{customer_name}-cloudflare");
        let mut customer = Customer::new(
            &customer_name,
            CustomerSpec {
                display_name: None,
                account_id,
                api_token_secret_ref: SecretKeyRef { name: token_secret.clone(), key: "token".into() },
                zones,
                vars: BTreeMap::new(),
                environments: Default::default(),
            },
        );
        customer.metadata.namespace = Some(ns.clone());
        let mut stubs = vec![super::secret_stub(&token_secret, &ns, &["token".to_string()])];
        if !secret_names.is_empty() {
            stubs.push(super::secret_stub(&secrets_name, &ns, &secret_names));
        }
        let script_ok = script_name_ok(&worker_name);
        if !script_ok {
            self.skip(
                self.eff.path("name"),
                format!("{worker_name:?} is not a valid scriptName; the operator's default script name is used"),
            );
        }
        let mut service = CloudflareService::new(
            &svc_name,
            CloudflareServiceSpec {
                customer_ref: LocalObjectRef { name: customer_name },
                environment,
                body: ServiceBody {
                    service_type: ServiceType::Generic,
                    script_name: script_ok.then_some(worker_name.clone()),
                    worker: WorkerSpec {
                        main_module,
                        source: ConfigMapSource { config_map_ref: LocalObjectRef { name: code_cm } },
                        compatibility_date,
                        compatibility_flags,
                        vars,
                        secrets,
                    },
                    d1_databases: databases,
                    routes,
                    custom_domains,
                    production_tests: None,
                    rollout: Default::default(),
                    rollback_on_failure: true,
                    dry_run: false,
                    suspend: false,
                    deletion_policy: Default::default(),
                },
            },
        );
        service.metadata.namespace = Some(ns);
        if script_ok {
            service.metadata.annotations =
                Some(BTreeMap::from([(crate::crd::keys::ANNOTATION_ADOPT.to_string(), "true".to_string())]));
            self.notes.push(format!(
                "annotation {}=true: the operator takes over the Worker {worker_name:?} that wrangler deployed",
                crate::crd::keys::ANNOTATION_ADOPT
            ));
        }
        Ok(Imported {
            customer,
            service,
            config_maps,
            secrets: stubs,
            unmapped: std::mem::take(&mut self.unmapped),
            notes: std::mem::take(&mut self.notes),
        })
    }

    fn string_list(&mut self, key: &'static str) -> Result<Vec<String>, ImportError> {
        let path = self.eff.path(key);
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| ImportError::invalid(&path, "must be strings")))
                .collect(),
            Some(_) => Err(ImportError::invalid(path, "must be a list of strings")),
        }
    }

    /// The entry module and the module files: from `--bundle`, else the `main` file itself.
    fn code(&mut self, opts: &Options, dir: &Path) -> Result<(String, BTreeMap<String, Vec<u8>>), ImportError> {
        let main = self.str_of("main")?;
        if let Some(bundle) = &opts.bundle {
            let files = super::bundle_modules(bundle, &mut self.notes)?;
            let entry = super::bundle_entry(&files, main.as_deref())?;
            return Ok((entry, files));
        }
        let main = main.ok_or_else(|| {
            ImportError::invalid(
                self.eff.path("main"),
                "no Worker entry point: set `main`, or pass --bundle with the output of `wrangler deploy --dry-run --outdir DIR`",
            )
        })?;
        let main_path = dir.join(&main);
        let ext = main_path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let bundle_hint = "run `npx wrangler deploy --dry-run --outdir dist` in the project and pass --bundle dist";
        if !main_path.is_file() {
            return Err(ImportError::invalid(
                self.eff.path("main"),
                format!("{main} does not exist (a build output?): build the project, or {bundle_hint}"),
            ));
        }
        if !matches!(ext, "js" | "mjs" | "cjs") {
            return Err(ImportError::invalid(
                self.eff.path("main"),
                format!("{main} is not JavaScript and must be built first: {bundle_hint}"),
            ));
        }
        let text = super::read_text(&main_path)?;
        if let Some(spec) = first_bundled_import(&text) {
            return Err(ImportError::invalid(
                self.eff.path("main"),
                format!("{main} imports {spec:?}, which wrangler bundles: {bundle_hint}"),
            ));
        }
        let key = main_path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        Ok((key.clone(), BTreeMap::from([(key, text.into_bytes())])))
    }

    fn vars(&mut self) -> BTreeMap<String, String> {
        let path = self.eff.path("vars");
        let Some(Value::Object(vars)) = self.get("vars").cloned() else { return BTreeMap::new() };
        let mut out = BTreeMap::new();
        for (k, v) in vars {
            match v {
                Value::String(s) if super::js_identifier(&k) => {
                    out.insert(k, s);
                }
                Value::String(_) => self.skip(format!("{path}.{k}"), "the name is not a JavaScript identifier"),
                _ => self.skip(format!("{path}.{k}"), "JSON (non-text) vars are not supported by worker.vars"),
            }
        }
        out
    }

    /// Secret names: `secrets.required`, then the names in `.dev.vars[.ENV]` (never the values).
    fn secret_names(&mut self, dir: &Path, env: Option<&str>, vars: &BTreeMap<String, String>) -> Vec<String> {
        let mut names = BTreeSet::new();
        let path = self.eff.path("secrets");
        if let Some(req) = self.get("secrets").and_then(|s| s.get("required")).and_then(Value::as_array) {
            names.extend(req.iter().filter_map(Value::as_str).map(str::to_string));
        }
        let dev_vars = env.map(|e| dir.join(format!(".dev.vars.{e}"))).filter(|p| p.is_file()).or_else(|| {
            let p = dir.join(".dev.vars");
            p.is_file().then_some(p)
        });
        if let Some(p) = dev_vars
            && let Ok(text) = std::fs::read_to_string(&p)
        {
            let found: Vec<String> = dotenv_names(&text).into_iter().filter(|n| !vars.contains_key(n)).collect();
            if !found.is_empty() {
                self.notes.push(format!(
                    "secret names taken from {} (values not copied): {}",
                    p.display(),
                    found.join(", ")
                ));
            }
            names.extend(found);
        }
        let mut out = Vec::new();
        for n in names {
            if super::js_identifier(&n) {
                out.push(n);
            } else {
                self.skip(format!("{path}.required"), format!("secret name {n:?} is not a JavaScript identifier"));
            }
        }
        out
    }

    fn databases(
        &mut self,
        dir: &Path,
        svc: &str,
        ns: &str,
        cms: &mut Vec<k8s_openapi::api::core::v1::ConfigMap>,
    ) -> Result<Vec<D1DatabaseSpec>, ImportError> {
        let path = self.eff.path("d1_databases");
        let Some(Value::Array(list)) = self.get("d1_databases").cloned() else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for (i, db) in list.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let binding = db
                .get("binding")
                .and_then(Value::as_str)
                .filter(|b| super::js_identifier(b))
                .ok_or_else(|| ImportError::invalid(format!("{at}.binding"), "must be a JavaScript identifier"))?
                .to_string();
            let mut name = db.get("database_name").and_then(Value::as_str).map(str::to_string);
            if let Some(n) = &name
                && !d1_name_ok(n)
            {
                self.skip(format!("{at}.database_name"), format!("{n:?} is not a valid D1 name for the CRD"));
                name = None;
            }
            if db.get("database_id").is_some() {
                self.notes.push(format!("{at}.database_id: not needed, the operator finds the database by name"));
            }
            for local in ["preview_database_id", "remote", "database_internal_env"] {
                if db.get(local).is_some() {
                    self.notes.push(format!("{at}.{local}: local development only, not imported"));
                }
            }
            if let Some(t) = db.get("migrations_table").and_then(Value::as_str)
                && t != "d1_migrations"
            {
                self.skip(format!("{at}.migrations_table"), "a custom migrations table is not supported");
            }
            let mig_dir = db.get("migrations_dir").and_then(Value::as_str).unwrap_or("migrations");
            let migrations = match super::migration_files(&dir.join(mig_dir))? {
                Some(files) => {
                    if let Some(bad) = files.keys().find(|k| !super::valid_config_map_key(k)) {
                        return Err(ImportError::invalid(
                            format!("{at}.migrations_dir"),
                            format!("migration file {bad:?} is not a valid ConfigMap key"),
                        ));
                    }
                    let cm = if list.len() == 1 {
                        format!("{svc}-migrations")
                    } else {
                        format!("{svc}-migrations-{}", super::dns_label(&binding))
                    };
                    cms.push(super::files_config_map(&cm, ns, files));
                    Some(ConfigMapSource { config_map_ref: LocalObjectRef { name: cm } })
                }
                None => {
                    if db.get("migrations_dir").is_some() {
                        self.notes.push(format!("{at}.migrations_dir: {mig_dir} has no .sql files"));
                    }
                    None
                }
            };
            out.push(D1DatabaseSpec { binding, name, migrations, deletion_policy: Default::default() });
        }
        Ok(out)
    }

    /// Routes, custom domains and the Customer zones they need.
    fn routes(&mut self) -> (Vec<RouteSpec>, Vec<String>, Vec<String>) {
        let mut items: Vec<(String, Value)> = Vec::new();
        for key in ["route", "routes"] {
            let path = self.eff.path(key);
            match self.get(key).cloned() {
                Some(Value::Array(a)) => {
                    items.extend(a.into_iter().enumerate().map(|(i, v)| (format!("{path}[{i}]"), v)));
                }
                Some(v) => items.push((path, v)),
                None => {}
            }
        }
        let (mut routes, mut domains, mut zones) = (Vec::new(), Vec::new(), BTreeSet::new());
        for (at, item) in items {
            let (pattern, obj) = match &item {
                Value::String(s) => (s.clone(), Map::new()),
                Value::Object(o) => match o.get("pattern").and_then(Value::as_str) {
                    Some(p) => (p.to_string(), o.clone()),
                    None => {
                        self.skip(at, "route without a pattern");
                        continue;
                    }
                },
                _ => {
                    self.skip(at, "route must be a string or an object");
                    continue;
                }
            };
            let pattern = match pattern.split_once("://") {
                Some((_, rest)) => {
                    self.notes.push(format!("{at}: scheme removed from route pattern {pattern:?}"));
                    rest.to_string()
                }
                None => pattern,
            };
            let host = super::pattern_host(&pattern);
            let zone = obj.get("zone_name").and_then(Value::as_str).map(str::to_ascii_lowercase);
            for k in obj.keys().filter(|k| !matches!(k.as_str(), "pattern" | "zone_name" | "custom_domain")) {
                let why = if k == "zone_id" {
                    "zone ids are not used: the zone is the Customer zone that contains the host"
                } else {
                    "not supported on routes"
                };
                self.skip(format!("{at}.{k}"), why);
            }
            match zone.clone().or_else(|| super::guess_zone(&host)) {
                Some(z) if super::zone_ok(&z) => {
                    if zone.is_none() {
                        self.notes.push(format!("{at}: Customer zone {z} guessed from {host}; check it"));
                    }
                    zones.insert(z);
                }
                _ => self.notes.push(format!("{at}: no zone for {host:?}; add it to the Customer's zones")),
            }
            if obj.get("custom_domain").and_then(Value::as_bool) == Some(true) {
                domains.push(host);
            } else {
                routes.push(RouteSpec { pattern, zone });
            }
        }
        (routes, domains, zones.into_iter().collect())
    }

    /// Report every key not consumed above.
    fn leftovers(&mut self, bundled: bool) {
        let keys: Vec<String> = self.eff.config.keys().cloned().collect();
        for k in keys {
            if self.used.contains(k.as_str()) {
                continue;
            }
            let path = self.eff.path(&k);
            if LOCAL_KEYS.contains(&k.as_str()) {
                self.notes.push(format!("{path}: local development / CLI setting, not imported"));
                continue;
            }
            if BUILD_KEYS.contains(&k.as_str()) {
                if bundled {
                    self.notes.push(format!("{path}: build setting, already applied in the --bundle output"));
                } else {
                    self.skip(
                        path,
                        "build setting: bundle with `wrangler deploy --dry-run --outdir DIR` and pass --bundle DIR",
                    );
                }
                continue;
            }
            let value = self.eff.config.get(&k).cloned().unwrap_or(Value::Null);
            let why = reason_unmapped(&k);
            match value {
                Value::Array(items) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        let label = item
                            .get("binding")
                            .or_else(|| item.get("name"))
                            .or_else(|| item.get("queue"))
                            .and_then(Value::as_str)
                            .map(|b| format!(" ({b})"))
                            .unwrap_or_default();
                        self.skip(format!("{path}[{i}]"), format!("{why}{label}"));
                    }
                }
                Value::Object(o) if k == "queues" || k == "triggers" => {
                    for (sub, v) in o {
                        let n = v.as_array().map(Vec::len).unwrap_or(1);
                        self.skip(
                            format!("{path}.{sub}"),
                            format!("{why} ({n} entr{})", if n == 1 { "y" } else { "ies" }),
                        );
                    }
                }
                _ => self.skip(path, why),
            }
        }
    }
}

fn reason_unmapped(key: &str) -> String {
    match key {
        "triggers" => "cron triggers are not supported by CloudflareService yet".into(),
        "workers_dev" | "preview_urls" => "the workers.dev / preview URL toggle is not supported yet".into(),
        "migrations" => "Durable Object class migrations are not supported yet".into(),
        "observability" | "logpush" | "tail_consumers" | "streaming_tail_consumers" => {
            "observability and log settings are not supported by CloudflareService yet".into()
        }
        "assets" | "site" => "static assets are not supported by CloudflareService yet".into(),
        "placement" | "limits" | "compliance_region" | "usage_model" => {
            format!("{key} is not supported by CloudflareService yet")
        }
        k if NON_INHERITABLE.contains(&k) => format!("{k} bindings are not supported by CloudflareService yet"),
        k => format!("{k} is not supported by CloudflareService yet"),
    }
}

fn script_name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
        && (b.len() == 1 || b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
}

fn d1_name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// Names of `KEY=value` lines of a dotenv file.
pub(crate) fn dotenv_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| !k.is_empty())
        .collect()
}

/// The first import of a module wrangler would have to bundle (anything but `cloudflare:*` and
/// `node:*` built-ins), if the source has one.
fn first_bundled_import(js: &str) -> Option<String> {
    for line in js.lines().map(str::trim_start) {
        let is_import = line.starts_with("import ") || line.starts_with("import{") || line.starts_with("export ");
        if !is_import {
            continue;
        }
        let Some(idx) = line.find(" from ").map(|i| i + 6).or_else(|| line.strip_prefix("import ").map(|_| 7)) else {
            continue;
        };
        let rest = line[idx..].trim_start();
        let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else { continue };
        let spec: String = rest[1..].chars().take_while(|c| *c != q).collect();
        if !(spec.starts_with("cloudflare:") || spec.starts_with("node:")) {
            return Some(spec);
        }
    }
    None
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
    fn toml_dates_and_imports() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("wrangler.toml");
        std::fs::write(&f, "name = \"x\"\ncompatibility_date = 2024-09-23\n").unwrap();
        assert_eq!(parse_config(&f).unwrap()["compatibility_date"], "2024-09-23");
        assert_eq!(first_bundled_import("import { Hono } from 'hono';").as_deref(), Some("hono"));
        assert_eq!(
            first_bundled_import("import { DurableObject } from \"cloudflare:workers\";\nexport default {}"),
            None
        );
        assert_eq!(first_bundled_import("import './polyfill.js';").as_deref(), Some("./polyfill.js"));
        assert_eq!(dotenv_names("# c\nA=1\nexport B = x\n\n"), vec!["A", "B"]);
        assert!(script_name_ok("my-worker") && !script_name_ok("My-Worker") && !script_name_ok("x-"));
    }
}
