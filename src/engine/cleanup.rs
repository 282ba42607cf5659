//! Deletion: remove what the service owns in Cloudflare, per `deletionPolicy`. Routes, domains and
//! the script go only when the script carries our owner tag; D1 databases only when they say
//! `deletionPolicy: Delete` and status records them as created or adopted by this resource
//! (never by name alone). Everything treats "already gone" as done.
//!
//! Without credentials (Customer or token Secret missing) cleanup is blocked, never skipped:
//! the finalizer stays until they are back or the user chooses `deletionPolicy: Orphan`.

use std::collections::BTreeSet;

use super::resolve::ObjectSource;
use super::resolve::{ResolveError, read_secret_key};
use super::{Engine, PassEvent, Progress, ops, plan::script_owner};
use crate::cloudflare::CloudflareError;
use crate::crd::conditions::{self as c, reason};
use crate::crd::keys::owner_tag;
use crate::crd::{CloudflareService, DatabaseDeletionPolicy, DeletionPolicy};

struct Events<'a> {
    list: Vec<PassEvent>,
    progress: &'a dyn Progress,
}

impl Events<'_> {
    fn push(&mut self, ev: PassEvent) {
        self.progress.event(&ev);
        self.list.push(ev);
    }
}

fn ignore_missing(r: Result<(), CloudflareError>) -> Result<(), CloudflareError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Why cleanup did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CleanupError {
    /// Cloudflare cannot be reached with this resource's credentials: waiting for them (or for
    /// `deletionPolicy: Orphan`). `reason` is a condition reason.
    #[error("{message}")]
    Blocked { reason: &'static str, message: String },
    /// A step failed (retryable).
    #[error("{0}")]
    Failed(String),
}

impl CleanupError {
    pub fn reason(&self) -> &'static str {
        match self {
            CleanupError::Blocked { reason, .. } => reason,
            CleanupError::Failed(_) => "CleanupFailed",
        }
    }
}

pub async fn run(
    engine: &Engine,
    svc: &CloudflareService,
    src: &dyn ObjectSource,
    progress: &dyn Progress,
) -> (Vec<PassEvent>, Result<(), CleanupError>) {
    let mut ev = Events { list: Vec::new(), progress };
    let result = run_inner(engine, svc, src, &mut ev).await;
    match &result {
        Err(CleanupError::Failed(msg)) => ev.push(PassEvent::warning("CleanupFailed", "Cleanup", msg.clone())),
        Err(CleanupError::Blocked { message, .. }) => {
            ev.push(PassEvent::warning(c::CLEANUP_BLOCKED, "Cleanup", message.clone()))
        }
        Ok(()) => {}
    }
    (ev.list, result)
}

fn blocked(reason: &'static str, why: String) -> CleanupError {
    CleanupError::Blocked {
        reason,
        message: format!(
            "{why}: the Worker, its routes and custom domains are still running and the finalizer stays until it is back; set spec.deletionPolicy to Orphan to leave everything in Cloudflare and finish the deletion"
        ),
    }
}

