//! Pure: compare desired with observed Cloudflare state and produce ordered, named steps.

use std::collections::BTreeMap;

use super::desired::Desired;
use super::migrations::{self, ChecksumMismatch};
pub use super::steps::{Step, UploadMode, UploadReason};
use crate::crd::conditions::{DATABASES_READY, ROUTES_CONFIGURED, WORKER_DEPLOYED};
use crate::crd::keys::OWNER_TAG_PREFIX;
use crate::crd::{AppliedMigration, Ownership};

/// What the Worker script looks like in Cloudflare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedScript {
    pub tags: Vec<String>,
    pub secret_names: Vec<String>,
    /// Version serving 100% (or the larger share of a split deployment).
    pub deployed_version: Option<String>,
    /// Content hash recorded on that version (`workers/tag` annotation).
    pub deployed_hash: Option<String>,
    /// All (version id, percentage) of the active deployment.
    pub deployment: Vec<(String, u32)>,
    /// Whether the script answers on its workers.dev URL (read only when the service has no
    /// route or custom domain).
    pub workers_dev_enabled: Option<bool>,
    /// Ids of the D1 databases the serving script binds.
    pub d1_ids: Vec<String>,
}

/// A D1 database found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDatabase {
    pub id: String,
    /// Names in the tracking table, when read this pass (never for a database we do not own).
    pub applied: Option<Vec<String>>,
    /// Why this service may use it; `None` = of unknown origin (a conflict unless adopted).
    pub ownership: Option<Ownership>,
}

/// A zone route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRoute {
    pub id: String,
    pub pattern: String,
    pub script: Option<String>,
    pub zone: String,
    pub zone_id: String,
}

/// A Workers custom domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDomain {
    pub id: String,
    pub hostname: String,
    pub service: String,
    pub zone_id: String,
}

/// Current Cloudflare state relevant to one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub script: Option<ObservedScript>,
    pub databases: BTreeMap<String, ObservedDatabase>,
    pub zone_ids: BTreeMap<String, String>,
    /// Routes in every zone the service declares or owns routes in.
    pub routes: Vec<ObservedRoute>,
    /// Domains for the declared hostnames plus every domain attached to the script.
    pub domains: Vec<ObservedDomain>,
    /// The account's workers.dev subdomain, read when the service has no route or domain.
    pub workers_subdomain: Option<String>,
}

/// A plan: steps in execution order, plus the migration bookkeeping computed on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Per binding: migrations known applied before this plan runs.
    pub applied: BTreeMap<String, Vec<AppliedMigration>>,
    /// Content hash the Worker will have when every database id is known now (None if a
    /// database is yet to be created).
    pub content_hash: Option<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Something exists and belongs to someone else. `on` is the condition type it affects.
    #[error("{message}")]
    Conflict { on: &'static str, message: String },
    #[error("{binding}: {source}")]
    Checksum {
        binding: String,
        #[source]
        source: ChecksumMismatch,
    },
}

/// Who owns a script according to its tags.
pub fn script_owner(tags: &[String]) -> Option<&str> {
    tags.iter().find_map(|t| t.strip_prefix(OWNER_TAG_PREFIX))
}

