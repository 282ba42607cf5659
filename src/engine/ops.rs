//! The Cloudflare calls a pass makes, phrased in the engine's terms on top of the typed client.

use std::collections::BTreeMap;

use super::desired::Desired;
use super::plan::{ObservedDomain, ObservedRoute, ObservedScript};
use super::secret::SecretValue;
use crate::cloudflare::{
    Annotations, AttachDomain, Binding, CloudflareClient, CloudflareError, CreateD1Database, CreateDeployment, D1Query,
    DeploymentVersion, DomainFilter, RouteSpec, ScriptLevelSettings, SecretString, WorkerMetadata, WorkerModule,
    WorkerUpload,
};
use crate::crd::keys::{OWNER_TAG_PREFIX, VERSION_MESSAGE_PREFIX};

/// What token verification said.
pub struct TokenCheck {
    pub active: bool,
    pub status: String,
    pub expires_on: Option<String>,
}

fn not_found_to_none<T>(r: Result<T, CloudflareError>) -> Result<Option<T>, CloudflareError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn verify_token(client: &CloudflareClient, account: &str) -> Result<TokenCheck, CloudflareError> {
    let t = client.verify_token(Some(account)).await?;
    Ok(TokenCheck { active: t.is_active(), status: t.status.clone(), expires_on: t.expires_on.map(|e| e.to_rfc3339()) })
}

/// Zone id of a zone name in the account.
pub async fn zone_id(client: &CloudflareClient, account: &str, zone: &str) -> Result<Option<String>, CloudflareError> {
    Ok(zone_details(client, account, zone).await?.map(|(id, _)| id))
}

/// Zone id and status.
pub async fn zone_details(
    client: &CloudflareClient,
    account: &str,
    zone: &str,
) -> Result<Option<(String, String)>, CloudflareError> {
    Ok(client.find_zone_by_name(Some(account), zone).await?.map(|z| (z.id, z.status)))
}

/// Versions serving traffic now, with percentages (the drift check: one read).
pub async fn active_deployment(
    client: &CloudflareClient,
    account: &str,
    script: &str,
) -> Result<Option<Vec<(String, u32)>>, CloudflareError> {
    let d = not_found_to_none(client.active_deployment(account, script).await)?.flatten();
    Ok(d.map(|d| d.versions.iter().map(|v| (v.version_id.clone(), v.percentage.round() as u32)).collect()))
}

/// The script's tags, secret names, serving version and that version's content hash.
pub async fn script_state(
    client: &CloudflareClient,
    account: &str,
    script: &str,
) -> Result<Option<ObservedScript>, CloudflareError> {
    let Some(settings) = not_found_to_none(client.get_script_settings(account, script).await)? else {
        return Ok(None);
    };
    let secret_names = settings
        .bindings
        .iter()
        .filter(|b| matches!(b.type_name(), "secret_text" | "secret_key"))
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    let deployment = active_deployment(client, account, script).await?.unwrap_or_default();
    let serving = deployment.iter().max_by_key(|(_, p)| *p).map(|(v, _)| v.clone());
    let deployed_hash = match &serving {
        Some(v) => not_found_to_none(client.get_version(account, script, v).await)?
            .and_then(|ver| ver.annotations)
            .and_then(|a| a.tag),
        None => None,
    };
    let d1_ids = settings
        .bindings
        .iter()
        .filter_map(|b| match b {
            crate::cloudflare::Binding::D1 { database_id, .. } => Some(database_id.clone()),
            _ => None,
        })
        .collect();
    Ok(Some(ObservedScript {
        d1_ids,
        tags: settings.tags.clone(),
        secret_names,
        deployed_version: serving,
        deployed_hash,
        deployment,
        workers_dev_enabled: None,
    }))
}

pub async fn account_subdomain(client: &CloudflareClient, account: &str) -> Result<Option<String>, CloudflareError> {
    client.get_account_subdomain(account).await
}

pub async fn workers_dev_enabled(
    client: &CloudflareClient,
    account: &str,
    script: &str,
) -> Result<bool, CloudflareError> {
    Ok(client.get_script_subdomain(account, script).await?.enabled)
}

pub async fn enable_workers_dev(client: &CloudflareClient, account: &str, script: &str) -> Result<(), CloudflareError> {
    client.set_script_subdomain(account, script, true, false).await.map(|_| ())
}

pub async fn find_database(
    client: &CloudflareClient,
    account: &str,
    name: &str,
) -> Result<Option<String>, CloudflareError> {
    Ok(client.find_d1_database(account, name).await?.map(|d| d.uuid))
}

/// Create a database the pass observed none of. A name taken in the meantime is a conflict,
/// never adopted here: the next pass decides from the recorded creation whether it is ours.
pub async fn create_database(client: &CloudflareClient, account: &str, name: &str) -> Result<String, CloudflareError> {
    let body = CreateD1Database { name: name.to_string(), primary_location_hint: None, jurisdiction: None };
    client.create_d1_database(account, &body).await.map(|db| db.uuid)
}

