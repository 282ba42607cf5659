//! Portfolio controller: generate owned CloudflareServices wave by wave in dependency order,
//! at most `maxConcurrent` progressing at once, and report aggregate health.

use std::collections::{BTreeMap, BTreeSet};
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
use crate::crd::{
    CloudflareService, CloudflareServiceSpec, Phase, Portfolio, PortfolioService, PortfolioServiceStatus,
    PortfolioStatus, ServiceBody,
};
use crate::engine::PassEvent;

const KIND: &str = "Portfolio";

/// One child the portfolio wants.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub service: String,
    pub domain: Option<String>,
    pub name: String,
    pub depends_on: Vec<String>,
    pub body: ServiceBody,
}

/// Dependency problems: unknown names or a cycle (named).
pub fn check_dependencies(services: &[PortfolioService]) -> Result<Vec<String>, String> {
    let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    for s in services {
        for d in &s.depends_on {
            if !names.contains(d.as_str()) {
                return Err(format!("service {} depends on unknown service {d}", s.name));
            }
            if d == &s.name {
                return Err(format!("service {} depends on itself", s.name));
            }
        }
    }
    // Kahn's algorithm; whatever remains is in or behind a cycle.
    let mut indegree: BTreeMap<&str, usize> = services.iter().map(|s| (s.name.as_str(), s.depends_on.len())).collect();
    let mut order = Vec::new();
    let mut ready: Vec<&str> = indegree.iter().filter(|(_, n)| **n == 0).map(|(k, _)| *k).collect();
    while let Some(n) = ready.pop() {
        order.push(n.to_string());
        for s in services.iter().filter(|s| s.depends_on.iter().any(|d| d == n)) {
            let e = indegree.entry(s.name.as_str()).or_default();
            *e -= 1;
            if *e == 0 {
                ready.push(s.name.as_str());
            }
        }
    }
    if order.len() == services.len() {
        return Ok(order);
    }
    // Name one cycle: walk dependencies from a remaining node until a node repeats.
    let remaining: BTreeSet<&str> = indegree.iter().filter(|(_, n)| **n > 0).map(|(k, _)| *k).collect();
    let by_name: BTreeMap<&str, &PortfolioService> = services.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut path: Vec<&str> = Vec::new();
    let mut cur = *remaining.iter().next().unwrap_or(&"");
    while !path.contains(&cur) {
        path.push(cur);
        cur = by_name
            .get(cur)
            .and_then(|s| s.depends_on.iter().find(|d| remaining.contains(d.as_str())))
            .map(String::as_str)
            .unwrap_or(cur);
    }
    let start = path.iter().position(|p| *p == cur).unwrap_or(0);
    let mut cycle: Vec<&str> = path[start..].to_vec();
    cycle.push(cur);
    Err(format!("dependency cycle: {}", cycle.join(" -> ")))
}

