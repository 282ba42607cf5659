//! Safety of the running operator (issue "Safety of the trust surface"): one leader even when a
//! leader is cut off from the API server, cleanup that blocks instead of orphaning, status that
//! a stale pass cannot regress, and Events that aggregate instead of piling up.

mod common;
mod harness;

use std::sync::Arc;
use std::time::Duration;

use clodo_operator::cloudflare::{ClientConfig, ClientPool, Fence};
use clodo_operator::controller::{self, Context, ControllerConfig};
use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{CloudflareService, Customer, DeletionPolicy};
use clodo_operator::engine::customer::CustomerError;
use clodo_operator::engine::error::PassError;
use clodo_operator::engine::{Engine, EngineConfig, PassEvent};
use clodo_operator::metrics::Metrics;
use cloudflare_emulator::Faults;
use harness::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};

fn instance(e: &cloudflare_emulator::JournalEntry) -> Option<&str> {
    let ua = e.user_agent.as_deref()?;
    let (_, rest) = ua.split_once("(instance ")?;
    rest.strip_suffix(')')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_whose_renewals_fail_stops_cloudflare_requests_before_another_takes_over() {
    // Cloudflare answers slowly, so the leader is in the middle of work when its renewals fail.
    let env = TestEnv::start_with(51, |b| b.latency(Duration::from_millis(150))).await;
    let Some(fake) = env.fake.as_ref() else {
        return; // needs the fake API to inject faults
    };
    let opts = OperatorOptions { leader_election: true, lease: (4, 3, 1), ..Default::default() };
    let a = env.start_isolated_operator("op-a", &opts).await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let lease_name = format!("clodo-operator-{}", env.ns);
    wait_for(&leases, &lease_name, Duration::from_secs(30), |l| {
        l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some("op-a")
    })
    .await;
    let b = env.start_isolated_operator("op-b", &opts).await;
    let names = env.apply_fleet(20).await;

    // Once the leader is changing Cloudflare, its Lease writes start failing (its other requests
    // still work, so it could go on reconciling if nothing stopped it).
    wait_until(Duration::from_secs(60), || env.emu.journal().iter().any(|e| instance(e) == Some("op-a"))).await;
    fake.inject_fault(
        kube_fake_api::Fault::new(format!("/apis/coordination.k8s.io/v1/namespaces/{}/leases", env.ns), 500)
            .method("PUT")
            .header("x-clodo-test-replica", "op-a")
            .message("injected: lease write fails")
            .always(),
    );

    // The standby takes over and converges the fleet.
    wait_all_ready(&env.services(), &names, Duration::from_secs(300)).await;
    let journal = env.emu.journal();
    let first_b = journal.iter().filter(|e| instance(e) == Some("op-b")).map(|e| e.at).min().expect("op-b took over");
    let late_a: Vec<_> = journal
        .iter()
        .filter(|e| instance(e) == Some("op-a") && e.at >= first_b)
        .map(|e| format!("{} {} {} at {}", e.seq, e.method, e.path, e.at))
        .collect();
    assert!(late_a.is_empty(), "op-a still sent requests after op-b started (first at {first_b}): {late_a:#?}");
    assert!(journal.iter().all(|e| instance(e).is_some()), "every request names its replica");
    assert_fleet_in_cloudflare(&env, &names);
    a.kill();
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cleanup_blocked_keeps_the_finalizer_until_credentials_return_or_orphan() {
    let env = TestEnv::start(52).await;
    let op = env.start_operator("op", false).await;
    env.apply_base().await;
    let services = env.services();
    wait_for(&services, "data", Duration::from_secs(60), is_ready).await;

    // The token Secret disappears, then the service is deleted.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    secrets.delete("acme-cloudflare", &DeleteParams::default()).await.unwrap();
    services.delete("data", &DeleteParams::default()).await.unwrap();
    let blocked = wait_for(&services, "data", Duration::from_secs(60), |s| {
        s.status.as_ref().and_then(|st| c::find(&st.conditions, c::CLEANUP_BLOCKED)).is_some_and(|x| x.status == "True")
    })
    .await;
    let cond = c::find(&blocked.status.as_ref().unwrap().conditions, c::CLEANUP_BLOCKED).unwrap().clone();
    assert_eq!(cond.reason, "TokenMissing", "{cond:?}");
    assert!(cond.message.contains("deletionPolicy"), "{}", cond.message);
    assert!(blocked.finalizers().contains(&"clodo.dev/cleanup".to_string()), "the finalizer stays");
    assert_eq!(env.emu_scripts(), 1, "the Worker is still there and tracked");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), &env.ns);
    let warned = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| e.reason.as_deref() == Some(c::CLEANUP_BLOCKED) && e.type_.as_deref() == Some("Warning"));
    assert!(warned, "a Warning Event says why");

    // The escape hatch: the user chooses to leave everything in Cloudflare.
    services
        .patch(
            "data",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "deletionPolicy": DeletionPolicy::Orphan } })),
        )
        .await
        .unwrap();
    wait_gone(&services, "data", Duration::from_secs(60)).await;
    assert_eq!(env.emu_scripts(), 1, "Orphan leaves the Worker");
    op.stop().await;
}

