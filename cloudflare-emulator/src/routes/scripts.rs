//! Workers scripts: upload, content, list, delete, services, settings, script-settings,
//! schedules, references, tails, workers.dev subdomains.

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value, json};

use super::{JsonBody, Params, account, account_mut, script, script_mut, source_of};
use crate::app::SharedApp;
use crate::do_migrations::with_migrations;
use crate::envelope::{ApiError, ApiResult, ok};
use crate::ids;
use crate::model::{Account, Schedule, Script, State as Model};
use crate::views;
use crate::workers::{
    self, VersionInput, apply_script_settings, modules_from_parts, new_script, new_version, push_and_deploy,
    read_multipart, resolve_bindings, validate_script_name,
};

pub(crate) fn router() -> Router<SharedApp> {
    let s = "/accounts/{account_id}/workers/scripts/{script_name}";
    Router::new()
        .route("/accounts/{account_id}/workers/scripts", get(list_scripts))
        .route(s, put(upload_script).get(download_script).delete(delete_script))
        .route(&format!("{s}/content"), put(put_content))
        .route(&format!("{s}/content/v2"), get(download_multipart))
        .route(&format!("{s}/settings"), get(get_settings).patch(patch_settings))
        .route(&format!("{s}/script-settings"), get(get_script_settings).patch(patch_script_settings))
        .route(&format!("{s}/schedules"), get(get_schedules).put(put_schedules))
        .route(&format!("{s}/references"), get(references))
        .route(
            &format!("{s}/subdomain"),
            get(get_script_subdomain).post(post_script_subdomain).delete(delete_script_subdomain),
        )
        .route("/accounts/{account_id}/workers/services/{script_name}", get(get_service).delete(delete_script))
        .route("/accounts/{account_id}/workers/tails/by-consumer/{script_name}", get(tails_by_consumer))
        .route(
            "/accounts/{account_id}/workers/subdomain",
            get(get_subdomain).put(put_subdomain).delete(delete_subdomain),
        )
}

fn multipart(mp: Result<Multipart, MultipartRejection>) -> Result<Multipart, ApiError> {
    mp.map_err(|e| {
        ApiError::bad_request(10021, format!("expected a multipart/form-data body with a metadata part: {e}"))
    })
}

/// Routes of the account's zones that point at `name`.
fn script_routes(state: &Model, account_id: &str, name: &str) -> Vec<crate::model::Route> {
    state
        .zones
        .values()
        .filter(|z| z.account_id == account_id)
        .flat_map(|z| z.routes.iter())
        .filter(|r| r.script.as_deref() == Some(name))
        .cloned()
        .collect()
}

async fn list_scripts(State(app): State<SharedApp>, Path(account_id): Path<String>, params: Params) -> ApiResult {
    let filters: Vec<(String, bool)> = params
        .get("tags")
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| match t.rsplit_once(':') {
            Some((tag, "no")) => (tag.to_string(), false),
            Some((tag, "yes")) => (tag.to_string(), true),
            _ => (t.to_string(), true),
        })
        .collect();
    let list = app.read(|s| {
        let a = account(s, &account_id)?;
        Ok::<_, ApiError>(
            a.scripts
                .values()
                .filter(|sc| filters.iter().all(|(tag, want)| sc.tags.iter().any(|t| t == tag) == *want))
                .map(|sc| views::script(sc, Some(script_routes(s, &account_id, &sc.name))))
                .collect::<Vec<_>>(),
        )
    })?;
    ok(list)
}

async fn upload_script(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    params: Params,
    headers: HeaderMap,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult {
    validate_script_name(&name)?;
    let upload = read_multipart(multipart(mp)?, "metadata").await?;
    let strict = params.get("bindings_inherit") == Some("strict");
    let source = source_of(&headers);
    let modules = modules_from_parts(upload.parts, &upload.metadata);
    let meta = upload.metadata;
    let (script_obj, version_id) = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        let mut sc = a.scripts.get(&name).cloned().unwrap_or_else(|| new_script(&name, source));
        apply_script_settings(&mut sc, &meta)?;
        let current = sc.migration_tag.clone();
        let (version, tag) = with_migrations(a, &name, current.as_deref(), &meta, |a| {
            new_version(
                a,
                a.scripts.get(&name),
                VersionInput { name: &name, metadata: &meta, modules, source, triggered_by: "upload", strict },
            )
        })?;
        if let Some(tag) = tag {
            sc.migration_tag = tag;
        }
        let version_id = version.id.clone();
        push_and_deploy(&mut sc, version, "upload");
        a.scripts.insert(name.clone(), sc.clone());
        Ok((sc, version_id))
    })?;
    let mut result = views::script(&script_obj, None);
    result["deployment_id"] = json!(version_id);
    ok(result)
}

