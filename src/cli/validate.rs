//! `validate`: offline checks for CI. The CRD's OpenAPI schema (types, patterns, ranges,
//! required, unknown fields) and CEL rules, references, templates and the security policy.
//! Values of Secrets written as `import` stubs are not judged: they are reported as still to fill in.

use std::collections::BTreeSet;

use kube::ResourceExt;

use super::deploy::expand_portfolio;
use super::manifests::{self, ManifestSource};
use super::output::{CommonArgs, Report, is_stub};
use super::schema_check;
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
    let mut report = Report::default();
    let fail = |report: &mut Report, kind: &str, ns: &str, name: &str, msg: String| {
        out.problem(format!("✗ {kind} {ns}/{name}: {msg}"));
        let e = report.entry(kind, ns, name);
        e.ok = false;
        e.errors.push(msg);
    };
    let paths = match manifests::collect_files(files) {
        Ok(p) => p,
        Err(e) => return finish(out, report, Some(format!("{e:#}"))),
    };
    match schema_check::check(&paths) {
        Ok(findings) => {
            for f in findings {
                for e in f.errors {
                    fail(&mut report, &f.kind, &f.namespace, &f.name, format!("schema: {e}"));
                }
            }
        }
        Err(e) => return finish(out, report, Some(e.to_string())),
    }
    let mut m = match manifests::load(files) {
        Ok(m) => m,
        Err(e) => return finish(out, report, Some(format!("{e:#}"))),
    };
    if let Err(e) = out.apply(&mut m) {
        return finish(out, report, Some(e.to_string()));
    }
    for p in &m.portfolios.clone() {
        match expand_portfolio(p) {
            Ok(kids) => m.services.extend(kids.into_iter().map(|(s, _)| s)),
            Err(e) => fail(&mut report, "Portfolio", &p.namespace().unwrap_or_default(), &p.name_any(), e.to_string()),
        }
    }
    let stubs: BTreeSet<(String, String)> =
        m.secrets.iter().filter(|s| is_stub(s)).map(|s| (s.namespace().unwrap_or_default(), s.name_any())).collect();
    let source = match online {
        Some(args) => ManifestSource::new(m.clone(), None)?
            .with_fetcher(Some(std::sync::Arc::new(crate::source::Fetcher::new(args)?))),
        None => ManifestSource::new(m.clone(), None)?.offline(),
    };
    for cust in &m.customers {
        if let Err(errs) = cust.validate_cel() {
            fail(&mut report, "Customer", &cust.namespace().unwrap_or_default(), &cust.name_any(), format!("{errs:?}"));
        }
    }
    for p in &m.portfolios {
        if let Err(errs) = p.validate_cel() {
            fail(&mut report, "Portfolio", &p.namespace().unwrap_or_default(), &p.name_any(), format!("{errs:?}"));
        }
    }
    for svc in &m.services {
        let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
        if let Err(errs) = svc.validate_cel() {
            fail(&mut report, SERVICE, &ns, &name, format!("{errs:?}"));
            continue;
        }
        let inputs = match resolve::resolve(&source, svc).await {
            Ok(i) => i,
            Err(ResolveError::Config(e)) => {
                fail(&mut report, SERVICE, &ns, &name, e.to_string());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let d = match desired::build(&inputs) {
            Ok(d) => d,
            Err(e) => {
                fail(&mut report, SERVICE, &ns, &name, e.to_string());
                continue;
            }
        };
        // Which policy fields read a stub Secret: their findings are "fill in", not violations.
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
                fail(&mut report, SERVICE, &ns, &name, f.to_string());
                continue;
            }
            let note =
                if stub { format!("{f} (import stub: fill in the value before deploying)") } else { f.to_string() };
            out.problem(format!("! {SERVICE} {ns}/{name}: {note}"));
            report.entry(SERVICE, &ns, &name).warnings.push(note);
        }
        if !blocked && report.entry(SERVICE, &ns, &name).ok {
            out.say(format!("✓ {SERVICE} {ns}/{name}: valid"));
        }
        if let Some(src) = &inputs.source {
            out.say(format!("  {SERVICE} {ns}/{name}: code {} {} fetched and verified", src.kind, src.digest));
        } else if online.is_none() && svc.spec.body.worker.source.config_map_ref.is_none() {
            out.say(format!("  {SERVICE} {ns}/{name}: code artifact not fetched (pass --online to check it)"));
        }
    }
    finish(out, report, None)
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