/// Compute the plan. `recorded` is the per-binding migration record from status.
pub fn plan(d: &Desired, o: &Observed, recorded: &BTreeMap<String, Vec<AppliedMigration>>) -> Result<Plan, PlanError> {
    let mut steps = Vec::new();
    let mut applied = BTreeMap::new();
    let me = format!("{}.{}", d.namespace, d.name);

    // Ownership of the script first: a conflict stops everything before any change.
    let mut needs_tag = false;
    if let Some(script) = &o.script {
        match script_owner(&script.tags) {
            Some(owner) if owner == me => {}
            Some(owner) => {
                return Err(PlanError::Conflict {
                    on: WORKER_DEPLOYED,
                    message: format!(
                        "worker {} is owned by {} (tag {OWNER_TAG_PREFIX}{owner})",
                        d.script_name,
                        owner.replacen('.', "/", 1)
                    ),
                });
            }
            None if d.adopt => needs_tag = true,
            None => {
                return Err(PlanError::Conflict {
                    on: WORKER_DEPLOYED,
                    message: format!(
                        "worker {} already exists and is not managed by clodo-operator; set annotation clodo.dev/adopt=\"true\" to adopt it",
                        d.script_name
                    ),
                });
            }
        }
    }
    for r in &d.routes {
        if let Some(existing) = o.routes.iter().find(|x| x.pattern == r.pattern && x.zone == r.zone)
            && let Some(other) = &existing.script
            && other != &d.script_name
        {
            return Err(PlanError::Conflict {
                on: ROUTES_CONFIGURED,
                message: format!("route {} is attached to worker {other}", r.pattern),
            });
        }
    }
    for dom in &d.custom_domains {
        if let Some(existing) = o.domains.iter().find(|x| x.hostname == dom.hostname)
            && existing.service != d.script_name
        {
            return Err(PlanError::Conflict {
                on: ROUTES_CONFIGURED,
                message: format!("custom domain {} is attached to worker {}", dom.hostname, existing.service),
            });
        }
    }

    // Databases and migrations.
    let mut ids = BTreeMap::new();
    let mut creating = false;
    for db in &d.databases {
        if let Some(f) = o.databases.get(&db.binding)
            && f.ownership.is_none()
        {
            return Err(PlanError::Conflict {
                on: DATABASES_READY,
                message: format!(
                    "d1 database {} (binding {}) already exists and was not created by this resource; set annotation clodo.dev/adopt=\"true\" to adopt it",
                    db.name, db.binding
                ),
            });
        }
    }
    for db in &d.databases {
        let rec = recorded.get(&db.binding).map(Vec::as_slice).unwrap_or_default();
        let found = o.databases.get(&db.binding);
        let in_db = found.and_then(|f| f.applied.as_deref());
        let state = if found.is_none() {
            migrations::compare(&db.migrations, &[], Some(&[]))
        } else {
            migrations::compare(&db.migrations, rec, in_db)
        }
        .map_err(|source| PlanError::Checksum { binding: db.binding.clone(), source })?;
        match found {
            Some(f) => {
                ids.insert(db.binding.clone(), f.id.clone());
            }
            None => {
                creating = true;
                steps.push(Step::CreateDatabase { binding: db.binding.clone(), name: db.name.clone() });
            }
        }
        if !state.pending.is_empty() {
            steps.push(Step::ApplyMigrations {
                binding: db.binding.clone(),
                database: db.name.clone(),
                files: state.pending,
                bookmark: d.environment == crate::crd::Environment::Production && found.is_some(),
            });
        }
        applied.insert(db.binding.clone(), state.applied);
    }

    // Worker.
    let content_hash = (!creating).then(|| d.content_hash(&ids));
    match &o.script {
        None => steps.push(Step::UploadWorker { reason: UploadReason::New, mode: UploadMode::Full }),
        Some(script) => {
            for s in &script.secret_names {
                if !d.secret_names().any(|n| n == s) {
                    steps.push(Step::DeleteSecret { name: s.clone() });
                }
            }
            let changed = match &content_hash {
                None => true,
                Some(h) => script.deployed_hash.as_deref() != Some(h.as_str()),
            };
            if changed || steps.iter().any(|s| matches!(s, Step::DeleteSecret { .. })) {
                steps.push(Step::UploadWorker { reason: UploadReason::Changed, mode: UploadMode::Full });
            }
        }
    }
    // A new script gets our owner tag with its upload; an adopted one is tagged after it.
    if needs_tag {
        steps.push(Step::TagScript);
    }

    // Routes: create missing, repoint unattached ones, delete ours that are no longer declared.
    for r in &d.routes {
        match o.routes.iter().find(|x| x.pattern == r.pattern && x.zone == r.zone) {
            None => steps.push(Step::CreateRoute { pattern: r.pattern.clone(), zone: r.zone.clone() }),
            Some(x) if x.script.as_deref() != Some(d.script_name.as_str()) => {
                steps.push(Step::UpdateRoute { id: x.id.clone(), pattern: r.pattern.clone(), zone: r.zone.clone() })
            }
            Some(_) => {}
        }
    }
    let script_is_ours = o.script.is_some() && !needs_tag;
    if script_is_ours {
        for x in &o.routes {
            if x.script.as_deref() == Some(d.script_name.as_str())
                && !d.routes.iter().any(|r| r.pattern == x.pattern && r.zone == x.zone)
            {
                steps.push(Step::DeleteRoute { id: x.id.clone(), pattern: x.pattern.clone(), zone: x.zone.clone() });
            }
        }
    }

    // Custom domains.
    for dom in &d.custom_domains {
        if !o.domains.iter().any(|x| x.hostname == dom.hostname && x.service == d.script_name) {
            steps.push(Step::AttachDomain { hostname: dom.hostname.clone(), zone: dom.zone.clone() });
        }
    }
    if script_is_ours {
        for x in &o.domains {
            if x.service == d.script_name && !d.custom_domains.iter().any(|c| c.hostname == x.hostname) {
                steps.push(Step::DetachDomain { id: x.id.clone(), hostname: x.hostname.clone() });
            }
        }
    }

    // Without a route or custom domain the service is reached on workers.dev.
    if d.routes.is_empty() && d.custom_domains.is_empty() {
        let enabled = o.script.as_ref().and_then(|s| s.workers_dev_enabled).unwrap_or(false);
        if !enabled {
            steps.push(Step::EnableWorkersDev);
        }
    }

    Ok(Plan { steps, applied, content_hash })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::desired::build;
    use crate::engine::fixtures::inputs;
    use crate::engine::migrations::MigrationFile;

    fn desired() -> Desired {
        build(&inputs()).unwrap()
    }

    fn converged(d: &Desired) -> Observed {
        let ids = BTreeMap::from([("DB".to_string(), "db-1".to_string())]);
        Observed {
            script: Some(ObservedScript {
                tags: vec![d.owner_tag.clone()],
                secret_names: vec!["JWT".into()],
                deployed_version: Some("v1".into()),
                deployed_hash: Some(d.content_hash(&ids)),
                deployment: vec![("v1".into(), 100)],
                workers_dev_enabled: None,
                d1_ids: vec!["db-1".into()],
            }),
            databases: BTreeMap::from([(
                "DB".to_string(),
                ObservedDatabase {
                    id: "db-1".into(),
                    applied: Some(vec!["0001_init.sql".into()]),
                    ownership: Some(Ownership::Created),
                },
            )]),
            zone_ids: BTreeMap::from([("acme.com".to_string(), "z1".to_string())]),
            routes: vec![ObservedRoute {
                id: "r1".into(),
                pattern: "api.acme.com/*".into(),
                script: Some(d.script_name.clone()),
                zone: "acme.com".into(),
                zone_id: "z1".into(),
            }],
            domains: vec![ObservedDomain {
                id: "d1".into(),
                hostname: "api.acme.com".into(),
                service: d.script_name.clone(),
                zone_id: "z1".into(),
            }],
            workers_subdomain: None,
        }
    }

    fn kinds(p: &Plan) -> Vec<&'static str> {
        p.steps.iter().map(Step::kind).collect()
    }

    #[test]
    fn fresh_service_creates_everything_in_order() {
        let d = desired();
        let p = plan(&d, &Observed::default(), &BTreeMap::new()).unwrap();
        assert_eq!(kinds(&p), vec!["CreateDatabase", "ApplyMigrations", "UploadWorker", "CreateRoute", "AttachDomain"]);
        assert!(p.content_hash.is_none());
        assert!(matches!(&p.steps[1], Step::ApplyMigrations { bookmark: false, .. }));
    }

    #[test]
    fn converged_service_plans_nothing() {
        let d = desired();
        let p = plan(&d, &converged(&d), &BTreeMap::new()).unwrap();
        assert!(p.is_empty(), "{:?}", p.steps);
        assert_eq!(p.applied["DB"][0].name, "0001_init.sql");
    }

    #[test]
    fn code_change_uploads_only() {
        let mut i = inputs();
        i.modules[0].content = b"export default { fetch() {} }".to_vec();
        let changed = build(&i).unwrap();
        let p = plan(&changed, &converged(&desired()), &BTreeMap::new()).unwrap();
        assert_eq!(kinds(&p), vec!["UploadWorker"]);
    }

    #[test]
    fn new_migration_only_applies_it_with_a_production_bookmark() {
        let mut i = inputs();
        i.migrations.get_mut("DB").unwrap().push(MigrationFile::new("0002_more.sql", "CREATE TABLE u(y);"));
        let d = build(&i).unwrap();
        let p = plan(&d, &converged(&d), &BTreeMap::new()).unwrap();
        assert_eq!(kinds(&p), vec!["ApplyMigrations"]);
        match &p.steps[0] {
            Step::ApplyMigrations { files, bookmark, .. } => {
                assert_eq!(files.len(), 1);
                assert_eq!(files[0].name, "0002_more.sql");
                assert!(bookmark);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn modified_applied_migration_is_a_checksum_error() {
        let d = desired();
        let recorded = BTreeMap::from([(
            "DB".to_string(),
            vec![AppliedMigration { name: "0001_init.sql".into(), checksum: "sha256:old".into(), applied_at: None }],
        )]);
        let err = plan(&d, &converged(&d), &recorded).unwrap_err();
        assert!(matches!(err, PlanError::Checksum { .. }), "{err}");
    }

    #[test]
    fn foreign_or_unowned_script_conflicts_unless_adopted() {
        let mut d = desired();
        let mut o = converged(&d);
        o.script.as_mut().unwrap().tags = vec!["clodo-owner=other.svc".into()];
        let err = plan(&d, &o, &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("owned by other/svc"), "{err}");

        o.script.as_mut().unwrap().tags = vec![];
        assert!(matches!(plan(&d, &o, &BTreeMap::new()), Err(PlanError::Conflict { on: WORKER_DEPLOYED, .. })));
        d.adopt = true;
        let p = plan(&d, &o, &BTreeMap::new()).unwrap();
        assert!(kinds(&p).contains(&"TagScript"));
    }

    #[test]
    fn routes_and_domains_of_others_conflict() {
        let d = desired();
        let mut o = converged(&d);
        o.routes[0].script = Some("someone-else".into());
        assert!(plan(&d, &o, &BTreeMap::new()).unwrap_err().to_string().contains("route api.acme.com/*"));
        let mut o = converged(&d);
        o.domains[0].service = "someone-else".into();
        assert!(plan(&d, &o, &BTreeMap::new()).unwrap_err().to_string().contains("custom domain api.acme.com"));
    }

    #[test]
    fn undeclared_routes_domains_and_secrets_of_ours_are_removed_others_untouched() {
        let d = desired();
        let mut o = converged(&d);
        o.routes.push(ObservedRoute {
            id: "r2".into(),
            pattern: "old.acme.com/*".into(),
            script: Some(d.script_name.clone()),
            zone: "acme.com".into(),
            zone_id: "z1".into(),
        });
        o.routes.push(ObservedRoute {
            id: "r3".into(),
            pattern: "theirs.acme.com/*".into(),
            script: Some("theirs".into()),
            zone: "acme.com".into(),
            zone_id: "z1".into(),
        });
        o.domains.push(ObservedDomain {
            id: "d2".into(),
            hostname: "old.acme.com".into(),
            service: d.script_name.clone(),
            zone_id: "z1".into(),
        });
        o.script.as_mut().unwrap().secret_names.push("OLD".into());
        let p = plan(&d, &o, &BTreeMap::new()).unwrap();
        assert_eq!(kinds(&p), vec!["DeleteSecret", "UploadWorker", "DeleteRoute", "DetachDomain"]);
    }
}
