//! Pure: turn resolved inputs into the desired Cloudflare state, rendering `{{VAR}}` templates.

use std::collections::BTreeMap;

use super::hash::{ContentHasher, secret_digest};
use super::migrations::MigrationFile;
use super::render::render;
use super::resolve::{ConfigError, Module, ServiceInputs};
use super::secret::SecretValue;
use crate::crd::keys::{ANNOTATION_ADOPT, owner_tag};
use crate::crd::{DatabaseDeletionPolicy, DeletionPolicy, Environment, PolicyLevel, ProductionTestsSpec, RolloutSpec};

/// A D1 database the service needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredDatabase {
    pub binding: String,
    pub name: String,
    pub migrations: Vec<MigrationFile>,
    pub deletion_policy: DatabaseDeletionPolicy,
    /// Field path for messages, e.g. `spec.d1Databases[0]`.
    pub field: String,
}

/// A route with its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRoute {
    pub pattern: String,
    pub zone: String,
}

/// A custom domain with its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredDomain {
    pub hostname: String,
    pub zone: String,
}

/// The whole desired state of one service.
#[derive(Debug, Clone)]
pub struct Desired {
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    pub account_id: String,
    pub environment: Environment,
    pub policy: PolicyLevel,
    pub script_name: String,
    pub owner_tag: String,
    pub adopt: bool,
    pub main_module: String,
    pub modules: Vec<Module>,
    pub compatibility_date: String,
    pub compatibility_flags: Vec<String>,
    pub vars: BTreeMap<String, String>,
    /// Secrets from `valueFrom`, with their values.
    pub secrets: Vec<(String, SecretValue)>,
    /// `generate` secrets: part of the content by name only (set once, then kept).
    pub generated: Vec<super::resolve::GeneratedSecret>,
    pub databases: Vec<DesiredDatabase>,
    pub routes: Vec<DesiredRoute>,
    pub custom_domains: Vec<DesiredDomain>,
    pub zones: Vec<String>,
    /// Zone ids the Customer controller already resolved (`status.zones`).
    pub known_zone_ids: BTreeMap<String, String>,
    pub tests: Option<ProductionTestsSpec>,
    pub test_credential: Option<SecretValue>,
    /// Secret values of production-test headers.
    pub test_secrets: BTreeMap<String, SecretValue>,
    pub rollout: RolloutSpec,
    pub rollback_on_failure: bool,
    pub dry_run: bool,
    pub suspend: bool,
    pub deletion_policy: DeletionPolicy,
    pub rollback_to: Option<String>,
    /// Digest of every input of the pass (spec, generation, referenced objects).
    pub input_digest: String,
}

impl Desired {
    /// Every secret binding name (from `valueFrom` and `generate`).
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(|(k, _)| k.as_str()).chain(self.generated.iter().map(|g| g.name.as_str()))
    }

    /// Hash over modules, metadata, bindings and secret digests, given the database ids.
    pub fn content_hash(&self, database_ids: &BTreeMap<String, String>) -> String {
        let mut h = ContentHasher::new();
        h.field("main_module", self.main_module.as_bytes());
        for m in &self.modules {
            h.field("module", m.name.as_bytes()).field("content", &m.content);
        }
        h.field("compatibility_date", self.compatibility_date.as_bytes());
        for f in &self.compatibility_flags {
            h.field("flag", f.as_bytes());
        }
        for (k, v) in &self.vars {
            h.field("var", k.as_bytes()).field("value", v.as_bytes());
        }
        for (k, v) in &self.secrets {
            h.field("secret", &secret_digest(k, v.expose()));
        }
        for g in &self.generated {
            h.field("generated_secret", g.name.as_bytes());
        }
        for db in &self.databases {
            h.field("d1", db.binding.as_bytes());
            h.field("d1_id", database_ids.get(&db.binding).map(String::as_bytes).unwrap_or_default());
        }
        h.field("owner", self.owner_tag.as_bytes());
        h.finish()
    }

    /// The URL the service is reached at, if it has a route host or custom domain.
    pub fn public_url(&self) -> Option<String> {
        if let Some(d) = self.custom_domains.first() {
            return Some(format!("https://{}", d.hostname));
        }
        self.routes.iter().find_map(|r| {
            let host = route_host(&r.pattern);
            (!host.contains('*')).then(|| format!("https://{host}"))
        })
    }
}