/// A controller context for calling the reconcile function directly (no watches), as a delayed
/// watch would hand it objects.
fn direct_context(env: &TestEnv) -> Arc<Context> {
    direct_context_with(env, ClientConfig { base_url: env.emu.base_url(), ..Default::default() })
}

fn direct_context_with(env: &TestEnv, cf: ClientConfig) -> Arc<Context> {
    let metrics = Metrics::new().unwrap();
    let pool = ClientPool::new(cf, None);
    let engine = Arc::new(Engine::new(pool, metrics.clone(), EngineConfig::default()));
    Context::new(env.client.clone(), engine, metrics, ControllerConfig::default(), Fence::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_copy_never_regresses_status_or_cloudflare() {
    let env = TestEnv::start(53).await;
    env.apply_base().await;
    let services = env.services();
    let ctx = direct_context(&env);
    // The first call only adds the finalizer; the second deploys.
    for _ in 0..2 {
        let fresh = services.get("data").await.unwrap();
        controller::service::reconcile(Arc::new(fresh), ctx.clone()).await.unwrap();
    }
    let gen1 = services.get("data").await.unwrap();
    assert!(is_ready(&gen1), "{:#?}", gen1.status);

    // A spec change, reconciled from fresh state.
    services
        .patch(
            "data",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"worker": {"vars": {"EXTRA": "1"}}}})),
        )
        .await
        .unwrap();
    let gen2_before = services.get("data").await.unwrap();
    controller::service::reconcile(Arc::new(gen2_before.clone()), ctx.clone()).await.unwrap();
    let current = services.get("data").await.unwrap();
    assert_eq!(current.status.as_ref().unwrap().observed_generation, Some(2));
    let serving = current.status.as_ref().unwrap().worker.clone().unwrap().version_id;

    // A delayed watch hands over the generation-1 copy: nothing happens, nothing regresses.
    env.emu.clear_journal();
    let err = controller::service::reconcile(Arc::new(gen1), ctx.clone()).await.unwrap_err();
    assert!(matches!(err, controller::Error::StaleObject), "{err}");
    assert!(env.emu.journal().iter().all(|e| !e.mutating), "{:?}", env.emu.journal());
    // And the generation-2 copy from before the last status write: its status write is refused.
    let err = controller::service::reconcile(Arc::new(gen2_before), ctx.clone()).await.unwrap_err();
    assert!(matches!(err, controller::Error::StaleObject), "{err}");
    let after = services.get("data").await.unwrap();
    assert_eq!(after.status, current.status, "status is exactly what the newest pass wrote");
    assert_eq!(after.status.unwrap().worker.unwrap().version_id, serving);
}