async fn download_script(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let module = app.read(|s| {
        let sc = script(account(s, &account_id)?, &name)?;
        let v = sc.primary_version().ok_or_else(|| ApiError::script_not_found(&name))?;
        let entry = v.main_module.clone().or_else(|| v.body_part.clone());
        entry
            .and_then(|e| v.module(&e).cloned())
            .or_else(|| v.modules.first().cloned())
            .ok_or_else(|| ApiError::script_not_found(&name))
    })?;
    let mut resp = module.content.into_response();
    if let Ok(ct) = HeaderValue::from_str(&module.content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Ok(resp)
}

async fn download_multipart(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let version = app.read(|s| {
        let sc = script(account(s, &account_id)?, &name)?;
        sc.primary_version().cloned().ok_or_else(|| ApiError::script_not_found(&name))
    })?;
    if let (None, Some(body_part)) = (&version.main_module, &version.body_part) {
        let content = version.module(body_part).map(|m| m.content.clone()).unwrap_or_default();
        let mut resp = content.into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/javascript"));
        return Ok(resp);
    }
    let boundary = format!("----emulator{}", ids::hex32());
    let mut body: Vec<u8> = Vec::new();
    for m in &version.modules {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{0}\"; filename=\"{0}\"\r\nContent-Type: {1}\r\n\r\n",
                m.name, m.content_type
            )
            .as_bytes(),
        );
        body.extend_from_slice(&m.content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut resp = body.into_response();
    if let Ok(ct) = HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}")) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if let Some(entry) = version.main_module.as_deref()
        && let Ok(v) = HeaderValue::from_str(entry)
    {
        resp.headers_mut().insert("cf-entrypoint", v);
    }
    Ok(resp)
}

/// `PUT .../content`: new code, same bindings and settings; deployed at 100%.
async fn put_content(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    headers: HeaderMap,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult {
    let upload = read_multipart(multipart(mp)?, "metadata").await?;
    let source = source_of(&headers);
    let modules = modules_from_parts(upload.parts, &upload.metadata);
    let meta = upload.metadata;
    let sc = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        let mut sc = script(a, &name)?.clone();
        let base = sc.latest_version().cloned().ok_or_else(|| ApiError::script_not_found(&name))?;
        // Validate entry and modules like an upload, then keep the previous configuration.
        let mut full_meta = json!({
            "bindings": [],
            "compatibility_date": base.compatibility_date,
            "compatibility_flags": base.compatibility_flags,
            "usage_model": base.usage_model,
        });
        for key in ["main_module", "body_part"] {
            if let Some(v) = meta.get(key) {
                full_meta[key] = v.clone();
            }
        }
        let mut version = new_version(
            a,
            Some(&sc),
            VersionInput { name: &name, metadata: &full_meta, modules, source, triggered_by: "upload", strict: false },
        )?;
        version.bindings = base.bindings.clone();
        version.limits = base.limits.clone();
        version.placement = base.placement.clone();
        push_and_deploy(&mut sc, version, "upload");
        a.scripts.insert(name.clone(), sc.clone());
        Ok(sc)
    })?;
    ok(views::script(&sc, None))
}

/// Delete a script (`DELETE scripts/:name` and `DELETE services/:name`). Refused while
/// another Worker binds it, unless `force=true`. Its routes and custom domains go too.
async fn delete_script(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let force = params.flag("force");
    app.write(|s| {
        let a = account_mut(s, &account_id)?;
        script(a, &name)?;
        let refs = workers::referencing_scripts(a, &name);
        if !force && !refs.is_empty() {
            return Err(ApiError::bad_request(
                10064,
                format!(
                    "Cannot delete Worker {name}: it is bound by {}; use force=true to delete anyway",
                    refs.join(", ")
                ),
            ));
        }
        a.scripts.remove(&name);
        a.do_namespaces.retain(|n| n.script != name);
        for q in &mut a.queues {
            q.consumers.retain(|c| c.script.as_deref() != Some(name.as_str()));
        }
        a.custom_domains.retain(|d| d.service != name);
        for z in s.zones.values_mut().filter(|z| z.account_id == account_id) {
            z.routes.retain(|r| r.script.as_deref() != Some(name.as_str()));
        }
        Ok(())
    })?;
    ok(Value::Null)
}

