//! `deploy`, `plan` and `validate`: the engine run once over manifests from files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cloudflare_emulator::{WORKERD_NPM_VERSION, Workerd};
use kube::ResourceExt;

use super::DeployArgs;
use super::manifests::{self, ManifestSource, Manifests};
use super::output::{CommonArgs, Report};
use crate::cloudflare::{ClientConfig, ClientPool};
use crate::crd::conditions::{self as c, reason};
use crate::crd::{CloudflareService, CloudflareServiceSpec, CloudflareServiceStatus, Portfolio};
use crate::engine::backoff;
use crate::engine::portfolio;
use crate::engine::resolve;
use crate::engine::{Engine, EngineConfig, Outcome, PassEvent, Progress};
use crate::metrics::Metrics;

/// Most passes one `deploy` runs per service (waits for propagation, retries).
const MAX_PASSES: usize = 12;
/// Longest single wait `deploy` accepts between passes.
const MAX_WAIT: Duration = Duration::from_secs(120);

/// Prints progress lines as the engine reports them.
struct Printer {
    prefix: String,
    out: CommonArgs,
}

impl Progress for Printer {
    fn event(&self, ev: &PassEvent) {
        let mark = if ev.warning { "!" } else { "✓" };
        let line = format!("{} {mark} {}", self.prefix, ev.note);
        if ev.warning { self.out.problem(line) } else { self.out.say(line) }
    }
}

/// A running sandbox emulator.
pub struct Sandbox {
    pub handle: cloudflare_emulator::EmulatorHandle,
}

/// The sandbox's Workers runtime: `--workerd`/`WORKERD_BIN` (which must work), else `workerd`
/// on PATH, else `node_modules/` of the working directory or a parent. `None`: not installed.
pub fn find_workerd(explicit: Option<&Path>) -> anyhow::Result<Option<Workerd>> {
    let found = Workerd::discover(explicit).context("--workerd / WORKERD_BIN")?;
    Ok(found.map(|(w, _)| w))
}

/// Start the emulator seeded with every Customer's account, token and zones. With `workerd`
/// it also runs the deployed Workers behind its edge listener.
pub async fn start_sandbox(
    m: &Manifests,
    source: &ManifestSource,
    workerd: Option<Workerd>,
) -> anyhow::Result<Sandbox> {
    let mut builder = cloudflare_emulator::Emulator::builder();
    if let Some(w) = workerd {
        builder = builder.workerd(w);
    }
    for cust in &m.customers {
        let ns = cust.namespace().unwrap_or_else(|| "default".into());
        let (token, _) =
            resolve::read_secret_key(source, &ns, "spec.apiTokenSecretRef", &cust.spec.api_token_secret_ref)
                .await
                .map_err(|e| anyhow::anyhow!("Customer {ns}/{}: {e}", cust.name_any()))?;
        builder = builder.account(&cust.spec.account_id).token(token.expose(), &[cust.spec.account_id.as_str()]);
        for z in &cust.spec.zones {
            builder = builder.zone(z, &cust.spec.account_id);
        }
    }
    let handle = builder.start().await.context("starting the sandbox emulator")?;
    Ok(Sandbox { handle })
}

/// Put a `.gitignore` that ignores everything into the state directory, so that generated
/// secrets and statuses are never committed by accident.
pub fn ignore_state_dir(dir: &Path) -> std::io::Result<()> {
    let f = dir.join(".gitignore");
    if !f.exists() {
        std::fs::create_dir_all(dir)?;
        std::fs::write(&f, "# written by clodo-operator: generated secrets and statuses stay local\n*\n")?;
    }
    Ok(())
}

fn state_file(dir: &Path, svc: &CloudflareService) -> std::path::PathBuf {
    dir.join("status").join(format!("{}.{}.yaml", svc.namespace().unwrap_or_default(), svc.name_any()))
}

