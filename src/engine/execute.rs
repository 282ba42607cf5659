//! The IO half of a pass: credentials, drift check, observe, plan, execute each step, status.

use std::collections::BTreeMap;
use std::time::Duration;

use super::desired::Desired;
use super::error::PassError;
use super::plan::{self, Observed, Plan, PlanError, Step};
use super::status;
use super::{Engine, Outcome, Pass, PassEvent, cf_reason, observe, ops};
use crate::cloudflare::{CloudflareClient, CloudflareError, Priority};
use crate::crd::conditions::{self as c, reason};
use crate::crd::{
    AppliedMigration, CloudflareServiceStatus, CustomDomainStatus, DatabaseStatus, HistoryEntry, Ownership, Phase,
    RouteStatus, WorkerStatus,
};

/// Most entries kept in status.history.
pub const HISTORY_LIMIT: usize = 10;

/// Condition a step reports on.
fn condition_of(step: &Step) -> &'static str {
    match step {
        Step::CreateDatabase { .. } => c::DATABASES_READY,
        Step::ApplyMigrations { .. } => c::MIGRATIONS_APPLIED,
        Step::DeleteSecret { .. } | Step::UploadWorker { .. } | Step::TagScript | Step::EnableWorkersDev => {
            c::WORKER_DEPLOYED
        }
        Step::CreateRoute { .. }
        | Step::UpdateRoute { .. }
        | Step::DeleteRoute { .. }
        | Step::AttachDomain { .. }
        | Step::DetachDomain { .. } => c::ROUTES_CONFIGURED,
    }
}

/// Fail a condition from a Cloudflare error; returns the phase and outcome to stop with.
pub(crate) fn stop_on_cf_error(
    pass: &mut Pass<'_>,
    cond: &'static str,
    what: &str,
    e: CloudflareError,
) -> (Phase, Outcome) {
    let message = format!("{what}: {e}");
    let retryable = e.is_retryable();
    if e.is_auth_error() {
        pass.token_rejected = true;
        pass.report.fail(c::CREDENTIALS_VALID, reason::TOKEN_INVALID, message);
        return (Phase::Failed, Outcome::Terminal);
    }
    pass.report.fail(cond, cf_reason(&e), message);
    if retryable {
        (status::phase_for_failure(cond, false), Outcome::Retry(PassError::cloudflare(cond, what, e)))
    } else {
        (Phase::Failed, Outcome::Terminal)
    }
}

/// Whether the last pass converged on exactly these inputs, so a drift check is enough.
fn converged_on(d: &Desired, st: &CloudflareServiceStatus) -> bool {
    st.input_hash.as_deref() == Some(d.input_digest.as_str())
        && st.observed_generation == d.generation
        && c::is_true(&st.conditions, c::READY)
        && st.worker.as_ref().is_some_and(|w| w.version_id.is_some())
        && st.rollout.is_none()
        && !d.dry_run
}

