//! The Argo CD health checks in `charts/clodo-operator/argocd/*.lua`, run the way Argo CD runs
//! them: the live object in a global `obj` table, the script's return value a table
//! `{status = ..., message = ...}`. Every branch of every script is exercised.
//!
//! The same Lua is shown in the chart README and embedded in the two argocd-cm examples
//! (`argocd-cm-values.yaml` for the argo-cd Helm chart, `argocd-cm-patch.yaml` for kubectl/kustomize);
//! tests below fail when any copy drifts. `CLODO_BLESS=1 cargo test --test argocd_health`
//! rewrites the copies from the `.lua` files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlua::{Lua, Table, Value as LuaValue};
use serde_json::{Value, json};

const KINDS: [(&str, &str); 3] =
    [("cloudflareservice", "CloudflareService"), ("customer", "Customer"), ("portfolio", "Portfolio")];

/// Health statuses Argo CD understands.
const ARGO_STATUSES: [&str; 6] = ["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"];

fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/clodo-operator/argocd")
}

fn readme_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/clodo-operator/README.md")
}

fn lua_source(stem: &str) -> String {
    let path = argocd_dir().join(format!("{stem}.lua"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn customization_key(kind: &str) -> String {
    format!("resource.customizations.health.clodo.dev_{kind}")
}

fn blessing() -> bool {
    std::env::var("CLODO_BLESS").is_ok_and(|v| v == "1")
}

// ---------------------------------------------------------------------------------------------
// Running a script like Argo CD does.

#[derive(Debug)]
struct Health {
    status: String,
    message: String,
}

/// JSON -> Lua as Argo CD's gopher-lua sees an unstructured object: objects and arrays become
/// tables (arrays 1-based), null becomes nil (the key is absent).
fn to_lua(lua: &Lua, v: &Value) -> mlua::Result<LuaValue> {
    Ok(match v {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => LuaValue::Integer(i),
            None => LuaValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Object(map) => {
            let t = lua.create_table()?;
            for (k, item) in map {
                t.raw_set(k.as_str(), to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
    })
}

fn health(stem: &str, obj: &Value) -> Health {
    let lua = Lua::new();
    lua.globals().set("obj", to_lua(&lua, obj).expect("convert obj")).expect("set obj");
    let result: Table = lua
        .load(lua_source(stem))
        .set_name(format!("{stem}.lua"))
        .eval()
        .unwrap_or_else(|e| panic!("{stem}.lua failed on {obj}: {e}"));
    let status: String = result.get("status").expect("status is a string");
    let message: String = result.get("message").expect("message is a string");
    assert!(ARGO_STATUSES.contains(&status.as_str()), "{stem}.lua returned unknown status {status:?}");
    assert!(!message.is_empty(), "{stem}.lua returned an empty message");
    Health { status, message }
}

#[track_caller]
fn expect(stem: &str, obj: Value, status: &str, message_contains: &[&str]) {
    let h = health(stem, &obj);
    assert_eq!(h.status, status, "{stem}.lua on {obj}: message {:?}", h.message);
    for part in message_contains {
        assert!(h.message.contains(part), "{stem}.lua message {:?} lacks {part:?} (object {obj})", h.message);
    }
}

// ---------------------------------------------------------------------------------------------
// Sample objects.

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2025-10-01T12:00:00Z",
        "observedGeneration": 4,
    })
}

fn object(kind: &str, generation: Option<i64>, status: Option<Value>) -> Value {
    let mut metadata = json!({ "name": "sample", "namespace": "acme", "uid": "0b5a4c1e" });
    if let Some(g) = generation {
        metadata["generation"] = json!(g);
    }
    let mut obj = json!({
        "apiVersion": "clodo.dev/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": {},
    });
    if let Some(s) = status {
        obj["status"] = s;
    }
    obj
}

fn service(status: Value) -> Value {
    object("CloudflareService", Some(4), Some(status))
}

/// A CloudflareService status at generation 4 with the given phase and conditions.
fn service_status(phase: &str, conditions: Vec<Value>) -> Value {
    json!({ "observedGeneration": 4, "phase": phase, "conditions": conditions })
}

fn all_service_conditions(ready: &str, reason: &str, message: &str) -> Vec<Value> {
    let mut out: Vec<Value> = [
        "CredentialsValid",
        "ConfigValid",
        "SecurityValidated",
        "DatabasesReady",
        "MigrationsApplied",
        "WorkerDeployed",
        "RoutesConfigured",
        "ProductionTestsPassed",
    ]
    .iter()
    .map(|t| cond(t, "True", "Reconciled", "ok"))
    .collect();
    out.push(cond("Ready", ready, reason, message));
    out
}

// ---------------------------------------------------------------------------------------------
// CloudflareService

#[test]
fn service_without_status_is_progressing() {
    expect(
        "cloudflareservice",
        object("CloudflareService", Some(1), None),
        "Progressing",
        &["Waiting for clodo-operator to report status"],
    );
}

#[test]
fn service_status_without_observed_generation_is_progressing() {
    expect(
        "cloudflareservice",
        service(json!({ "phase": "Ready", "conditions": [cond("Ready", "True", "Ready", "serving")] })),
        "Progressing",
        &["observe generation 4"],
    );
}

#[test]
fn service_stale_status_is_progressing_even_when_it_says_ready_or_failed() {
    for phase in ["Ready", "Failed", "RolledBack", "Suspended"] {
        let mut status = service_status(phase, all_service_conditions("True", "Ready", "serving"));
        status["observedGeneration"] = json!(3);
        expect("cloudflareservice", service(status), "Progressing", &["observe generation 4"]);
    }
}

#[test]
fn service_ready_true_is_healthy_with_url() {
    let mut status = service_status("Ready", all_service_conditions("True", "Ready", "deployed"));
    status["url"] = json!("https://api.acme.com");
    expect("cloudflareservice", service(status), "Healthy", &["Ready: https://api.acme.com"]);
}

#[test]
fn service_ready_true_without_url_reports_the_condition() {
    let status = service_status("Ready", all_service_conditions("True", "Ready", "version 3f2a deployed"));
    expect("cloudflareservice", service(status), "Healthy", &["Ready (Ready): version 3f2a deployed"]);
}

#[test]
fn service_ready_true_wins_over_phase() {
    // Order of the rules: Ready=True is checked before the phase.
    let status = service_status("Suspended", all_service_conditions("True", "Ready", "serving"));
    expect("cloudflareservice", service(status), "Healthy", &["Ready"]);
}

#[test]
fn service_failed_names_the_first_failing_step() {
    let mut conditions = all_service_conditions("False", "ChecksumMismatch", "migration changed");
    conditions[4] =
        cond("MigrationsApplied", "False", "ChecksumMismatch", "0002_users.sql changed after it was applied");
    conditions[5] = cond("WorkerDeployed", "False", "Blocked", "waiting for migrations");
    expect(
        "cloudflareservice",
        service(service_status("Failed", conditions)),
        "Degraded",
        &["Phase Failed", "MigrationsApplied (ChecksumMismatch): 0002_users.sql changed after it was applied"],
    );
}

#[test]
fn service_rolled_back_is_degraded() {
    let mut conditions = all_service_conditions("False", "RolledBack", "rolled back to 1a2b");
    conditions[7] = cond("ProductionTestsPassed", "False", "ProductionTestsFailed", "health: expected 200, got 503");
    expect(
        "cloudflareservice",
        service(service_status("RolledBack", conditions)),
        "Degraded",
        &["Phase RolledBack", "ProductionTestsPassed (ProductionTestsFailed)"],
    );
}

#[test]
fn service_failed_with_only_ready_false_reports_ready() {
    let conditions = all_service_conditions("False", "CloudflareError", "upload failed: 500");
    expect(
        "cloudflareservice",
        service(service_status("Failed", conditions)),
        "Degraded",
        &["Phase Failed: Ready (CloudflareError): upload failed: 500"],
    );
}

#[test]
fn service_failed_without_conditions_is_degraded() {
    expect(
        "cloudflareservice",
        service(json!({ "observedGeneration": 4, "phase": "Failed" })),
        "Degraded",
        &["Phase Failed"],
    );
}

#[test]
fn service_suspended_is_suspended() {
    let conditions = all_service_conditions("False", "Suspended", "spec.suspend is true");
    expect("cloudflareservice", service(service_status("Suspended", conditions)), "Suspended", &["suspended"]);
}

#[test]
fn service_in_flight_phases_are_progressing() {
    for phase in ["Pending", "Validating", "Migrating", "Deploying", "Testing"] {
        let conditions = all_service_conditions("Unknown", "Pending", "working");
        expect(
            "cloudflareservice",
            service(service_status(phase, conditions)),
            "Progressing",
            &[&format!("Phase {phase}: Ready (Pending): working")],
        );
    }
}

#[test]
fn service_phase_ready_without_ready_condition_true_is_progressing() {
    let conditions = all_service_conditions("False", "CanaryInProgress", "canary at 10%");
    expect(
        "cloudflareservice",
        service(service_status("Ready", conditions)),
        "Progressing",
        &["Phase Ready: Ready (CanaryInProgress): canary at 10%"],
    );
}

#[test]
fn service_status_without_phase_or_conditions_is_pending() {
    expect("cloudflareservice", service(json!({ "observedGeneration": 4 })), "Progressing", &["Phase Pending"]);
}

#[test]
fn service_without_generation_is_judged_on_status() {
    let status = service_status("Ready", all_service_conditions("True", "Ready", "serving"));
    expect("cloudflareservice", object("CloudflareService", None, Some(status)), "Healthy", &["Ready"]);
}

#[test]
fn service_generations_as_floats_compare_like_in_argo_cd() {
    // gopher-lua numbers are float64: 4.0 observed for generation 4 is current, 3.0 is stale.
    let mut status = service_status("Ready", all_service_conditions("True", "Ready", "serving"));
    status["observedGeneration"] = json!(4.0);
    expect("cloudflareservice", service(status.clone()), "Healthy", &["Ready"]);
    status["observedGeneration"] = json!(3.0);
    expect("cloudflareservice", service(status), "Progressing", &["observe generation"]);
}

// ---------------------------------------------------------------------------------------------
// Customer

fn customer(status: Value) -> Value {
    object("Customer", Some(2), Some(status))
}

fn customer_status(conditions: Vec<Value>) -> Value {
    json!({ "observedGeneration": 2, "conditions": conditions, "services": 3 })
}

#[test]
fn customer_without_status_is_progressing() {
    expect(
        "customer",
        object("Customer", Some(1), None),
        "Progressing",
        &["Waiting for clodo-operator to report status"],
    );
}

#[test]
fn customer_stale_status_is_progressing() {
    let mut status = customer_status(vec![cond("Ready", "True", "Ready", "ok")]);
    status["observedGeneration"] = json!(1);
    expect("customer", customer(status), "Progressing", &["observe generation 2"]);
    let status = json!({ "conditions": [cond("Ready", "True", "Ready", "ok")] });
    expect("customer", customer(status), "Progressing", &["observe generation 2"]);
}

#[test]
fn customer_ready_is_healthy() {
    let status = customer_status(vec![
        cond("CredentialsValid", "True", "TokenValid", "token active"),
        cond("ZonesResolved", "True", "ZonesResolved", "1 zone"),
        cond("Ready", "True", "Ready", "account ready"),
    ]);
    expect("customer", customer(status), "Healthy", &["Ready (Ready): account ready"]);
}

#[test]
fn customer_invalid_credentials_are_degraded() {
    let status = customer_status(vec![
        cond("CredentialsValid", "False", "TokenInvalid", "token acme-cloudflare/token was rejected"),
        cond("ZonesResolved", "Unknown", "NotChecked", "credentials invalid"),
        cond("Ready", "False", "TokenInvalid", "credentials invalid"),
    ]);
    expect(
        "customer",
        customer(status),
        "Degraded",
        &["CredentialsValid (TokenInvalid): token acme-cloudflare/token was rejected"],
    );
}

#[test]
fn customer_credentials_are_reported_before_zones() {
    let status = customer_status(vec![
        cond("ZonesResolved", "False", "ZoneNotFound", "acme.io not found"),
        cond("CredentialsValid", "False", "TokenMissing", "secret acme-cloudflare missing"),
        cond("Ready", "False", "TokenMissing", "credentials invalid"),
    ]);
    expect("customer", customer(status), "Degraded", &["CredentialsValid (TokenMissing)"]);
}

#[test]
fn customer_unresolved_zone_is_degraded() {
    let status = customer_status(vec![
        cond("CredentialsValid", "True", "TokenValid", "token active"),
        cond("ZonesResolved", "False", "ZoneNotFound", "zone acme.io not found in account"),
        cond("Ready", "False", "ZoneNotFound", "zone acme.io not found in account"),
    ]);
    expect(
        "customer",
        customer(status),
        "Degraded",
        &["ZonesResolved (ZoneNotFound): zone acme.io not found in account"],
    );
}

#[test]
fn customer_unknown_credentials_are_progressing() {
    let status = customer_status(vec![
        cond("CredentialsValid", "Unknown", "RateLimited", "token check deferred"),
        cond("Ready", "False", "Pending", "checking credentials"),
    ]);
    expect("customer", customer(status), "Progressing", &["Ready (Pending): checking credentials"]);
}

#[test]
fn customer_without_conditions_is_progressing() {
    expect(
        "customer",
        customer(json!({ "observedGeneration": 2, "services": 0 })),
        "Progressing",
        &["Waiting for the credentials check"],
    );
}

// ---------------------------------------------------------------------------------------------
// Portfolio

fn portfolio(status: Value) -> Value {
    object("Portfolio", Some(7), Some(status))
}

fn portfolio_status(ready_services: Option<&str>, conditions: Vec<Value>) -> Value {
    let mut s = json!({ "observedGeneration": 7, "conditions": conditions, "services": [] });
    if let Some(r) = ready_services {
        s["readyServices"] = json!(r);
    }
    s
}

#[test]
fn portfolio_without_status_is_progressing() {
    expect(
        "portfolio",
        object("Portfolio", Some(1), None),
        "Progressing",
        &["Waiting for clodo-operator to report status"],
    );
}

#[test]
fn portfolio_stale_status_is_progressing() {
    let mut status = portfolio_status(Some("6/6"), vec![cond("Ready", "True", "ServicesReady", "all ready")]);
    status["observedGeneration"] = json!(6);
    expect("portfolio", portfolio(status), "Progressing", &["observe generation 7"]);
}

#[test]
fn portfolio_ready_is_healthy() {
    let status = portfolio_status(
        Some("6/6"),
        vec![
            cond("Ready", "True", "ServicesReady", "all services ready"),
            cond("Progressing", "False", "ServicesReady", "done"),
            cond("Degraded", "False", "ServicesReady", "none failed"),
        ],
    );
    expect(
        "portfolio",
        portfolio(status),
        "Healthy",
        &["6/6 services ready; Ready (ServicesReady): all services ready"],
    );
}

#[test]
fn portfolio_degraded_is_degraded() {
    let status = portfolio_status(
        Some("4/6"),
        vec![
            cond("Ready", "False", "ServicesFailed", "2 services failed"),
            cond("Progressing", "False", "ServicesFailed", "blocked"),
            cond("Degraded", "True", "ServicesFailed", "data-acme-io: Failed"),
        ],
    );
    expect(
        "portfolio",
        portfolio(status),
        "Degraded",
        &["4/6 services ready; Degraded (ServicesFailed): data-acme-io: Failed"],
    );
}

#[test]
fn portfolio_rolling_out_reports_progressing_condition() {
    let status = portfolio_status(
        Some("2/6"),
        vec![
            cond("Ready", "False", "WaveInProgress", "wave 2 of 3"),
            cond("Progressing", "True", "WaveInProgress", "deploying data, content"),
            cond("Degraded", "False", "ServicesReady", "none failed"),
        ],
    );
    expect(
        "portfolio",
        portfolio(status),
        "Progressing",
        &["2/6 services ready; Progressing (WaveInProgress): deploying data, content"],
    );
}

#[test]
fn portfolio_without_progressing_condition_reports_ready() {
    let status = portfolio_status(
        Some("0/2"),
        vec![cond("Ready", "False", "InvalidDependencies", "data depends on unknown service auht")],
    );
    expect(
        "portfolio",
        portfolio(status),
        "Progressing",
        &["0/2 services ready; Ready (InvalidDependencies): data depends on unknown service auht"],
    );
}

#[test]
fn portfolio_without_conditions_or_counts_is_progressing() {
    expect("portfolio", portfolio(json!({ "observedGeneration": 7 })), "Progressing", &["Waiting for the first wave"]);
    let h = health("portfolio", &portfolio(json!({ "observedGeneration": 7, "readyServices": "" })));
    assert_eq!(h.message, "Waiting for the first wave");
    let h = health("portfolio", &portfolio(json!({ "observedGeneration": 7, "readyServices": "0/3" })));
    assert_eq!(h.message, "0/3 services ready; Waiting for the first wave");
}

// ---------------------------------------------------------------------------------------------
// The copies in the README and the argocd-cm examples.

/// Argo CD runs Lua 5.1 (gopher-lua); these tests run Lua 5.4. Reject 5.2+ syntax that 5.4
/// would accept but Argo CD would not.
#[test]
fn scripts_avoid_syntax_newer_than_lua_5_1() {
    for (stem, _) in KINDS {
        let src = lua_source(stem);
        for (n, line) in src.lines().enumerate() {
            let code = line.split("--").next().unwrap_or("");
            for bad in
                ["goto ", "::", "//", "<const>", "<close>", " & ", " | ", " ~ ", "<<", ">>", "table.unpack", "utf8."]
            {
                assert!(!code.contains(bad), "{stem}.lua:{}: {bad:?} is not Lua 5.1 (Argo CD uses gopher-lua)", n + 1);
            }
        }
    }
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| if l.is_empty() { String::new() } else { format!("{pad}{l}") }).collect::<Vec<_>>().join("\n")
        + "\n"
}

fn render_values_snippet() -> String {
    let mut out = String::from(
        "# Values for the argo-cd Helm chart (argo/argo-cd): adds clodo-operator's health checks to the\n\
         # argocd-cm ConfigMap. Merge into your values, or pass with `-f`.\n\
         # Generated from charts/clodo-operator/argocd/*.lua; tests/argocd_health.rs checks it.\n\
         configs:\n  cm:\n",
    );
    for (stem, kind) in KINDS {
        out.push_str(&format!("    {}: |\n", customization_key(kind)));
        out.push_str(&indent(&lua_source(stem), 6));
    }
    out
}

fn render_patch_snippet() -> String {
    let mut out = String::from(
        "# Merge patch for the argocd-cm ConfigMap that adds clodo-operator's health checks:\n\
         #   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd-cm-patch.yaml\n\
         # or list it under `patches:` in the kustomization that installs Argo CD.\n\
         # Generated from charts/clodo-operator/argocd/*.lua; tests/argocd_health.rs checks it.\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\ndata:\n",
    );
    for (stem, kind) in KINDS {
        out.push_str(&format!("  {}: |\n", customization_key(kind)));
        out.push_str(&indent(&lua_source(stem), 4));
    }
    out
}

/// Returns the file's current content and writes `want` when blessing.
fn check_generated(path: &Path, want: &str) -> String {
    if blessing() {
        std::fs::write(path, want).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn assert_embeds_scripts(what: &str, map: &BTreeMap<String, String>) {
    let expected: Vec<String> = KINDS.iter().map(|(_, k)| customization_key(k)).collect();
    let keys: Vec<String> = map.keys().cloned().collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "{what}: unexpected keys");
    for (stem, kind) in KINDS {
        assert_eq!(
            map[&customization_key(kind)],
            lua_source(stem),
            "{what}: the {kind} health check differs from argocd/{stem}.lua; \
             run `CLODO_BLESS=1 cargo test --test argocd_health`"
        );
    }
}

#[test]
fn argo_cd_helm_values_snippet_embeds_the_scripts() {
    let path = argocd_dir().join("argocd-cm-values.yaml");
    let text = check_generated(&path, &render_values_snippet());
    #[derive(serde::Deserialize)]
    struct Configs {
        cm: BTreeMap<String, String>,
    }
    #[derive(serde::Deserialize)]
    struct Values {
        configs: Configs,
    }
    let values: Values = serde_norway::from_str(&text).expect("argocd-cm-values.yaml parses");
    assert_embeds_scripts("argocd-cm-values.yaml", &values.configs.cm);
    assert_eq!(
        text,
        render_values_snippet(),
        "argocd-cm-values.yaml is not as generated; run `CLODO_BLESS=1 cargo test --test argocd_health`"
    );
}

#[test]
fn argo_cd_configmap_patch_embeds_the_scripts() {
    let path = argocd_dir().join("argocd-cm-patch.yaml");
    let text = check_generated(&path, &render_patch_snippet());
    let doc: Value = serde_norway::from_str(&text).expect("argocd-cm-patch.yaml parses");
    assert_eq!(doc["kind"], "ConfigMap");
    assert_eq!(doc["metadata"]["name"], "argocd-cm");
    let data: BTreeMap<String, String> = serde_json::from_value(doc["data"].clone()).expect("data is a string map");
    assert_embeds_scripts("argocd-cm-patch.yaml", &data);
    assert_eq!(
        text,
        render_patch_snippet(),
        "argocd-cm-patch.yaml is not as generated; run `CLODO_BLESS=1 cargo test --test argocd_health`"
    );
}

fn readme_marker(stem: &str, edge: &str) -> String {
    format!("<!-- argocd/{stem}.lua {edge} -->")
}

/// The README shows each script between markers; returns (start, end) byte offsets of the
/// fenced block's body.
fn readme_block(readme: &str, stem: &str) -> (usize, usize) {
    let begin = readme_marker(stem, "begin");
    let end = readme_marker(stem, "end");
    let b = readme.find(&begin).unwrap_or_else(|| panic!("README lacks {begin}"));
    let e = readme.find(&end).unwrap_or_else(|| panic!("README lacks {end}"));
    assert!(b < e, "README: {begin} after {end}");
    let fence = "```lua\n";
    let start =
        readme[b..e].find(fence).unwrap_or_else(|| panic!("README: no ```lua block after {begin}")) + b + fence.len();
    let stop =
        readme[start..e].rfind("```").unwrap_or_else(|| panic!("README: unterminated block before {end}")) + start;
    (start, stop)
}

#[test]
fn readme_shows_the_scripts() {
    let path = readme_path();
    let mut readme = std::fs::read_to_string(&path).expect("chart README");
    if blessing() {
        for (stem, _) in KINDS {
            let (start, stop) = readme_block(&readme, stem);
            readme.replace_range(start..stop, &lua_source(stem));
        }
        std::fs::write(&path, &readme).expect("write README");
    }
    for (stem, _) in KINDS {
        let (start, stop) = readme_block(&readme, stem);
        assert_eq!(
            &readme[start..stop],
            lua_source(stem),
            "README's copy of argocd/{stem}.lua differs; run `CLODO_BLESS=1 cargo test --test argocd_health`"
        );
    }
    for (_, kind) in KINDS {
        assert!(readme.contains(&customization_key(kind)), "README does not name {}", customization_key(kind));
    }
}
