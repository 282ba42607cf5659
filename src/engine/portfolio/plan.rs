//! The Portfolio planner, pure: the children a Portfolio wants (stamped per domain), the
//! dependency check, and from the observed children which to delete, create, update or hold.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::observe::Observed;
use crate::crd::conditions as c;
use crate::crd::keys::{LABEL_MANAGED_BY, LABEL_PORTFOLIO, MANAGED_BY};
use crate::crd::{CloudflareService, CloudflareServiceSpec, Phase, Portfolio, PortfolioService, ServiceBody};

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

/// Why `spec.services[].dependsOn` cannot be ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DependencyError {
    #[error("service {service} depends on itself")]
    OnItself { service: String },
    #[error("service {service} depends on unknown service {dependency}")]
    Unknown { service: String, dependency: String },
    /// `path` reads "a depends on b depends on … a".
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle { path: Vec<String> },
}

/// Check `dependsOn`: every name known, no self-dependency, no cycle (the cycle is named as
/// `a -> b -> a`, read "a depends on b"). Returns the service names in deployment order: wave by
/// wave (a service's wave is one more than its deepest dependency's), spec order within a wave.
pub fn check_dependencies(services: &[PortfolioService]) -> Result<Vec<String>, DependencyError> {
    let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let deps: BTreeMap<&str, BTreeSet<&str>> =
        services.iter().map(|s| (s.name.as_str(), s.depends_on.iter().map(String::as_str).collect())).collect();
    for s in services {
        for d in &s.depends_on {
            if d == &s.name {
                return Err(DependencyError::OnItself { service: s.name.clone() });
            }
            if !names.contains(d.as_str()) {
                return Err(DependencyError::Unknown { service: s.name.clone(), dependency: d.clone() });
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
            return Err(DependencyError::Cycle { path: name_cycle(services, &deps, &wave_of) });
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
) -> Vec<String> {
    let unplaced = |n: &str| !placed.contains_key(n);
    let Some(first) = services.iter().map(|s| s.name.as_str()).find(|n| unplaced(n)) else {
        return Vec::new();
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
    path[start..].iter().chain([&cur]).map(|s| s.to_string()).collect()
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
        let depends_on: Vec<String> = s.depends_on.iter().collect::<BTreeSet<_>>().into_iter().cloned().collect();
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

/// The spec of a child: the portfolio's Customer and environment, the stamped template.
pub fn child_spec(p: &Portfolio, child: &Child) -> CloudflareServiceSpec {
    CloudflareServiceSpec {
        customer_ref: p.spec.customer_ref.clone(),
        environment: p.spec.environment,
        body: child.body.clone(),
    }
}

/// The CloudflareService to apply for a child: labelled, controlled by the portfolio.
pub fn child_object(p: &Portfolio, child: &Child) -> CloudflareService {
    CloudflareService {
        metadata: ObjectMeta {
            name: Some(child.name.clone()),
            namespace: Some(p.namespace().unwrap_or_else(|| "default".into())),
            labels: Some(BTreeMap::from([
                (LABEL_PORTFOLIO.to_string(), p.name_any()),
                (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
            ])),
            owner_references: Some(p.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        spec: child_spec(p, child),
        status: None,
    }
}

/// Does this portfolio control the object (ownerReference with its uid and `controller: true`)?
pub fn controlled_by(s: &CloudflareService, p: &Portfolio) -> bool {
    let uid = p.uid();
    s.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref() && o.controller == Some(true))
}

/// What the planner knows about one wanted child.
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

    /// A child whose deployment the adapter ran to its end: good enough for its dependants
    /// (`ok`) or failed.
    pub fn settled(self, ok: bool) -> Self {
        Self { ready: ok, failed: !ok, ..self }
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

/// One Portfolio pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// `dependsOn` cannot be ordered: nothing is created, changed or deleted.
    Invalid(DependencyError),
    Converge(Converge),
}

/// Bring the children one wave closer to the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Converge {
    /// Every wanted child, in deployment order.
    pub wanted: Vec<Child>,
    /// Children this portfolio controls and no longer declares (their finalizers clean up).
    pub delete: Vec<String>,
    /// What the planner knows of each wanted child before this pass.
    pub states: BTreeMap<String, ChildState>,
    pub wave: Wave,
    /// `maxConcurrent` (at least 1).
    pub limit: usize,
}

impl Converge {
    /// The CloudflareServices to apply, in wave order, with "created" or "updated".
    pub fn applies<'a>(&'a self, p: &'a Portfolio) -> impl Iterator<Item = (CloudflareService, &'static str)> + 'a {
        self.wave.apply.iter().filter_map(move |name| {
            let child = self.wanted.iter().find(|w| &w.name == name)?;
            let verb = if self.states.get(name).is_some_and(|s| s.exists) { "updated" } else { "created" };
            Some((child_object(p, child), verb))
        })
    }
}

/// Plan a pass from the portfolio and its observed children.
pub fn plan(p: &Portfolio, observed: &Observed) -> Plan {
    if let Err(e) = check_dependencies(&p.spec.services) {
        return Plan::Invalid(e);
    }
    let wanted = children(p);
    let names: BTreeSet<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
    let delete = observed
        .children
        .values()
        .filter(|s| !names.contains(s.name_any().as_str()) && s.metadata.deletion_timestamp.is_none())
        .map(|s| s.name_any())
        .collect();
    let mut states = BTreeMap::new();
    for w in &wanted {
        let st = match observed.children.get(&w.name) {
            Some(s) => {
                let st = ChildState::of(s, &child_spec(p, w));
                observed.settled.get(&w.name).map_or(st, |ok| st.settled(*ok))
            }
            None if observed.foreign.contains(&w.name) => {
                ChildState { exists: true, foreign: true, ..Default::default() }
            }
            None => ChildState::default(),
        };
        states.insert(w.name.clone(), st);
    }
    let limit = p.spec.max_concurrent.max(1) as usize;
    let wave = next_wave(&wanted, &states, limit);
    Plan::Converge(Converge { wanted, delete, states, wave, limit })
}
