//! Default production tests per `serviceType` (README "Service types"). They apply when
//! `productionTests` is present and declares no check of its own; any declared check replaces
//! them all, and `serviceTypeDefaults: false` turns them off.

use crate::crd::{AuthTest, EndpointTest, HealthTest, PerformanceTest, ProductionTestsSpec, ServiceType, StatusTest};

/// Whether the spec declares any check.
pub fn declares_checks(s: &ProductionTestsSpec) -> bool {
    s.health.is_some()
        || s.auth.is_some()
        || s.database.is_some()
        || !s.endpoints.is_empty()
        || s.performance.is_some()
        || s.auth_flow.is_some()
        || s.throughput.is_some()
}

/// The checks a service type gets by default.
pub fn for_type(t: ServiceType, into: &mut ProductionTestsSpec) {
    into.health = Some(HealthTest { path: "/health".into(), expect_status: 200, body_contains: None });
    match t {
        ServiceType::Generic => {}
        ServiceType::DataService => into.database = Some(StatusTest { path: "/health/db".into(), expect_status: 200 }),
        ServiceType::AuthService => {
            into.auth = Some(AuthTest {
                path: "/auth/me".into(),
                expect_status_without_credentials: 401,
                with_credentials: None,
            });
        }
        ServiceType::ContentService => into.endpoints.push(EndpointTest {
            name: "home".into(),
            method: "GET".into(),
            path: "/".into(),
            expect_status: 200,
            json_path: None,
            headers: Vec::new(),
            json_body: None,
        }),
        ServiceType::ApiGateway => {
            into.performance = Some(PerformanceTest {
                path: "/health".into(),
                requests: 20,
                concurrency: 5,
                max_p95_ms: 800,
                max_error_rate: 0.0,
            });
        }
    }
}

/// The production tests a service runs: its spec, with the type's defaults when it declares none.
pub fn effective(t: ServiceType, spec: Option<&ProductionTestsSpec>) -> Option<ProductionTestsSpec> {
    let mut s = spec?.clone();
    if s.service_type_defaults && !declares_checks(&s) {
        for_type(t, &mut s);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_empty_specs() {
        let empty = ProductionTestsSpec { service_type_defaults: true, ..Default::default() };
        let d = effective(ServiceType::DataService, Some(&empty)).unwrap();
        assert_eq!(d.health.unwrap().path, "/health");
        assert_eq!(d.database.unwrap().path, "/health/db");
        let a = effective(ServiceType::AuthService, Some(&empty)).unwrap();
        assert_eq!(a.auth.unwrap().expect_status_without_credentials, 401);
        assert!(effective(ServiceType::ApiGateway, Some(&empty)).unwrap().performance.is_some());
        assert_eq!(effective(ServiceType::ContentService, Some(&empty)).unwrap().endpoints.len(), 1);
        let g = effective(ServiceType::Generic, Some(&empty)).unwrap();
        assert!(g.health.is_some() && g.database.is_none());
        // A declared check overrides all defaults; opting out keeps the spec as is.
        let own = ProductionTestsSpec {
            service_type_defaults: true,
            health: Some(HealthTest { path: "/ping".into(), expect_status: 204, body_contains: None }),
            ..Default::default()
        };
        let o = effective(ServiceType::DataService, Some(&own)).unwrap();
        assert_eq!(o.health.unwrap().path, "/ping");
        assert!(o.database.is_none());
        let off = ProductionTestsSpec { service_type_defaults: false, ..Default::default() };
        assert!(!declares_checks(&effective(ServiceType::DataService, Some(&off)).unwrap()));
        assert!(effective(ServiceType::DataService, None).is_none());
    }
}
