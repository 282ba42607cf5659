//! Mapping of an effective wrangler config onto clodo-operator resources; everything not
//! consumed is reported as [`Unmapped`] with its key path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value};

use super::super::{ImportError, Imported, Unmapped};
use super::{BUILD_KEYS, Effective, LOCAL_KEYS, NON_INHERITABLE, Options};
use crate::crd::{
    CloudflareService, CloudflareServiceSpec, ConfigMapSource, Customer, CustomerSpec, D1DatabaseSpec, Environment,
    LocalObjectRef, RouteSpec, SecretKeyRef, SecretSpec, ServiceBody, ServiceType, ValueFrom, WorkerSpec,
};

pub(super) struct Mapper<'a> {
    eff: &'a Effective,
    unmapped: Vec<Unmapped>,
    notes: Vec<String>,
    used: BTreeSet<&'static str>,
}

impl<'a> Mapper<'a> {
    pub(super) fn new(eff: &'a Effective, notes: Vec<String>) -> Self {
        Self { eff, unmapped: Vec::new(), notes, used: BTreeSet::new() }
    }

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

    pub(super) fn build(&mut self, opts: &Options, dir: &Path) -> Result<Imported, ImportError> {
        let ns = if opts.namespace.is_empty() { "default".to_string() } else { opts.namespace.clone() };
        let id = self.identity(opts)?;
        let (compatibility_date, compatibility_flags) = self.compatibility()?;

        let mut config_maps = Vec::new();
        let (main_module, modules) = self.code(opts, dir)?;
        let code_cm = format!("{}-code", id.service);
        config_maps.push(super::super::files_config_map(&code_cm, &ns, modules));

        let vars = self.vars();
        let secret_names = self.secret_names(dir, opts.env.as_deref(), &vars);
        let secrets_name = format!("{}-secrets", id.service);
        let secrets = secret_names
            .iter()
            .map(|n| SecretSpec {
                name: n.clone(),
                value_from: Some(ValueFrom {
                    secret_key_ref: SecretKeyRef { name: secrets_name.clone(), key: n.clone() },
                }),
                generate: None,
            })
            .collect();
        let databases = self.databases(dir, &id.service, &ns, &mut config_maps)?;
        let (routes, custom_domains, zones) = self.routes();
        self.leftovers(opts.bundle.is_some());

        let (customer, token_secret) = customer_of(&id, zones, &ns);
        let mut stubs = vec![super::super::secret_stub(&token_secret, &ns, &["token".to_string()])];
        if !secret_names.is_empty() {
            stubs.push(super::super::secret_stub(&secrets_name, &ns, &secret_names));
        }
        let script_ok = script_name_ok(&id.worker);
        if !script_ok {
            self.skip(
                self.eff.path("name"),
                format!("{:?} is not a valid scriptName; the operator's default script name is used", id.worker),
            );
        }
        let worker = WorkerSpec {
            main_module,
            source: crate::crd::WorkerSource::config_map(code_cm),
            compatibility_date,
            compatibility_flags,
            vars,
            secrets,
        };
        let mut service = CloudflareService::new(
            &id.service,
            CloudflareServiceSpec {
                customer_ref: LocalObjectRef { name: id.customer.clone() },
                environment: id.environment,
                body: ServiceBody {
                    service_type: ServiceType::Generic,
                    script_name: script_ok.then_some(id.worker.clone()),
                    worker,
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
                "annotation {}=true: the operator takes over the Worker {:?} that wrangler deployed",
                crate::crd::keys::ANNOTATION_ADOPT,
                id.worker
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

    /// Names, environment and account of the import.
    fn identity(&mut self, opts: &Options) -> Result<Identity, ImportError> {
        let worker = self
            .str_of("name")?
            .ok_or_else(|| ImportError::invalid("name", "the Worker name is required (set `name` in the config)"))?;
        let service = super::super::dns_label(&worker);
        if service.is_empty() {
            return Err(ImportError::invalid("name", format!("{worker:?} gives no usable resource name")));
        }
        let top_name =
            super::super::dns_label(worker.trim_end_matches(&format!("-{}", opts.env.as_deref().unwrap_or(""))));
        let customer = opts.customer.clone().map(|c| super::super::dns_label(&c)).unwrap_or(top_name);
        let environment = match opts.environment {
            Some(e) => e,
            None => super::super::environment_for(opts.env.as_deref()).ok_or_else(|| {
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
        if !super::super::account_id_ok(&account_id) {
            return Err(ImportError::invalid("account_id", "must be 32 lowercase hexadecimal characters"));
        }
        Ok(Identity { worker, service, customer, environment, account_id })
    }

    /// `compatibility_date` (required, YYYY-MM-DD) and `compatibility_flags`.
    fn compatibility(&mut self) -> Result<(String, Vec<String>), ImportError> {
        let date = self.str_of("compatibility_date")?.ok_or_else(|| {
            ImportError::invalid("compatibility_date", "required: the Worker's compatibility date (YYYY-MM-DD)")
        })?;
        let shaped = date.len() == 10
            && date.char_indices().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() });
        if !shaped {
            return Err(ImportError::invalid(
                self.eff.path("compatibility_date"),
                format!("{date:?} is not a YYYY-MM-DD date"),
            ));
        }
        Ok((date, self.string_list("compatibility_flags")?))
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
            let files = super::super::bundle_modules(bundle, &mut self.notes)?;
            let entry = super::super::bundle_entry(&files, main.as_deref())?;
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
        let text = super::super::read_text(&main_path)?;
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
                Value::String(s) if super::super::js_identifier(&k) => {
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
            if super::super::js_identifier(&n) {
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
                .filter(|b| super::super::js_identifier(b))
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
            let migrations = match super::super::migration_files(&dir.join(mig_dir))? {
                Some(files) => {
                    if let Some(bad) = files.keys().find(|k| !super::super::valid_config_map_key(k)) {
                        return Err(ImportError::invalid(
                            format!("{at}.migrations_dir"),
                            format!("migration file {bad:?} is not a valid ConfigMap key"),
                        ));
                    }
                    let cm = if list.len() == 1 {
                        format!("{svc}-migrations")
                    } else {
                        format!("{svc}-migrations-{}", super::super::dns_label(&binding))
                    };
                    cms.push(super::super::files_config_map(&cm, ns, files));
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
            let host = super::super::pattern_host(&pattern);
            let zone = obj.get("zone_name").and_then(Value::as_str).map(str::to_ascii_lowercase);
            for k in obj.keys().filter(|k| !matches!(k.as_str(), "pattern" | "zone_name" | "custom_domain")) {
                let why = if k == "zone_id" {
                    "zone ids are not used: the zone is the Customer zone that contains the host"
                } else {
                    "not supported on routes"
                };
                self.skip(format!("{at}.{k}"), why);
            }
            match zone.clone().or_else(|| super::super::guess_zone(&host)) {
                Some(z) if super::super::zone_ok(&z) => {
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

/// Who and what an import is for.
struct Identity {
    /// The Worker's name in the config.
    worker: String,
    /// The CloudflareService's resource name.
    service: String,
    customer: String,
    environment: Environment,
    account_id: String,
}

/// The Customer of an import and the name of its token Secret.
fn customer_of(id: &Identity, zones: Vec<String>, ns: &str) -> (Customer, String) {
    let token_secret = format!("{}-cloudflare", id.customer);
    let mut customer = Customer::new(
        &id.customer,
        CustomerSpec {
            display_name: None,
            account_id: id.account_id.clone(),
            api_token_secret_ref: SecretKeyRef { name: token_secret.clone(), key: "token".into() },
            zones,
            vars: BTreeMap::new(),
            environments: Default::default(),
        },
    );
    customer.metadata.namespace = Some(ns.to_string());
    (customer, token_secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_secrets_and_names() {
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
