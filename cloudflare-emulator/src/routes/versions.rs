//! Worker versions and deployments.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{JsonBody, Params, account, account_mut, script, source_of};
use crate::app::SharedApp;
use crate::envelope::{ApiError, ApiResult, ResultInfo, ok, ok_object_paged};
use crate::model::{Account, Script};
use crate::views;
use crate::workers::{self, DEPLOYABLE_VERSIONS, VersionInput, modules_from_parts, new_version, read_multipart};

pub(crate) fn router() -> Router<SharedApp> {
    let s = "/accounts/{account_id}/workers/scripts/{script_name}";
    Router::new()
        .route(&format!("{s}/versions"), get(list_versions).post(upload_version))
        .route(&format!("{s}/versions/{{version_id}}"), get(get_version))
        .route(&format!("{s}/deployments"), get(list_deployments).post(create_deployment))
        .route(&format!("{s}/deployments/{{deployment_id}}"), get(get_deployment).delete(delete_deployment))
}

fn has_preview(a: &Account, sc: &Script) -> bool {
    sc.previews_enabled && a.workers_subdomain.is_some()
}

/// `POST .../versions`: a new version, not deployed. The script must exist.
async fn upload_version(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    params: Params,
    headers: HeaderMap,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult {
    let mp = mp.map_err(|e| ApiError::bad_request(10021, format!("expected a multipart/form-data body: {e}")))?;
    let upload = read_multipart(mp, "metadata").await?;
    if upload.metadata.get("main_module").and_then(Value::as_str).is_none() {
        return Err(ApiError::bad_request(
            10021,
            "main_module is required for version uploads (ES module Workers only)",
        ));
    }
    let strict = params.get("bindings_inherit") == Some("strict");
    let source = source_of(&headers);
    let modules = modules_from_parts(upload.parts, &upload.metadata);
    let meta = upload.metadata;
    let out = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        let current = script(a, &name)?.migration_tag.clone();
        let (version, tag) = crate::do_migrations::with_migrations(a, &name, current.as_deref(), &meta, |a| {
            new_version(
                a,
                a.scripts.get(&name),
                VersionInput { name: &name, metadata: &meta, modules, source, triggered_by: "upload", strict },
            )
        })?;
        let preview = has_preview(a, script(a, &name)?);
        let sc = super::script_mut(a, &name)?;
        if let Some(tag) = tag {
            sc.migration_tag = tag;
        }
        sc.versions.push(version.clone());
        sc.modified_on = crate::ids::now_after(Some(&sc.modified_on));
        Ok(views::version(sc, &version, preview))
    })?;
    ok(out)
}

async fn list_versions(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let deployable = params.flag("deployable");
    let (page, per_page) = params.paging(20, 100)?;
    let (items, total) = app.read(|s| {
        let a = account(s, &account_id)?;
        let sc = script(a, &name)?;
        let preview = has_preview(a, sc);
        let newest_first = sc.versions.iter().rev();
        let chosen: Vec<Value> = if deployable {
            newest_first.take(DEPLOYABLE_VERSIONS).map(|v| views::version_item(sc, v, preview)).collect()
        } else {
            newest_first
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|v| views::version_item(sc, v, preview))
                .collect()
        };
        Ok::<_, ApiError>((chosen, sc.versions.len()))
    })?;
    let info = ResultInfo {
        page: if deployable { 1 } else { page },
        per_page: if deployable { items.len().max(1) } else { per_page },
        count: items.len(),
        total_count: if deployable { items.len() } else { total },
        total_pages: if deployable { 1 } else { total.div_ceil(per_page) },
    };
    ok_object_paged(json!({"items": items}), info)
}

async fn get_version(
    State(app): State<SharedApp>,
    Path((account_id, name, version_id)): Path<(String, String, String)>,
) -> ApiResult {
    let v = app.read(|s| {
        let a = account(s, &account_id)?;
        let sc = script(a, &name)?;
        let v = sc
            .version(&version_id)
            .ok_or_else(|| ApiError::not_found(10221, format!("Version {version_id} not found")))?;
        Ok::<_, ApiError>(views::version(sc, v, has_preview(a, sc)))
    })?;
    ok(v)
}

fn parse_time(params: &Params, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    params
        .get(key)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| ApiError::bad_request(10021, format!("{key} must be an RFC3339 timestamp")))
        })
        .transpose()
}

async fn list_deployments(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let since = parse_time(&params, "since")?;
    let until = parse_time(&params, "until")?;
    let paged = params.get("page").is_some() || params.get("per_page").is_some();
    let (page, per_page) = params.paging(20, 100)?;
    let list = app.read(|s| {
        let sc = script(account(s, &account_id)?, &name)?;
        let mut items: Vec<Value> = sc
            .deployments
            .iter()
            .rev()
            .filter(|d| since.is_none_or(|t| d.created_on >= t))
            .filter(|d| until.is_none_or(|t| d.created_on <= t))
            .map(views::deployment)
            .collect();
        if paged {
            items = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
        }
        Ok::<_, ApiError>(items)
    })?;
    ok(json!({"deployments": list}))
}

async fn create_deployment(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let source = source_of(&headers);
    let d = app.write(|s| {
        let sc = super::script_mut(account_mut(s, &account_id)?, &name)?;
        let versions = workers::parse_deployment_versions(sc, &body)?;
        let trigger = workers::deployment_trigger(sc, &versions);
        let mut annotations: BTreeMap<String, String> = workers::annotations_from(body.get("annotations"), trigger)?;
        annotations.retain(|k, _| k == "workers/message" || k == "workers/triggered_by");
        sc.last_deployed_from = source.to_string();
        Ok(workers::push_deployment(sc, versions, annotations, source))
    })?;
    ok(views::deployment(&d))
}

async fn get_deployment(
    State(app): State<SharedApp>,
    Path((account_id, name, deployment_id)): Path<(String, String, String)>,
) -> ApiResult {
    let d = app.read(|s| {
        let sc = script(account(s, &account_id)?, &name)?;
        sc.deployments
            .iter()
            .find(|d| d.id == deployment_id)
            .map(views::deployment)
            .ok_or_else(|| deployment_not_found(&deployment_id))
    })?;
    ok(d)
}

fn deployment_not_found(id: &str) -> ApiError {
    ApiError::not_found(10222, format!("Deployment {id} not found"))
}

async fn delete_deployment(
    State(app): State<SharedApp>,
    Path((account_id, name, deployment_id)): Path<(String, String, String)>,
) -> ApiResult {
    app.write(|s| {
        let sc = super::script_mut(account_mut(s, &account_id)?, &name)?;
        let pos = sc
            .deployments
            .iter()
            .position(|d| d.id == deployment_id)
            .ok_or_else(|| deployment_not_found(&deployment_id))?;
        if pos + 1 == sc.deployments.len() {
            return Err(ApiError::bad_request(10223, "The active deployment cannot be deleted"));
        }
        sc.deployments.remove(pos);
        Ok(())
    })?;
    ok(Value::Null)
}
