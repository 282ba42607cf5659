//! `spec.worker.source.oci` against a real registry (Debian's `docker-registry`) with artifacts
//! pushed by `oras`: tag and digest refs, a pull Secret for an htpasswd registry, a tampered blob,
//! size limits, the registry going down, and a 3 MiB bundle (more than a ConfigMap holds) running
//! on workerd in the sandbox.

mod common;
mod source_support;

use std::collections::BTreeMap;

use base64::Engine as _;
use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{LocalObjectRef, OciSource, Phase, WorkerSource};
use clodo_operator::engine::Outcome;
use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use source_support::registry::{Registry, tools};
use source_support::*;

const JS: &str = "application/javascript";

fn oci(reference: &str, pull_secret: Option<&str>) -> WorkerSource {
    WorkerSource {
        oci: Some(OciSource {
            reference: reference.into(),
            pull_secret_ref: pull_secret.map(|n| LocalObjectRef { name: n.into() }),
            insecure: true,
        }),
        ..Default::default()
    }
}

fn ready(svc: &clodo_operator::crd::CloudflareService) -> bool {
    svc.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Ready))
}

#[tokio::test]
async fn tag_ref_deploys_records_the_digest_and_resyncs_without_downloading() {
    let Some(bin) = tools() else { return };
    let reg = Registry::start(&bin, None);
    let lib = b"export const v = 1;";
    let d1 = reg.push("acme/data:1.4", &[("index.js", WORKER_JS.as_bytes(), JS), ("lib.js", lib, JS)]);
    let w = World::new(71).await;
    let cache = tempfile::tempdir().unwrap();
    let f = default_fetcher(cache.path());
    let reference = format!("{}/acme/data:1.4", reg.host);
    let mut svc = w.svc();
    svc.spec.body.worker.source = oci(&reference, None);

    pass_with(&w, &f, &mut svc).await;
    assert!(ready(&svc), "{:#?}", svc.status.as_ref().unwrap().conditions);
    let src = svc.status.as_ref().unwrap().source.clone().expect("status.source");
    assert_eq!((src.kind.as_str(), src.reference.as_deref(), src.digest.as_str()), ("oci", Some(&*reference), &*d1));
    assert_eq!(reg.blob_downloads(), 2, "one download per layer:\n{}", reg.log());

    // Resync: the tag is resolved again (one HEAD), nothing is downloaded or uploaded.
    w.emu.clear_journal();
    let r = pass_with(&w, &f, &mut svc).await;
    assert_eq!(r.outcome, Outcome::Done { requeue_after: None });
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert_eq!(reg.blob_downloads(), 2);

    // The tag moves: exactly one upload, and status follows the new digest.
    let d2 =
        reg.push("acme/data:1.4", &[("index.js", WORKER_JS.as_bytes(), JS), ("lib.js", b"export const v = 2;", JS)]);
    assert_ne!(d1, d2);
    w.emu.clear_journal();
    pass_with(&w, &f, &mut svc).await;
    assert!(ready(&svc));
    let muts = w.mutations();
    assert_eq!(muts.len(), 1, "{muts:?}");
    assert!(muts[0].starts_with("PUT ") && muts[0].contains("/workers/scripts/"), "{muts:?}");
    assert_eq!(svc.status.as_ref().unwrap().source.as_ref().unwrap().digest, d2);
}

#[tokio::test]
async fn digest_ref_needs_no_registry_after_the_first_pull() {
    let Some(bin) = tools() else { return };
    let mut reg = Registry::start(&bin, None);
    let digest = reg.push("acme/data:2.0", &[("index.js", WORKER_JS.as_bytes(), JS)]);
    let w = World::new(72).await;
    let cache = tempfile::tempdir().unwrap();
    let mut svc = w.svc();
    svc.spec.body.worker.source = oci(&format!("{}/acme/data@{digest}", reg.host), None);
    pass_with(&w, &default_fetcher(cache.path()), &mut svc).await;
    assert!(ready(&svc), "{:#?}", svc.status.as_ref().unwrap().conditions);
    assert_eq!(svc.status.as_ref().unwrap().source.as_ref().unwrap().digest, digest);

    // Registry gone, operator restarted over the same cache directory: the resync still converges.
    reg.stop();
    w.emu.clear_journal();
    let r = pass_with(&w, &default_fetcher(cache.path()), &mut svc).await;
    assert_eq!(r.outcome, Outcome::Done { requeue_after: None });
    assert!(ready(&svc));
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
}

