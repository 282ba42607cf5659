//! Token verification, `/user`, `/accounts` and `/memberships`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{Value, json};

use super::{Params, account};
use crate::app::SharedApp;
use crate::auth::Caller;
use crate::envelope::{ApiMessage, ApiResult, ok, ok_paged, ok_with_messages, paginate};
use crate::views;

pub(crate) fn router() -> Router<SharedApp> {
    Router::new()
        .route("/user/tokens/verify", get(verify))
        .route("/accounts/{account_id}/tokens/verify", get(verify))
        .route("/user", get(user))
        .route("/accounts", get(list_accounts))
        .route("/accounts/{account_id}", get(get_account))
        .route("/memberships", get(memberships))
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
