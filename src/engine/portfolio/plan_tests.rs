//! IO-free tests of the Portfolio planner: objects in, plan out.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::finish::aggregate;
use super::*;
use crate::crd::conditions::{self as c, CondSpec, reason};
use crate::crd::{
    CloudflareServiceStatus, Environment, LocalObjectRef, Phase, PortfolioService, PortfolioSpec, ServiceBody,
};

fn svc(name: &str, deps: &[&str]) -> PortfolioService {
    PortfolioService {
        name: name.into(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        template: ServiceBody::default(),
    }
}

fn portfolio(domains: &[&str], services: Vec<PortfolioService>) -> Portfolio {
    Portfolio::new(
        "suite",
        PortfolioSpec {
            customer_ref: LocalObjectRef { name: "acme".into() },
            environment: Environment::Production,
            max_concurrent: 2,
            domains: domains.iter().map(|d| d.to_string()).collect(),
            services,
        },
    )
}

#[test]
fn orders_dependencies_wave_by_wave_in_spec_order() {
    let order =
        check_dependencies(&[svc("api", &["auth", "data"]), svc("data", &["auth"]), svc("auth", &[]), svc("web", &[])])
            .unwrap();
    assert_eq!(order, ["auth", "web", "data", "api"]);
    // A repeated dependency is not mistaken for a cycle.
    assert_eq!(check_dependencies(&[svc("b", &["a", "a"]), svc("a", &[])]).unwrap(), ["a", "b"]);
}

#[test]
fn names_cycles_and_unknown_dependencies() {
    let err = check_dependencies(&[svc("d", &[]), svc("a", &["b"]), svc("b", &["c"]), svc("c", &["a"])])
        .unwrap_err()
        .to_string();
    assert_eq!(err, "dependency cycle: a -> b -> c -> a");
    // A service behind a cycle is not part of the named cycle.
    let err = check_dependencies(&[svc("x", &["a"]), svc("a", &["b"]), svc("b", &["a"])]).unwrap_err().to_string();
    assert_eq!(err, "dependency cycle: a -> b -> a");
    let err = check_dependencies(&[svc("a", &["ghost"])]).unwrap_err().to_string();
    assert_eq!(err, "service a depends on unknown service ghost");
    assert_eq!(check_dependencies(&[svc("a", &["a"])]).unwrap_err().to_string(), "service a depends on itself");
}

#[test]
fn stamps_domains_into_names_and_templates() {
    let mut body = ServiceBody { custom_domains: vec!["api.{{DOMAIN}}".into()], ..Default::default() };
    body.worker.vars.insert("PUBLIC_URL".into(), "https://{{ DOMAIN }}/x".into());
    body.worker.vars.insert("SUPPORT".into(), "{{SUPPORT_EMAIL}}".into());
    body.script_name = Some("auth".into());
    let p = portfolio(
        &["acme.com", "acme.io"],
        vec![PortfolioService { name: "auth".into(), depends_on: vec![], template: body }],
    );
    let kids = children(&p);
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0].name, "suite-auth-acme-com");
    assert_eq!(kids[1].name, "suite-auth-acme-io");
    assert_eq!(kids[1].domain.as_deref(), Some("acme.io"));
    assert_eq!(kids[1].body.custom_domains, vec!["api.acme.io"]);
    assert_eq!(kids[1].body.worker.vars["PUBLIC_URL"], "https://acme.io/x");
    // Other placeholders are left for the engine (Customer vars).
    assert_eq!(kids[1].body.worker.vars["SUPPORT"], "{{SUPPORT_EMAIL}}");
    assert_eq!(kids[0].body.script_name.as_deref(), Some("auth-acme-com"));
    // Without domains: one child per service, templates untouched.
    let p = portfolio(&[], vec![svc("auth", &[])]);
    assert_eq!(children(&p)[0].name, "suite-auth");
}

