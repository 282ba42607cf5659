//! Workers custom domains, plus the per-script `domains/records` and `domains/changeset`
//! endpoints wrangler uses.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use super::{JsonBody, Params, account, account_mut, script};
use crate::app::SharedApp;
use crate::envelope::{ApiError, ApiResult, ok};
use crate::ids;
use crate::model::{CustomDomain, State as Model};
use crate::routes::zones::{host_in_zone, zone_for_host};
use crate::views;

pub(crate) fn router() -> Router<SharedApp> {
    Router::new()
        .route("/accounts/{account_id}/workers/domains", get(list_domains).put(put_domain))
        .route("/accounts/{account_id}/workers/domains/{domain_id}", get(get_domain).delete(delete_domain))
        .route("/accounts/{account_id}/workers/scripts/{script_name}/domains/records", put(put_script_domains))
        .route("/accounts/{account_id}/workers/scripts/{script_name}/domains/changeset", post(changeset))
}

async fn list_domains(State(app): State<SharedApp>, Path(account_id): Path<String>, params: Params) -> ApiResult {
    let list = app.read(|s| {
        Ok::<_, ApiError>(
            account(s, &account_id)?
                .custom_domains
                .iter()
                .filter(|d| params.get("hostname").is_none_or(|h| h == d.hostname))
                .filter(|d| params.get("service").is_none_or(|v| v == d.service))
                .filter(|d| params.get("zone_id").is_none_or(|v| v == d.zone_id))
                .filter(|d| params.get("zone_name").is_none_or(|v| v == d.zone_name))
                .filter(|d| params.get("environment").is_none_or(|v| v == d.environment))
                .map(views::custom_domain)
                .collect::<Vec<_>>(),
        )
    })?;
    ok(list)
}

fn domain_not_found(id: &str) -> ApiError {
    ApiError::not_found(100114, format!("Custom domain {id} not found"))
}

async fn get_domain(State(app): State<SharedApp>, Path((account_id, domain_id)): Path<(String, String)>) -> ApiResult {
    let d = app.read(|s| {
        account(s, &account_id)?
            .custom_domains
            .iter()
            .find(|d| d.id == domain_id)
            .map(views::custom_domain)
            .ok_or_else(|| domain_not_found(&domain_id))
    })?;
    ok(d)
}

async fn delete_domain(
    State(app): State<SharedApp>,
    Path((account_id, domain_id)): Path<(String, String)>,
) -> ApiResult {
    app.write(|s| {
        let a = account_mut(s, &account_id)?;
        let before = a.custom_domains.len();
        a.custom_domains.retain(|d| d.id != domain_id);
        if a.custom_domains.len() == before {
            return Err(domain_not_found(&domain_id));
        }
        Ok(())
    })?;
    ok(Value::Null)
}

/// One requested attachment.
struct DomainRequest {
    hostname: String,
    zone_id: Option<String>,
    zone_name: Option<String>,
}

fn domain_request(v: &Value) -> Result<DomainRequest, ApiError> {
    let hostname = v
        .get("hostname")
        .and_then(Value::as_str)
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty() && !h.contains('/') && !h.contains('*'))
        .ok_or_else(|| ApiError::bad_request(100101, "hostname is required and must be a plain host name"))?;
    Ok(DomainRequest {
        hostname,
        zone_id: v.get("zone_id").and_then(Value::as_str).map(str::to_string),
        zone_name: v.get("zone_name").and_then(Value::as_str).map(str::to_string),
    })
}