#[tokio::test]
async fn registry_down_is_retried_and_nothing_is_uploaded_until_it_is_back() {
    let Some(bin) = tools() else { return };
    let mut reg = Registry::start(&bin, None);
    reg.push("acme/data:3.0", &[("index.js", WORKER_JS.as_bytes(), JS)]);
    reg.stop();
    let w = World::new(73).await;
    let cache = tempfile::tempdir().unwrap();
    let f = default_fetcher(cache.path());
    let mut svc = w.svc();
    svc.spec.body.worker.source = oci(&format!("{}/acme/data:3.0", reg.host), None);
    let r = pass_with(&w, &f, &mut svc).await;
    assert!(matches!(r.outcome, Outcome::Retry(_)), "{:?}", r.outcome);
    let (status, reason, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!((status.as_str(), reason.as_str()), ("Unknown", "ArtifactUnavailable"), "{message}");
    assert!(message.contains("after 3 attempt(s)"), "{message}");
    assert!(w.emu.journal().is_empty(), "no partial upload: {:?}", w.emu.journal());
    assert!(f.cache().keys().is_empty());

    reg.resume();
    pass_with(&w, &f, &mut svc).await;
    assert!(ready(&svc), "{:#?}", svc.status.as_ref().unwrap().conditions);
}

fn docker_config_secret(ns: &str, name: &str, host: &str, user: &str, password: &str) -> Secret {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let json = format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#);
    Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(".dockerconfigjson".to_string(), ByteString(json.into_bytes()))])),
        ..Default::default()
    }
}

#[tokio::test]
async fn registry_with_auth_needs_the_pull_secret() {
    let Some(bin) = tools() else { return };
    let reg = Registry::start(&bin, Some(("ci-bot", "pull-Pa55word")));
    reg.push("acme/private:1", &[("index.js", WORKER_JS.as_bytes(), JS)]);
    let mut w = World::new(74).await;
    let ns = w.ns.clone();
    w.manifests.secrets.push(docker_config_secret(&ns, "regcred", &reg.host, "ci-bot", "pull-Pa55word"));
    w.manifests.secrets.push(docker_config_secret(&ns, "wrongcred", &reg.host, "ci-bot", "not-the-password"));
    let cache = tempfile::tempdir().unwrap();
    let f = default_fetcher(cache.path());
    let reference = format!("{}/acme/private:1", reg.host);

    for secret in [None, Some("wrongcred")] {
        let mut svc = w.svc();
        svc.spec.body.worker.source = oci(&reference, secret);
        let r = pass_with(&w, &f, &mut svc).await;
        assert_eq!(r.outcome, Outcome::Terminal, "{secret:?}");
        let (status, reason, message) = condition(&svc, c::CONFIG_VALID);
        assert_eq!((status.as_str(), reason.as_str()), ("False", "ArtifactUnauthorized"), "{secret:?}: {message}");
        assert!(!message.contains("not-the-password"), "{message}");
    }
    let mut svc = w.svc();
    svc.spec.body.worker.source = oci(&reference, Some("missing"));
    pass_with(&w, &f, &mut svc).await;
    let (status, reason, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "MissingReference"), "{message}");
    assert!(message.contains("spec.worker.source.oci.pullSecretRef.name"), "{message}");
    assert!(w.emu.journal().is_empty(), "{:?}", w.emu.journal());

    svc.spec.body.worker.source = oci(&reference, Some("regcred"));
    pass_with(&w, &f, &mut svc).await;
    assert!(ready(&svc), "{:#?}", svc.status.as_ref().unwrap().conditions);
}