fn six() -> Vec<Child> {
    let p =
        portfolio(&["acme.com", "acme.io"], vec![svc("api", &["auth", "data"]), svc("auth", &[]), svc("data", &[])]);
    children(&p)
}

fn done() -> ChildState {
    ChildState { exists: true, up_to_date: true, ready: true, ..Default::default() }
}

fn busy() -> ChildState {
    ChildState { exists: true, up_to_date: true, ..Default::default() }
}

#[test]
fn waves_honour_the_limit_and_dependencies() {
    let kids = six();
    let names: Vec<&str> = kids.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "suite-auth-acme-com",
            "suite-auth-acme-io",
            "suite-data-acme-com",
            "suite-data-acme-io",
            "suite-api-acme-com",
            "suite-api-acme-io"
        ]
    );
    let mut states = BTreeMap::new();
    // Nothing exists: the first two eligible children start, two wait for capacity, api waits.
    let w = next_wave(&kids, &states, 2);
    assert_eq!(w.apply, ["suite-auth-acme-com", "suite-auth-acme-io"]);
    assert_eq!(w.waiting_on_capacity, ["suite-data-acme-com", "suite-data-acme-io"]);
    assert_eq!(w.waiting_on_dependencies, ["suite-api-acme-com", "suite-api-acme-io"]);
    assert_eq!(w.progressing, 2);
    // Both progressing: nothing more starts.
    states.insert("suite-auth-acme-com".to_string(), busy());
    states.insert("suite-auth-acme-io".to_string(), busy());
    let w = next_wave(&kids, &states, 2);
    assert!(w.apply.is_empty(), "{w:?}");
    // One is Ready: exactly one more starts.
    states.insert("suite-auth-acme-com".to_string(), done());
    let w = next_wave(&kids, &states, 2);
    assert_eq!(w.apply, ["suite-data-acme-com"]);
    // api waits until every stamp of auth and data is Ready.
    for n in ["suite-auth-acme-io", "suite-data-acme-com"] {
        states.insert(n.to_string(), done());
    }
    states.insert("suite-data-acme-io".to_string(), busy());
    let w = next_wave(&kids, &states, 2);
    assert!(w.apply.is_empty() && w.waiting_on_dependencies.len() == 2, "{w:?}");
    states.insert("suite-data-acme-io".to_string(), done());
    let w = next_wave(&kids, &states, 2);
    assert_eq!(w.apply, ["suite-api-acme-com", "suite-api-acme-io"]);
    // A Ready dependency with a pending update is not Ready for its dependents.
    states.insert("suite-auth-acme-io".to_string(), ChildState { up_to_date: false, ..done() });
    let w = next_wave(&kids, &states, 2);
    assert_eq!(w.apply, ["suite-auth-acme-io"]);
    assert_eq!(w.waiting_on_dependencies, ["suite-api-acme-com", "suite-api-acme-io"]);
}

#[test]
fn updating_a_progressing_child_takes_no_extra_slot_and_failures_free_theirs() {
    let kids = six();
    let mut states = BTreeMap::new();
    states.insert("suite-auth-acme-com".to_string(), ChildState { up_to_date: false, ..busy() });
    states.insert("suite-auth-acme-io".to_string(), busy());
    let w = next_wave(&kids, &states, 2);
    assert_eq!(w.apply, ["suite-auth-acme-com"]);
    assert_eq!(w.progressing, 2);
    // A failed child is not progressing: its slot goes to the next one, dependents wait.
    states.insert("suite-auth-acme-com".to_string(), ChildState { failed: true, ..busy() });
    let w = next_wave(&kids, &states, 2);
    assert_eq!(w.apply, ["suite-data-acme-com"]);
    // A foreign object of a child's name is never touched.
    let mut states = BTreeMap::new();
    states.insert("suite-auth-acme-com".to_string(), ChildState { exists: true, foreign: true, ..Default::default() });
    let w = next_wave(&kids, &states, 2);
    assert!(!w.apply.contains(&"suite-auth-acme-com".to_string()));
}