async fn run_inner(
    engine: &Engine,
    svc: &CloudflareService,
    src: &dyn ObjectSource,
    ev: &mut Events<'_>,
) -> Result<(), CleanupError> {
    let failed = CleanupError::Failed;
    let body = &svc.spec.body;
    let delete_dbs: Vec<_> =
        body.d1_databases.iter().filter(|d| d.deletion_policy == DatabaseDeletionPolicy::Delete).collect();
    if body.deletion_policy == DeletionPolicy::Orphan {
        ev.push(PassEvent::normal(
            "Orphaned",
            "Cleanup",
            "deletionPolicy is Orphan: every Cloudflare resource left in place",
        ));
        return Ok(());
    }
    let ns = svc.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = svc.metadata.name.clone().unwrap_or_default();
    let customer = match src.customer(&ns, &svc.spec.customer_ref.name).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(blocked(
                reason::CUSTOMER_NOT_FOUND,
                format!("Customer {} not found, so Cloudflare cannot be reached", svc.spec.customer_ref.name),
            ));
        }
        Err(e) => return Err(failed(e.to_string())),
    };
    let token =
        match read_secret_key(src, &ns, "customer.spec.apiTokenSecretRef", &customer.spec.api_token_secret_ref).await {
            Ok((t, _)) if !t.is_empty() => t,
            Ok(_) | Err(ResolveError::Config(_)) => {
                return Err(blocked(
                    reason::TOKEN_MISSING,
                    format!(
                        "the API token Secret {} (key {}) of Customer {} is missing or empty",
                        customer.spec.api_token_secret_ref.name,
                        customer.spec.api_token_secret_ref.key,
                        customer.metadata.name.as_deref().unwrap_or_default()
                    ),
                ));
            }
            Err(ResolveError::Source(e)) => return Err(failed(e.to_string())),
        };
    let client = engine.client_for(token.expose()).map_err(|e| failed(e.to_string()))?;
    let acct = customer.spec.account_id.as_str();
    let script = svc.script_name();
    let mine = owner_tag(&ns, &name);

    {
        let state = ops::script_state(&client, acct, &script)
            .await
            .map_err(|e| failed(format!("reading worker {script}: {e}")))?;
        let ours = state
            .as_ref()
            .is_some_and(|s| script_owner(&s.tags) == mine.strip_prefix(crate::crd::keys::OWNER_TAG_PREFIX));
        if ours {
            let mut zone_ids: BTreeSet<(String, String)> = svc
                .status
                .iter()
                .flat_map(|s| s.routes.iter().map(|r| (r.zone_id.clone(), r.zone_id.clone())))
                .collect();
            for z in &customer.spec.zones {
                if let Ok(Some(id)) = ops::zone_id(&client, acct, z).await {
                    zone_ids.insert((id, z.clone()));
                }
            }
            for (zone_id, zone) in &zone_ids {
                let routes = ops::list_routes(&client, zone_id, zone)
                    .await
                    .map_err(|e| failed(format!("listing routes: {e}")))?;
                for r in routes.into_iter().filter(|r| r.script.as_deref() == Some(script.as_str())) {
                    ignore_missing(ops::delete_route(&client, zone_id, &r.id).await)
                        .map_err(|e| failed(format!("deleting route {}: {e}", r.pattern)))?;
                    ev.push(PassEvent::normal("RouteDeleted", "Cleanup", format!("deleted route {}", r.pattern)));
                }
            }
            let domains = ops::list_domains(&client, acct, None, Some(&script))
                .await
                .map_err(|e| failed(format!("listing custom domains: {e}")))?;
            for d in domains {
                ignore_missing(ops::detach_domain(&client, acct, &d.id).await)
                    .map_err(|e| failed(format!("detaching {}: {e}", d.hostname)))?;
                ev.push(PassEvent::normal(
                    "DomainDetached",
                    "Cleanup",
                    format!("detached custom domain {}", d.hostname),
                ));
            }
            ignore_missing(ops::delete_script(&client, acct, &script).await)
                .map_err(|e| failed(format!("deleting worker {script}: {e}")))?;
            ev.push(PassEvent::normal("WorkerDeleted", "Cleanup", format!("deleted worker {script}")));
        } else if state.is_some() {
            ev.push(PassEvent::warning(
                "CleanupSkipped",
                "Cleanup",
                format!("worker {script} is not owned by this resource: left in place"),
            ));
        }
    }

    for db in delete_dbs {
        let db_name = svc.database_name(db);
        // Only a database this resource created or adopted, by the id status recorded.
        let recorded = svc
            .status
            .as_ref()
            .and_then(|s| s.databases.iter().find(|x| x.binding == db.binding && x.name == db_name))
            .filter(|x| x.ownership.is_some() && !x.id.is_empty())
            .map(|x| x.id.clone());
        let Some(id) = recorded else {
            ev.push(PassEvent::normal(
                "DatabaseKept",
                "Cleanup",
                format!("d1 database {db_name} is not recorded as created or adopted by this resource: left in place"),
            ));
            continue;
        };
        ignore_missing(ops::delete_database(&client, acct, &id).await)
            .map_err(|e| failed(format!("deleting d1 database {db_name}: {e}")))?;
        ev.push(PassEvent::normal(
            "DatabaseDeleted",
            "Cleanup",
            format!("deleted d1 database {db_name} (deletionPolicy Delete)"),
        ));
    }
    Ok(())
}
