//! Token verification, `/user`, `/accounts`, `/memberships` and KV namespaces.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{Value, json};

use super::{JsonBody, Params, account, account_mut};
use crate::app::SharedApp;
use crate::auth::Caller;
use crate::envelope::{ApiError, ApiMessage, ApiResult, ok, ok_paged, ok_with_messages, paginate};
use crate::ids;
use crate::model::KvNamespace;
use crate::views;

pub(crate) fn router() -> Router<SharedApp> {
    Router::new()
        .route("/user/tokens/verify", get(verify))
        .route("/accounts/{account_id}/tokens/verify", get(verify))
        .route("/user", get(user))
        .route("/accounts", get(list_accounts))
        .route("/accounts/{account_id}", get(get_account))
        .route("/memberships", get(memberships))
        .route("/accounts/{account_id}/storage/kv/namespaces", get(list_kv).post(create_kv))
        .route(
            "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}",
            get(get_kv).put(rename_kv).delete(delete_kv),
        )
}

async fn verify(Extension(caller): Extension<Caller>) -> ApiResult {
    ok_with_messages(
        json!({"id": caller.token_id, "status": "active"}),
        vec![ApiMessage { code: 10000, message: "This API Token is valid and active".into() }],
    )
}

async fn user(State(app): State<SharedApp>) -> ApiResult {
    ok(json!({
        "id": app.user_id,
        "email": crate::workers::AUTHOR_EMAIL,
        "first_name": null,
        "last_name": null,
        "username": "emulator",
        "telephone": null,
        "country": null,
        "zipcode": null,
        "two_factor_authentication_enabled": false,
        "two_factor_authentication_locked": false,
        "suspended": false,
        "has_pro_zones": false,
        "has_business_zones": false,
        "has_enterprise_zones": false,
        "organizations": [],
        "betas": [],
    }))
}

fn visible_accounts(app: &SharedApp, caller: &Caller, name: Option<&str>) -> Vec<Value> {
    app.read(|s| {
        s.accounts
            .values()
            .filter(|a| caller.allows(&a.id))
            .filter(|a| name.is_none_or(|n| a.name.to_lowercase().contains(&n.to_lowercase())))
            .map(views::account)
            .collect()
    })
}

async fn list_accounts(
    State(app): State<SharedApp>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    let (page, per_page) = params.paging(20, 50)?;
    let items = visible_accounts(&app, &caller, params.get("name"));
    let (slice, info) = paginate(&items, page, per_page);
    ok_paged(slice, info)
}

async fn get_account(State(app): State<SharedApp>, Path(account_id): Path<String>) -> ApiResult {
    let a = app.read(|s| account(s, &account_id).map(views::account))?;
    ok(a)
}

async fn memberships(State(app): State<SharedApp>, Extension(caller): Extension<Caller>, params: Params) -> ApiResult {
    let (page, per_page) = params.paging(20, 50)?;
    let items: Vec<Value> = visible_accounts(&app, &caller, None)
        .into_iter()
        .map(|a| {
            json!({
                "id": a["id"],
                "status": "accepted",
                "account": {"id": a["id"], "name": a["name"]},
                "roles": ["Administrator"],
                "permissions": {},
            })
        })
        .collect();
    let (slice, info) = paginate(&items, page, per_page);
    ok_paged(slice, info)
}

fn kv_view(ns: &KvNamespace) -> Value {
    json!({"id": ns.id, "title": ns.title, "supports_url_encoding": true})
}

async fn list_kv(State(app): State<SharedApp>, Path(account_id): Path<String>, params: Params) -> ApiResult {
    let (page, per_page) = params.paging(20, 1000)?;
    let mut items = app.read(|s| account(s, &account_id).map(|a| a.kv_namespaces.clone()))?;
    match params.get("order") {
        Some("title") => items.sort_by(|a, b| a.title.cmp(&b.title)),
        Some("id") => items.sort_by(|a, b| a.id.cmp(&b.id)),
        _ => {}
    }
    if params.get("direction") == Some("desc") {
        items.reverse();
    }
    let values: Vec<Value> = items.iter().map(kv_view).collect();
    let (slice, info) = paginate(&values, page, per_page);
    ok_paged(slice, info)
}

fn title_of(body: &Value) -> Result<String, ApiError> {
    match body.get("title").and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() => Ok(t.to_string()),
        _ => Err(ApiError::bad_request(10019, "title is required")),
    }
}

async fn create_kv(
    State(app): State<SharedApp>,
    Path(account_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let title = title_of(&body)?;
    let ns = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        if a.kv_namespaces.iter().any(|n| n.title == title) {
            return Err(ApiError::bad_request(10014, "A namespace with this account ID and title already exists"));
        }
        let ns = KvNamespace { id: ids::hex32(), title };
        a.kv_namespaces.push(ns.clone());
        Ok(ns)
    })?;
    ok(kv_view(&ns))
}

fn kv_not_found() -> ApiError {
    ApiError::not_found(10013, "namespace not found")
}

async fn get_kv(State(app): State<SharedApp>, Path((account_id, ns_id)): Path<(String, String)>) -> ApiResult {
    let ns = app.read(|s| {
        account(s, &account_id)?.kv_namespaces.iter().find(|n| n.id == ns_id).cloned().ok_or_else(kv_not_found)
    })?;
    ok(kv_view(&ns))
}

async fn rename_kv(
    State(app): State<SharedApp>,
    Path((account_id, ns_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let title = title_of(&body)?;
    app.write(|s| {
        let a = account_mut(s, &account_id)?;
        if a.kv_namespaces.iter().any(|n| n.title == title && n.id != ns_id) {
            return Err(ApiError::bad_request(10014, "A namespace with this account ID and title already exists"));
        }
        let ns = a.kv_namespaces.iter_mut().find(|n| n.id == ns_id).ok_or_else(kv_not_found)?;
        ns.title = title;
        Ok(())
    })?;
    ok(Value::Null)
}

async fn delete_kv(State(app): State<SharedApp>, Path((account_id, ns_id)): Path<(String, String)>) -> ApiResult {
    app.write(|s| {
        let a = account_mut(s, &account_id)?;
        let before = a.kv_namespaces.len();
        a.kv_namespaces.retain(|n| n.id != ns_id);
        if a.kv_namespaces.len() == before {
            return Err(kv_not_found());
        }
        Ok(())
    })?;
    ok(Value::Null)
}