/// Run the Cloudflare side of a pass.
pub(crate) async fn run(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    customer_checked: bool,
    pass: &mut Pass<'_>,
) -> (Phase, Outcome) {
    let acct = d.account_id.as_str();

    if !customer_checked && !engine.recently_verified(client) {
        match ops::verify_token(client, acct).await {
            Ok(v) if v.active => engine.mark_verified(client, true),
            Ok(v) => {
                engine.mark_verified(client, false);
                pass.report.fail(
                    c::CREDENTIALS_VALID,
                    reason::TOKEN_INVALID,
                    format!("API token status is {}", v.status),
                );
                return (Phase::Failed, Outcome::Terminal);
            }
            Err(e) => return stop_on_cf_error(pass, c::CREDENTIALS_VALID, "verifying the API token", e),
        }
    }
    pass.report.ok(c::CREDENTIALS_VALID, reason::TOKEN_VALID, "API token is active");

    // A canary in flight advances (or waits) before anything else.
    if let Some(stop) = super::rollout::resume(engine, client, d, pass).await {
        return stop;
    }
    if let Some(target) = d.rollback_to.clone()
        && let Err(stop) = super::rollout::manual(engine, client, d, &target, pass).await
    {
        return stop;
    }

    // Quiet resync: one read tells whether anything drifted (none when one just did).
    if converged_on(d, &pass.status) {
        let version = pass.status.worker.as_ref().and_then(|w| w.version_id.clone()).unwrap_or_default();
        let serving = if engine.recently_checked(d, &version) {
            Ok(Some(vec![(version.clone(), 100)]))
        } else {
            // The one read of a quiet resync goes at resync priority: it never delays a new or
            // changed service's requests on the same token. A repair after drift is change work.
            let resync = client.with_priority(Priority::Resync);
            let read = ops::active_deployment(&resync, acct, &d.script_name).await;
            if matches!(&read, Ok(Some(dep)) if *dep == vec![(version.clone(), 100)]) {
                engine.mark_checked(d, &version);
            }
            read
        };
        match serving {
            Ok(Some(dep)) if dep == vec![(version.clone(), 100)] => {
                let keep = pass.report.clone();
                pass.report = status::report_from_conditions(&pass.status.conditions);
                for t in [c::CREDENTIALS_VALID, c::CONFIG_VALID, c::SECURITY_VALIDATED] {
                    if let Some(x) = keep.get(t) {
                        pass.report.set(x.clone());
                    }
                }
                return super::verify::after_deploy(engine, client, d, pass, false).await;
            }
            Ok(_) => pass.emit(PassEvent::warning(
                "DriftDetected",
                "DriftCheck",
                format!("worker {} no longer serves version {version} at 100%; reconciling", d.script_name),
            )),
            Err(e) => return stop_on_cf_error(pass, c::WORKER_DEPLOYED, "checking the active deployment", e),
        }
    }

    let observed = match observe::observe(client, d, &pass.status).await {
        Ok(o) => o,
        Err((cond, what, e)) => return stop_on_cf_error(pass, cond, &what, e),
    };
    let recorded: BTreeMap<String, Vec<AppliedMigration>> =
        pass.status.databases.iter().map(|db| (db.binding.clone(), db.applied_migrations.clone())).collect();
    let plan = match plan::plan(d, &observed, &recorded) {
        Ok(p) => p,
        Err(PlanError::Conflict { on, message }) => {
            pass.report.fail(on, reason::CONFLICT, message);
            return (Phase::Failed, Outcome::Terminal);
        }
        Err(PlanError::Checksum { binding, source }) => {
            pass.report.ok(c::DATABASES_READY, reason::DATABASES_READY, "databases exist");
            pass.report.fail(c::MIGRATIONS_APPLIED, reason::CHECKSUM_MISMATCH, format!("binding {binding}: {source}"));
            return (Phase::Failed, Outcome::Terminal);
        }
    };

    if d.dry_run {
        pass.status.plan = plan.steps.iter().map(|s| s.describe(d)).collect();
        let n = plan.steps.len();
        pass.report.fail(
            c::READY,
            reason::DRY_RUN,
            format!("dry run: {n} change(s) planned, nothing applied (see status.plan)"),
        );
        pass.emit(PassEvent::normal(reason::DRY_RUN, "Plan", format!("dry run planned {n} change(s)")));
        return (Phase::Pending, Outcome::Done { requeue_after: None });
    }

    match execute(engine, client, d, &observed, plan, pass).await {
        Ok(Deploy::HeldBack) => {
            pass.report.fail(
                c::WORKER_DEPLOYED,
                reason::ROLLED_BACK,
                "this spec and code failed production tests and were rolled back; change the spec or code to deploy again",
            );
            let (_, outcome) = super::verify::after_deploy(engine, client, d, pass, false).await;
            (Phase::RolledBack, outcome)
        }
        Ok(Deploy::Canary(wait)) => {
            if let Some(r) = pass.status.rollout.clone() {
                super::rollout::report_canary(pass, &r);
            }
            pass.status.input_hash = Some(d.input_digest.clone());
            (Phase::Deploying, Outcome::Done { requeue_after: Some(wait) })
        }
        Ok(Deploy::Pinned) => {
            let v = pass.status.worker.as_ref().and_then(|w| w.version_id.clone()).unwrap_or_default();
            pass.report.ok(
                c::WORKER_DEPLOYED,
                "PinnedByAnnotation",
                format!(
                    "pinned to version {v} by annotation clodo.dev/rollback-to; remove it to deploy the spec again"
                ),
            );
            super::verify::after_deploy(engine, client, d, pass, false).await
        }
        Ok(deploy) => {
            let done = super::verify::after_deploy(engine, client, d, pass, deploy == Deploy::New).await;
            // An upload deploys its version at 100%: the echo of this pass needs no drift check.
            if deploy == Deploy::New
                && done.0 == Phase::Ready
                && let Some(v) = pass.status.worker.as_ref().and_then(|w| w.version_id.as_deref())
            {
                engine.mark_checked(d, v);
            }
            done
        }
        Err(stop) => stop,
    }
}

