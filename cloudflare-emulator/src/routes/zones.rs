//! Zones, zone-level Worker routes and the per-script routes endpoint wrangler uses.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{JsonBody, Params, account, script};
use crate::app::SharedApp;
use crate::auth::Caller;
use crate::envelope::{ApiError, ApiResult, ok, ok_paged, paginate};
use crate::ids;
use crate::model::{Route, State as Model, Zone};
use crate::views;

pub(crate) fn router() -> Router<SharedApp> {
    Router::new()
        .route("/zones", get(list_zones))
        .route("/zones/{zone_id}", get(get_zone))
        .route("/zones/{zone_id}/workers/routes", get(list_routes).post(create_route))
        .route("/zones/{zone_id}/workers/routes/{route_id}", get(get_route).put(update_route).delete(delete_route))
        .route(
            "/accounts/{account_id}/workers/scripts/{script_name}/routes",
            get(list_script_routes).put(put_script_routes),
        )
}

/// Match a zone-list filter value: plain = exact; `contains:`, `starts_with:`,
/// `ends_with:`, `equal:` operators (case-insensitive).
fn filter_matches(filter: &str, value: &str) -> bool {
    let value = value.to_lowercase();
    let (op, arg) = filter.split_once(':').unwrap_or(("equal", filter));
    let arg = arg.to_lowercase();
    match op {
        "contains" => value.contains(&arg),
        "starts_with" => value.starts_with(&arg),
        "ends_with" => value.ends_with(&arg),
        "not_equal" => value != arg,
        "equal" => value == arg,
        _ => value == filter.to_lowercase(),
    }
}

async fn list_zones(State(app): State<SharedApp>, Extension(caller): Extension<Caller>, params: Params) -> ApiResult {
    let (page, per_page) = params.paging(20, 50)?;
    let mut items: Vec<Value> = app.read(|s| {
        let mut zones: Vec<&Zone> = s
            .zones
            .values()
            .filter(|z| caller.allows(&z.account_id))
            .filter(|z| params.get("name").is_none_or(|n| filter_matches(n, &z.name)))
            .filter(|z| params.get("account.id").is_none_or(|a| a == z.account_id))
            .filter(|z| {
                params
                    .get("account.name")
                    .is_none_or(|n| s.accounts.get(&z.account_id).is_some_and(|a| filter_matches(n, &a.name)))
            })
            .filter(|_| params.get("status").is_none_or(|st| st == "active"))
            .collect();
        zones.sort_by(|a, b| a.name.cmp(&b.name));
        zones.into_iter().map(|z| views::zone(z, s.accounts.get(&z.account_id))).collect()
    });
    if params.get("direction") == Some("desc") {
        items.reverse();
    }
    let (slice, info) = paginate(&items, page, per_page);
    ok_paged(slice, info)
}

async fn get_zone(State(app): State<SharedApp>, Path(zone_id): Path<String>) -> ApiResult {
    let z = app.read(|s| zone(s, &zone_id).map(|z| views::zone(z, s.accounts.get(&z.account_id))))?;
    ok(z)
}

pub(crate) fn zone<'a>(s: &'a Model, zone_id: &str) -> Result<&'a Zone, ApiError> {
    s.zones.get(zone_id).ok_or_else(|| ApiError::no_route(&format!("/zones/{zone_id}")))
}

fn zone_mut<'a>(s: &'a mut Model, zone_id: &str) -> Result<&'a mut Zone, ApiError> {
    s.zones.get_mut(zone_id).ok_or_else(|| ApiError::no_route(&format!("/zones/{zone_id}")))
}

/// Host part of a route pattern (without leading `*` / `*.`); patterns carry no scheme.
pub(crate) fn pattern_host(pattern: &str) -> Result<String, ApiError> {
    if pattern.is_empty() || pattern.contains("://") || pattern.contains(char::is_whitespace) {
        return Err(ApiError::bad_request(
            10022,
            format!("Invalid route pattern {pattern:?}: expected host/path without a scheme"),
        ));
    }
    let host = pattern.split('/').next().unwrap_or_default();
    let host = host.strip_prefix("*.").or_else(|| host.strip_prefix('*')).unwrap_or(host);
    let host = host.split(':').next().unwrap_or_default();
    Ok(host.to_ascii_lowercase())
}