#[tokio::test]
async fn tampered_blob_is_a_digest_mismatch_and_too_large_artifacts_stop_before_cloudflare() {
    let Some(bin) = tools() else { return };
    let reg = Registry::start(&bin, None);
    let w = World::new(75).await;
    let cache = tempfile::tempdir().unwrap();

    // A layer whose stored bytes no longer match its digest.
    let evil = WORKER_JS.replace("hello", "HACKD");
    reg.push("acme/data:t", &[("index.js", WORKER_JS.as_bytes(), JS)]);
    let layer = format!("sha256:{}", sha256_hex(WORKER_JS.as_bytes()));
    std::fs::write(reg.blob_file(&layer), evil.as_bytes()).unwrap();
    let f = default_fetcher(cache.path());
    let mut svc = w.svc();
    svc.spec.body.worker.source = oci(&format!("{}/acme/data:t", reg.host), None);
    let r = pass_with(&w, &f, &mut svc).await;
    assert_eq!(r.outcome, Outcome::Terminal);
    let (status, reason, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "DigestMismatch"), "{message}");
    assert!(message.contains(&layer), "{message}");
    assert!(w.emu.journal().is_empty(), "{:?}", w.emu.journal());
    assert!(f.cache().keys().is_empty(), "tampered content is never cached");

    // 2 MiB of incompressible data: over a 1 MiB compressed limit after download, and refused
    // from the manifest alone (nothing downloaded) under a 1 MiB uncompressed limit.
    let big = noise(2 << 20, 11);
    let index = format!("{WORKER_JS}// big\n");
    reg.push("acme/data:big", &[("index.js", index.as_bytes(), JS), ("blob.bin", &big, "application/octet-stream")]);
    svc.spec.body.worker.source = oci(&format!("{}/acme/data:big", reg.host), None);
    let f = fetcher(cache.path(), 1 << 20, 64 << 20);
    pass_with(&w, &f, &mut svc).await;
    let (status, reason, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "ArtifactTooLarge"), "{message}");
    assert!(message.contains("gzip-compressed"), "{message}");
    let downloads = reg.blob_downloads();
    let small = tempfile::tempdir().unwrap();
    pass_with(&w, &fetcher(small.path(), 1 << 20, 1 << 20), &mut svc).await;
    let (_, reason, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!(reason, "ArtifactTooLarge", "{message}");
    assert!(message.contains("layers total"), "{message}");
    assert_eq!(reg.blob_downloads(), downloads, "refused before any download");
    assert!(w.emu.journal().is_empty(), "{:?}", w.emu.journal());
}

#[tokio::test]
async fn unknown_digest_and_bad_reference_are_named() {
    let Some(bin) = tools() else { return };
    let reg = Registry::start(&bin, None);
    reg.push("acme/data:1", &[("index.js", WORKER_JS.as_bytes(), JS)]);
    let w = World::new(76).await;
    let cache = tempfile::tempdir().unwrap();
    let f = default_fetcher(cache.path());
    let mut svc = w.svc();
    svc.spec.body.worker.source = oci(&format!("{}/acme/data@sha256:{}", reg.host, "ab".repeat(32)), None);
    pass_with(&w, &f, &mut svc).await;
    let (status, reason, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "ArtifactNotFound"), "{message}");
    svc.spec.body.worker.source = oci("Not A Reference", None);
    pass_with(&w, &f, &mut svc).await;
    let (_, reason, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!(reason, "InvalidSpec", "{message}");
    assert!(message.starts_with("spec.worker.source.oci.ref:"), "{message}");
}

