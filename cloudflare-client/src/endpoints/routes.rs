//! Worker routes (zone level).

use serde::{Deserialize, Serialize};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;

pub const EP_ROUTES: &str = "/zones/:zone/workers/routes";
pub const EP_ROUTE: &str = "/zones/:zone/workers/routes/:route";

/// "A route with the same pattern already exists".
pub const CODE_ROUTE_EXISTS: u32 = 10020;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRoute {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub id: String,
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub pattern: String,
    /// No script: matching requests bypass Workers.
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub script: Option<String>,
}

/// Body of route create/update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSpec {
    pub pattern: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

impl RouteSpec {
    pub fn new(pattern: impl Into<String>, script: impl Into<String>) -> Self {
        Self { pattern: pattern.into(), script: Some(script.into()) }
    }
}

fn routes_path(zone: &str) -> String {
    format!("/zones/{}/workers/routes", enc(zone))
}

impl CloudflareClient {
    /// `POST .../workers/routes`.
    ///
    /// Not idempotent. The request is still retried on 5xx and timeouts, so if a first attempt
    /// landed but its answer was lost, the retry fails with code 10020 ([`CODE_ROUTE_EXISTS`],
    /// `is_conflict()`). Callers reconcile by listing the zone's routes and matching `pattern`
    /// (then [`CloudflareClient::update_route`]) rather than trusting create alone.
    pub async fn create_route(&self, zone_id: &str, route: &RouteSpec) -> Result<WorkerRoute, CloudflareError> {
        self.call(Request::post(EP_ROUTES, routes_path(zone_id)).json(route)?).await
    }

    /// `GET .../workers/routes` (unpaginated).
    pub async fn list_routes(&self, zone_id: &str) -> Result<Vec<WorkerRoute>, CloudflareError> {
        let r: Option<Vec<WorkerRoute>> = self.call(Request::get(EP_ROUTES, routes_path(zone_id))).await?;
        Ok(r.unwrap_or_default())
    }

    pub async fn get_route(&self, zone_id: &str, route_id: &str) -> Result<WorkerRoute, CloudflareError> {
        self.call(Request::get(EP_ROUTE, format!("{}/{}", routes_path(zone_id), enc(route_id)))).await
    }

    /// `PUT .../workers/routes/:route` (pattern required).
    pub async fn update_route(
        &self,
        zone_id: &str,
        route_id: &str,
        route: &RouteSpec,
    ) -> Result<WorkerRoute, CloudflareError> {
        self.call(Request::put(EP_ROUTE, format!("{}/{}", routes_path(zone_id), enc(route_id))).json(route)?).await
    }

    pub async fn delete_route(&self, zone_id: &str, route_id: &str) -> Result<(), CloudflareError> {
        self.call_unit(Request::delete(EP_ROUTE, format!("{}/{}", routes_path(zone_id), enc(route_id)))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        assert_eq!(
            serde_json::to_value(RouteSpec::new("a.com/*", "w")).unwrap(),
            json!({"pattern": "a.com/*", "script": "w"})
        );
        let bypass = RouteSpec { pattern: "a.com/static/*".into(), script: None };
        assert_eq!(serde_json::to_value(bypass).unwrap(), json!({"pattern": "a.com/static/*"}));
        let r: WorkerRoute = serde_json::from_value(json!({"id": "r", "pattern": "a.com/*"})).unwrap();
        assert!(r.script.is_none());
    }
}