/// Names recorded in the tracking table (empty when it does not exist). Read-only queries.
pub async fn applied_migrations(
    client: &CloudflareClient,
    account: &str,
    db: &str,
) -> Result<Vec<String>, CloudflareError> {
    let exists =
        client.query_d1(account, db, &D1Query::sql(super::migrations::table_exists_sql()).idempotent()).await?;
    if exists.first().is_none_or(|r| r.results.is_empty()) {
        return Ok(Vec::new());
    }
    let rows = client.query_d1(account, db, &D1Query::sql(super::migrations::list_applied_sql()).idempotent()).await?;
    Ok(rows
        .first()
        .map(|r| {
            r.results.iter().filter_map(|row| row.get("name").and_then(|v| v.as_str()).map(str::to_string)).collect()
        })
        .unwrap_or_default())
}

pub async fn bookmark(client: &CloudflareClient, account: &str, db: &str) -> Result<String, CloudflareError> {
    client.d1_bookmark(account, db, None).await
}

/// Run one (write) query atomically.
pub async fn run_sql(client: &CloudflareClient, account: &str, db: &str, sql: &str) -> Result<(), CloudflareError> {
    client.query_d1(account, db, &D1Query::sql(sql)).await.map(|_| ())
}

/// Upload the Worker (PUT script: a new version deployed at 100%). Returns the version id.
/// A script that does not exist yet is created with our owner tag in the same call, so that no
/// crash can leave behind a script of ours without it.
pub async fn upload_worker(
    client: &CloudflareClient,
    d: &Desired,
    db_ids: &BTreeMap<String, String>,
    hash: &str,
    generated: &[(String, Option<SecretValue>)],
    new_script: bool,
) -> Result<String, CloudflareError> {
    let mut upload = worker_upload(d, db_ids, hash, generated);
    if new_script {
        upload.metadata.tags = Some(vec![d.owner_tag.clone()]);
    }
    let script = client.upload_script(&d.account_id, &d.script_name, &upload).await?;
    match script.version_id() {
        Some(v) => Ok(v.to_string()),
        None => {
            // Older API shapes omit deployment_id: read the active deployment instead.
            let dep = active_deployment(client, &d.account_id, &d.script_name).await?.unwrap_or_default();
            dep.into_iter()
                .max_by_key(|(_, p)| *p)
                .map(|(v, _)| v)
                .ok_or_else(|| CloudflareError::not_found("deployed version"))
        }
    }
}

/// The multipart upload for the desired Worker. `generated` holds each `generate` secret with
/// the value to set, or `None` to keep the value the Worker has (an `inherit` binding).
pub fn worker_upload(
    d: &Desired,
    db_ids: &BTreeMap<String, String>,
    hash: &str,
    generated: &[(String, Option<SecretValue>)],
) -> WorkerUpload {
    let mut bindings: Vec<Binding> = d.vars.iter().map(|(k, v)| Binding::plain_text(k, v)).collect();
    for (name, value) in &d.secrets {
        bindings.push(Binding::secret_text(name, SecretString::new(value.expose())));
    }
    for (name, value) in generated {
        bindings.push(match value {
            Some(v) => Binding::secret_text(name, SecretString::new(v.expose())),
            None => Binding::Inherit { name: name.clone(), old_name: None, version_id: None },
        });
    }
    for db in &d.databases {
        if let Some(id) = db_ids.get(&db.binding) {
            bindings.push(Binding::d1(&db.binding, id));
        }
    }
    let message =
        format!("{VERSION_MESSAGE_PREFIX} {}/{} generation {}", d.namespace, d.name, d.generation.unwrap_or_default());
    let metadata = WorkerMetadata {
        main_module: Some(d.main_module.clone()),
        compatibility_date: Some(d.compatibility_date.clone()),
        compatibility_flags: d.compatibility_flags.clone(),
        bindings,
        annotations: Some(Annotations::new(Some(&message), Some(hash))),
        ..Default::default()
    };
    let modules = d.modules.iter().map(|m| WorkerModule::new(m.name.clone(), m.content.clone())).collect();
    WorkerUpload::new(metadata, modules)
}

