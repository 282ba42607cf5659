//! Test controls under `/__emulator/` (no auth, not journaled): journal, faults, reset; and
//! the D1 engine of Worker bindings (`runtime/d1/{uuid}`, guarded by the runtime key).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::JsonBody;
use crate::app::SharedApp;
use crate::envelope::ApiError;
use crate::faults::Faults;
use crate::journal::JournalEntry;

pub(crate) fn router() -> Router<SharedApp> {
    Router::new()
        .route("/journal", get(journal).delete(clear_journal))
        .route("/faults", get(get_faults).post(set_faults))
        .route("/reset", post(reset))
        .route("/runtime/d1/{uuid}", post(crate::runtime::d1_endpoint))
        .route("/d1-export/{token}", get(super::d1_export::download))
        .route("/runtime/kv/{namespace_id}", post(crate::runtime::kv_endpoint))
        .route("/runtime/queue/{queue}", post(crate::runtime::queue_endpoint))
        .route("/scheduled/{account_id}/{script_name}", post(crate::runtime::scheduled_trigger))
}

async fn journal(State(app): State<SharedApp>) -> Json<Vec<JournalEntry>> {
    Json(app.journal.entries())
}

async fn clear_journal(State(app): State<SharedApp>) -> Json<Value> {
    app.journal.clear();
    Json(json!({"cleared": true}))
}

async fn get_faults(State(app): State<SharedApp>) -> Json<Faults> {
    Json(app.faults.get())
}

async fn set_faults(State(app): State<SharedApp>, JsonBody(body): JsonBody<Value>) -> Result<Json<Faults>, ApiError> {
    let faults: Faults = if body.is_null() {
        Faults::default()
    } else {
        serde_json::from_value(body).map_err(ApiError::invalid_body)?
    };
    app.faults.set(faults.clone());
    Ok(Json(faults))
}

async fn reset(State(app): State<SharedApp>) -> Json<Value> {
    app.reset();
    Json(json!({"reset": true}))
}
