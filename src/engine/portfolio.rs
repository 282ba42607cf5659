//! The Portfolio core, pure: which children a Portfolio wants (stamped per domain), dependency
//! checks, the next wave within `maxConcurrent`, and the aggregate status. The controller applies
//! what it plans; the CLI's Portfolio deploy uses the same children and dependency order.

use std::collections::{BTreeMap, BTreeSet};

use crate::crd::conditions::{self as c, CondSpec, reason};
use kube::ResourceExt;
use serde_json::Value;

use crate::crd::{
    CloudflareService, CloudflareServiceSpec, Phase, Portfolio, PortfolioService, PortfolioServiceStatus, ServiceBody,
};

/// One child the portfolio wants.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    /// The portfolio service it comes from.
    pub service: String,
    /// The domain it was stamped for, when the portfolio has `domains`.
    pub domain: Option<String>,
    /// Name of the generated CloudflareService.
    pub name: String,
    /// Portfolio service names that must be Ready first.
    pub depends_on: Vec<String>,
    pub body: ServiceBody,
}

/// Check `dependsOn`: every name known, no self-dependency, no cycle (the cycle is named as
/// `a -> b -> a`, read "a depends on b"). Returns the service names in deployment order: wave by
/// wave (a service's wave is one more than its deepest dependency's), spec order within a wave.
pub fn check_dependencies(services: &[PortfolioService]) -> Result<Vec<String>, String> {
    let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let deps: BTreeMap<&str, BTreeSet<&str>> =
        services.iter().map(|s| (s.name.as_str(), s.depends_on.iter().map(String::as_str).collect())).collect();
    for s in services {
        for d in &s.depends_on {
            if d == &s.name {
                return Err(format!("service {} depends on itself", s.name));
            }
            if !names.contains(d.as_str()) {
                return Err(format!("service {} depends on unknown service {d}", s.name));
            }
        }
    }
    // Peel off waves: a service joins once all its dependencies are placed.
    let mut wave_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut wave = 0;
    while wave_of.len() < services.len() {
        let next: Vec<&str> = services
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| !wave_of.contains_key(n) && deps[n].iter().all(|d| wave_of.get(d).is_some_and(|w| *w < wave)))
            .collect();
        if next.is_empty() {
            return Err(name_cycle(services, &deps, &wave_of));
        }
        for n in next {
            wave_of.insert(n, wave);
        }
        wave += 1;
    }
    let mut order: Vec<&PortfolioService> = services.iter().collect();
    order.sort_by_key(|s| wave_of[s.name.as_str()]);
    Ok(order.into_iter().map(|s| s.name.clone()).collect())
}

/// Name one cycle among the services that could not be placed: walk unplaced dependencies from
/// an unplaced service until a service repeats (every unplaced service has an unplaced dependency).
fn name_cycle(
    services: &[PortfolioService],
    deps: &BTreeMap<&str, BTreeSet<&str>>,
    placed: &BTreeMap<&str, usize>,
) -> String {
    let unplaced = |n: &str| !placed.contains_key(n);
    let Some(first) = services.iter().map(|s| s.name.as_str()).find(|n| unplaced(n)) else {
        return "dependency cycle".into();
    };
    let mut path: Vec<&str> = Vec::new();
    let mut cur = first;
    while !path.contains(&cur) {
        path.push(cur);
        match deps[cur].iter().find(|d| unplaced(d)) {
            Some(next) => cur = next,
            None => break,
        }
    }
    let start = path.iter().position(|p| *p == cur).unwrap_or(0);
    let mut cycle: Vec<&str> = path[start..].to_vec();
    cycle.push(cur);
    format!("dependency cycle: {}", cycle.join(" -> "))
}

/// DNS-label-safe suffix for a domain (`acme.com` -> `acme-com`).
pub fn slug(domain: &str) -> String {
    domain.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// Replace `{{DOMAIN}}` (also `{{ DOMAIN }}`) in every string of a template.
fn stamp(body: &ServiceBody, domain: &str) -> ServiceBody {
    fn walk(v: &mut Value, domain: &str) {
        match v {
            Value::String(s) if s.contains("{{") => {
                *s = s.replace("{{DOMAIN}}", domain).replace("{{ DOMAIN }}", domain);
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, domain)),
            Value::Object(o) => o.values_mut().for_each(|x| walk(x, domain)),
            _ => {}
        }
    }
    let Ok(mut v) = serde_json::to_value(body) else { return body.clone() };
    walk(&mut v, domain);
    serde_json::from_value(v).unwrap_or_else(|_| body.clone())
}