/// Whether `host` is `zone` or a subdomain of it.
pub(crate) fn host_in_zone(host: &str, zone: &str) -> bool {
    let zone = zone.to_ascii_lowercase();
    host == zone || host.ends_with(&format!(".{zone}"))
}

fn check_pattern_in_zone(pattern: &str, zone: &Zone) -> Result<(), ApiError> {
    let host = pattern_host(pattern)?;
    if host_in_zone(&host, &zone.name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(10022, format!("Route pattern {pattern:?} does not belong to zone {}", zone.name)))
    }
}

fn duplicate_pattern() -> ApiError {
    ApiError::conflict(10020, "A route with the same pattern already exists")
}

#[derive(Deserialize)]
struct RouteBody {
    pattern: Option<String>,
    script: Option<String>,
}

fn check_script_exists(s: &Model, account_id: &str, name: Option<&str>) -> Result<(), ApiError> {
    match name {
        Some(n) if !n.is_empty() => script(account(s, account_id)?, n).map(|_| ()),
        _ => Ok(()),
    }
}

async fn list_routes(State(app): State<SharedApp>, Path(zone_id): Path<String>) -> ApiResult {
    let routes = app.read(|s| zone(s, &zone_id).map(|z| z.routes.iter().map(views::route).collect::<Vec<_>>()))?;
    ok(routes)
}

fn route_not_found(id: &str) -> ApiError {
    ApiError::not_found(10005, format!("Route {id} not found"))
}

async fn get_route(State(app): State<SharedApp>, Path((zone_id, route_id)): Path<(String, String)>) -> ApiResult {
    let r = app.read(|s| {
        zone(s, &zone_id)?
            .routes
            .iter()
            .find(|r| r.id == route_id)
            .map(views::route)
            .ok_or_else(|| route_not_found(&route_id))
    })?;
    ok(r)
}

async fn create_route(
    State(app): State<SharedApp>,
    Path(zone_id): Path<String>,
    JsonBody(body): JsonBody<RouteBody>,
) -> ApiResult {
    let pattern = body.pattern.ok_or_else(|| ApiError::bad_request(10022, "pattern is required"))?;
    let script_name = body.script.filter(|s| !s.is_empty());
    let r = app.write(|s| {
        let account_id = zone(s, &zone_id)?.account_id.clone();
        check_script_exists(s, &account_id, script_name.as_deref())?;
        let z = zone_mut(s, &zone_id)?;
        check_pattern_in_zone(&pattern, z)?;
        if z.routes.iter().any(|r| r.pattern == pattern) {
            return Err(duplicate_pattern());
        }
        let r = Route { id: ids::hex32(), pattern: pattern.clone(), script: script_name.clone() };
        z.routes.push(r.clone());
        Ok(r)
    })?;
    ok(views::route(&r))
}

async fn update_route(
    State(app): State<SharedApp>,
    Path((zone_id, route_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<RouteBody>,
) -> ApiResult {
    let pattern = body.pattern.ok_or_else(|| ApiError::bad_request(10022, "pattern is required"))?;
    let script_name = body.script.filter(|s| !s.is_empty());
    let r = app.write(|s| {
        let account_id = zone(s, &zone_id)?.account_id.clone();
        check_script_exists(s, &account_id, script_name.as_deref())?;
        let z = zone_mut(s, &zone_id)?;
        check_pattern_in_zone(&pattern, z)?;
        if z.routes.iter().any(|r| r.pattern == pattern && r.id != route_id) {
            return Err(duplicate_pattern());
        }
        let r = z.routes.iter_mut().find(|r| r.id == route_id).ok_or_else(|| route_not_found(&route_id))?;
        r.pattern = pattern.clone();
        r.script = script_name.clone();
        Ok(r.clone())
    })?;
    ok(views::route(&r))
}

async fn delete_route(State(app): State<SharedApp>, Path((zone_id, route_id)): Path<(String, String)>) -> ApiResult {
    app.write(|s| {
        let z = zone_mut(s, &zone_id)?;
        let before = z.routes.len();
        z.routes.retain(|r| r.id != route_id);
        if z.routes.len() == before {
            return Err(route_not_found(&route_id));
        }
        Ok(())
    })?;
    ok(json!({"id": route_id}))
}

/// The account's zone that best contains `host` (longest name wins).
pub(crate) fn zone_for_host<'a>(s: &'a Model, account_id: &str, host: &str) -> Option<&'a Zone> {
    s.zones.values().filter(|z| z.account_id == account_id && host_in_zone(host, &z.name)).max_by_key(|z| z.name.len())
}

