//! `validate`: offline checks for CI. The CRD's OpenAPI schema (types, patterns, ranges,
//! required, unknown fields) and CEL rules, references, templates and the security policy.
//! Values of Secrets written as `import` stubs are not judged: they are reported as still to fill in.

use std::collections::BTreeSet;

use kube::ResourceExt;

use super::deploy::expand_portfolio;
use super::manifests::{self, ManifestSource};
use super::output::{CommonArgs, Report, is_stub};
use super::schema_check;
use crate::crd::CloudflareService;
use crate::engine::resolve::{self, ResolveError};
use crate::engine::{desired, security};

const SERVICE: &str = "CloudflareService";

/// Run `validate`; returns the exit code. With `online`, OCI and URL code sources are fetched
/// too (reachability, credentials, digest, size limits); without, they are not touched.
pub async fn validate(
    files: &[std::path::PathBuf],
    out: &CommonArgs,
    online: Option<&crate::source::SourceArgs>,
) -> anyhow::Result<i32> {
    let mut v = Validation { out, report: Report::default() };
    let m = match v.load(files) {
        Ok(m) => m,
        Err(fatal) => return finish(out, v.report, Some(fatal)),
    };
    let stubs: BTreeSet<(String, String)> =
        m.secrets.iter().filter(|s| is_stub(s)).map(|s| (s.namespace().unwrap_or_default(), s.name_any())).collect();
    let source = match online {
        Some(args) => ManifestSource::new(m.clone(), None)?
            .with_fetcher(Some(std::sync::Arc::new(crate::source::Fetcher::new(args)?))),
        None => ManifestSource::new(m.clone(), None)?.offline(),
    };
    v.cel(&m);
    for svc in &m.services {
        v.service(&source, svc, &stubs, online.is_some()).await?;
    }
    finish(out, v.report, None)
}

/// One `validate` run: where findings go.
struct Validation<'a> {
    out: &'a CommonArgs,
    report: Report,
}

