//! HTTP handling of resource requests: verb dispatch, parameters, responses.

use std::sync::Arc;

use axum::response::Response;
use http::{HeaderValue, Method};
use serde_json::{Value, json};

use crate::admission::FieldValidation;
use crate::delete::{DeleteOpts, Deleted, Propagation};
use crate::ops::{WriteCtx, Written};
use crate::patch::PatchKind;
use crate::path::ResourcePath;
use crate::query::Query;
use crate::read::{Filter, list, render};
use crate::server::Shared;
use crate::status::{ApiError, json_response};
use crate::store::meta_str;
use crate::{protobuf, table, watch};

/// What the handler needs from the HTTP request.
pub(crate) struct Incoming<'a> {
    pub method: &'a Method,
    pub query: &'a Query,
    pub content_type: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub body: &'a [u8],
}

/// The API verb of a request (as RBAC would name it).
pub(crate) fn verb(method: &Method, rp: &ResourcePath, q: &Query) -> &'static str {
    match (method.as_str(), rp.name.is_some()) {
        ("GET", false) if q.flag("watch") => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "deletecollection",
        ("DELETE", true) => "delete",
        _ => "unknown",
    }
}

fn manager_from_user_agent(ua: Option<&str>) -> String {
    let ua = ua.unwrap_or_default();
    let prefix = ua.split('/').next().unwrap_or_default().trim();
    if prefix.is_empty() { "unknown".to_string() } else { prefix.chars().take(128).collect() }
}

fn written_response(rd: &crate::registry::ResourceDef, version: &str, w: Written, meta_only: bool) -> Response {
    let code = if w.created { 201 } else { 200 };
    let mut resp = json_response(code, &render(rd, version, &w.object, meta_only));
    for warning in w.warnings {
        let text = format!("299 - {}", json!(warning));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("Warning", v);
        }
    }
    resp
}

/// A POST, PUT or DELETE body as JSON: JSON or YAML as sent, Kubernetes protobuf decoded
/// for the kinds client-go's typed clients write; anything else (CBOR, ...) is 415, on
/// which clients such as kubectl fall back to JSON.
fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let base = content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim();
    match base {
        "" | "application/json" | "application/yaml" | "*/*" => parse_json_body(body),
        protobuf::CONTENT_TYPE if !body.is_empty() => protobuf::to_json(body),
        _ if body.is_empty() => Ok(json!({})),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(_) => serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}"))),
    }
}

