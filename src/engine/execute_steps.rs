//! Executing the resource steps of a plan in order, updating status as each one lands. Every
//! step run is recorded in `Pass::executed`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::desired::Desired;
use super::error::PassError;
use super::execute::{record_deploy, short, stop_on_cf_error};
use super::plan::{Observed, Plan, Step, UploadMode};
use super::{Engine, Outcome, Pass, PassEvent, ops};
use crate::cloudflare::{CloudflareClient, CloudflareError};
use crate::crd::conditions::{self as c, reason};
use crate::crd::{AppliedMigration, CustomDomainStatus, DatabaseStatus, Ownership, Phase, RouteStatus, WorkerStatus};

/// Ends a pass: its phase and outcome.
type Stop = (Phase, Outcome);

/// What happened to the Worker in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deploy {
    New,
    Unchanged,
    /// The desired content already failed its tests and was rolled back: not redeployed.
    HeldBack,
    /// A canary started; requeue after the step interval.
    Canary(Duration),
    /// `clodo.dev/rollback-to` pins the serving version: no upload.
    Pinned,
}

/// How a step ended: with a Cloudflare result (status of routes and domains written, an Event
/// on success), or quietly (it reported for itself, or had nothing to call).
enum Flow {
    Called(Result<(), CloudflareError>),
    Quiet,
}

/// Condition a step reports on.
fn condition_of(step: &Step) -> &'static str {
    match step {
        Step::CreateDatabase { .. } => c::DATABASES_READY,
        Step::ApplyMigrations { .. } => c::MIGRATIONS_APPLIED,
        Step::CreateRoute { .. }
        | Step::UpdateRoute { .. }
        | Step::DeleteRoute { .. }
        | Step::AttachDomain { .. }
        | Step::DetachDomain { .. } => c::ROUTES_CONFIGURED,
        _ => c::WORKER_DEPLOYED,
    }
}

/// What the resource steps have done so far.
struct Exec<'o> {
    o: &'o Observed,
    db_ids: BTreeMap<String, String>,
    owned: BTreeMap<String, Ownership>,
    applied: BTreeMap<String, Vec<AppliedMigration>>,
    bookmarks: BTreeMap<String, String>,
    routes: Vec<RouteStatus>,
    domains: Vec<CustomDomainStatus>,
    workers_dev: bool,
    deployed: Deploy,
}

impl<'o> Exec<'o> {
    fn new(d: &Desired, o: &'o Observed, plan: &Plan, pass: &Pass<'_>) -> Self {
        Exec {
            o,
            db_ids: o.databases.iter().map(|(b, x)| (b.clone(), x.id.clone())).collect(),
            owned: o.databases.iter().filter_map(|(b, x)| x.ownership.map(|w| (b.clone(), w))).collect(),
            applied: plan.applied.clone(),
            bookmarks: pass
                .status
                .databases
                .iter()
                .filter_map(|x| x.last_bookmark.clone().map(|b| (x.binding.clone(), b)))
                .collect(),
            routes: o
                .routes
                .iter()
                .filter(|r| r.script.as_deref() == Some(d.script_name.as_str()))
                .map(|r| RouteStatus { pattern: r.pattern.clone(), id: r.id.clone(), zone_id: r.zone_id.clone() })
                .collect(),
            domains: o
                .domains
                .iter()
                .filter(|x| x.service == d.script_name)
                .map(|x| CustomDomainStatus { hostname: x.hostname.clone(), id: x.id.clone() })
                .collect(),
            workers_dev: o.script.as_ref().and_then(|s| s.workers_dev_enabled).unwrap_or(false),
            deployed: Deploy::Unchanged,
        }
    }

