//! The real controllers against the in-process fake Kubernetes API (or a real cluster when
//! KUBECONFIG is set) and the Cloudflare emulator, driven like a user with `kube::Api`.

mod common;
mod harness;

use std::time::Duration;

use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{CloudflareService, Customer};
use harness::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_lifecycle_through_the_controllers() {
    let env = TestEnv::start(31).await;
    let ns = env.ns.clone();
    let op = env.start_operator("op-a", true).await;
    env.apply_base().await;

    let services: Api<CloudflareService> = Api::namespaced(env.client.clone(), &ns);
    let svc = wait_for(&services, "data", Duration::from_secs(60), is_ready).await;
    let st = svc.status.clone().unwrap();
    assert_eq!(st.observed_generation, svc.metadata.generation);
    let v1 = st.worker.unwrap().version_id.unwrap();
    assert!(svc.metadata.finalizers.clone().unwrap_or_default().contains(&"clodo.dev/cleanup".to_string()));

    // Every change was reported as a Normal Event on the service.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), &ns);
    let reasons: Vec<String> =
        events.list(&Default::default()).await.unwrap().items.into_iter().filter_map(|e| e.reason).collect();
    for r in ["CreateDatabase", "MigrationApplied", "UploadWorker", "CreateRoute", "AttachDomain"] {
        assert!(reasons.iter().any(|x| x == r), "Event {r} missing: {reasons:?}");
    }

    // A reconcile with nothing to do changes no status (an identical server-side apply from a
    // stale cache copy is a no-op: the object's resourceVersion stays) and mutates nothing in
    // Cloudflare: at most drift-check reads (none when the last check is only seconds old).
    if env.fake.is_some() {
        env.emu.clear_journal();
        let passes_before = service_passes(&op.metrics);
        let patch = serde_json::json!({ "metadata": { "labels": { "touched": "yes" } } });
        let touched =
            services.patch("data", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
        wait_until(Duration::from_secs(30), || service_passes(&op.metrics) > passes_before).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = services.get("data").await.unwrap();
        assert_eq!(
            after.metadata.resource_version, touched.metadata.resource_version,
            "a quiet pass changed the object"
        );
        assert_eq!(after.status, touched.status);
        assert!(
            env.emu.journal().iter().all(|e| e.method == "GET" && e.path.ends_with("/deployments")),
            "only drift-check reads: {:?}",
            env.emu.journal()
        );
    }

    // Customer status is filled by its controller.
    let customers: Api<Customer> = Api::namespaced(env.client.clone(), &ns);
    let cust = wait_for(&customers, "acme", Duration::from_secs(30), |c| {
        c.status.as_ref().is_some_and(|s| c::is_true(&s.conditions, c::READY) && s.services == 1)
    })
    .await;
    assert_eq!(cust.status.unwrap().zones[0].name, "acme.com");

    // Change the code ConfigMap: a new version deploys without touching the service.
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    apply(
        &cms,
        common::config_map(
            &ns,
            "data-code",
            &[("index.js", "export default { fetch() { return new Response('v2') } };")],
        ),
    )
    .await;
    let svc = wait_for(&services, "data", Duration::from_secs(60), |s| {
        is_ready(s)
            && s.status.as_ref().and_then(|x| x.worker.as_ref()).and_then(|w| w.version_id.clone()) != Some(v1.clone())
    })
    .await;
    assert_eq!(svc.metadata.generation, Some(1), "the service spec was not touched");

    // Rotate the token Secret: the next calls use the new token.
    env.emu.clear_journal();
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns);
    apply(&secrets, common::secret(&ns, "acme-cloudflare", "token", ROTATED_TOKEN)).await;
    apply(
        &cms,
        common::config_map(
            &ns,
            "data-code",
            &[("index.js", "export default { fetch() { return new Response('v3') } };")],
        ),
    )
    .await;
    wait_until(Duration::from_secs(60), || {
        env.emu.journal().iter().any(|e| e.token_id.as_deref() == Some(env.rotated_token_id.as_str()) && e.mutating)
    })
    .await;

    // /metrics exposes the design's series.
    let text = reqwest::get(format!("http://{}/metrics", op.admin_addr)).await.unwrap().text().await.unwrap();
    for series in [
        "clodo_reconcile_total",
        "clodo_reconcile_duration_seconds",
        "clodo_cloudflare_requests_total",
        "clodo_cloudflare_request_duration_seconds",
        "clodo_deployments_total",
        "clodo_migrations_applied_total",
        "clodo_resources_ready",
    ] {
        assert!(text.contains(series), "{series} missing from /metrics");
    }
    // One service on its token's budget: the configured resync period needs no stretching.
    assert!(text.contains("clodo_resync_effective_period_seconds 600"), "{text}");
    assert!(!text.contains(common::TOKEN) && !text.contains(ROTATED_TOKEN));
    wait_ready(&op).await;

    // Delete: the finalizer cleans Cloudflare up, then the object goes.
    services.delete("data", &DeleteParams::default()).await.unwrap();
    wait_until(Duration::from_secs(60), || env.emu_scripts() == 0).await;
    wait_gone(&services, "data", Duration::from_secs(30)).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_mutates_cloudflare() {
    let env = TestEnv::start(32).await;
    let a = env.start_operator("op-a", true).await;
    let b = env.start_operator("op-b", true).await;
    env.apply_base().await;
    let services: Api<CloudflareService> = Api::namespaced(env.client.clone(), &env.ns);
    wait_for(&services, "data", Duration::from_secs(60), is_ready).await;
    let passes = |h: &OperatorHandle| {
        h.metrics.reconcile_total.with_label_values(&["service", "ok"]).get()
            + h.metrics.reconcile_total.with_label_values(&["service", "error"]).get()
    };
    let (pa, pb) = (passes(&a), passes(&b));
    assert!((pa > 0) != (pb > 0), "exactly one replica reconciles: a={pa} b={pb}");
    // The standby is ready (standing by).
    for h in [&a, &b] {
        wait_ready(h).await;
    }
    // The leader stops and releases the lease: the standby takes over and keeps reconciling.
    let (leader, standby) = if pa > 0 { (a, b) } else { (b, a) };
    leader.stop().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    apply(
        &cms,
        common::config_map(
            &env.ns,
            "data-code",
            &[("index.js", "export default { fetch() { return new Response('v9') } };")],
        ),
    )
    .await;
    wait_until(Duration::from_secs(60), || passes(&standby) > 0).await;
    standby.stop().await;
}
