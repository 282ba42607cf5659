//! Admission-time validation: the CEL rules and schema constraints in the generated CRDs reject
//! malformed objects (evaluated client-side with kube's CEL validator, as the API server would).

use clodo_operator::crd::{CloudflareService, Customer, Portfolio};
use serde_json::{Value, json};

fn valid_service() -> Value {
    json!({
        "apiVersion": "clodo.dev/v1alpha1",
        "kind": "CloudflareService",
        "metadata": { "name": "svc", "namespace": "acme" },
        "spec": {
            "customerRef": { "name": "acme" },
            "environment": "production",
            "worker": {
                "mainModule": "index.js",
                "source": { "configMapRef": { "name": "code" } },
                "compatibilityDate": "2025-10-01",
                "vars": { "LOG_LEVEL": "info" },
                "secrets": [ { "name": "JWT", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } } ]
            },
            "d1Databases": [ { "binding": "DB" } ],
            "routes": [ { "pattern": "api.acme.com/*" } ],
            "customDomains": [ "api.acme.com" ],
            "rollout": { "strategy": "Canary", "canary": { "steps": [10, 50] } }
        }
    })
}

fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    *v.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = new;
    v
}

fn cel_errors(v: &Value) -> Option<String> {
    let svc: CloudflareService = match serde_json::from_value(v.clone()) {
        Ok(s) => s,
        Err(e) => return Some(format!("schema: {e}")),
    };
    svc.validate_cel().err().map(|e| format!("{e:?}"))
}

#[test]
fn valid_service_passes() {
    assert_eq!(cel_errors(&valid_service()), None);
    // Templated hostnames (Portfolio domain stamping) are checked again after rendering.
    let templated = with(valid_service(), "/spec/customDomains", json!(["api.{{DOMAIN}}", "{{ SERVICE }}.acme.com"]));
    assert_eq!(cel_errors(&templated), None);
}

#[test]
fn malformed_services_are_rejected_with_the_reason() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("unknown environment", with(valid_service(), "/spec/environment", json!("prod")), "unknown variant"),
        (
            "duplicate bindings",
            with(valid_service(), "/spec/d1Databases", json!([{ "binding": "DB" }, { "binding": "DB" }])),
            "binding names must be unique",
        ),
        (
            "binding shadows a var",
            with(valid_service(), "/spec/d1Databases", json!([{ "binding": "LOG_LEVEL" }])),
            "also used by worker.vars",
        ),
        (
            "canary step over 99",
            with(valid_service(), "/spec/rollout/canary/steps", json!([10, 100])),
            "between 1 and 99",
        ),
        ("canary step zero", with(valid_service(), "/spec/rollout/canary/steps", json!([0, 50])), "between 1 and 99"),
        (
            "canary steps descending",
            with(valid_service(), "/spec/rollout/canary/steps", json!([50, 10])),
            "strictly ascending",
        ),
        (
            "canary steps repeated",
            with(valid_service(), "/spec/rollout/canary/steps", json!([10, 10])),
            "strictly ascending",
        ),
        (
            "canary without settings",
            with(valid_service(), "/spec/rollout", json!({ "strategy": "Canary" })),
            "rollout.canary is required",
        ),
        ("bad hostname", with(valid_service(), "/spec/customDomains", json!(["API.acme.com"])), "lowercase hostname"),
        (
            "hostname without dot",
            with(valid_service(), "/spec/customDomains", json!(["localhost"])),
            "lowercase hostname",
        ),
        (
            "duplicate domains",
            with(valid_service(), "/spec/customDomains", json!(["a.acme.com", "a.acme.com"])),
            "hostnames must be unique",
        ),
        (
            "route with scheme",
            with(valid_service(), "/spec/routes", json!([{ "pattern": "https://api.acme.com/*" }])),
            "must not contain a scheme",
        ),
        (
            "duplicate routes",
            with(
                valid_service(),
                "/spec/routes",
                json!([{ "pattern": "a.acme.com/*" }, { "pattern": "a.acme.com/*" }]),
            ),
            "patterns must be unique",
        ),
        (
            "secret with two sources",
            with(
                valid_service(),
                "/spec/worker/secrets",
                json!([{ "name": "JWT", "generate": { "length": 40 }, "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }]),
            ),
            "exactly one of valueFrom or generate",
        ),
        (
            "secret with no source",
            with(valid_service(), "/spec/worker/secrets", json!([{ "name": "JWT" }])),
            "exactly one of valueFrom or generate",
        ),
        (
            "duplicate secrets",
            with(
                valid_service(),
                "/spec/worker/secrets",
                json!([{ "name": "A", "generate": {} }, { "name": "A", "generate": {} }]),
            ),
            "names must be unique",
        ),
        (
            "empty main module",
            with(valid_service(), "/spec/worker/mainModule", json!("")),
            "mainModule must not be empty",
        ),
        (
            "var not an identifier",
            with(valid_service(), "/spec/worker/vars", json!({ "log-level": "x" })),
            "JavaScript identifiers",
        ),
        ("empty customer name", with(valid_service(), "/spec/customerRef/name", json!("")), "name must not be empty"),
        ("unknown strategy", with(valid_service(), "/spec/rollout/strategy", json!("BlueGreen")), "unknown variant"),
        (
            "missing worker",
            {
                let mut v = valid_service();
                v["spec"].as_object_mut().unwrap().remove("worker");
                v
            },
            "missing field",
        ),
    ];
    for (name, v, want) in cases {
        let err = cel_errors(&v).unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn customer_and_portfolio_rules() {
    let customer = json!({
        "apiVersion": "clodo.dev/v1alpha1", "kind": "Customer",
        "metadata": { "name": "acme", "namespace": "acme" },
        "spec": { "accountId": "0123456789abcdef0123456789abcdef", "apiTokenSecretRef": { "name": "t", "key": "token" }, "zones": ["acme.com"] }
    });
    let c: Customer = serde_json::from_value(customer.clone()).unwrap();
    assert!(c.validate_cel().is_ok());
    let bad: Customer = serde_json::from_value(with(customer, "/spec/zones", json!(["Acme.COM"]))).unwrap();
    assert!(format!("{:?}", bad.validate_cel().unwrap_err()).contains("lowercase domain"));

    let portfolio = json!({
        "apiVersion": "clodo.dev/v1alpha1", "kind": "Portfolio",
        "metadata": { "name": "suite", "namespace": "acme" },
        "spec": {
            "customerRef": { "name": "acme" }, "environment": "staging",
            "services": [
                { "name": "auth", "template": { "worker": { "mainModule": "i.js", "source": { "configMapRef": { "name": "c" } }, "compatibilityDate": "2025-01-01" } } },
                { "name": "auth", "template": { "worker": { "mainModule": "i.js", "source": { "configMapRef": { "name": "c" } }, "compatibilityDate": "2025-01-01" } } }
            ]
        }
    });
    let p: Portfolio = serde_json::from_value(portfolio).unwrap();
    assert!(format!("{:?}", p.validate_cel().unwrap_err()).contains("names must be unique"));
}

#[test]
fn schema_carries_patterns_and_ranges_for_the_api_server() {
    let crd = serde_json::to_string(&<CloudflareService as kube::CustomResourceExt>::crd()).unwrap();
    for needle in [
        r#""pattern":"^\\d{4}-\\d{2}-\\d{2}$""#,
        r#""pattern":"^[a-z]([a-z0-9_-]{0,61}[a-z0-9])?$""#,
        r#""enum":["development","staging","production"]"#,
        r#""maximum":256"#,
    ] {
        assert!(crd.contains(needle), "{needle} missing from the CRD schema");
    }
}