async fn get_service(State(app): State<SharedApp>, Path((account_id, name)): Path<(String, String)>) -> ApiResult {
    let v = app.read(|s| script(account(s, &account_id)?, &name).map(views::service))?;
    ok(v)
}

async fn get_settings(State(app): State<SharedApp>, Path((account_id, name)): Path<(String, String)>) -> ApiResult {
    let v = app.read(|s| script(account(s, &account_id)?, &name).map(views::settings))?;
    ok(v)
}

/// `PATCH .../settings`: multipart part `settings` (JSON bodies are accepted too). Makes a
/// new version from the latest one with the given changes and deploys it.
async fn patch_settings(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult {
    let is_multipart =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("multipart/"));
    let settings = if is_multipart {
        let mp = Multipart::from_request(req, &()).await;
        read_multipart(multipart(mp)?, "settings").await?.metadata
    } else {
        let JsonBody(v) = JsonBody::<Value>::from_request(req, &()).await?;
        if !v.is_object() {
            return Err(ApiError::invalid_body("settings must be a JSON object"));
        }
        v
    };
    let source = source_of(&headers);
    let sc = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        let mut sc = script(a, &name)?.clone();
        let current = sc.migration_tag.clone();
        let ((), tag) = with_migrations(a, &name, current.as_deref(), &settings, |a| {
            apply_settings_version(a, &mut sc, &settings, source)
        })?;
        if let Some(tag) = tag {
            sc.migration_tag = tag;
        }
        a.scripts.insert(name.clone(), sc.clone());
        Ok(sc)
    })?;
    ok(views::settings(&sc))
}

fn apply_settings_version(a: &Account, sc: &mut Script, settings: &Value, source: &str) -> Result<(), ApiError> {
    let base = sc.latest_version().cloned().ok_or_else(|| ApiError::script_not_found(&sc.name))?;
    let mut v = workers::derived_version(sc, &base, source, "settings");
    if settings.get("bindings").is_some() {
        v.bindings = resolve_bindings(a, &sc.name.clone(), Some(sc), settings, false)?;
    }
    if let Some(d) = settings.get("compatibility_date").and_then(Value::as_str) {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::bad_request(10021, format!("Invalid compatibility date {d:?}")))?;
        v.compatibility_date = d.to_string();
    }
    if settings.get("compatibility_flags").is_some() {
        v.compatibility_flags = workers::string_list(settings, "compatibility_flags")?;
    }
    if let Some(u) = settings.get("usage_model").and_then(Value::as_str) {
        v.usage_model = u.to_string();
    }
    if let Some(l) = settings.get("limits") {
        v.limits = (!l.is_null()).then(|| l.clone());
    }
    if let Some(p) = settings.get("placement") {
        v.placement = (!p.is_null()).then(|| p.clone());
    }
    v.annotations = workers::annotations_from(settings.get("annotations"), "settings")?;
    apply_script_settings(sc, settings)?;
    push_and_deploy(sc, v, "settings");
    Ok(())
}

async fn get_script_settings(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
) -> ApiResult {
    let v = app.read(|s| script(account(s, &account_id)?, &name).map(views::script_settings))?;
    ok(v)
}

async fn patch_script_settings(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    if !body.is_object() {
        return Err(ApiError::invalid_body("script settings must be a JSON object"));
    }
    let v = app.write(|s| {
        let sc = script_mut(account_mut(s, &account_id)?, &name)?;
        let mut updated = sc.clone();
        apply_script_settings(&mut updated, &body)?;
        updated.modified_on = ids::now_after(Some(&updated.modified_on));
        *sc = updated;
        Ok(views::script_settings(sc))
    })?;
    ok(v)
}

fn schedules_view(sc: &Script) -> Value {
    json!({
        "schedules": sc.schedules.iter().map(|x| json!({
            "cron": x.cron,
            "created_on": ids::ts(&x.created_on),
            "modified_on": ids::ts(&x.modified_on),
        })).collect::<Vec<_>>()
    })
}

async fn get_schedules(State(app): State<SharedApp>, Path((account_id, name)): Path<(String, String)>) -> ApiResult {
    let v = app.read(|s| script(account(s, &account_id)?, &name).map(schedules_view))?;
    ok(v)
}

/// Five or six space-separated fields, or one of the `@` shortcuts.
fn valid_cron(cron: &str) -> bool {
    let fields = cron.split_whitespace().count();
    (5..=6).contains(&fields)
        || matches!(cron.trim(), "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly")
}