fn script_route_view(r: &Route, z: &Zone) -> Value {
    json!({"id": r.id, "pattern": r.pattern, "script": r.script, "zone_id": z.id, "zone_name": z.name})
}

async fn list_script_routes(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
) -> ApiResult {
    let routes = app.read(|s| {
        script(account(s, &account_id)?, &name)?;
        Ok::<_, ApiError>(
            s.zones
                .values()
                .filter(|z| z.account_id == account_id)
                .flat_map(|z| {
                    z.routes
                        .iter()
                        .filter(|r| r.script.as_deref() == Some(name.as_str()))
                        .map(move |r| script_route_view(r, z))
                })
                .collect::<Vec<_>>(),
        )
    })?;
    ok(routes)
}

#[derive(Deserialize)]
struct ScriptRouteBody {
    pattern: String,
    zone_id: Option<String>,
    zone_name: Option<String>,
}

/// `PUT .../scripts/:name/routes`: replace all of the script's routes.
async fn put_script_routes(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Vec<ScriptRouteBody>>,
) -> ApiResult {
    let out = app.write(|s| {
        script(account(s, &account_id)?, &name)?;
        // Resolve every pattern to a zone first; change nothing on error.
        let mut wanted: Vec<(String, String)> = Vec::new();
        for item in &body {
            let host = pattern_host(&item.pattern)?;
            let z = match (&item.zone_id, &item.zone_name) {
                (Some(id), _) => s
                    .zones
                    .get(id)
                    .filter(|z| z.account_id == account_id)
                    .ok_or_else(|| ApiError::bad_request(10022, format!("Unknown zone {id}")))?,
                (None, Some(n)) => s
                    .zones
                    .values()
                    .find(|z| z.account_id == account_id && z.name.eq_ignore_ascii_case(n))
                    .ok_or_else(|| ApiError::bad_request(10022, format!("Unknown zone {n}")))?,
                (None, None) => zone_for_host(s, &account_id, &host).ok_or_else(|| {
                    ApiError::bad_request(
                        10022,
                        format!("No zone of this account contains route pattern {:?}", item.pattern),
                    )
                })?,
            };
            check_pattern_in_zone(&item.pattern, z)?;
            if z.routes.iter().any(|r| r.pattern == item.pattern && r.script.as_deref() != Some(name.as_str())) {
                return Err(duplicate_pattern());
            }
            if wanted.iter().any(|(zid, p)| zid == &z.id && p == &item.pattern) {
                return Err(duplicate_pattern());
            }
            wanted.push((z.id.clone(), item.pattern.clone()));
        }
        let mut out = Vec::new();
        for z in s.zones.values_mut().filter(|z| z.account_id == account_id) {
            let old: Vec<Route> =
                z.routes.iter().filter(|r| r.script.as_deref() == Some(name.as_str())).cloned().collect();
            z.routes.retain(|r| r.script.as_deref() != Some(name.as_str()));
            for (_, pattern) in wanted.iter().filter(|(zid, _)| zid == &z.id) {
                let id = old.iter().find(|r| &r.pattern == pattern).map(|r| r.id.clone()).unwrap_or_else(ids::hex32);
                let r = Route { id, pattern: pattern.clone(), script: Some(name.clone()) };
                out.push(script_route_view(&r, z));
                z.routes.push(r);
            }
        }
        Ok(out)
    })?;
    ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_must_lie_in_zone() {
        assert_eq!(pattern_host("*.example.com/*").unwrap(), "example.com");
        assert_eq!(pattern_host("*example.com/*").unwrap(), "example.com");
        assert_eq!(pattern_host("api.example.com/v1/*").unwrap(), "api.example.com");
        assert!(pattern_host("https://example.com/*").is_err());
        assert!(host_in_zone("api.example.com", "example.com"));
        assert!(host_in_zone("example.com", "example.com"));
        assert!(!host_in_zone("badexample.com", "example.com"));
    }

    #[test]
    fn zone_filters() {
        assert!(filter_matches("example.com", "Example.com"));
        assert!(filter_matches("contains:amp", "example.com"));
        assert!(filter_matches("starts_with:exa", "example.com"));
        assert!(!filter_matches("ends_with:org", "example.com"));
    }
}