/// DNS-label-safe suffix for a domain.
fn slug(domain: &str) -> String {
    domain.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// Replace `{{DOMAIN}}` in every string of a template.
fn stamp(body: &ServiceBody, domain: &str) -> ServiceBody {
    let v = serde_json::to_value(body).unwrap_or_default();
    let text =
        serde_json::to_string(&v).unwrap_or_default().replace("{{DOMAIN}}", domain).replace("{{ DOMAIN }}", domain);
    serde_json::from_str(&text).unwrap_or_else(|_| body.clone())
}

/// The children a portfolio declares.
pub fn children(p: &Portfolio) -> Vec<Child> {
    let pname = p.name_any();
    let mut out = Vec::new();
    for s in &p.spec.services {
        if p.spec.domains.is_empty() {
            out.push(Child {
                service: s.name.clone(),
                domain: None,
                name: format!("{pname}-{}", s.name),
                depends_on: s.depends_on.clone(),
                body: s.template.clone(),
            });
        } else {
            for d in &p.spec.domains {
                let mut body = stamp(&s.template, d);
                if let Some(sn) = &body.script_name {
                    body.script_name = Some(format!("{sn}-{}", slug(d)));
                }
                out.push(Child {
                    service: s.name.clone(),
                    domain: Some(d.clone()),
                    name: format!("{pname}-{}-{}", s.name, slug(d)),
                    depends_on: s.depends_on.clone(),
                    body,
                });
            }
        }
    }
    out
}

fn is_ready(s: &CloudflareService) -> bool {
    s.status
        .as_ref()
        .is_some_and(|st| st.observed_generation == s.metadata.generation && c::is_true(&st.conditions, c::READY))
}

fn is_failed(s: &CloudflareService) -> bool {
    s.status.as_ref().is_some_and(|st| {
        st.observed_generation == s.metadata.generation && matches!(st.phase, Some(Phase::Failed | Phase::RolledBack))
    })
}

/// Reconcile one portfolio.
pub async fn reconcile(p: Arc<Portfolio>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = p.namespace().unwrap_or_else(|| "default".into());
    let span = info_span!("reconcile", kind = KIND, namespace = %ns, name = %p.name_any(), generation = p.metadata.generation.unwrap_or_default());
    async move {
        let start = Instant::now();
        let result = apply(&p, &ctx, &ns).await;
        let label = if result.is_ok() { "ok" } else { "error" };
        ctx.metrics.reconcile_total.with_label_values(&["portfolio", label]).inc();
        ctx.metrics.reconcile_duration.with_label_values(&["portfolio", label]).observe(start.elapsed().as_secs_f64());
        result
    }
    .instrument(span)
    .await
}

async fn apply(p: &Portfolio, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let api: Api<CloudflareService> = Api::namespaced(ctx.client.clone(), ns);
    let pname = p.name_any();
    let prev = p.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let mut status = PortfolioStatus { observed_generation: p.metadata.generation, ..Default::default() };
    let mut events = Vec::new();

    if let Err(msg) = check_dependencies(&p.spec.services) {
        let conds = vec![
            CondSpec::fail(c::READY, reason::INVALID_DEPENDENCIES, msg.clone()),
            CondSpec::fail(c::PROGRESSING, reason::INVALID_DEPENDENCIES, "nothing created"),
            CondSpec::fail(c::DEGRADED, reason::INVALID_DEPENDENCIES, msg.clone()),
        ];
        status.conditions = c::merge(&prev.conditions, &conds, p.metadata.generation, &now);
        status.services = prev.services.clone();
        status.ready_services = prev.ready_services.clone();
        if c::find(&prev.conditions, c::READY).map(|x| x.reason.as_str()) != Some(reason::INVALID_DEPENDENCIES) {
            events.push(PassEvent::warning(reason::INVALID_DEPENDENCIES, "Plan", msg));
        }
        finish(ctx, p, ns, &prev, status, events).await?;
        return Ok(Action::requeue(ctx.resync_with_jitter()));
    }

    let wanted = children(p);
    let existing: Vec<CloudflareService> =
        api.list(&ListParams::default().labels(&format!("{LABEL_PORTFOLIO}={pname}"))).await?.items;
    let by_name: BTreeMap<String, &CloudflareService> = existing.iter().map(|s| (s.name_any(), s)).collect();

    // Remove children no longer declared.
    for s in &existing {
        if !wanted.iter().any(|w| w.name == s.name_any()) {
            api.delete(&s.name_any(), &DeleteParams::background()).await?;
            events.push(PassEvent::normal(
                "ServiceRemoved",
                "DeleteChild",
                format!("deleted CloudflareService {}", s.name_any()),
            ));
        }
    }

    // Readiness per portfolio service name (all of its domain stamps must be Ready).
    let ready_of = |svc: &str| -> bool {
        wanted.iter().filter(|w| w.service == svc).all(|w| by_name.get(&w.name).is_some_and(|s| is_ready(s)))
    };
    let mut progressing: usize =
        wanted.iter().filter(|w| by_name.get(&w.name).is_some_and(|s| !is_ready(s) && !is_failed(s))).count();
    let limit = p.spec.max_concurrent.max(1) as usize;
    let owner = p.controller_owner_ref(&()).into_iter().collect::<Vec<_>>();
    let mut waiting = 0usize;

    for w in &wanted {
        let spec = CloudflareServiceSpec {
            customer_ref: p.spec.customer_ref.clone(),
            environment: p.spec.environment,
            body: w.body.clone(),
        };
        let current = by_name.get(&w.name);
        let up_to_date = current.is_some_and(|s| s.spec == spec);
        if up_to_date {
            continue;
        }
        let deps_ready = w.depends_on.iter().all(|d| ready_of(d));
        if !deps_ready || progressing >= limit {
            waiting += 1;
            continue;
        }
        let child = CloudflareService {
            metadata: ObjectMeta {
                name: Some(w.name.clone()),
                namespace: Some(ns.to_string()),
                labels: Some(BTreeMap::from([
                    (LABEL_PORTFOLIO.to_string(), pname.clone()),
                    (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
                ])),
                owner_references: Some(owner.clone()),
                ..Default::default()
            },
            spec,
            status: None,
        };
        let mut body = serde_json::to_value(&child).map_err(|e| Error::Engine(e.to_string()))?;
        if let Some(o) = body.as_object_mut() {
            o.insert("apiVersion".into(), json!("clodo.dev/v1alpha1"));
            o.insert("kind".into(), json!("CloudflareService"));
            o.remove("status");
        }
        api.patch(&w.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
        progressing += 1;
        let verb = if current.is_some() { "updated" } else { "created" };
        events.push(PassEvent::normal("ServiceApplied", "ApplyChild", format!("{verb} CloudflareService {}", w.name)));
    }

    // Aggregate status from the children as they are now.
    let current: Vec<CloudflareService> =
        api.list(&ListParams::default().labels(&format!("{LABEL_PORTFOLIO}={pname}"))).await?.items;
    let cur: BTreeMap<String, &CloudflareService> = current.iter().map(|s| (s.name_any(), s)).collect();
    let mut ready = 0;
    let mut failed = Vec::new();
    for w in &wanted {
        let s = cur.get(&w.name);
        let r = s.is_some_and(|s| is_ready(s));
        if r {
            ready += 1;
        }
        if s.is_some_and(|s| is_failed(s)) {
            failed.push(w.name.clone());
        }
        status.services.push(PortfolioServiceStatus {
            name: w.service.clone(),
            domain: w.domain.clone(),
            service: w.name.clone(),
            phase: s.and_then(|s| s.status.as_ref()).and_then(|st| st.phase).map(|ph| format!("{ph:?}")),
            ready: r,
        });
    }
    let total = wanted.len();
    status.ready_services = Some(format!("{ready}/{total}"));
    let all_ready = ready == total;
    let mut conds = vec![if all_ready {
        CondSpec::ok(c::READY, reason::SERVICES_READY, format!("{ready}/{total} services ready"))
    } else if !failed.is_empty() {
        CondSpec::fail(c::READY, reason::SERVICES_FAILED, format!("failed: {}", failed.join(", ")))
    } else {
        CondSpec::fail(c::READY, reason::WAVE_IN_PROGRESS, format!("{ready}/{total} services ready"))
    }];
    conds.push(if all_ready {
        CondSpec::fail(c::PROGRESSING, reason::SERVICES_READY, "all services ready")
    } else {
        CondSpec::ok(
            c::PROGRESSING,
            reason::WAVE_IN_PROGRESS,
            format!("{} waiting for dependencies or capacity", waiting),
        )
    });
    conds.push(if failed.is_empty() {
        CondSpec::fail(c::DEGRADED, reason::READY, "no failed services")
    } else {
        CondSpec::ok(c::DEGRADED, reason::SERVICES_FAILED, format!("failed: {}", failed.join(", ")))
    });
    status.conditions = c::merge(&prev.conditions, &conds, p.metadata.generation, &now);
    finish(ctx, p, ns, &prev, status, events).await?;
    ctx.reset_failures(&object_key(KIND, Some(ns), &pname));
    Ok(Action::requeue(ctx.resync_with_jitter()))
}

async fn finish(
    ctx: &Context,
    p: &Portfolio,
    ns: &str,
    prev: &PortfolioStatus,
    status: PortfolioStatus,
    events: Vec<PassEvent>,
) -> Result<(), Error> {
    ctx.publish(&p.object_ref(&()), &events).await;
    if &status != prev {
        let api: Api<Portfolio> = Api::namespaced(ctx.client.clone(), ns);
        let patch = json!({ "apiVersion": "clodo.dev/v1alpha1", "kind": KIND, "status": status });
        api.patch_status(&p.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    }
    Ok(())
}

/// Error policy: capped exponential backoff per object.
pub fn error_policy(p: Arc<Portfolio>, err: &Error, ctx: Arc<Context>) -> Action {
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
    Controller::new(portfolios, ctx.watcher_config())
        .owns(services, kube::runtime::watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, deps: &[&str]) -> PortfolioService {
        PortfolioService {
            name: name.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            template: ServiceBody::default(),
        }
    }

    #[test]
    fn orders_dependencies() {
        let order =
            check_dependencies(&[svc("data", &["auth"]), svc("auth", &[]), svc("api", &["auth", "data"])]).unwrap();
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("auth") < pos("data") && pos("data") < pos("api"));
    }

    #[test]
    fn names_cycles_and_unknown_dependencies() {
        let err =
            check_dependencies(&[svc("a", &["b"]), svc("b", &["c"]), svc("c", &["a"]), svc("d", &[])]).unwrap_err();
        assert!(err.starts_with("dependency cycle: "), "{err}");
        for n in ["a", "b", "c"] {
            assert!(err.contains(n), "{err}");
        }
        assert!(!err.contains("-> d") && !err.contains(": d "), "{err}");
        let err = check_dependencies(&[svc("a", &["ghost"])]).unwrap_err();
        assert_eq!(err, "service a depends on unknown service ghost");
        assert!(check_dependencies(&[svc("a", &["a"])]).unwrap_err().contains("itself"));
    }

    #[test]
    fn stamps_domains_into_names_and_templates() {
        let body = ServiceBody { custom_domains: vec!["api.{{DOMAIN}}".into()], ..Default::default() };
        let p = Portfolio::new(
            "suite",
            crate::crd::PortfolioSpec {
                customer_ref: crate::crd::LocalObjectRef { name: "acme".into() },
                environment: crate::crd::Environment::Production,
                max_concurrent: 2,
                domains: vec!["acme.com".into(), "acme.io".into()],
                services: vec![PortfolioService { name: "auth".into(), depends_on: vec![], template: body }],
            },
        );
        let kids = children(&p);
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].name, "suite-auth-acme-com");
        assert_eq!(kids[1].body.custom_domains, vec!["api.acme.io"]);
    }
}