async fn put_schedules(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let items = body.as_array().ok_or_else(|| ApiError::invalid_body("expected a list of {cron}"))?;
    let mut crons = Vec::new();
    for item in items {
        let cron = item.get("cron").and_then(Value::as_str).unwrap_or_default();
        if !valid_cron(cron) {
            return Err(ApiError::bad_request(10100, format!("Invalid cron expression {cron:?}")));
        }
        crons.push(cron.to_string());
    }
    let v = app.write(|s| {
        let sc = script_mut(account_mut(s, &account_id)?, &name)?;
        let now = ids::now();
        let old = std::mem::take(&mut sc.schedules);
        sc.schedules = crons
            .into_iter()
            .map(|cron| {
                let created_on = old.iter().find(|o| o.cron == cron).map(|o| o.created_on).unwrap_or(now);
                Schedule { cron, created_on, modified_on: now }
            })
            .collect();
        Ok(schedules_view(sc))
    })?;
    ok(v)
}

async fn references(State(app): State<SharedApp>, Path((account_id, name)): Path<(String, String)>) -> ApiResult {
    let incoming = app.read(|s| {
        let a = account(s, &account_id)?;
        script(a, &name)?;
        Ok::<_, ApiError>(workers::referencing_scripts(a, &name))
    })?;
    ok(json!({
        "services": {
            "incoming": incoming.iter().map(|n| json!({"service": n, "environment": "production"})).collect::<Vec<_>>(),
            "pages_function": false,
        },
        "durable_objects": [],
        "dispatch_outbounds": [],
    }))
}

async fn tails_by_consumer() -> ApiResult {
    ok(json!([]))
}

fn subdomain_view(sc: &Script) -> Value {
    json!({"enabled": sc.workers_dev_enabled, "previews_enabled": sc.previews_enabled})
}

async fn get_script_subdomain(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
) -> ApiResult {
    let v = app.read(|s| script(account(s, &account_id)?, &name).map(subdomain_view))?;
    ok(v)
}

async fn post_script_subdomain(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let enabled = match body.get("enabled") {
        Some(Value::Bool(b)) => *b,
        _ => {
            return Err(ApiError::bad_request(10021, "enabled (boolean) is required"));
        }
    };
    let previews = match body.get("previews_enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(ApiError::bad_request(10021, "previews_enabled must be a boolean"));
        }
    };
    let v = app.write(|s| {
        let sc = script_mut(account_mut(s, &account_id)?, &name)?;
        sc.workers_dev_enabled = enabled;
        if let Some(p) = previews {
            sc.previews_enabled = p;
        }
        Ok(subdomain_view(sc))
    })?;
    ok(v)
}

async fn delete_script_subdomain(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
) -> ApiResult {
    let v = app.write(|s| {
        let sc = script_mut(account_mut(s, &account_id)?, &name)?;
        sc.workers_dev_enabled = false;
        sc.previews_enabled = false;
        Ok(subdomain_view(sc))
    })?;
    ok(v)
}

async fn get_subdomain(State(app): State<SharedApp>, Path(account_id): Path<String>) -> ApiResult {
    let sub = app.read(|s| account(s, &account_id).map(|a| a.workers_subdomain.clone()))?;
    match sub {
        Some(subdomain) => ok(json!({"subdomain": subdomain})),
        None => Err(ApiError::not_found(10007, "This account does not have a workers.dev subdomain registered")),
    }
}

fn valid_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

async fn put_subdomain(
    State(app): State<SharedApp>,
    Path(account_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let sub = body.get("subdomain").and_then(Value::as_str).unwrap_or_default().to_string();
    if !valid_subdomain(&sub) {
        return Err(ApiError::bad_request(
            10032,
            format!("Invalid subdomain {sub:?}: use lowercase letters, digits and '-'"),
        ));
    }
    app.write(|s| {
        if s.accounts.values().any(|a| a.id != account_id && a.workers_subdomain.as_deref() == Some(sub.as_str())) {
            return Err(ApiError::conflict(10032, format!("The subdomain {sub} is already taken")));
        }
        account_mut(s, &account_id)?.workers_subdomain = Some(sub.clone());
        Ok(())
    })?;
    ok(json!({"subdomain": sub}))
}

async fn delete_subdomain(State(app): State<SharedApp>, Path(account_id): Path<String>) -> ApiResult {
    app.write(|s| {
        account_mut(s, &account_id)?.workers_subdomain = None;
        Ok(())
    })?;
    ok(Value::Null)
}