/// Check one attachment of `hostname` to `service`; returns the domain to store (the
/// existing one when unchanged).
fn plan_attach(
    s: &Model,
    account_id: &str,
    req: &DomainRequest,
    service: &str,
    override_origin: bool,
) -> Result<CustomDomain, ApiError> {
    let a = account(s, account_id)?;
    let z = match (&req.zone_id, &req.zone_name) {
        (Some(id), _) => s.zones.get(id).filter(|z| z.account_id == account_id),
        (None, Some(n)) => s.zones.values().find(|z| z.account_id == account_id && z.name.eq_ignore_ascii_case(n)),
        (None, None) => zone_for_host(s, account_id, &req.hostname),
    }
    .filter(|z| host_in_zone(&req.hostname, &z.name))
    .ok_or_else(|| {
        ApiError::bad_request(100109, format!("Hostname {} is not in any zone of this account", req.hostname))
    })?;
    if let Some(existing) = a.custom_domains.iter().find(|d| d.hostname == req.hostname) {
        if existing.service == service {
            return Ok(existing.clone());
        }
        if !override_origin {
            return Err(ApiError::conflict(
                100116,
                format!(
                    "Hostname {} is already attached to Worker {}; set override_existing_origin to move it",
                    req.hostname, existing.service
                ),
            ));
        }
        let mut moved = existing.clone();
        moved.service = service.to_string();
        return Ok(moved);
    }
    if z.dns_records.iter().any(|r| r.name == req.hostname && matches!(r.record_type.as_str(), "A" | "AAAA" | "CNAME"))
    {
        return Err(ApiError::conflict(
            100117,
            format!(
                "Hostname {} already has DNS records that are not managed by Workers; delete them first",
                req.hostname
            ),
        ));
    }
    Ok(CustomDomain {
        id: ids::hex32(),
        hostname: req.hostname.clone(),
        service: service.to_string(),
        zone_id: z.id.clone(),
        zone_name: z.name.clone(),
        cert_id: ids::hex32(),
        environment: "production".to_string(),
    })
}

fn store(s: &mut Model, account_id: &str, d: CustomDomain) -> Result<(), ApiError> {
    let a = account_mut(s, account_id)?;
    match a.custom_domains.iter_mut().find(|x| x.id == d.id) {
        Some(x) => *x = d,
        None => a.custom_domains.push(d),
    }
    Ok(())
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// `PUT /accounts/:a/workers/domains`: attach a hostname to a Worker.
async fn put_domain(
    State(app): State<SharedApp>,
    Path(account_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let req = domain_request(&body)?;
    let service = body
        .get("service")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request(100101, "service is required"))?
        .to_string();
    let override_origin = flag(&body, "override_existing_origin");
    let d = app.write(|s| {
        script(account(s, &account_id)?, &service)?;
        let d = plan_attach(s, &account_id, &req, &service, override_origin)?;
        store(s, &account_id, d.clone())?;
        Ok(d)
    })?;
    ok(views::custom_domain(&d))
}

/// `PUT .../scripts/:s/domains/records`: attach `origins`; with `override_scope` the
/// script's other custom domains are detached.
async fn put_script_domains(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let origins: Vec<DomainRequest> = body
        .get("origins")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid_body("origins must be a list of {hostname}"))?
        .iter()
        .map(domain_request)
        .collect::<Result<_, _>>()?;
    let override_scope = flag(&body, "override_scope");
    let override_origin = flag(&body, "override_existing_origin");
    let out = app.write(|s| {
        script(account(s, &account_id)?, &name)?;
        let mut planned = Vec::new();
        for req in &origins {
            planned.push(plan_attach(s, &account_id, req, &name, override_origin)?);
        }
        if override_scope {
            let keep: Vec<&str> = planned.iter().map(|d| d.hostname.as_str()).collect();
            let a = account_mut(s, &account_id)?;
            a.custom_domains.retain(|d| d.service != name || keep.contains(&d.hostname.as_str()));
        }
        for d in &planned {
            store(s, &account_id, d.clone())?;
        }
        Ok(planned.iter().map(views::custom_domain).collect::<Vec<_>>())
    })?;
    ok(out)
}

/// `POST .../scripts/:s/domains/changeset`: what a `domains/records` PUT would change.
async fn changeset(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let origins: Vec<DomainRequest> = body
        .as_array()
        .ok_or_else(|| ApiError::invalid_body("expected a list of {hostname}"))?
        .iter()
        .map(domain_request)
        .collect::<Result<_, _>>()?;
    let replace = params.flag("replace_state");
    let out = app.read(|s| {
        let a = account(s, &account_id)?;
        script(a, &name)?;
        let mut added = Vec::new();
        let mut conflicting = Vec::new();
        for req in &origins {
            match a.custom_domains.iter().find(|d| d.hostname == req.hostname) {
                Some(d) if d.service == name => {}
                Some(_) => conflicting.push(json!({"hostname": req.hostname})),
                None => added.push(json!({"hostname": req.hostname})),
            }
        }
        let removed: Vec<Value> = if replace {
            a.custom_domains
                .iter()
                .filter(|d| d.service == name && !origins.iter().any(|o| o.hostname == d.hostname))
                .map(views::custom_domain)
                .collect()
        } else {
            Vec::new()
        };
        Ok::<_, ApiError>(json!({
            "added": added,
            "removed": removed,
            "updated": [],
            "conflicting": conflicting,
        }))
    })?;
    ok(out)
}