/// What happened to the Worker in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deploy {
    New,
    Unchanged,
    /// The desired content already failed its tests and was rolled back: not redeployed.
    HeldBack,
    /// A canary started; requeue after the step interval.
    Canary(Duration),
    /// `clodo.dev/rollback-to` pins the serving version: no upload.
    Pinned,
}

/// Execute plan steps in order, updating status as each one lands.
async fn execute(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    o: &Observed,
    plan: Plan,
    pass: &mut Pass<'_>,
) -> Result<Deploy, (Phase, Outcome)> {
    let acct = d.account_id.as_str();
    let mut db_ids: BTreeMap<String, String> = o.databases.iter().map(|(b, x)| (b.clone(), x.id.clone())).collect();
    let mut owned: BTreeMap<String, Ownership> =
        o.databases.iter().filter_map(|(b, x)| x.ownership.map(|w| (b.clone(), w))).collect();
    let mut applied = plan.applied.clone();
    let mut bookmarks: BTreeMap<String, String> =
        pass.status.databases.iter().filter_map(|x| x.last_bookmark.clone().map(|b| (x.binding.clone(), b))).collect();
    let mut routes: Vec<RouteStatus> = o
        .routes
        .iter()
        .filter(|r| r.script.as_deref() == Some(d.script_name.as_str()))
        .map(|r| RouteStatus { pattern: r.pattern.clone(), id: r.id.clone(), zone_id: r.zone_id.clone() })
        .collect();
    let mut domains: Vec<CustomDomainStatus> = o
        .domains
        .iter()
        .filter(|x| x.service == d.script_name)
        .map(|x| CustomDomainStatus { hostname: x.hostname.clone(), id: x.id.clone() })
        .collect();
    let mut deployed = Deploy::Unchanged;
    let mut workers_dev = o.script.as_ref().and_then(|s| s.workers_dev_enabled).unwrap_or(false);

    // A database is recorded once it is ours: found and owned, or asked for (empty id) and
    // then created. A creation whose answer was lost stays recorded, so the next pass knows it.
    let write_dbs = |pass: &mut Pass<'_>,
                     ids: &BTreeMap<String, String>,
                     owned: &BTreeMap<String, Ownership>,
                     applied: &BTreeMap<String, Vec<AppliedMigration>>,
                     bm: &BTreeMap<String, String>| {
        pass.status.databases = d
            .databases
            .iter()
            .filter_map(|db| {
                let ownership = *owned.get(&db.binding)?;
                Some(DatabaseStatus {
                    binding: db.binding.clone(),
                    name: db.name.clone(),
                    id: ids.get(&db.binding).cloned().unwrap_or_default(),
                    ownership: Some(ownership),
                    applied_migrations: applied.get(&db.binding).cloned().unwrap_or_default(),
                    last_bookmark: bm.get(&db.binding).cloned(),
                })
            })
            .collect();
    };
    write_dbs(pass, &db_ids, &owned, &applied, &bookmarks);

    let mut done_conds: Vec<&'static str> = Vec::new();
    for step in &plan.steps {
        let cond = condition_of(step);
        // Conditions of earlier groups are settled once a later group starts.
        settle_before(pass, cond, &mut done_conds, d);
        let what = step.describe(d);
        tracing::debug!(step = step.kind(), "executing step");
        let result: Result<(), CloudflareError> = match step {
            Step::CreateDatabase { binding, name } => {
                // Record the creation before asking for it: after a crash in between, the
                // database found by name is known to be ours (D1 has no tags).
                owned.insert(binding.clone(), Ownership::Created);
                write_dbs(pass, &db_ids, &owned, &applied, &bookmarks);
                if let Err(e) = pass.src.checkpoint(pass.svc, &pass.status).await {
                    pass.report.unknown(cond, reason::KUBERNETES_ERROR, e.to_string());
                    return Err((
                        Phase::Migrating,
                        Outcome::Retry(PassError::kubernetes("recording a database creation", e)),
                    ));
                }
                match ops::create_database(client, acct, name).await {
                    Ok(id) => {
                        db_ids.insert(binding.clone(), id);
                        write_dbs(pass, &db_ids, &owned, &applied, &bookmarks);
                        Ok(())
                    }
                    Err(e) if e.is_conflict() => {
                        // Someone else took the name since we looked: not ours.
                        owned.remove(binding);
                        write_dbs(pass, &db_ids, &owned, &applied, &bookmarks);
                        pass.report.fail(
                            cond,
                            reason::CONFLICT,
                            format!("d1 database {name} (binding {binding}) was created by someone else; set annotation clodo.dev/adopt=\"true\" to adopt it"),
                        );
                        return Err((Phase::Failed, Outcome::Terminal));
                    }
                    Err(e) => Err(e),
                }
            }
            Step::ApplyMigrations { binding, files, bookmark, .. } => {
                let Some(id) = db_ids.get(binding).cloned() else {
                    pass.report.fail(cond, reason::MIGRATION_FAILED, format!("binding {binding}: database id unknown"));
                    return Err((Phase::Failed, Outcome::Terminal));
                };
                if *bookmark {
                    match ops::bookmark(client, acct, &id).await {
                        Ok(b) => {
                            bookmarks.insert(binding.clone(), b);
                            write_dbs(pass, &db_ids, &owned, &applied, &bookmarks);
                        }
                        Err(e) => {
                            return Err(stop_on_cf_error(
                                pass,
                                cond,
                                &format!("recording a Time Travel bookmark for binding {binding}"),
                                e,
                            ));
                        }
                    }
                }
                for f in files {
                    match ops::run_sql(client, acct, &id, &super::migrations::apply_sql(f)).await {
                        Ok(()) => {
                            engine.metrics.migrations_applied_total.with_label_values(&["ok"]).inc();
                            applied.entry(binding.clone()).or_default().push(AppliedMigration {
                                name: f.name.clone(),
                                checksum: f.checksum.clone(),
                                applied_at: Some(pass.now.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                            });
                            write_dbs(pass, &db_ids, &owned, &applied, &bookmarks);
                            pass.emit(PassEvent::normal(
                                "MigrationApplied",
                                "ApplyMigration",
                                format!("applied {} to binding {binding}", f.name),
                            ));
                        }
                        Err(e) if e.is_sql_error() => {
                            engine.metrics.migrations_applied_total.with_label_values(&["error"]).inc();
                            pass.report.ok(c::DATABASES_READY, reason::DATABASES_READY, "databases exist");
                            pass.report.fail(
                                cond,
                                reason::MIGRATION_FAILED,
                                format!("binding {binding}: {} failed: {}", f.name, super::ops::api_message(&e)),
                            );
                            return Err((Phase::Failed, Outcome::Terminal));
                        }
                        Err(e) => {
                            return Err(stop_on_cf_error(
                                pass,
                                cond,
                                &format!("applying {} to binding {binding}", f.name),
                                e,
                            ));
                        }
                    }
                }
                continue;
            }
            Step::DeleteSecret { name } => ops::delete_secret(client, acct, &d.script_name, name).await,
            Step::UploadWorker { .. } => {
                let hash = d.content_hash(&db_ids);
                if d.rollback_to.is_some() {
                    deployed = Deploy::Pinned;
                    continue;
                }
                if pass.status.failed_content_hash.as_deref() == Some(hash.as_str()) {
                    deployed = Deploy::HeldBack;
                    continue;
                }
                pass.generated = super::generated::for_upload(d, o.script.as_ref(), pass).await?;
                let serving = o.script.as_ref().and_then(|s| s.deployed_version.clone());
                if let Some(previous) = serving.as_deref().filter(|p| super::rollout::wants_canary(d, Some(p))) {
                    match super::rollout::start(engine, client, d, &db_ids, &hash, previous, pass).await {
                        Ok(wait) => {
                            deployed = Deploy::Canary(wait);
                            continue;
                        }
                        Err(stop) => return Err(stop),
                    }
                }
                match ops::upload_worker(client, d, &db_ids, &hash, &pass.generated, o.script.is_none()).await {
                    Ok(version) => {
                        let previous = pass
                            .status
                            .worker
                            .as_ref()
                            .and_then(|w| w.version_id.clone())
                            .or_else(|| o.script.as_ref().and_then(|s| s.deployed_version.clone()));
                        record_deploy(pass, d, &version, previous, &hash, "Deployed");
                        engine.metrics.deployments_total.with_label_values(&["Immediate"]).inc();
                        deployed = Deploy::New;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Step::TagScript => ops::tag_script(client, acct, &d.script_name, &d.owner_tag).await,
            Step::EnableWorkersDev => match ops::enable_workers_dev(client, acct, &d.script_name).await {
                Ok(()) => {
                    workers_dev = true;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Step::CreateRoute { pattern, zone } => {
                let zone_id = o.zone_ids.get(zone).cloned().unwrap_or_default();
                match ops::create_route(client, &zone_id, pattern, &d.script_name).await {
                    Ok(id) => {
                        routes.retain(|r| r.pattern != *pattern);
                        routes.push(RouteStatus { pattern: pattern.clone(), id, zone_id });
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Step::UpdateRoute { id, pattern, zone } => {
                let zone_id = o.zone_ids.get(zone).cloned().unwrap_or_default();
                match ops::update_route(client, &zone_id, id, pattern, &d.script_name).await {
                    Ok(()) => {
                        routes.retain(|r| r.pattern != *pattern);
                        routes.push(RouteStatus { pattern: pattern.clone(), id: id.clone(), zone_id });
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Step::DeleteRoute { id, pattern, .. } => {
                let zone_id = o.routes.iter().find(|r| r.id == *id).map(|r| r.zone_id.clone()).unwrap_or_default();
                match ops::delete_route(client, &zone_id, id).await {
                    Ok(()) => {
                        routes.retain(|r| r.id != *id || r.pattern != *pattern);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Step::AttachDomain { hostname, zone } => {
                let zone_id = o.zone_ids.get(zone).cloned();
                match ops::attach_domain(client, acct, hostname, &d.script_name, zone_id.as_deref()).await {
                    Ok(id) => {
                        domains.retain(|x| x.hostname != *hostname);
                        domains.push(CustomDomainStatus { hostname: hostname.clone(), id });
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Step::DetachDomain { id, hostname } => match ops::detach_domain(client, acct, id).await {
                Ok(()) => {
                    domains.retain(|x| x.hostname != *hostname);
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        pass.status.routes = sorted_routes(d, &routes);
        pass.status.custom_domains = sorted_domains(d, &domains);
        match result {
            Ok(()) => pass.emit(PassEvent::normal(step.kind(), step.kind(), what)),
            Err(e) => return Err(stop_on_cf_error(pass, cond, &what, e)),
        }
    }
    settle_before(pass, c::PRODUCTION_TESTS_PASSED, &mut done_conds, d);
    pass.status.routes = sorted_routes(d, &routes);
    pass.status.custom_domains = sorted_domains(d, &domains);
    pass.status.url = d.public_url().or_else(|| {
        (workers_dev)
            .then(|| o.workers_subdomain.as_ref().map(|s| format!("https://{}.{s}.workers.dev", d.script_name)))
            .flatten()
    });
    if pass.status.worker.is_none()
        && let Some(script) = &o.script
    {
        // Adopted or converged without an upload this pass (e.g. CLI rerun): record what serves.
        pass.status.worker = Some(WorkerStatus {
            script_name: d.script_name.clone(),
            short_version: script.deployed_version.as_ref().map(|v| short(v)),
            version_id: script.deployed_version.clone(),
            previous_version_id: None,
            content_hash: script.deployed_hash.clone(),
            deployed_at: None,
        });
    }
    Ok(deployed)
}

/// Set the conditions of the groups that finished before `next` starts.
fn settle_before(pass: &mut Pass<'_>, next: &'static str, done: &mut Vec<&'static str>, d: &Desired) {
    let order = [c::DATABASES_READY, c::MIGRATIONS_APPLIED, c::WORKER_DEPLOYED, c::ROUTES_CONFIGURED];
    for cond in order {
        if cond == next {
            break;
        }
        if done.contains(&cond) {
            continue;
        }
        done.push(cond);
        match cond {
            c::DATABASES_READY if d.databases.is_empty() => {
                pass.report.ok(cond, reason::NO_DATABASES, "no D1 databases declared")
            }
            c::DATABASES_READY => {
                pass.report.ok(cond, reason::DATABASES_READY, format!("{} D1 database(s) ready", d.databases.len()))
            }
            c::MIGRATIONS_APPLIED => {
                let n: usize = pass.status.databases.iter().map(|x| x.applied_migrations.len()).sum();
                if d.databases.iter().all(|x| x.migrations.is_empty()) {
                    pass.report.ok(cond, reason::NO_MIGRATIONS, "no migrations declared");
                } else {
                    pass.report.ok(cond, reason::MIGRATIONS_APPLIED, format!("{n} migration(s) applied"));
                }
            }
            c::WORKER_DEPLOYED => {
                let v = pass.status.worker.as_ref().and_then(|w| w.version_id.clone()).unwrap_or_default();
                pass.report.ok(cond, reason::DEPLOYED, format!("worker {} serves version {v}", d.script_name));
            }
            c::ROUTES_CONFIGURED if d.routes.is_empty() && d.custom_domains.is_empty() => {
                pass.report.ok(cond, reason::NO_ROUTES, "no routes or custom domains declared; served on workers.dev")
            }
            c::ROUTES_CONFIGURED => pass.report.ok(
                cond,
                reason::CONFIGURED,
                format!("{} route(s) and {} custom domain(s) attached", d.routes.len(), d.custom_domains.len()),
            ),
            _ => {}
        }
    }
}

fn sorted_routes(d: &Desired, routes: &[RouteStatus]) -> Vec<RouteStatus> {
    d.routes.iter().filter_map(|r| routes.iter().find(|x| x.pattern == r.pattern).cloned()).collect()
}

fn sorted_domains(d: &Desired, domains: &[CustomDomainStatus]) -> Vec<CustomDomainStatus> {
    d.custom_domains.iter().filter_map(|r| domains.iter().find(|x| x.hostname == r.hostname).cloned()).collect()
}

/// First 8 characters of a version id.
pub fn short(version: &str) -> String {
    version.chars().take(8).collect()
}

/// Record a newly serving version in status.worker and status.history.
pub(crate) fn record_deploy(
    pass: &mut Pass<'_>,
    d: &Desired,
    version: &str,
    previous: Option<String>,
    hash: &str,
    outcome: &str,
) {
    pass.status.worker = Some(WorkerStatus {
        script_name: d.script_name.clone(),
        version_id: Some(version.to_string()),
        short_version: Some(short(version)),
        previous_version_id: previous.filter(|p| p != version),
        content_hash: Some(hash.to_string()),
        deployed_at: Some(pass.now.clone()),
    });
    pass.status.history.insert(
        0,
        HistoryEntry {
            version_id: version.to_string(),
            content_hash: hash.to_string(),
            at: pass.now.clone(),
            outcome: outcome.to_string(),
        },
    );
    pass.status.history.truncate(HISTORY_LIMIT);
}
