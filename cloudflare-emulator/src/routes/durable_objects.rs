//! Durable Object namespaces (created only by migrations) and their objects.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::{Params, account};
use crate::app::SharedApp;
use crate::envelope::{ApiError, ApiResult, ok_paged, paginate};
use crate::model::DoNamespace;

pub(crate) fn router() -> Router<SharedApp> {
    let base = "/accounts/{account_id}/workers/durable_objects/namespaces";
    Router::new()
        .route(base, get(list_namespaces))
        .route(&format!("{base}/{{namespace_id}}/objects"), get(list_objects))
}

pub(crate) fn view(n: &DoNamespace) -> Value {
    json!({"id": n.id, "name": n.name, "script": n.script, "class": n.class, "use_sqlite": n.use_sqlite})
}

async fn list_namespaces(State(app): State<SharedApp>, Path(account_id): Path<String>, params: Params) -> ApiResult {
    let (page, per_page) = params.paging(20, 1000)?;
    let items: Vec<Value> =
        app.read(|s| account(s, &account_id).map(|a| a.do_namespaces.iter().map(view).collect()))?;
    let (slice, info) = paginate(&items, page, per_page);
    ok_paged(slice, info)
}

/// Objects with stored data. The emulator's runtime keeps Durable Object storage inside
/// workerd, so the API lists none.
async fn list_objects(
    State(app): State<SharedApp>,
    Path((account_id, namespace_id)): Path<(String, String)>,
) -> ApiResult {
    app.read(|s| {
        let a = account(s, &account_id)?;
        if a.do_namespaces.iter().any(|n| n.id == namespace_id) {
            Ok(())
        } else {
            Err(ApiError::not_found(10066, "Durable Object namespace not found"))
        }
    })?;
    Ok(axum::Json(json!({
        "success": true, "errors": [], "messages": [], "result": [],
        "result_info": {"count": 0, "cursors": {"after": null}},
    }))
    .into_response())
}