#[test]
fn aggregate_conditions() {
    let kids = six();
    let mut states: BTreeMap<String, ChildState> = kids.iter().map(|k| (k.name.clone(), done())).collect();
    let w = next_wave(&kids, &states, 2);
    let (svcs, ready, conds) = aggregate(&kids, &states, &BTreeMap::new(), &w, 2);
    assert_eq!(ready, "6/6");
    assert!(svcs.iter().all(|s| s.ready));
    assert_eq!(svcs[0].domain.as_deref(), Some("acme.com"));
    assert_eq!((conds[0].type_, conds[0].status), (c::READY, Some(true)));
    assert_eq!((conds[1].type_, conds[1].status), (c::PROGRESSING, Some(false)));
    assert_eq!((conds[2].type_, conds[2].status), (c::DEGRADED, Some(false)));

    states.insert("suite-auth-acme-com".to_string(), ChildState { failed: true, ready: false, ..done() });
    states.insert("suite-api-acme-com".to_string(), ChildState::default());
    states.insert("suite-api-acme-io".to_string(), ChildState::default());
    let w = next_wave(&kids, &states, 2);
    let (_, ready, conds) = aggregate(&kids, &states, &BTreeMap::new(), &w, 2);
    assert_eq!(ready, "3/6");
    assert_eq!(conds[0].reason, reason::SERVICES_FAILED);
    assert!(conds[0].message.contains("suite-auth-acme-com"), "{:?}", conds[0]);
    assert_eq!((conds[1].status, conds[1].reason.as_str()), (Some(false), reason::BLOCKED));
    assert!(conds[1].message.contains("suite-api-acme-io"), "{:?}", conds[1]);
    assert_eq!((conds[2].status, conds[2].reason.as_str()), (Some(true), reason::SERVICES_FAILED));

    let states = BTreeMap::new();
    let w = next_wave(&kids, &states, 2);
    let (_, ready, conds) = aggregate(&kids, &states, &BTreeMap::new(), &w, 2);
    assert_eq!(ready, "0/6");
    assert_eq!((conds[0].status, conds[0].reason.as_str()), (Some(false), reason::WAVE_IN_PROGRESS));
    assert_eq!((conds[1].status, conds[1].reason.as_str()), (Some(true), reason::WAVE_IN_PROGRESS));
    assert!(conds[1].message.starts_with("2 progressing (maxConcurrent 2)"), "{:?}", conds[1]);
}

// Objects in, plan out: a portfolio with a uid and the CloudflareServices it observes.

fn owned(max: u32, services: Vec<PortfolioService>) -> Portfolio {
    let mut p = portfolio(&[], services);
    p.spec.max_concurrent = max;
    p.metadata.namespace = Some("ns".into());
    p.metadata.uid = Some("pf-uid".into());
    p.metadata.generation = Some(3);
    p
}

fn now() -> Time {
    Time(Timestamp::from_second(1_700_000_000).unwrap())
}

fn conditions(specs: &[CondSpec]) -> Vec<Condition> {
    c::merge(&[], specs, Some(1), &now())
}

/// The child `service` of `p` as the controller would find it: applied, at generation 1, with
/// a status (`Some(true)` Ready, `Some(false)` Failed, `None` still deploying).
fn existing(p: &Portfolio, service: &str, ready: Option<bool>) -> CloudflareService {
    let child = children(p).into_iter().find(|w| w.service == service).unwrap();
    let mut s = child_object(p, &child);
    s.metadata.generation = Some(1);
    let (phase, cond) = match ready {
        Some(true) => (Phase::Ready, CondSpec::ok(c::READY, reason::READY, "ready")),
        Some(false) => (Phase::Failed, CondSpec::fail(c::READY, "MissingReference", "spec.worker.source")),
        None => (Phase::Deploying, CondSpec::fail(c::READY, "Deploying", "deploying")),
    };
    s.status = Some(CloudflareServiceStatus {
        observed_generation: Some(1),
        phase: Some(phase),
        conditions: conditions(&[cond]),
        ..Default::default()
    });
    s
}