    /// A database is recorded once it is ours: found and owned, or asked for (empty id) and
    /// then created. A creation whose answer was lost stays recorded, so the next pass knows it.
    fn write_dbs(&self, d: &Desired, pass: &mut Pass<'_>) {
        pass.status.databases = d
            .databases
            .iter()
            .filter_map(|db| {
                let ownership = *self.owned.get(&db.binding)?;
                Some(DatabaseStatus {
                    binding: db.binding.clone(),
                    name: db.name.clone(),
                    id: self.db_ids.get(&db.binding).cloned().unwrap_or_default(),
                    ownership: Some(ownership),
                    applied_migrations: self.applied.get(&db.binding).cloned().unwrap_or_default(),
                    last_bookmark: self.bookmarks.get(&db.binding).cloned(),
                })
            })
            .collect();
    }
}

/// Execute the resource steps of `plan` in order, updating status as each one lands.
pub(crate) async fn execute(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    o: &Observed,
    plan: &Plan,
    pass: &mut Pass<'_>,
) -> Result<Deploy, Stop> {
    let mut x = Exec::new(d, o, plan, pass);
    x.write_dbs(d, pass);
    let mut done_conds: Vec<&'static str> = Vec::new();
    for step in &plan.steps {
        let cond = condition_of(step);
        // Conditions of earlier groups are settled once a later group starts.
        settle_before(pass, cond, &mut done_conds, d);
        let what = step.describe(d);
        tracing::debug!(step = step.kind(), "executing step");
        pass.executed.push(step.clone());
        let Flow::Called(result) = x.step(engine, client, d, step, cond, pass).await? else { continue };
        pass.status.routes = sorted_routes(d, &x.routes);
        pass.status.custom_domains = sorted_domains(d, &x.domains);
        match result {
            Ok(()) => pass.emit(PassEvent::normal(step.kind(), step.kind(), what)),
            Err(e) => return Err(stop_on_cf_error(pass, cond, &what, e)),
        }
    }
    settle_before(pass, c::PRODUCTION_TESTS_PASSED, &mut done_conds, d);
    x.finish(d, pass);
    Ok(x.deployed)
}

