//! Portfolio controller: generate owned CloudflareServices wave by wave in dependency order,
//! at most `maxConcurrent` progressing at once, and report aggregate health.
//!
//! Each pass lists the children (label `clodo.dev/portfolio=<name>`), deletes the ones no longer
//! declared, plans the next wave with [`next_wave`] (pure), applies it with server-side apply and
//! writes one status. Child status changes retrigger the portfolio through `owns`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info_span, warn};

use super::{Context, Error, object_key};
use crate::crd::conditions::{self as c, CondSpec, reason};
use crate::crd::keys::{FIELD_MANAGER, LABEL_MANAGED_BY, LABEL_PORTFOLIO, MANAGED_BY};
use crate::crd::{CloudflareService, CloudflareServiceSpec, Phase, Portfolio, PortfolioStatus};
use crate::engine::PassEvent;
pub use crate::engine::portfolio::*;

const KIND: &str = "Portfolio";

/// Reconcile one portfolio.
pub async fn reconcile(p: Arc<Portfolio>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = p.namespace().unwrap_or_else(|| "default".into());
    let span = info_span!("reconcile", kind = KIND, namespace = %ns, name = %p.name_any(), generation = p.metadata.generation.unwrap_or_default());
    async move {
        let start = Instant::now();
        let result = apply(&p, &ctx, &ns).await;
        let label = super::result_label(&result);
        ctx.metrics.reconcile_total.with_label_values(&["portfolio", label]).inc();
        ctx.metrics.reconcile_duration.with_label_values(&["portfolio", label]).observe(start.elapsed().as_secs_f64());
        result
    }
    .instrument(span)
    .await
}

/// Does this portfolio control the object (ownerReference with its uid and `controller: true`)?
fn controlled_by(s: &CloudflareService, p: &Portfolio) -> bool {
    let uid = p.uid();
    s.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref() && o.controller == Some(true))
}

fn phase_name(ph: Phase) -> String {
    serde_json::to_value(ph).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| format!("{ph:?}"))
}

fn child_spec(p: &Portfolio, w: &Child) -> CloudflareServiceSpec {
    CloudflareServiceSpec {
        customer_ref: p.spec.customer_ref.clone(),
        environment: p.spec.environment,
        body: w.body.clone(),
    }
}