impl Validation<'_> {
    fn fail(&mut self, kind: &str, ns: &str, name: &str, msg: String) {
        self.out.problem(format!("✗ {kind} {ns}/{name}: {msg}"));
        let e = self.report.entry(kind, ns, name);
        e.ok = false;
        e.errors.push(msg);
    }

    /// Read the files, check them against the CRD schemas, apply overrides and expand
    /// Portfolios into their services. `Err` is a fatal problem (nothing more can be checked).
    fn load(&mut self, files: &[std::path::PathBuf]) -> Result<manifests::Manifests, String> {
        let paths = manifests::collect_files(files).map_err(|e| format!("{e:#}"))?;
        for f in schema_check::check(&paths).map_err(|e| e.to_string())? {
            for e in f.errors {
                self.fail(&f.kind, &f.namespace, &f.name, format!("schema: {e}"));
            }
        }
        let mut m = manifests::load(files).map_err(|e| format!("{e:#}"))?;
        self.out.apply(&mut m).map_err(|e| e.to_string())?;
        for p in &m.portfolios.clone() {
            match expand_portfolio(p) {
                Ok(kids) => m.services.extend(kids.into_iter().map(|(s, _)| s)),
                Err(e) => self.fail("Portfolio", &p.namespace().unwrap_or_default(), &p.name_any(), e.to_string()),
            }
        }
        Ok(m)
    }

    /// The CEL rules of Customers and Portfolios (services are checked with the rest of them).
    fn cel(&mut self, m: &manifests::Manifests) {
        for cust in &m.customers {
            if let Err(errs) = cust.validate_cel() {
                self.fail("Customer", &cust.namespace().unwrap_or_default(), &cust.name_any(), format!("{errs:?}"));
            }
        }
        for p in &m.portfolios {
            if let Err(errs) = p.validate_cel() {
                self.fail("Portfolio", &p.namespace().unwrap_or_default(), &p.name_any(), format!("{errs:?}"));
            }
        }
    }

    /// One service: CEL, references and templates, the desired state, the security policy and
    /// (online) its code source.
    async fn service(
        &mut self,
        source: &ManifestSource,
        svc: &CloudflareService,
        stubs: &BTreeSet<(String, String)>,
        online: bool,
    ) -> anyhow::Result<()> {
        let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
        if let Err(errs) = svc.validate_cel() {
            self.fail(SERVICE, &ns, &name, format!("{errs:?}"));
            return Ok(());
        }
        let inputs = match resolve::resolve(source, svc).await {
            Ok(i) => i,
            Err(ResolveError::Config(e)) => {
                self.fail(SERVICE, &ns, &name, e.to_string());
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let d = match desired::build(&inputs) {
            Ok(d) => d,
            Err(e) => {
                self.fail(SERVICE, &ns, &name, e.to_string());
                return Ok(());
            }
        };
        let blocked = self.policy(svc, &inputs, &d, stubs);
        if !blocked && self.report.entry(SERVICE, &ns, &name).ok {
            self.out.say(format!("✓ {SERVICE} {ns}/{name}: valid"));
        }
        if let Some(src) = &inputs.source {
            self.out.say(format!("  {SERVICE} {ns}/{name}: code {} {} fetched and verified", src.kind, src.digest));
        } else if !online && svc.spec.body.worker.source.config_map_ref.is_none() {
            self.out.say(format!("  {SERVICE} {ns}/{name}: code artifact not fetched (pass --online to check it)"));
        }
        Ok(())
    }

    /// The security policy; findings on fields that read an `import` stub Secret are "fill in"
    /// notes, not violations. Returns whether a finding blocks the service.
    fn policy(
        &mut self,
        svc: &CloudflareService,
        inputs: &resolve::ServiceInputs,
        d: &desired::Desired,
        stubs: &BTreeSet<(String, String)>,
    ) -> bool {
        let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
        let stub_field = |field: &str| -> bool {
            let is = |secret: &str| stubs.contains(&(ns.clone(), secret.to_string()));
            if field == "customer.apiTokenSecretRef" {
                return is(&inputs.customer.spec.api_token_secret_ref.name);
            }
            field.strip_prefix("spec.worker.secrets.").is_some_and(|b| {
                svc.spec
                    .body
                    .worker
                    .secrets
                    .iter()
                    .any(|s| s.name == b && s.value_from.as_ref().is_some_and(|v| is(&v.secret_key_ref.name)))
            })
        };
        let findings = security::evaluate(&security::PolicyInput {
            level: d.policy,
            vars: d.vars.iter().map(|(k, v)| (format!("spec.worker.vars.{k}"), v.as_str())).collect(),
            secrets: d.secrets.iter().map(|(k, v)| (format!("spec.worker.secrets.{k}"), v.expose())).collect(),
            token_present: inputs.token.is_some(),
        });
        let mut blocked = false;
        for f in &findings {
            let stub = stub_field(&f.field);
            if f.severity == security::Severity::Block && !stub {
                blocked = true;
                self.fail(SERVICE, &ns, &name, f.to_string());
                continue;
            }
            let note =
                if stub { format!("{f} (import stub: fill in the value before deploying)") } else { f.to_string() };
            self.out.problem(format!("! {SERVICE} {ns}/{name}: {note}"));
            self.report.entry(SERVICE, &ns, &name).warnings.push(note);
        }
        blocked
    }
}

fn finish(out: &CommonArgs, mut report: Report, fatal: Option<String>) -> anyhow::Result<i32> {
    if let Some(msg) = &fatal {
        out.problem(format!("✗ {msg}"));
    }
    let failed = report.resources.iter().filter(|r| !r.ok).count();
    report.ok = fatal.is_none() && failed == 0;
    if failed > 0 {
        out.problem(format!("{failed} resource(s) failed validation"));
    }
    out.emit(&report)?;
    Ok(if report.ok { 0 } else { 1 })
}