/// A failed pass is counted in `clodo_reconcile_errors_total` under its controller and the
/// bounded reason of its typed error (the reason its condition shows); a pass skipped on a stale
/// copy is no failure and is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_passes_are_counted_by_the_reason_of_their_typed_error() {
    let env = TestEnv::start(55).await;
    env.apply_base().await;
    let services = env.services();
    let ctx =
        direct_context_with(&env, ClientConfig { base_url: env.emu.base_url(), max_retries: 0, ..Default::default() });
    // The first call only adds the finalizer.
    controller::service::reconcile(Arc::new(services.get("data").await.unwrap()), ctx.clone()).await.unwrap();
    let before = services.get("data").await.unwrap();
    env.emu.set_faults(Faults { error_rate: 1.0, error_status: 500, ..Faults::default() });
    let err = controller::service::reconcile(Arc::new(before.clone()), ctx.clone()).await.unwrap_err();
    let customers: Api<Customer> = Api::namespaced(env.client.clone(), &env.ns);
    let customer = customers.get("acme").await.unwrap();
    let customer_err = controller::customer::reconcile(Arc::new(customer), ctx.clone()).await.unwrap_err();
    env.emu.set_faults(Faults::default());

    assert!(matches!(err, controller::Error::Pass(PassError::Cloudflare { .. })), "{err:?}");
    assert_eq!(err.reason(), c::reason::CLOUDFLARE_ERROR, "{err}");
    let shown = services.get("data").await.unwrap();
    let conds = &shown.status.as_ref().expect("the failure lands in status").conditions;
    assert!(conds.iter().any(|x| x.status == "False" && x.reason == err.reason()), "{conds:#?}");
    assert!(matches!(customer_err, controller::Error::Customer(CustomerError::VerifyToken { .. })), "{customer_err:?}");
    let m = &ctx.metrics;
    let errors =
        |controller: &str, reason: &str| m.reconcile_errors_total.with_label_values(&[controller, reason]).get();
    assert_eq!(errors("service", err.reason()), 1);
    assert_eq!(errors("customer", customer_err.reason()), 1);
    assert_eq!(m.reconcile_total.with_label_values(&["service", "error"]).get(), 1);
    let text = m.render();
    let series = format!("clodo_reconcile_errors_total{{controller=\"service\",reason=\"{}\"}} 1", err.reason());
    assert!(text.contains(&series), "{text}");

    // The copy from before the failed pass's status write is stale now: skipped, not a failure.
    let stale = controller::service::reconcile(Arc::new(before), ctx.clone()).await.unwrap_err();
    assert!(matches!(stale, controller::Error::StaleObject), "{stale}");
    assert_eq!(m.reconcile_total.with_label_values(&["service", "skipped"]).get(), 1);
    let text = m.render();
    let counted: Vec<&str> = text.lines().filter(|l| l.starts_with("clodo_reconcile_errors_total{")).collect();
    assert_eq!(counted.len(), 2, "one series per failed pass, none for the skipped one: {counted:?}");
    assert!(counted.iter().all(|l| l.ends_with(" 1")), "{counted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_aggregate_into_one_event() {
    let env = TestEnv::start(54).await;
    env.apply_base().await;
    let svc: CloudflareService = env.services().get("data").await.unwrap();
    let ctx = direct_context(&env);
    let warning = PassEvent::warning("PolicyWarning", "SecurityCheck", "spec.worker.vars.URL: insecure URL");
    for _ in 0..4 {
        ctx.publish(&svc.object_ref(&()), std::slice::from_ref(&warning)).await;
    }
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), &env.ns);
    let mine: Vec<_> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("PolicyWarning"))
        .collect();
    assert_eq!(mine.len(), 1, "one Event with a series, not one per pass: {mine:#?}");
    let count = mine[0].series.as_ref().map(|s| s.count).unwrap_or(1);
    assert_eq!(count, 4, "{:#?}", mine[0]);
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clodo-operator"))
        .args(["plan", "-f", examples.to_str().unwrap(), "--sandbox"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("WORKERD_BIN")
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INFO"), "logs expected on stderr: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI escape codes in piped logs: {stderr:?}");
}