/// Run `deploy` (or `plan` with `plan_only`). Returns the process exit code.
pub async fn deploy(args: DeployArgs, plan_only: bool) -> anyhow::Result<i32> {
    let mut m = manifests::load(&args.files)?;
    // Portfolios become their child services, in dependency order, after the plain services.
    let mut needs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &m.portfolios {
        let children = expand_portfolio(p)?;
        for (svc, deps) in children {
            needs.insert(svc_key(&svc), deps);
            m.services.push(svc);
        }
    }
    if m.services.is_empty() {
        bail!(
            "no CloudflareService found in {}",
            args.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    args.common.apply(&mut m)?;
    let out = &args.common;
    let mut report = Report::default();
    let persist = !args.sandbox;
    let secrets_file = persist.then(|| args.state_dir.join("generated-secrets.json"));
    let fetcher = Arc::new(crate::source::Fetcher::new(&args.artifacts)?);
    let source = ManifestSource::new(m.clone(), secrets_file)?.with_fetcher(Some(fetcher.clone()));

    let sandbox = if args.sandbox {
        let workerd = find_workerd(args.workerd.as_deref())?;
        Some(start_sandbox(&m, &source, workerd).await?)
    } else {
        None
    };
    let metrics = Metrics::new()?;
    let mut cfg = ClientConfig::from_env();
    if let Some(s) = &sandbox {
        cfg.base_url = s.handle.base_url();
    } else if let Some(u) = &args.cloudflare_api_base_url {
        cfg.base_url = u.clone();
    }
    if let Some(s) = &sandbox {
        out.say(format!("sandbox: Cloudflare API emulator at {}", s.handle.base_url()));
        match (s.handle.workerd(), s.handle.edge_url()) {
            (Some(w), Some(edge)) => out.say(format!(
                "sandbox: Worker code runs on workerd {} ({}); production tests go to the edge at {edge}",
                w.date(),
                w.path().display()
            )),
            _ => out.say(format!(
                "sandbox: workerd not found (--workerd, WORKERD_BIN, PATH, node_modules): the Worker's code is not run and \
                 production tests report NoLocalRuntime; install it with `npm install --no-save workerd@{WORKERD_NPM_VERSION}`"
            )),
        }
    }
    let pool = ClientPool::new(cfg, Some(crate::cloudflare::ClientMetrics::register(&metrics.registry)?));
    let engine_cfg = match sandbox.as_ref().map(|s| s.handle.edge_url()) {
        Some(Some(edge)) => EngineConfig { no_local_runtime: false, edge_url: Some(edge) },
        Some(None) => EngineConfig { no_local_runtime: true, edge_url: None },
        None => EngineConfig::default(),
    };
    let engine = Engine::new(pool, metrics.clone(), engine_cfg).with_code_fetcher(fetcher);

    let mut all_ready = true;
    let mut settled_ok: BTreeSet<String> = BTreeSet::new();
    for svc in &m.services {
        let mut svc = svc.clone();
        let key = svc_key(&svc);
        let blocked: Vec<&String> =
            needs.get(&key).into_iter().flatten().filter(|d| !settled_ok.contains(d.as_str())).collect();
        if !blocked.is_empty() && !plan_only {
            out.problem(format!(
                "[{key}] skipped: waits for {} to be Ready",
                blocked.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(", ")
            ));
            report.entry("CloudflareService", &svc.namespace().unwrap_or_default(), &svc.name_any()).ok = false;
            all_ready = false;
            continue;
        }
        svc.metadata.generation.get_or_insert(1);
        if plan_only {
            svc.spec.body.dry_run = true;
        }
        if persist {
            let f = state_file(&args.state_dir, &svc);
            if f.exists() {
                let text = std::fs::read_to_string(&f)?;
                svc.status = Some(serde_norway::from_str(&text).with_context(|| format!("reading {}", f.display()))?);
            }
        }
        let prefix = format!("[{}/{}]", svc.namespace().unwrap_or_default(), svc.name_any());
        let printer = Printer { prefix: prefix.clone(), out: out.clone() };
        let status = run_until_settled(&engine, &mut svc, &source, &printer).await;
        out.say(format!("{prefix} status:"));
        let yaml = serde_norway::to_string(&serde_json::json!({ "status": status }))?;
        for line in yaml.lines() {
            out.say(format!("  {line}"));
        }
        if persist && !plan_only {
            let f = state_file(&args.state_dir, &svc);
            if let Some(dir) = f.parent() {
                std::fs::create_dir_all(dir)?;
            }
            ignore_state_dir(&args.state_dir)?;
            std::fs::write(&f, serde_norway::to_string(&status)?)?;
        }
        let ok = if plan_only { plan_ok(&status) } else { ready_enough(&status) };
        let entry = report.entry("CloudflareService", &svc.namespace().unwrap_or_default(), &svc.name_any());
        entry.ok = ok;
        entry.status = serde_json::to_value(&status).ok();
        out.quiet_result(&prefix, ok, &status);
        if ok {
            settled_ok.insert(key);
        } else {
            all_ready = false;
        }
    }
    if let Some(s) = sandbox {
        s.handle.shutdown().await;
    }
    report.ok = all_ready;
    out.emit(&report)?;
    Ok(if all_ready { 0 } else { 1 })
}

async fn run_until_settled(
    engine: &Engine,
    svc: &mut CloudflareService,
    source: &ManifestSource,
    printer: &Printer,
) -> CloudflareServiceStatus {
    let mut retries = 0u32;
    for _ in 0..MAX_PASSES {
        let pass = engine.reconcile(svc, source, printer).await;
        svc.status = Some(pass.status.clone());
        match pass.outcome {
            Outcome::Done { requeue_after: Some(wait) } if wait <= MAX_WAIT => {
                printer.out.say(format!("{} … waiting {}s", printer.prefix, wait.as_secs().max(1)));
                tokio::time::sleep(wait).await;
            }
            Outcome::Retry(msg) if retries < backoff::CLI_RETRIES => {
                retries += 1;
                let wait = backoff::CLI.ceiling(retries);
                printer.out.problem(format!("{} ! {msg}; retrying in {}s", printer.prefix, wait.as_secs()));
                tokio::time::sleep(wait).await;
            }
            _ => break,
        }
    }
    svc.status.clone().unwrap_or_default()
}

fn svc_key(s: &CloudflareService) -> String {
    format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any())
}

/// The CloudflareServices a Portfolio generates (as the controller would), each with the keys of
/// the services it waits for.
pub(crate) fn expand_portfolio(p: &Portfolio) -> anyhow::Result<Vec<(CloudflareService, Vec<String>)>> {
    let ns = p.namespace().unwrap_or_else(|| "default".into());
    if let Err(msg) = portfolio::check_dependencies(&p.spec.services) {
        bail!("Portfolio {ns}/{}: {msg}", p.name_any());
    }
    let kids = portfolio::children(p);
    let mut out = Vec::new();
    for k in &kids {
        let mut svc = CloudflareService::new(
            &k.name,
            CloudflareServiceSpec {
                customer_ref: p.spec.customer_ref.clone(),
                environment: p.spec.environment,
                body: k.body.clone(),
            },
        );
        svc.metadata.namespace = Some(ns.clone());
        let deps = kids
            .iter()
            .filter(|other| k.depends_on.contains(&other.service))
            .map(|other| format!("{ns}/{}", other.name))
            .collect();
        out.push((svc, deps));
    }
    Ok(out)
}

/// Ready, or blocked only because the sandbox cannot run the Worker's code.
fn ready_enough(st: &CloudflareServiceStatus) -> bool {
    if c::is_true(&st.conditions, c::READY) {
        return true;
    }
    let not_ok: Vec<_> = st.conditions.iter().filter(|x| x.type_ != c::READY && x.status != "True").collect();
    let only_runtime = not_ok.len() == 1 && not_ok[0].reason == reason::NO_LOCAL_RUNTIME;
    if only_runtime {
        eprintln!("note: production tests were not run: {}", not_ok[0].message);
    }
    only_runtime
}

fn plan_ok(st: &CloudflareServiceStatus) -> bool {
    st.conditions.iter().filter(|x| x.type_ != c::READY).all(|x| x.status != "False")
}
