//! Flags shared by `deploy`, `plan` and `validate` (as wrangler has them): where the token comes
//! from, an account override, `--quiet` and machine-readable `--output`.

use std::collections::BTreeMap;

use clap::{Args, ValueEnum};
use kube::ResourceExt;
use serde::Serialize;

use super::manifests::Manifests;

/// Output format of the final result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON document on stdout; progress goes to stderr.
    Json,
    /// One YAML document on stdout; progress goes to stderr.
    Yaml,
}

/// `--token-env`, `--account-id`, `--quiet`, `--output`.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// Read the Cloudflare API token from this environment variable (default CLOUDFLARE_API_TOKEN);
    /// it fills each Customer's token Secret that is absent, empty or an import stub.
    #[arg(long, value_name = "NAME")]
    pub token_env: Option<String>,
    /// Use this Cloudflare account id for every Customer (overrides spec.accountId).
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// Print only problems and the final result.
    #[arg(short, long)]
    pub quiet: bool,
    /// Result format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Why the shared flags cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("--token-env {0}: the environment variable is not set or empty")]
    TokenEnvUnset(String),
    #[error("--account-id: must be 32 lowercase hexadecimal characters")]
    AccountId,
    #[error("--output: {0}")]
    Render(String),
}

impl CommonArgs {
    /// Progress and result lines: stdout for text, stderr for json/yaml, nowhere with --quiet.
    pub fn say(&self, line: impl std::fmt::Display) {
        if self.quiet {
            return;
        }
        if self.output == OutputFormat::Text {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }

    /// Problems: always shown (stdout for text, stderr otherwise).
    pub fn problem(&self, line: impl std::fmt::Display) {
        if self.output == OutputFormat::Text {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }

    /// With `--quiet` in text mode: one result line per service (the first failing condition).
    pub fn quiet_result(&self, prefix: &str, ok: bool, status: &crate::crd::CloudflareServiceStatus) {
        if !self.quiet || self.output != OutputFormat::Text {
            return;
        }
        let why = status.conditions.iter().find(|c| c.status == "False").map(|c| format!(": {}", c.message));
        match (ok, why) {
            (true, _) => println!("{prefix} ok"),
            (false, Some(why)) => println!("{prefix} failed{why}"),
            (false, None) => println!("{prefix} not ready"),
        }
    }

    /// Apply `--account-id` and the token from `--token-env` (or CLOUDFLARE_API_TOKEN) to the
    /// loaded manifests. The token never leaves memory.
    pub fn apply(&self, m: &mut Manifests) -> Result<(), FlagError> {
        if let Some(id) = &self.account_id {
            if !crate::import::account_id_ok(id) {
                return Err(FlagError::AccountId);
            }
            for c in &mut m.customers {
                c.spec.account_id = id.clone();
            }
        }
        let var = self.token_env.clone().unwrap_or_else(|| "CLOUDFLARE_API_TOKEN".to_string());
        let token = std::env::var(&var).ok().filter(|t| !t.is_empty());
        let Some(token) = token else {
            return match &self.token_env {
                Some(v) => Err(FlagError::TokenEnvUnset(v.clone())),
                None => Ok(()),
            };
        };
        for cust in m.customers.clone() {
            let ns = cust.namespace().unwrap_or_else(|| "default".into());
            let r = &cust.spec.api_token_secret_ref;
            let bytes = k8s_openapi::ByteString(token.clone().into_bytes());
            let existing =
                m.secrets.iter_mut().find(|s| s.name_any() == r.name && s.namespace().as_deref() == Some(ns.as_str()));
            match existing {
                Some(s) => {
                    let stub = is_stub(s);
                    let data = s.data.get_or_insert_with(BTreeMap::new);
                    let empty = data.get(&r.key).is_none_or(|v| v.0.is_empty());
                    if empty || stub || self.token_env.is_some() {
                        data.insert(r.key.clone(), bytes);
                    }
                }
                None => m.secrets.push(k8s_openapi::api::core::v1::Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(r.name.clone()),
                        namespace: Some(ns.clone()),
                        ..Default::default()
                    },
                    data: Some([(r.key.clone(), bytes)].into()),
                    ..Default::default()
                }),
            }
        }
        Ok(())
    }

    /// Print the final document for json/yaml output.
    pub fn emit<T: Serialize>(&self, doc: &T) -> Result<(), FlagError> {
        let text = match self.output {
            OutputFormat::Text => return Ok(()),
            OutputFormat::Json => serde_json::to_string_pretty(doc).map_err(|e| FlagError::Render(e.to_string()))?,
            OutputFormat::Yaml => serde_norway::to_string(doc).map_err(|e| FlagError::Render(e.to_string()))?,
        };
        println!("{}", text.trim_end());
        Ok(())
    }
}

/// Whether a Secret is an `import` stub whose values are still to be filled in.
pub fn is_stub(s: &k8s_openapi::api::core::v1::Secret) -> bool {
    s.annotations().get(crate::import::STUB_ANNOTATION).is_some_and(|v| v == "true")
}

/// One resource's result in `--output json|yaml`.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// The whole `--output json|yaml` document.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub ok: bool,
    pub resources: Vec<ResourceResult>,
}

impl Report {
    /// The entry for a resource, created on first use.
    pub fn entry(&mut self, kind: &str, namespace: &str, name: &str) -> &mut ResourceResult {
        let pos = self.resources.iter().position(|r| r.kind == kind && r.namespace == namespace && r.name == name);
        let i = match pos {
            Some(i) => i,
            None => {
                self.resources.push(ResourceResult {
                    kind: kind.into(),
                    namespace: namespace.into(),
                    name: name.into(),
                    ok: true,
                    ..Default::default()
                });
                self.resources.len() - 1
            }
        };
        &mut self.resources[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Customer, CustomerSpec, SecretKeyRef};

    fn manifests() -> Manifests {
        let mut c = Customer::new(
            "acme",
            CustomerSpec {
                display_name: None,
                account_id: "0".repeat(32),
                api_token_secret_ref: SecretKeyRef { name: "tok".into(), key: "token".into() },
                zones: vec![],
                vars: Default::default(),
                environments: Default::default(),
            },
        );
        c.metadata.namespace = Some("default".into());
        Manifests { customers: vec![c], ..Default::default() }
    }

    #[test]
    fn account_and_token_from_flags() {
        let mut m = manifests();
        let var = "CLODO_TEST_TOKEN_ENV_FLAG";
        // SAFETY: unique variable name, only this test reads it.
        unsafe { std::env::set_var(var, "tok-value-123") };
        let args = CommonArgs { token_env: Some(var.into()), account_id: Some("a".repeat(32)), ..Default::default() };
        args.apply(&mut m).unwrap();
        assert_eq!(m.customers[0].spec.account_id, "a".repeat(32));
        assert_eq!(m.secrets[0].data.as_ref().unwrap()["token"].0, b"tok-value-123");
        let bad = CommonArgs { account_id: Some("xyz".into()), ..Default::default() };
        assert!(matches!(bad.apply(&mut manifests()), Err(FlagError::AccountId)));
        let unset = CommonArgs { token_env: Some("CLODO_TEST_SURELY_UNSET_VAR".into()), ..Default::default() };
        assert!(unset.apply(&mut manifests()).unwrap_err().to_string().contains("CLODO_TEST_SURELY_UNSET_VAR"));
    }
}
