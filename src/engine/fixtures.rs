//! Test fixtures: builders for services, customers and resolved inputs.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;

use super::migrations::MigrationFile;
use super::resolve::{Module, ServiceInputs};
use super::secret::SecretValue;
use crate::crd::*;

pub const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
pub const STRONG_SECRET: &str = "kq3R9vXw2LmZ8tYp4NcB7sDf1GhJ6aEu";

pub fn customer() -> Customer {
    let mut c = Customer::new(
        "acme",
        CustomerSpec {
            display_name: Some("Acme".into()),
            account_id: ACCOUNT.into(),
            api_token_secret_ref: SecretKeyRef { name: "acme-cloudflare".into(), key: "token".into() },
            zones: vec!["acme.com".into()],
            vars: BTreeMap::from([("SUPPORT_EMAIL".into(), "ops@acme.com".into())]),
            environments: Environments {
                production: Some(EnvironmentSettings { domain: Some("api.acme.com".into()), ..Default::default() }),
                ..Default::default()
            },
        },
    );
    c.metadata.namespace = Some("acme".into());
    c
}

pub fn service() -> CloudflareService {
    let spec = CloudflareServiceSpec {
        customer_ref: LocalObjectRef { name: "acme".into() },
        environment: Environment::Production,
        body: ServiceBody {
            worker: WorkerSpec {
                main_module: "index.js".into(),
                source: crate::crd::WorkerSource::config_map("code"),
                compatibility_date: "2025-10-01".into(),
                compatibility_flags: vec![],
                vars: BTreeMap::from([("PUBLIC_URL".into(), "https://{{DOMAIN}}".into())]),
                secrets: vec![],
            },
            d1_databases: vec![D1DatabaseSpec {
                binding: "DB".into(),
                name: None,
                migrations: Some(ConfigMapSource { config_map_ref: LocalObjectRef { name: "migrations".into() } }),
                deletion_policy: DatabaseDeletionPolicy::Retain,
            }],
            routes: vec![RouteSpec { pattern: "api.acme.com/*".into(), zone: None }],
            custom_domains: vec!["api.acme.com".into()],
            rollback_on_failure: true,
            ..Default::default()
        },
    };
    CloudflareService {
        metadata: ObjectMeta {
            name: Some("data".into()),
            namespace: Some("acme".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

pub fn inputs() -> ServiceInputs {
    ServiceInputs {
        service: service(),
        customer: customer(),
        token: Some(SecretValue::new("tok")),
        token_problem: None,
        modules: vec![Module { name: "index.js".into(), content: b"export default {}".to_vec() }],
        migrations: BTreeMap::from([(
            "DB".to_string(),
            vec![MigrationFile::new("0001_init.sql", "CREATE TABLE t(x);")],
        )]),
        secrets: vec![("JWT".into(), SecretValue::new(STRONG_SECRET))],
        generated: vec![],
        test_credential: None,
        source: None,
        test_secrets: Default::default(),
    }
}