/// The children a portfolio declares, in deployment order (see [`check_dependencies`]); spec
/// order when the dependencies are invalid.
pub fn children(p: &Portfolio) -> Vec<Child> {
    let pname = p.name_any();
    let order = check_dependencies(&p.spec.services)
        .unwrap_or_else(|_| p.spec.services.iter().map(|s| s.name.clone()).collect());
    let by_name: BTreeMap<&str, &PortfolioService> = p.spec.services.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut out = Vec::new();
    for s in order.iter().filter_map(|n| by_name.get(n.as_str())) {
        let depends_on: Vec<String> =
            s.depends_on.iter().collect::<BTreeSet<_>>().into_iter().cloned().collect::<Vec<_>>();
        if p.spec.domains.is_empty() {
            out.push(Child {
                service: s.name.clone(),
                domain: None,
                name: format!("{pname}-{}", s.name),
                depends_on,
                body: s.template.clone(),
            });
            continue;
        }
        for d in &p.spec.domains {
            let mut body = stamp(&s.template, d);
            if let Some(sn) = &body.script_name {
                body.script_name = Some(format!("{sn}-{}", slug(d)));
            }
            out.push(Child {
                service: s.name.clone(),
                domain: Some(d.clone()),
                name: format!("{pname}-{}-{}", s.name, slug(d)),
                depends_on: depends_on.clone(),
                body,
            });
        }
    }
    out
}

/// What the controller knows about one wanted child.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildState {
    pub exists: bool,
    /// Its spec is the one the portfolio wants now.
    pub up_to_date: bool,
    /// `Ready=True` at its current generation.
    pub ready: bool,
    /// `Failed` or `RolledBack` at its current generation.
    pub failed: bool,
    /// Being deleted (it will be recreated once gone).
    pub deleting: bool,
    /// A CloudflareService of that name exists but this portfolio does not control it.
    pub foreign: bool,
}

impl ChildState {
    pub fn of(s: &CloudflareService, desired: &CloudflareServiceSpec) -> Self {
        let current = s.status.as_ref().filter(|st| st.observed_generation == s.metadata.generation);
        Self {
            exists: true,
            up_to_date: &s.spec == desired,
            ready: current.is_some_and(|st| c::is_true(&st.conditions, c::READY)),
            failed: current.is_some_and(|st| matches!(st.phase, Some(Phase::Failed | Phase::RolledBack))),
            deleting: s.metadata.deletion_timestamp.is_some(),
            foreign: false,
        }
    }

    /// Deploying (or being deleted): takes one of the `maxConcurrent` slots.
    pub fn progressing(&self) -> bool {
        self.exists && !self.foreign && (self.deleting || (!self.ready && !self.failed))
    }

    /// At the desired spec and Ready.
    pub fn done(&self) -> bool {
        self.exists && !self.foreign && !self.deleting && self.up_to_date && self.ready
    }
}

/// The next wave of a portfolio.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wave {
    /// Children to create or update now.
    pub apply: Vec<String>,
    /// Children whose dependencies are not all Ready.
    pub waiting_on_dependencies: Vec<String>,
    /// Children that could start but `maxConcurrent` are already progressing.
    pub waiting_on_capacity: Vec<String>,
    /// Children progressing once this wave is applied.
    pub progressing: usize,
}

/// Plan the next wave: walk the children in deployment order and start each one whose
/// dependencies are all Ready (every domain stamp at the desired spec and Ready) while fewer than
/// `limit` children are progressing. Updating a child that is already progressing takes no extra
/// slot.
pub fn next_wave(wanted: &[Child], states: &BTreeMap<String, ChildState>, limit: usize) -> Wave {
    let state = |n: &str| states.get(n).copied().unwrap_or_default();
    let service_ready = |svc: &str| wanted.iter().filter(|w| w.service == svc).all(|w| state(&w.name).done());
    let mut wave =
        Wave { progressing: wanted.iter().filter(|w| state(&w.name).progressing()).count(), ..Default::default() };
    for w in wanted {
        let st = state(&w.name);
        if st.foreign || st.deleting || (st.exists && st.up_to_date) {
            continue;
        }
        if !w.depends_on.iter().all(|d| service_ready(d)) {
            wave.waiting_on_dependencies.push(w.name.clone());
            continue;
        }
        if !st.progressing() {
            if wave.progressing >= limit.max(1) {
                wave.waiting_on_capacity.push(w.name.clone());
                continue;
            }
            wave.progressing += 1;
        }
        wave.apply.push(w.name.clone());
    }
    wave
}