/// workerd, or `None` (skipped) when absent and `CI` is unset.
fn workerd() -> Option<cloudflare_emulator::Workerd> {
    let explicit = std::env::var_os("WORKERD_BIN").map(std::path::PathBuf::from);
    match cloudflare_emulator::Workerd::discover(explicit.as_deref()) {
        Ok(Some((w, _))) => Some(w),
        Ok(None) if std::env::var_os("CI").is_some() => panic!("workerd not found but CI is set (WORKERD_BIN)"),
        Ok(None) => {
            println!("SKIPPED: workerd not found (set WORKERD_BIN)");
            None
        }
        Err(e) => panic!("WORKERD_BIN is set but unusable: {e}"),
    }
}

#[tokio::test]
async fn three_mib_bundle_from_the_registry_runs_on_workerd_in_the_sandbox() {
    use clodo_operator::cli::manifests::{self, ManifestSource};
    let Some(bin) = tools() else { return };
    let Some(workerd) = workerd() else { return };
    let reg = Registry::start(&bin, None);

    // The quickstart's modules, a 3 MiB text module and an entry point that serves its size.
    let mut m = manifests::load(&[std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")]).unwrap();
    let code = m.config_maps.iter().find(|c| c.metadata.name.as_deref() == Some("data-service-code")).unwrap();
    let mut files: Vec<(String, Vec<u8>)> =
        code.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    let big = hex::encode(noise(3 << 19, 5)); // 3 MiB of text
    assert!(big.len() >= 3 << 20, "more than a ConfigMap's ~1 MiB");
    let main = r#"import app from "./index.js";
import big from "./big.txt";
export default {
  async fetch(request, env, ctx) {
    if (new URL(request.url).pathname === "/bundle-size") return new Response(String(big.length));
    return app.fetch(request, env, ctx);
  },
};
"#;
    files.push(("main.js".into(), main.as_bytes().to_vec()));
    files.push(("big.txt".into(), big.clone().into_bytes()));
    let layers: Vec<(&str, &[u8], &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_slice(), if n.ends_with(".txt") { "text/plain" } else { JS }))
        .collect();
    let digest = reg.push("acme/data-service:3mib", &layers);
    m.config_maps.retain(|c| c.metadata.name.as_deref() != Some("data-service-code"));
    let svc0 = &mut m.services[0];
    svc0.metadata.generation = Some(1);
    svc0.spec.body.worker.main_module = "main.js".into();
    svc0.spec.body.worker.source = oci(&format!("{}/acme/data-service:3mib", reg.host), None);
    let mut svc = svc0.clone();

    let state = tempfile::tempdir().unwrap();
    let f = default_fetcher(&state.path().join("cache"));
    let source =
        ManifestSource::new(m.clone(), Some(state.path().join("secrets.json"))).unwrap().with_fetcher(Some(f.clone()));
    let sandbox = clodo_operator::cli::deploy::start_sandbox(&m, &source, Some(workerd)).await.unwrap();
    let edge = sandbox.handle.edge_url().expect("edge listener");
    let pool = clodo_operator::cloudflare::ClientPool::new(
        clodo_operator::cloudflare::ClientConfig { base_url: sandbox.handle.base_url(), ..Default::default() },
        None,
    );
    let engine = clodo_operator::engine::Engine::new(
        pool,
        clodo_operator::metrics::Metrics::new().unwrap(),
        clodo_operator::engine::EngineConfig { no_local_runtime: false, edge_url: Some(edge.clone()) },
    )
    .with_code_fetcher(f);
    for _ in 0..5 {
        let r = engine.reconcile(&svc, &source, &clodo_operator::engine::NoProgress).await;
        svc.status = Some(r.status);
        if ready(&svc) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(ready(&svc), "{:#?}", svc.status.as_ref().unwrap().conditions);
    assert_eq!(svc.status.as_ref().unwrap().source.as_ref().unwrap().digest, digest);
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{edge}{path}")).header(reqwest::header::HOST, "api.acme.com").send();
    let r = get("/bundle-size").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), big.len().to_string(), "workerd runs the 3 MiB bundle");
    assert_eq!(get("/health").await.unwrap().text().await.unwrap(), "ok");
}