/// DNS hostname syntax: dot-separated labels of letters, digits and inner hyphens, at least two.
pub fn is_hostname(h: &str) -> bool {
    let labels: Vec<&str> = h.split('.').collect();
    h.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// Host part of a route pattern (`api.acme.com/*` -> `api.acme.com`).
pub fn route_host(pattern: &str) -> &str {
    pattern.split('/').next().unwrap_or(pattern)
}

/// The customer zone that contains a hostname: the longest zone name that equals it or is a
/// dot-suffix of it.
pub fn zone_for_host<'a>(zones: &'a [String], host: &str) -> Option<&'a String> {
    let host = host.trim_start_matches("*.").trim_start_matches('*').trim_end_matches('.').to_ascii_lowercase();
    zones.iter().filter(|z| host == **z || host.ends_with(&format!(".{z}"))).max_by_key(|z| z.len())
}

/// Build the desired state. Errors name the field.
pub fn build(inputs: &ServiceInputs) -> Result<Desired, ConfigError> {
    let svc = &inputs.service;
    let spec = &svc.spec;
    let body = &spec.body;
    let customer = &inputs.customer.spec;
    let namespace = svc.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let name = svc.metadata.name.clone().unwrap_or_default();
    let script_name = svc.script_name();
    let env = spec.environment;

    if customer.account_id.trim().is_empty() {
        return Err(ConfigError::invalid("customer.spec.accountId", "must not be empty"));
    }

    // Template variables: customer vars < environment vars < built-ins.
    let mut vars = customer.vars_for(env);
    let env_domain = customer.environments.get(env).and_then(|e| e.domain.clone());
    let domain = env_domain
        .clone()
        .or_else(|| body.custom_domains.first().cloned())
        .or_else(|| body.routes.first().map(|r| route_host(&r.pattern).to_string()))
        .unwrap_or_default();
    vars.insert("CUSTOMER".into(), spec.customer_ref.name.clone());
    vars.insert("ENVIRONMENT".into(), env.to_string());
    vars.insert("SERVICE".into(), name.clone());
    vars.insert("SCRIPT_NAME".into(), script_name.clone());
    if !domain.contains("{{") {
        vars.insert("DOMAIN".into(), domain);
    }
    let err = ConfigError::unresolved;

    // DOMAIN itself may be templated through the environment domain.
    if let Some(d) = &env_domain {
        let rendered = render("customer.spec.environments.domain", d, &vars).map_err(err)?;
        vars.insert("DOMAIN".into(), rendered);
    }

    let mut rendered_vars = BTreeMap::new();
    for (k, v) in &body.worker.vars {
        rendered_vars.insert(k.clone(), render(&format!("spec.worker.vars.{k}"), v, &vars).map_err(err)?);
    }

    let zones = customer.zones.clone();
    let mut routes = Vec::new();
    for (i, r) in body.routes.iter().enumerate() {
        let field = format!("spec.routes[{i}].pattern");
        let pattern = render(&field, &r.pattern, &vars).map_err(err)?;
        let host = route_host(&pattern).to_string();
        let zone = match &r.zone {
            Some(z) => {
                if !zones.contains(z) {
                    return Err(ConfigError::invalid(
                        format!("spec.routes[{i}].zone"),
                        format!("zone {z:?} is not one of the customer's zones"),
                    ));
                }
                z.clone()
            }
            None => zone_for_host(&zones, &host).cloned().ok_or_else(|| {
                ConfigError::invalid(
                    field.clone(),
                    format!("host {host:?} is not in any of the customer's zones ({})", zones.join(", ")),
                )
            })?,
        };
        if zone_for_host(std::slice::from_ref(&zone), &host).is_none() {
            return Err(ConfigError::invalid(field, format!("host {host:?} is outside zone {zone:?}")));
        }
        routes.push(DesiredRoute { pattern, zone });
    }

    let mut custom_domains = Vec::new();
    for (i, d) in body.custom_domains.iter().enumerate() {
        let field = format!("spec.customDomains[{i}]");
        let hostname = render(&field, d, &vars).map_err(err)?.to_ascii_lowercase();
        if !is_hostname(&hostname) {
            return Err(ConfigError::invalid(field.clone(), format!("{hostname:?} is not a valid hostname")));
        }
        let zone = zone_for_host(&zones, &hostname).cloned().ok_or_else(|| {
            ConfigError::invalid(
                field.clone(),
                format!("hostname {hostname:?} is not in any of the customer's zones ({})", zones.join(", ")),
            )
        })?;
        custom_domains.push(DesiredDomain { hostname, zone });
    }

    let mut databases = Vec::new();
    for (i, db) in body.d1_databases.iter().enumerate() {
        databases.push(DesiredDatabase {
            binding: db.binding.clone(),
            name: svc.database_name(db),
            migrations: inputs.migrations.get(&db.binding).cloned().unwrap_or_default(),
            deletion_policy: db.deletion_policy,
            field: format!("spec.d1Databases[{i}]"),
        });
    }
    for k in inputs.secrets.iter().map(|(k, _)| k).chain(inputs.generated.iter().map(|g| &g.name)) {
        if rendered_vars.contains_key(k) || databases.iter().any(|d| &d.binding == k) {
            return Err(ConfigError::invalid(
                format!("spec.worker.secrets.{k}"),
                "binding name is already used by a var or database",
            ));
        }
    }

    // The service type's default checks when productionTests declares none (prodtest::defaults).
    let mut tests = crate::prodtest::defaults::effective(body.service_type, body.production_tests.as_ref());
    if let Some(t) = tests.as_mut()
        && let Some(url) = &t.base_url
    {
        t.base_url = Some(render("spec.productionTests.baseUrl", url, &vars).map_err(err)?);
    }

    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let adopt = annotations.get(ANNOTATION_ADOPT).is_some_and(|v| v == "true");
    let rollback_to = annotations.get(crate::crd::keys::ANNOTATION_ROLLBACK_TO).filter(|v| !v.is_empty()).cloned();

    // Everything the pass acts on, by content (referenced objects may carry no version, e.g.
    // manifests read from files).
    let mut input = ContentHasher::new();
    input
        .field("spec", serde_json::to_string(&svc.spec).unwrap_or_default().as_bytes())
        .field("customer", serde_json::to_string(&inputs.customer.spec).unwrap_or_default().as_bytes())
        .field("adopt", &[adopt as u8])
        .field("rollback_to", rollback_to.as_deref().unwrap_or_default().as_bytes());
    for m in &inputs.modules {
        input.field("module", m.name.as_bytes()).field("content", &m.content);
    }
    for (binding, files) in &inputs.migrations {
        for f in files {
            input
                .field("migration", binding.as_bytes())
                .field("file", f.name.as_bytes())
                .field("sum", f.checksum.as_bytes());
        }
    }
    for (k, v) in &inputs.secrets {
        input.field("secret", &secret_digest(k, v.expose()));
    }
    for g in &inputs.generated {
        input.field("generated_secret", g.name.as_bytes());
    }
    if let Some(cred) = &inputs.test_credential {
        input.field("test_credential", &secret_digest("test", cred.expose()));
    }
    for (k, v) in &inputs.test_secrets {
        input.field("test_secret", &secret_digest(k, v.expose()));
    }

    Ok(Desired {
        namespace: namespace.clone(),
        name: name.clone(),
        generation: svc.metadata.generation,
        account_id: customer.account_id.clone(),
        environment: env,
        policy: customer.policy_for(env),
        owner_tag: owner_tag(&namespace, &name),
        script_name,
        adopt,
        main_module: body.worker.main_module.clone(),
        modules: inputs.modules.clone(),
        compatibility_date: body.worker.compatibility_date.clone(),
        compatibility_flags: body.worker.compatibility_flags.clone(),
        vars: rendered_vars,
        secrets: inputs.secrets.clone(),
        generated: inputs.generated.clone(),
        databases,
        routes,
        custom_domains,
        zones,
        known_zone_ids: inputs
            .customer
            .status
            .iter()
            .flat_map(|s| s.zones.iter().map(|z| (z.name.clone(), z.id.clone())))
            .collect(),
        tests,
        test_credential: inputs.test_credential.clone(),
        test_secrets: inputs.test_secrets.clone(),
        rollout: body.rollout.clone(),
        rollback_on_failure: body.rollback_on_failure,
        dry_run: body.dry_run,
        suspend: body.suspend,
        deletion_policy: body.deletion_policy,
        rollback_to,
        input_digest: input.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_matching_prefers_longest_suffix() {
        let zones = vec!["acme.com".to_string(), "eu.acme.com".to_string(), "acme.io".to_string()];
        assert_eq!(zone_for_host(&zones, "api.eu.acme.com").unwrap(), "eu.acme.com");
        assert_eq!(zone_for_host(&zones, "acme.com").unwrap(), "acme.com");
        assert_eq!(zone_for_host(&zones, "*.acme.io").unwrap(), "acme.io");
        assert!(zone_for_host(&zones, "notacme.com").is_none());
        assert!(zone_for_host(&zones, "evil.com").is_none());
    }

    #[test]
    fn hostnames() {
        for ok in ["api.acme.com", "a-b.c1.io", "x.y"] {
            assert!(is_hostname(ok), "{ok}");
        }
        for bad in ["acme", "API.acme.com", "-a.acme.com", "a..com", "a_b.com", "api.{{DOMAIN}}", ""] {
            assert!(!is_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn route_host_strips_path() {
        assert_eq!(route_host("api.acme.com/*"), "api.acme.com");
        assert_eq!(route_host("api.acme.com"), "api.acme.com");
    }
}