impl Exec<'_> {
    async fn step(
        &mut self,
        engine: &Engine,
        client: &CloudflareClient,
        d: &Desired,
        step: &Step,
        cond: &'static str,
        pass: &mut Pass<'_>,
    ) -> Result<Flow, Stop> {
        let acct = d.account_id.as_str();
        Ok(match step {
            Step::CreateDatabase { binding, name } => {
                Flow::Called(self.create_database(client, d, binding, name, cond, pass).await?)
            }
            Step::ApplyMigrations { binding, files, bookmark, .. } => {
                self.apply_migrations(engine, client, d, binding, files, *bookmark, cond, pass).await?;
                Flow::Quiet
            }
            Step::DeleteSecret { name } => Flow::Called(ops::delete_secret(client, acct, &d.script_name, name).await),
            Step::UploadWorker { mode, .. } => self.upload(engine, client, d, *mode, pass).await?,
            Step::KeepPinned { .. } => {
                self.deployed = Deploy::Pinned;
                Flow::Quiet
            }
            Step::HoldBack { .. } => {
                self.deployed = Deploy::HeldBack;
                Flow::Quiet
            }
            Step::TagScript => Flow::Called(ops::tag_script(client, acct, &d.script_name, &d.owner_tag).await),
            Step::EnableWorkersDev => {
                let r = ops::enable_workers_dev(client, acct, &d.script_name).await;
                self.workers_dev |= r.is_ok();
                Flow::Called(r)
            }
            Step::CreateRoute { .. } | Step::UpdateRoute { .. } | Step::DeleteRoute { .. } => {
                Flow::Called(self.route(client, d, step).await)
            }
            Step::AttachDomain { .. } | Step::DetachDomain { .. } => Flow::Called(self.domain(client, d, step).await),
            // Pass-level steps are never part of a resource plan.
            Step::VerifyToken
            | Step::StopCanary { .. }
            | Step::WaitCanary { .. }
            | Step::AdvanceCanary { .. }
            | Step::PromoteCanary { .. }
            | Step::ManualRollback { .. }
            | Step::DriftCheck { .. } => Flow::Quiet,
        })
    }

    async fn create_database(
        &mut self,
        client: &CloudflareClient,
        d: &Desired,
        binding: &str,
        name: &str,
        cond: &'static str,
        pass: &mut Pass<'_>,
    ) -> Result<Result<(), CloudflareError>, Stop> {
        // Record the creation before asking for it: after a crash in between, the database
        // found by name is known to be ours (D1 has no tags).
        self.owned.insert(binding.to_string(), Ownership::Created);
        self.write_dbs(d, pass);
        if let Err(e) = pass.src.checkpoint(pass.svc, &pass.status).await {
            pass.report.unknown(cond, reason::KUBERNETES_ERROR, e.to_string());
            return Err((Phase::Migrating, Outcome::Retry(PassError::kubernetes("recording a database creation", e))));
        }
        match ops::create_database(client, &d.account_id, name).await {
            Ok(id) => {
                self.db_ids.insert(binding.to_string(), id);
                self.write_dbs(d, pass);
                Ok(Ok(()))
            }
            Err(e) if e.is_conflict() => {
                // Someone else took the name since we looked: not ours.
                self.owned.remove(binding);
                self.write_dbs(d, pass);
                pass.report.fail(
                    cond,
                    reason::CONFLICT,
                    format!("d1 database {name} (binding {binding}) was created by someone else; set annotation clodo.dev/adopt=\"true\" to adopt it"),
                );
                Err((Phase::Failed, Outcome::Terminal))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_migrations(
        &mut self,
        engine: &Engine,
        client: &CloudflareClient,
        d: &Desired,
        binding: &str,
        files: &[super::migrations::MigrationFile],
        bookmark: bool,
        cond: &'static str,
        pass: &mut Pass<'_>,
    ) -> Result<(), Stop> {
        let acct = d.account_id.as_str();
        let Some(id) = self.db_ids.get(binding).cloned() else {
            pass.report.fail(cond, reason::MIGRATION_FAILED, format!("binding {binding}: database id unknown"));
            return Err((Phase::Failed, Outcome::Terminal));
        };
        if bookmark {
            match ops::bookmark(client, acct, &id).await {
                Ok(b) => {
                    self.bookmarks.insert(binding.to_string(), b);
                    self.write_dbs(d, pass);
                }
                Err(e) => {
                    let what = format!("recording a Time Travel bookmark for binding {binding}");
                    return Err(stop_on_cf_error(pass, cond, &what, e));
                }
            }
        }
        for f in files {
            match ops::run_sql(client, acct, &id, &super::migrations::apply_sql(f)).await {
                Ok(()) => {
                    engine.metrics.migrations_applied_total.with_label_values(&["ok"]).inc();
                    self.applied.entry(binding.to_string()).or_default().push(AppliedMigration {
                        name: f.name.clone(),
                        checksum: f.checksum.clone(),
                        applied_at: Some(pass.now.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    });
                    self.write_dbs(d, pass);
                    let note = format!("applied {} to binding {binding}", f.name);
                    pass.emit(PassEvent::normal("MigrationApplied", "ApplyMigration", note));
                }
                Err(e) if e.is_sql_error() => {
                    engine.metrics.migrations_applied_total.with_label_values(&["error"]).inc();
                    pass.report.ok(c::DATABASES_READY, reason::DATABASES_READY, "databases exist");
                    pass.report.fail(
                        cond,
                        reason::MIGRATION_FAILED,
                        format!("binding {binding}: {} failed: {}", f.name, ops::api_message(&e)),
                    );
                    return Err((Phase::Failed, Outcome::Terminal));
                }
                Err(e) => {
                    let what = format!("applying {} to binding {binding}", f.name);
                    return Err(stop_on_cf_error(pass, cond, &what, e));
                }
            }
        }
        Ok(())
    }

    /// Upload the Worker: at 100% at once, or as a canary next to the serving version.
    async fn upload(
        &mut self,
        engine: &Engine,
        client: &CloudflareClient,
        d: &Desired,
        mode: UploadMode,
        pass: &mut Pass<'_>,
    ) -> Result<Flow, Stop> {
        let hash = d.content_hash(&self.db_ids);
        let o = self.o;
        pass.generated = super::generated::for_upload(d, o.script.as_ref(), pass).await?;
        let serving = o.script.as_ref().and_then(|s| s.deployed_version.clone());
        if let (UploadMode::Canary { .. }, Some(previous)) = (mode, serving.as_deref()) {
            let wait = super::rollout::start(engine, client, d, &self.db_ids, &hash, previous, pass).await?;
            self.deployed = Deploy::Canary(wait);
            return Ok(Flow::Quiet);
        }
        match ops::upload_worker(client, d, &self.db_ids, &hash, &pass.generated, o.script.is_none()).await {
            Ok(version) => {
                let previous = pass.status.worker.as_ref().and_then(|w| w.version_id.clone()).or(serving);
                record_deploy(pass, d, &version, previous, &hash, "Deployed");
                engine.metrics.deployments_total.with_label_values(&["Immediate"]).inc();
                self.deployed = Deploy::New;
                Ok(Flow::Called(Ok(())))
            }
            Err(e) => Ok(Flow::Called(Err(e))),
        }
    }

    async fn route(&mut self, client: &CloudflareClient, d: &Desired, step: &Step) -> Result<(), CloudflareError> {
        let o = self.o;
        match step {
            Step::CreateRoute { pattern, zone } => {
                let zone_id = o.zone_ids.get(zone).cloned().unwrap_or_default();
                let id = ops::create_route(client, &zone_id, pattern, &d.script_name).await?;
                self.routes.retain(|r| r.pattern != *pattern);
                self.routes.push(RouteStatus { pattern: pattern.clone(), id, zone_id });
            }
            Step::UpdateRoute { id, pattern, zone } => {
                let zone_id = o.zone_ids.get(zone).cloned().unwrap_or_default();
                ops::update_route(client, &zone_id, id, pattern, &d.script_name).await?;
                self.routes.retain(|r| r.pattern != *pattern);
                self.routes.push(RouteStatus { pattern: pattern.clone(), id: id.clone(), zone_id });
            }
            Step::DeleteRoute { id, pattern, .. } => {
                let zone_id = o.routes.iter().find(|r| r.id == *id).map(|r| r.zone_id.clone()).unwrap_or_default();
                ops::delete_route(client, &zone_id, id).await?;
                self.routes.retain(|r| r.id != *id || r.pattern != *pattern);
            }
            _ => {}
        }
        Ok(())
    }

    async fn domain(&mut self, client: &CloudflareClient, d: &Desired, step: &Step) -> Result<(), CloudflareError> {
        let acct = d.account_id.as_str();
        match step {
            Step::AttachDomain { hostname, zone } => {
                let zone_id = self.o.zone_ids.get(zone).cloned();
                let id = ops::attach_domain(client, acct, hostname, &d.script_name, zone_id.as_deref()).await?;
                self.domains.retain(|x| x.hostname != *hostname);
                self.domains.push(CustomDomainStatus { hostname: hostname.clone(), id });
            }
            Step::DetachDomain { id, hostname } => {
                ops::detach_domain(client, acct, id).await?;
                self.domains.retain(|x| x.hostname != *hostname);
            }
            _ => {}
        }
        Ok(())
    }

    /// Routes, domains, URL and (when nothing was uploaded) the serving Worker into status.
    fn finish(&self, d: &Desired, pass: &mut Pass<'_>) {
        let o = self.o;
        pass.status.routes = sorted_routes(d, &self.routes);
        pass.status.custom_domains = sorted_domains(d, &self.domains);
        pass.status.url = d.public_url().or_else(|| {
            (self.workers_dev)
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
    }
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