fn observed(objects: Vec<CloudflareService>) -> Observed {
    Observed { children: objects.into_iter().map(|s| (s.name_any(), s)).collect(), ..Default::default() }
}

fn converge(p: &Portfolio, o: &Observed) -> Converge {
    match plan::plan(p, o) {
        Plan::Converge(steps) => steps,
        other => panic!("expected a wave, got {other:?}"),
    }
}

#[test]
fn plans_the_first_wave_from_nothing_and_builds_owned_children() {
    let p = owned(2, vec![svc("web", &["auth"]), svc("auth", &[]), svc("data", &[])]);
    let steps = converge(&p, &Observed::default());
    assert_eq!(steps.wave.apply, ["suite-auth", "suite-data"]);
    assert_eq!(steps.wave.waiting_on_dependencies, ["suite-web"]);
    assert!(steps.delete.is_empty());
    let applies: Vec<(CloudflareService, &str)> = steps.applies(&p).collect();
    assert_eq!(applies.len(), 2);
    let (auth, verb) = &applies[0];
    assert_eq!((auth.name_any().as_str(), *verb), ("suite-auth", "created"));
    assert_eq!(auth.namespace().as_deref(), Some("ns"));
    assert_eq!(auth.labels().get("clodo.dev/portfolio").map(String::as_str), Some("suite"));
    let o = &auth.owner_references()[0];
    assert_eq!((o.kind.as_str(), o.uid.as_str(), o.controller), ("Portfolio", "pf-uid", Some(true)));
    assert_eq!(auth.spec.customer_ref.name, "acme");
}

#[test]
fn max_concurrent_one_starts_one_child_at_a_time() {
    let p = owned(1, vec![svc("a", &[]), svc("b", &[]), svc("c", &[])]);
    let steps = converge(&p, &Observed::default());
    assert_eq!(steps.wave.apply, ["suite-a"]);
    assert_eq!(steps.wave.waiting_on_capacity, ["suite-b", "suite-c"]);
    // a deploying: nothing else starts.
    let steps = converge(&p, &observed(vec![existing(&p, "a", None)]));
    assert!(steps.wave.apply.is_empty(), "{:?}", steps.wave);
    assert_eq!(steps.wave.progressing, 1);
    // a Ready: b takes the slot; c keeps waiting.
    let steps = converge(&p, &observed(vec![existing(&p, "a", Some(true))]));
    assert_eq!(steps.wave.apply, ["suite-b"]);
    assert_eq!(steps.wave.waiting_on_capacity, ["suite-c"]);
    // maxConcurrent 0 is read as 1.
    let p0 = owned(0, vec![svc("a", &[]), svc("b", &[])]);
    assert_eq!(converge(&p0, &Observed::default()).wave.apply, ["suite-a"]);
}

#[test]
fn a_cycle_plans_nothing() {
    let p = owned(2, vec![svc("web", &[]), svc("auth", &["api"]), svc("api", &["auth"])]);
    // Even an undeclared child is left alone while dependsOn is invalid.
    let mut stale = existing(&p, "web", Some(true));
    stale.metadata.name = Some("suite-old".into());
    match plan::plan(&p, &observed(vec![stale])) {
        Plan::Invalid(DependencyError::Cycle { path }) => assert_eq!(path, ["auth", "api", "auth"]),
        other => panic!("{other:?}"),
    }
    let prev = PortfolioStatus::default();
    let e = DependencyError::Cycle { path: vec!["auth".into(), "api".into(), "auth".into()] };
    let pass = finish::invalid(&p, &prev, &e, &now());
    let ready = c::find(&pass.status.conditions, c::READY).unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", reason::INVALID_DEPENDENCIES));
    assert_eq!(ready.message, "dependency cycle: auth -> api -> auth");
    assert_eq!(pass.events.len(), 1);
    // Reported once: the same problem again publishes nothing.
    assert!(finish::invalid(&p, &pass.status, &e, &now()).events.is_empty());
}