async fn apply(p: &Portfolio, ctx: &Context, ns: &str) -> Result<Action, Error> {
    ctx.check_fresh(p)?;
    let api: Api<CloudflareService> = Api::namespaced(ctx.client.clone(), ns);
    let pname = p.name_any();
    let prev = p.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let mut status = PortfolioStatus { observed_generation: p.metadata.generation, ..Default::default() };
    let mut events = Vec::new();

    if let Err(msg) = check_dependencies(&p.spec.services) {
        let conds = vec![
            CondSpec::fail(c::READY, reason::INVALID_DEPENDENCIES, msg.clone()),
            CondSpec::fail(
                c::PROGRESSING,
                reason::INVALID_DEPENDENCIES,
                "nothing is created or changed until dependsOn is fixed",
            ),
            CondSpec::ok(c::DEGRADED, reason::INVALID_DEPENDENCIES, msg.clone()),
        ];
        status.conditions = c::merge(&prev.conditions, &conds, p.metadata.generation, &now);
        status.services = prev.services.clone();
        status.ready_services = prev.ready_services.clone();
        if c::find(&prev.conditions, c::READY).map(|x| x.reason.as_str()) != Some(reason::INVALID_DEPENDENCIES) {
            events.push(PassEvent::warning(reason::INVALID_DEPENDENCIES, "Plan", format!("spec.services: {msg}")));
        }
        finish(ctx, p, &prev, status, events).await?;
        ctx.reset_failures(&object_key(KIND, Some(ns), &pname));
        // Terminal: an edit of the spec retriggers at once.
        return Ok(Action::requeue(ctx.resync_with_jitter()));
    }

    let wanted = children(p);
    let desired: BTreeMap<String, CloudflareServiceSpec> =
        wanted.iter().map(|w| (w.name.clone(), child_spec(p, w))).collect();
    let existing: Vec<CloudflareService> =
        api.list(&ListParams::default().labels(&format!("{LABEL_PORTFOLIO}={pname}"))).await?.items;

    // Remove the children this portfolio controls and no longer declares (their finalizers clean
    // Cloudflare up).
    for s in existing.iter().filter(|s| controlled_by(s, p) && !desired.contains_key(&s.name_any())) {
        if s.metadata.deletion_timestamp.is_some() {
            continue;
        }
        api.delete(&s.name_any(), &DeleteParams::background()).await?;
        events.push(PassEvent::normal(
            "ServiceRemoved",
            "DeleteChild",
            format!("deleted CloudflareService {}: no longer in spec.services", s.name_any()),
        ));
    }

    let mut current: BTreeMap<String, CloudflareService> =
        existing.into_iter().filter(|s| controlled_by(s, p)).map(|s| (s.name_any(), s)).collect();
    let mut states: BTreeMap<String, ChildState> = BTreeMap::new();
    for w in &wanted {
        let st = match current.get(&w.name) {
            Some(s) => ChildState::of(s, &desired[&w.name]),
            // Not listed as ours: make sure no one else's object has the name before creating it.
            None => match api.get_opt(&w.name).await? {
                Some(s) if controlled_by(&s, p) => {
                    let st = ChildState::of(&s, &desired[&w.name]);
                    current.insert(w.name.clone(), s);
                    st
                }
                Some(_) => ChildState { exists: true, foreign: true, ..Default::default() },
                None => ChildState::default(),
            },
        };
        states.insert(w.name.clone(), st);
    }

    let limit = p.spec.max_concurrent.max(1) as usize;
    let wave = next_wave(&wanted, &states, limit);
    let owner = p.controller_owner_ref(&()).into_iter().collect::<Vec<_>>();
    for name in &wave.apply {
        let child = CloudflareService {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.to_string()),
                labels: Some(BTreeMap::from([
                    (LABEL_PORTFOLIO.to_string(), pname.clone()),
                    (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
                ])),
                owner_references: Some(owner.clone()),
                ..Default::default()
            },
            spec: desired[name].clone(),
            status: None,
        };
        let mut body = serde_json::to_value(&child).map_err(|e| Error::Engine(e.to_string()))?;
        if let Some(o) = body.as_object_mut() {
            o.insert("apiVersion".into(), json!("clodo.dev/v1alpha1"));
            o.insert("kind".into(), json!("CloudflareService"));
            o.remove("status");
        }
        let applied = api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
        let verb = if current.contains_key(name) { "updated" } else { "created" };
        events.push(PassEvent::normal("ServiceApplied", "ApplyChild", format!("{verb} CloudflareService {name}")));
        states.insert(name.clone(), ChildState::of(&applied, &desired[name]));
        current.insert(name.clone(), applied);
    }

    let phases: BTreeMap<String, String> = current
        .iter()
        .filter_map(|(n, s)| {
            let st = s.status.as_ref()?;
            Some((n.clone(), phase_name(st.phase?)))
        })
        .collect();
    let (services, ready_services, conds) = aggregate(&wanted, &states, &phases, &wave, limit);
    status.services = services;
    status.ready_services = Some(ready_services);
    status.conditions = c::merge(&prev.conditions, &conds, p.metadata.generation, &now);

    let flipped = |t: &str| {
        let was = c::find(&prev.conditions, t).map(|x| (x.status.clone(), x.reason.clone()));
        let is = c::find(&status.conditions, t).map(|x| (x.status.clone(), x.reason.clone()));
        (was != is).then(|| c::find(&status.conditions, t).cloned()).flatten()
    };
    if let Some(x) = flipped(c::READY).filter(|x| x.status == "True") {
        events.push(PassEvent::normal(&x.reason, "Aggregate", x.message));
    }
    if let Some(x) = flipped(c::DEGRADED).filter(|x| x.status == "True") {
        events.push(PassEvent::warning(&x.reason, "Aggregate", x.message));
    }
    finish(ctx, p, &prev, status, events).await?;
    ctx.reset_failures(&object_key(KIND, Some(ns), &pname));
    Ok(Action::requeue(ctx.resync_with_jitter()))
}

/// Publish Events, then one server-side apply of the whole status, skipped when unchanged.
async fn finish(
    ctx: &Context,
    p: &Portfolio,
    prev: &PortfolioStatus,
    status: PortfolioStatus,
    events: Vec<PassEvent>,
) -> Result<(), Error> {
    ctx.publish(&p.object_ref(&()), &events).await;
    if &status != prev {
        ctx.write_status(p, p.resource_version(), &status).await?;
    }
    Ok(())
}

/// Error policy: capped exponential backoff per object.
pub fn error_policy(p: Arc<Portfolio>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Some(action) = err.no_backoff() {
        return action;
    }
    let key = object_key(KIND, p.namespace().as_deref(), &p.name_any());
    let wait = ctx.record_failure(&key);
    warn!(namespace = %p.namespace().unwrap_or_default(), name = %p.name_any(), error = %err, "portfolio reconcile failed");
    Action::requeue(wait)
}

/// Run the Portfolio controller until shutdown.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (portfolios, services): (Api<Portfolio>, Api<CloudflareService>) = match &namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client, ns)),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let gauge = ctx.metrics.resources_ready.with_label_values(&[KIND]);
    let controller = Controller::new(portfolios, ctx.watcher_config())
        .owns(services, kube::runtime::watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency));
    let store = controller.store();
    let gauge_task = tokio::spawn(async move {
        loop {
            let n = store
                .state()
                .iter()
                .filter(|p| p.status.as_ref().is_some_and(|s| c::is_true(&s.conditions, c::READY)))
                .count();
            gauge.set(n as i64);
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
    controller.graceful_shutdown_on(shutdown).run(reconcile, error_policy, ctx).for_each(|_| async {}).await;
    gauge_task.abort();
}