/// Aggregate status of the children: `services[]`, `readyServices` and the conditions.
pub fn aggregate(
    wanted: &[Child],
    states: &BTreeMap<String, ChildState>,
    phases: &BTreeMap<String, String>,
    wave: &Wave,
    limit: usize,
) -> (Vec<PortfolioServiceStatus>, String, Vec<CondSpec>) {
    let state = |n: &str| states.get(n).copied().unwrap_or_default();
    let services: Vec<PortfolioServiceStatus> = wanted
        .iter()
        .map(|w| PortfolioServiceStatus {
            name: w.service.clone(),
            domain: w.domain.clone(),
            service: w.name.clone(),
            phase: phases.get(&w.name).cloned(),
            ready: state(&w.name).done(),
        })
        .collect();
    let total = wanted.len();
    let ready = services.iter().filter(|s| s.ready).count();
    let failed: Vec<&str> = wanted.iter().filter(|w| state(&w.name).failed).map(|w| w.name.as_str()).collect();
    let foreign: Vec<&str> = wanted.iter().filter(|w| state(&w.name).foreign).map(|w| w.name.as_str()).collect();

    let ready_cond = if ready == total {
        CondSpec::ok(c::READY, reason::SERVICES_READY, format!("{ready}/{total} services ready"))
    } else if !foreign.is_empty() {
        CondSpec::fail(
            c::READY,
            reason::CONFLICT,
            format!("CloudflareService {} exists and is not owned by this portfolio", foreign.join(", ")),
        )
    } else if !failed.is_empty() {
        CondSpec::fail(
            c::READY,
            reason::SERVICES_FAILED,
            format!("{ready}/{total} services ready; failed: {}", failed.join(", ")),
        )
    } else {
        CondSpec::fail(c::READY, reason::WAVE_IN_PROGRESS, format!("{ready}/{total} services ready"))
    };
    let waiting = wave.waiting_on_dependencies.len() + wave.waiting_on_capacity.len();
    let progressing_cond = if wave.progressing > 0 {
        CondSpec::ok(
            c::PROGRESSING,
            reason::WAVE_IN_PROGRESS,
            format!(
                "{} progressing (maxConcurrent {limit}), {} waiting for dependencies, {} waiting for capacity",
                wave.progressing,
                wave.waiting_on_dependencies.len(),
                wave.waiting_on_capacity.len()
            ),
        )
    } else if waiting > 0 {
        CondSpec::fail(
            c::PROGRESSING,
            reason::BLOCKED,
            format!(
                "nothing can progress: {} wait for dependencies that are not Ready",
                wave.waiting_on_dependencies.join(", ")
            ),
        )
    } else if ready == total {
        CondSpec::fail(c::PROGRESSING, reason::SERVICES_READY, "all services ready at the desired spec")
    } else {
        CondSpec::fail(c::PROGRESSING, reason::BLOCKED, "no service can progress")
    };
    let degraded_cond = if !foreign.is_empty() {
        CondSpec::ok(c::DEGRADED, reason::CONFLICT, format!("not owned by this portfolio: {}", foreign.join(", ")))
    } else if !failed.is_empty() {
        CondSpec::ok(c::DEGRADED, reason::SERVICES_FAILED, format!("failed: {}", failed.join(", ")))
    } else {
        CondSpec::fail(c::DEGRADED, reason::NO_FAILURES, "no failed services")
    };
    (services, format!("{ready}/{total}"), vec![ready_cond, progressing_cond, degraded_cond])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Environment, LocalObjectRef, PortfolioSpec};

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
        let order = check_dependencies(&[
            svc("api", &["auth", "data"]),
            svc("data", &["auth"]),
            svc("auth", &[]),
            svc("web", &[]),
        ])
        .unwrap();
        assert_eq!(order, ["auth", "web", "data", "api"]);
        // A repeated dependency is not mistaken for a cycle.
        assert_eq!(check_dependencies(&[svc("b", &["a", "a"]), svc("a", &[])]).unwrap(), ["a", "b"]);
    }

    #[test]
    fn names_cycles_and_unknown_dependencies() {
        let err =
            check_dependencies(&[svc("d", &[]), svc("a", &["b"]), svc("b", &["c"]), svc("c", &["a"])]).unwrap_err();
        assert_eq!(err, "dependency cycle: a -> b -> c -> a");
        // A service behind a cycle is not part of the named cycle.
        let err = check_dependencies(&[svc("x", &["a"]), svc("a", &["b"]), svc("b", &["a"])]).unwrap_err();
        assert_eq!(err, "dependency cycle: a -> b -> a");
        let err = check_dependencies(&[svc("a", &["ghost"])]).unwrap_err();
        assert_eq!(err, "service a depends on unknown service ghost");
        assert_eq!(check_dependencies(&[svc("a", &["a"])]).unwrap_err(), "service a depends on itself");
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
        let p = portfolio(
            &["acme.com", "acme.io"],
            vec![svc("api", &["auth", "data"]), svc("auth", &[]), svc("data", &[])],
        );
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
        states.insert(
            "suite-auth-acme-com".to_string(),
            ChildState { exists: true, foreign: true, ..Default::default() },
        );
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
}