#[test]
fn a_failed_dependency_holds_its_dependants() {
    let p = owned(2, vec![svc("web", &["auth"]), svc("auth", &[]), svc("data", &[])]);
    let o = observed(vec![existing(&p, "auth", Some(false)), existing(&p, "data", Some(true))]);
    let steps = converge(&p, &o);
    assert!(steps.wave.apply.is_empty(), "{:?}", steps.wave);
    assert_eq!(steps.wave.waiting_on_dependencies, ["suite-web"]);
    // The failed child frees its slot.
    assert_eq!(steps.wave.progressing, 0);
    let pass = finish::finish(&p, &PortfolioStatus::default(), &o, &steps, Default::default(), &now());
    let cond = |t: &str| c::find(&pass.status.conditions, t).map(|x| (x.status.clone(), x.reason.clone())).unwrap();
    assert_eq!(cond(c::READY), ("False".into(), reason::SERVICES_FAILED.into()));
    assert_eq!(cond(c::PROGRESSING), ("False".into(), reason::BLOCKED.into()));
    assert_eq!(cond(c::DEGRADED), ("True".into(), reason::SERVICES_FAILED.into()));
    assert_eq!(pass.status.ready_services.as_deref(), Some("1/3"));
    let phases: Vec<Option<&str>> = pass.status.services.iter().map(|s| s.phase.as_deref()).collect();
    assert_eq!(phases, [Some("Failed"), Some("Ready"), None]);
    assert!(pass.events.iter().any(|e| e.warning && e.reason == reason::SERVICES_FAILED));
}

#[test]
fn deletes_undeclared_children_and_never_touches_foreign_ones() {
    let p = owned(2, vec![svc("auth", &[]), svc("data", &[])]);
    let mut gone = existing(&p, "auth", Some(true));
    gone.metadata.name = Some("suite-api".into());
    let mut going = gone.clone();
    going.metadata.name = Some("suite-old".into());
    going.metadata.deletion_timestamp = Some(now());
    let mut o = observed(vec![existing(&p, "auth", Some(true)), gone, going]);
    o.foreign.insert("suite-data".into());
    let steps = converge(&p, &o);
    assert_eq!(steps.delete, ["suite-api"], "a child already being deleted is not deleted again");
    assert!(steps.wave.apply.is_empty(), "{:?}", steps.wave);
    assert!(steps.states["suite-data"].foreign);
    // An outdated spec is updated in place.
    let mut outdated = existing(&p, "auth", Some(true));
    outdated.spec.body.script_name = Some("old".into());
    let steps = converge(&p, &observed(vec![outdated]));
    let verbs: Vec<(String, &str)> = steps.applies(&p).map(|(s, v)| (s.name_any(), v)).collect();
    assert_eq!(verbs, [("suite-auth".to_string(), "updated"), ("suite-data".to_string(), "created")]);
}

#[test]
fn a_child_settled_by_the_store_counts_as_ready_or_failed() {
    let p = owned(1, vec![svc("web", &["auth"]), svc("auth", &[])]);
    // Deployed to its end without Ready (the CLI's sandbox cannot run production tests).
    let mut o = observed(vec![existing(&p, "auth", None)]);
    o.settled.insert("suite-auth".into(), true);
    assert_eq!(converge(&p, &o).wave.apply, ["suite-web"]);
    o.settled.insert("suite-auth".into(), false);
    let steps = converge(&p, &o);
    assert!(steps.wave.apply.is_empty());
    assert!(steps.states["suite-auth"].failed);
}