/// Serve one request against a resource path.
pub(crate) fn resource(shared: &Arc<Shared>, rp: ResourcePath, req: Incoming<'_>) -> Result<Response, ApiError> {
    let mut st = shared.lock_state();
    let rd = st.registry.lookup(&rp.group, &rp.version, &rp.plural).cloned().ok_or_else(ApiError::path_not_found)?;
    if (!rd.namespaced && rp.namespace.is_some()) || (rd.namespaced && rp.name.is_some() && rp.namespace.is_none()) {
        return Err(ApiError::path_not_found());
    }
    let status = match rp.subresource.as_deref() {
        None => false,
        Some("status") if rd.status_subresource => true,
        Some(_) => return Err(ApiError::path_not_found()),
    };
    let q = req.query;
    let meta_only = req.accept.is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
            )));
        }
    };
    let field_manager = q.get("fieldManager").unwrap_or_default().to_string();
    if field_manager.len() > 128 {
        return Err(ApiError::bad_request("fieldManager: Too long: may not be more than 128 bytes"));
    }
    let patch_kind = if *req.method == Method::PATCH {
        Some(PatchKind::from_content_type(req.content_type.unwrap_or_default())?)
    } else {
        None
    };
    let manager = if field_manager.is_empty() && patch_kind != Some(PatchKind::Apply) {
        manager_from_user_agent(req.user_agent)
    } else {
        field_manager
    };
    let ctx = WriteCtx {
        rd: rd.clone(),
        version: rp.version.clone(),
        namespace: rp.namespace.clone(),
        dry_run,
        manager,
        validation: FieldValidation::parse(q.get("fieldValidation"))?,
    };
    let version = rp.version.as_str();
    match (req.method.as_str(), rp.name.as_deref()) {
        ("GET", None) => {
            let filter = Filter::from_query(&rd, version, rp.namespace.clone(), q)?;
            if q.flag("watch") {
                drop(st);
                return watch::start(shared.clone(), rd, rp.version.clone(), filter, q, meta_only);
            }
            if table::wanted(req.accept) {
                let include = table::Include::parse(q.get("includeObject"))?;
                let body = list(&st, &rd, version, &filter, q, false)?;
                let items = body.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                let metadata = body.get("metadata").cloned().unwrap_or(json!({}));
                return Ok(json_response(200, &table::table(&rd, version, &items, metadata, include)));
            }
            let body = list(&st, &rd, version, &filter, q, meta_only)?;
            Ok(json_response(200, &body))
        }
        ("GET", Some(name)) => {
            let obj =
                st.get(&rd.key(), &ctx_key(&rp, name)).ok_or_else(|| ApiError::not_found(&rd.qualified(), name))?;
            if table::wanted(req.accept) && !status {
                let include = table::Include::parse(q.get("includeObject"))?;
                let rendered = render(&rd, version, obj, false);
                let metadata = json!({"resourceVersion": meta_str(obj, "resourceVersion").unwrap_or_default()});
                return Ok(json_response(200, &table::table(&rd, version, &[rendered], metadata, include)));
            }
            Ok(json_response(200, &render(&rd, version, obj, meta_only)))
        }
        ("POST", None) => {
            if rd.namespaced && rp.namespace.is_none() {
                return Err(ApiError::method_not_allowed(
                    "POST to a namespaced resource needs a namespace in the path",
                ));
            }
            let body = parse_body(req.content_type, req.body)?;
            let w = st.create(&ctx, body, false)?;
            Ok(written_response(&rd, version, w, meta_only))
        }
        ("PUT", Some(name)) => {
            let body = parse_body(req.content_type, req.body)?;
            let w = st.update(&ctx, name, body, status)?;
            Ok(written_response(&rd, version, w, meta_only))
        }
        ("PATCH", Some(name)) => {
            let kind = patch_kind.ok_or_else(|| ApiError::internal("patch kind missing"))?;
            let w = st.patch(&ctx, name, kind, req.body, status, q.flag("force"))?;
            Ok(written_response(&rd, version, w, meta_only))
        }
        ("DELETE", Some(name)) => {
            if status {
                return Err(ApiError::method_not_allowed("DELETE is not supported on the status subresource"));
            }
            let opts = delete_opts(req.content_type, req.body, q)?;
            match st.delete(&ctx, name, &opts)? {
                Deleted::Pending(obj) => Ok(json_response(200, &render(&rd, version, &obj, meta_only))),
                Deleted::Gone(obj) => Ok(json_response(
                    200,
                    &json!({
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {
                            "name": name,
                            "group": rd.group,
                            "kind": rd.plural,
                            "uid": meta_str(&obj, "uid").unwrap_or_default(),
                        }
                    }),
                )),
            }
        }
        ("DELETE", None) => {
            let opts = delete_opts(req.content_type, req.body, q)?;
            let filter = Filter::from_query(&rd, version, rp.namespace.clone(), q)?;
            let names: Vec<(String, String)> = st
                .list(&rd.key(), rp.namespace.as_deref())
                .into_iter()
                .filter(|(_, o)| filter.matches(o))
                .map(|(k, _)| k.clone())
                .collect();
            let mut items = Vec::new();
            for (ns, name) in names {
                let ctx = WriteCtx { namespace: if rd.namespaced { Some(ns) } else { None }, ..ctx.clone() };
                match st.delete(&ctx, &name, &opts)? {
                    Deleted::Pending(o) | Deleted::Gone(o) => items.push(render(&rd, version, &o, meta_only)),
                }
            }
            Ok(json_response(
                200,
                &json!({
                    "apiVersion": rd.api_version(version),
                    "kind": rd.list_kind,
                    "metadata": {"resourceVersion": st.rv.to_string()},
                    "items": items,
                }),
            ))
        }
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {m}"
        ))),
    }
}

fn ctx_key(rp: &ResourcePath, name: &str) -> (String, String) {
    (rp.namespace.clone().unwrap_or_default(), name.to_string())
}

fn delete_opts(content_type: Option<&str>, body: &[u8], q: &Query) -> Result<DeleteOpts, ApiError> {
    let body = parse_body(content_type, body)?;
    let mut opts = DeleteOpts::from_body(&body)?;
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation = Some(match p {
            "Background" => Propagation::Background,
            "Foreground" => Propagation::Foreground,
            "Orphan" => Propagation::Orphan,
            other => {
                return Err(ApiError::bad_request(format!("propagationPolicy: Unsupported value: \"{other}\"")));
            }
        });
    }
    Ok(opts)
}
