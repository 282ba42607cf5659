//! Read the Cloudflare state relevant to one service (the "observe" of observe -> plan -> act).

use std::collections::{BTreeMap, BTreeSet};

use super::desired::Desired;
use super::ops;
use super::plan::{Observed, ObservedDatabase, ObservedScript};
use crate::cloudflare::{CloudflareClient, CloudflareError};
use crate::crd::conditions as c;
use crate::crd::{CloudflareServiceStatus, Ownership};

/// An observation failed: the condition it affects, what was being read, and why.
pub type ObserveError = (&'static str, String, CloudflareError);

/// Why this service may use the existing database `id` found under `name`, if it may:
/// - status records it for this binding (with its ownership; status written before ownership
///   was recorded counts as adopted), or records a creation of that name whose answer was lost
///   (a crash between the create call and the status write);
/// - the service's own script (owner-tagged) binds it: an earlier run created or adopted it
///   (a CLI run from another working directory has no status to tell);
/// - the object carries `clodo.dev/adopt: "true"`.
fn database_ownership(
    d: &Desired,
    st: &CloudflareServiceStatus,
    script: Option<&ObservedScript>,
    binding: &str,
    name: &str,
    id: &str,
) -> Option<Ownership> {
    if let Some(r) = st.databases.iter().find(|x| x.binding == binding && x.name == name) {
        if r.id == id {
            return Some(r.ownership.unwrap_or(Ownership::Adopted));
        }
        if r.id.is_empty() && r.ownership == Some(Ownership::Created) {
            return Some(Ownership::Created);
        }
    }
    let owner = crate::crd::keys::owner_tag(&d.namespace, &d.name);
    if script.is_some_and(|s| s.tags.contains(&owner) && s.d1_ids.iter().any(|x| x == id)) {
        return Some(Ownership::Adopted);
    }
    d.adopt.then_some(Ownership::Adopted)
}

/// Read everything the planner needs. Only reads.
pub async fn observe(
    client: &CloudflareClient,
    d: &Desired,
    st: &CloudflareServiceStatus,
) -> Result<Observed, ObserveError> {
    let acct = d.account_id.as_str();
    let mut o = Observed::default();

    // Zones: those declared routes and domains live in, plus zones of routes we recorded before.
    let mut zone_names: BTreeSet<&str> = BTreeSet::new();
    zone_names.extend(d.routes.iter().map(|r| r.zone.as_str()));
    zone_names.extend(d.custom_domains.iter().map(|x| x.zone.as_str()));
    for z in zone_names {
        if let Some(id) = d.known_zone_ids.get(z) {
            o.zone_ids.insert(z.to_string(), id.clone());
            continue;
        }
        match ops::zone_id(client, acct, z).await {
            Ok(Some(id)) => {
                o.zone_ids.insert(z.to_string(), id);
            }
            Ok(None) => {
                return Err((
                    c::ROUTES_CONFIGURED,
                    format!("zone {z} is not in account {acct}"),
                    CloudflareError::not_found(format!("zone {z}")),
                ));
            }
            Err(e) => return Err((c::ROUTES_CONFIGURED, format!("looking up zone {z}"), e)),
        }
    }

    o.script = ops::script_state(client, acct, &d.script_name)
        .await
        .map_err(|e| (c::WORKER_DEPLOYED, format!("reading worker {}", d.script_name), e))?;

    if d.routes.is_empty() && d.custom_domains.is_empty() {
        o.workers_subdomain = ops::account_subdomain(client, acct)
            .await
            .map_err(|e| (c::ROUTES_CONFIGURED, "reading the account's workers.dev subdomain".to_string(), e))?;
        if let Some(script) = o.script.as_mut() {
            script.workers_dev_enabled =
                Some(ops::workers_dev_enabled(client, acct, &d.script_name).await.map_err(|e| {
                    (c::ROUTES_CONFIGURED, format!("reading the workers.dev state of {}", d.script_name), e)
                })?);
        }
    }

    for db in &d.databases {
        let found = ops::find_database(client, acct, &db.name)
            .await
            .map_err(|e| (c::DATABASES_READY, format!("looking up d1 database {}", db.name), e))?;
        let Some(id) = found else { continue };
        let ownership = database_ownership(d, st, o.script.as_ref(), &db.binding, &db.name, &id);
        if ownership.is_none() {
            // Of unknown origin: nothing is read from (or sent to) it; the plan reports a conflict.
            o.databases.insert(db.binding.clone(), ObservedDatabase { id, applied: None, ownership });
            continue;
        }
        let recorded = st.databases.iter().find(|x| x.binding == db.binding && x.id == id);
        // The tracking table is read when status cannot vouch for this database's migrations:
        // status does not know the database, or some file is not recorded as applied (an earlier
        // pass may have applied it and died before writing status). A converged service, whose
        // status records every file, reads nothing.
        let vouched = recorded
            .is_some_and(|r| db.migrations.iter().all(|f| r.applied_migrations.iter().any(|m| m.name == f.name)));
        let applied = if !vouched && !db.migrations.is_empty() {
            Some(
                ops::applied_migrations(client, acct, &id)
                    .await
                    .map_err(|e| (c::MIGRATIONS_APPLIED, format!("reading applied migrations of {}", db.name), e))?,
            )
        } else {
            None
        };
        o.databases.insert(db.binding.clone(), ObservedDatabase { id, applied, ownership });
    }

    let mut zone_ids: BTreeMap<String, String> = o.zone_ids.iter().map(|(n, id)| (id.clone(), n.clone())).collect();
    for r in &st.routes {
        zone_ids.entry(r.zone_id.clone()).or_insert_with(|| r.zone_id.clone());
    }
    for (zone_id, zone) in &zone_ids {
        // 7003: "could not route to /zones/…, perhaps your object identifier is invalid?"
        let gone = |e: &CloudflareError| e.is_not_found() || e.has_code(7003);
        let listed = match ops::list_routes(client, zone_id, zone).await {
            Err(e) if gone(&e) && zone == zone_id => {
                // Known only from status: the zone is gone, and its routes with it.
                continue;
            }
            Err(e) if gone(&e) => {
                // A cached id (Customer status, an earlier pass, a CLI state file) that Cloudflare
                // no longer knows, e.g. a zone deleted and added again: look it up by name.
                let fresh = ops::zone_id(client, acct, zone)
                    .await
                    .map_err(|e| (c::ROUTES_CONFIGURED, format!("looking up zone {zone}"), e))?
                    .ok_or_else(|| {
                        (
                            c::ROUTES_CONFIGURED,
                            format!("zone {zone} is not in account {acct}"),
                            CloudflareError::not_found(format!("zone {zone}")),
                        )
                    })?;
                tracing::info!(zone = %zone, "cached zone id is stale; using the id Cloudflare reports now");
                o.zone_ids.insert(zone.clone(), fresh.clone());
                ops::list_routes(client, &fresh, zone).await
            }
            other => other,
        };
        let routes = listed.map_err(|e| (c::ROUTES_CONFIGURED, format!("listing routes of zone {zone}"), e))?;
        o.routes.extend(routes);
    }

    // Domains attached to the script (to remove stale ones); a script that does not exist has none.
    let mut domains = if o.script.is_some() {
        ops::list_domains(client, acct, None, Some(&d.script_name))
            .await
            .map_err(|e| (c::ROUTES_CONFIGURED, format!("listing custom domains of {}", d.script_name), e))?
    } else {
        Vec::new()
    };
    for dom in &d.custom_domains {
        if domains.iter().any(|x| x.hostname == dom.hostname) {
            continue;
        }
        let found = ops::list_domains(client, acct, Some(&dom.hostname), None)
            .await
            .map_err(|e| (c::ROUTES_CONFIGURED, format!("looking up custom domain {}", dom.hostname), e))?;
        domains.extend(found);
    }
    o.domains = domains;
    Ok(o)
}
