//! The running operator (real controllers, fake Kubernetes API, emulator) takes Worker code from
//! a pinned URL: it deploys to Ready with `status.source`, keeps the artifact in the
//! `--artifact-cache-dir` cache, and reports a digest mismatch as a condition.

mod common;
mod harness;
mod source_support;

use std::time::Duration;

use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{CloudflareService, UrlSource, WorkerSource};
use harness::*;
use kube::api::{Api, Patch, PatchParams};
use source_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_deploys_code_from_a_pinned_url_and_reports_a_mismatch() {
    let env = TestEnv::start(81).await;
    let ns = env.ns.clone();
    let server = FileServer::start().await;
    let bundle = tarball(&[("index.js", common::WORKER_JS.as_bytes())]);
    let url = server.put("acme/bundle.tar.gz", bundle.clone());
    let sha = sha256_hex(&bundle);
    let cache = tempfile::tempdir().unwrap();
    let mut args = env.run_args("op-src", &OperatorOptions::default());
    args.artifacts = clodo_operator::source::SourceArgs {
        artifact_cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let op = spawn_operator(env.client.clone(), args).await;

    let mut m = common::base_manifests(&ns, &env.account);
    m.services[0].spec.body.worker.source =
        WorkerSource { url: Some(UrlSource { url: url.clone(), sha256: sha.clone() }), ..Default::default() };
    for s in m.secrets {
        apply(&Api::namespaced(env.client.clone(), &ns), s).await;
    }
    for cm in m.config_maps {
        apply(&Api::namespaced(env.client.clone(), &ns), cm).await;
    }
    for cu in m.customers {
        apply(&Api::namespaced(env.client.clone(), &ns), cu).await;
    }
    for s in m.services {
        apply(&Api::namespaced(env.client.clone(), &ns), s).await;
    }

    let services: Api<CloudflareService> = Api::namespaced(env.client.clone(), &ns);
    let svc = wait_for(&services, "data", Duration::from_secs(60), is_ready).await;
    let source = svc.status.unwrap().source.expect("status.source");
    assert_eq!((source.kind.as_str(), source.digest), ("url", format!("sha256:{sha}")));
    assert_eq!(server.requests(), 1);
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1, "one artifact in --artifact-cache-dir");

    let patch =
        serde_json::json!({ "spec": { "worker": { "source": { "url": { "url": url, "sha256": "f".repeat(64) } } } } });
    services.patch("data", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let svc = wait_for(&services, "data", Duration::from_secs(60), |s: &CloudflareService| {
        s.status.as_ref().is_some_and(|st| {
            c::find(&st.conditions, c::CONFIG_VALID)
                .is_some_and(|x| x.status == "False" && x.reason == "DigestMismatch")
        })
    })
    .await;
    let cond = c::find(&svc.status.as_ref().unwrap().conditions, c::CONFIG_VALID).unwrap().clone();
    assert!(cond.message.contains("spec.worker.source.url.url"), "{}", cond.message);
    assert_eq!(env.emu_scripts(), 1, "the deployed version stays; nothing new uploaded");
    op.stop().await;
}