/// Deploy versions with percentages (rollback, canary).
pub async fn deploy_versions(
    client: &CloudflareClient,
    account: &str,
    script: &str,
    versions: &[(String, u32)],
    message: &str,
) -> Result<(), CloudflareError> {
    let body = CreateDeployment {
        strategy: "percentage".into(),
        versions: versions.iter().map(|(v, p)| DeploymentVersion::new(v.clone(), f64::from(*p))).collect(),
        annotations: Some(Annotations::new(Some(message), None)),
    };
    match client.create_deployment(account, script, &body, false).await {
        Err(e) if e.has_code(crate::cloudflare::endpoints::deployments::CODE_SECRETS_CHANGED) => {
            // Secrets differ from the target version: the operator owns them, so force.
            client.create_deployment(account, script, &body, true).await.map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

pub async fn delete_secret(
    client: &CloudflareClient,
    account: &str,
    script: &str,
    name: &str,
) -> Result<(), CloudflareError> {
    match client.delete_secret(account, script, name).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Put our owner tag on the script, keeping unrelated tags and dropping other owner tags.
pub async fn tag_script(
    client: &CloudflareClient,
    account: &str,
    script: &str,
    owner_tag: &str,
) -> Result<(), CloudflareError> {
    let current = client.get_script_level_settings(account, script).await?.tags.unwrap_or_default();
    let mut tags: Vec<String> = current.into_iter().filter(|t| !t.starts_with(OWNER_TAG_PREFIX)).collect();
    tags.push(owner_tag.to_string());
    let patch = ScriptLevelSettings { tags: Some(tags), ..Default::default() };
    client.patch_script_settings(account, script, &patch).await.map(|_| ())
}

pub async fn delete_script(client: &CloudflareClient, account: &str, script: &str) -> Result<(), CloudflareError> {
    client.delete_script(account, script, false).await
}

pub async fn list_routes(
    client: &CloudflareClient,
    zone_id: &str,
    zone: &str,
) -> Result<Vec<ObservedRoute>, CloudflareError> {
    Ok(client
        .list_routes(zone_id)
        .await?
        .into_iter()
        .map(|r| ObservedRoute {
            id: r.id,
            pattern: r.pattern,
            script: r.script,
            zone: zone.to_string(),
            zone_id: zone_id.to_string(),
        })
        .collect())
}

/// Create a route; a duplicate (created by an earlier, interrupted pass) is found and repointed.
pub async fn create_route(
    client: &CloudflareClient,
    zone_id: &str,
    pattern: &str,
    script: &str,
) -> Result<String, CloudflareError> {
    match client.create_route(zone_id, &RouteSpec::new(pattern, script)).await {
        Ok(r) => Ok(r.id),
        Err(e) if e.is_conflict() => {
            let existing = client.list_routes(zone_id).await?.into_iter().find(|r| r.pattern == pattern);
            match existing {
                Some(r) if r.script.as_deref() == Some(script) => Ok(r.id),
                Some(r) if r.script.is_none() => {
                    client.update_route(zone_id, &r.id, &RouteSpec::new(pattern, script)).await?;
                    Ok(r.id)
                }
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

pub async fn update_route(
    client: &CloudflareClient,
    zone_id: &str,
    id: &str,
    pattern: &str,
    script: &str,
) -> Result<(), CloudflareError> {
    client.update_route(zone_id, id, &RouteSpec::new(pattern, script)).await.map(|_| ())
}

pub async fn delete_route(client: &CloudflareClient, zone_id: &str, id: &str) -> Result<(), CloudflareError> {
    match client.delete_route(zone_id, id).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

pub async fn list_domains(
    client: &CloudflareClient,
    account: &str,
    hostname: Option<&str>,
    service: Option<&str>,
) -> Result<Vec<ObservedDomain>, CloudflareError> {
    let filter = DomainFilter {
        hostname: hostname.map(str::to_string),
        service: service.map(str::to_string),
        ..Default::default()
    };
    Ok(client
        .list_domains(account, &filter)
        .await?
        .into_iter()
        .map(|d| ObservedDomain {
            id: d.id,
            hostname: d.hostname,
            service: d.service,
            zone_id: d.zone_id.unwrap_or_default(),
        })
        .collect())
}

/// Attach a custom domain (PUT: idempotent for the same hostname and Worker).
pub async fn attach_domain(
    client: &CloudflareClient,
    account: &str,
    hostname: &str,
    script: &str,
    zone_id: Option<&str>,
) -> Result<String, CloudflareError> {
    let mut body = AttachDomain::new(hostname, script);
    if let Some(z) = zone_id {
        body = body.zone_id(z);
    }
    Ok(client.attach_domain(account, &body).await?.id)
}

pub async fn detach_domain(client: &CloudflareClient, account: &str, id: &str) -> Result<(), CloudflareError> {
    match client.detach_domain(account, id).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

pub async fn delete_database(client: &CloudflareClient, account: &str, id: &str) -> Result<(), CloudflareError> {
    client.delete_d1_database(account, id).await
}

/// Cloudflare's own error messages (e.g. D1's SQLite error), without the request line.
pub fn api_message(e: &CloudflareError) -> String {
    let msgs: Vec<&str> = e.api_errors().iter().map(|i| i.message.as_str()).filter(|m| !m.is_empty()).collect();
    if msgs.is_empty() { e.to_string() } else { msgs.join("; ") }
}
