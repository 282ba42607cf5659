//! `spec.worker.source.url` end to end against the emulator, and the admission rules of
//! `spec.worker.source`: a pinned tarball deploys, a resync and a restart never download again, a
//! digest mismatch or an oversized bundle stops before any Cloudflare call, and an unreachable
//! server is retried without a partial upload.

mod common;
mod source_support;

use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{CloudflareService, Phase, UrlSource, WorkerSource};
use clodo_operator::engine::Outcome;
use common::*;
use serde_json::json;
use source_support::*;

fn url_source(url: &str, sha256: &str) -> WorkerSource {
    WorkerSource { url: Some(UrlSource { url: url.into(), sha256: sha256.into() }), ..Default::default() }
}

fn uploaded_module(w: &World, name: &str) -> Option<Vec<u8>> {
    let script = w.emu.script(&w.account, "acme-data-production")?;
    let v = script.latest_version()?;
    v.modules.iter().find(|m| m.name == name).map(|m| m.content.clone())
}

#[tokio::test]
async fn pinned_tarball_deploys_and_resyncs_never_download_again() {
    let w = World::new(61).await;
    let server = FileServer::start().await;
    let lib = b"export const greeting = 'hi from the tarball';".to_vec();
    let bundle = tarball(&[("./index.js", WORKER_JS.as_bytes()), ("./lib/greeting.js", &lib)]);
    // A signed query string (as object stores issue) stays out of status and messages.
    let url = server.put("builds/bundle.tar.gz", bundle.clone()) + "?sig=abc";
    let sha = sha256_hex(&bundle);
    let cache = tempfile::tempdir().unwrap();
    let f = default_fetcher(cache.path());
    let mut svc = w.svc();
    svc.spec.body.worker.source = url_source(&url, &sha);

    pass_with(&w, &f, &mut svc).await;
    let st = svc.status.clone().unwrap();
    assert_eq!(st.phase, Some(Phase::Ready), "{:#?}", st.conditions);
    let source = st.source.clone().expect("status.source");
    assert_eq!((source.kind.as_str(), source.digest.clone()), ("url", format!("sha256:{sha}")));
    assert!(source.reference.is_none(), "URLs may carry tokens and are not recorded");
    assert_eq!(uploaded_module(&w, "lib/greeting.js").as_deref(), Some(lib.as_slice()));
    assert_eq!(server.requests(), 1);

    // Resync: served from the cache, nothing changes in Cloudflare.
    w.emu.clear_journal();
    let r = pass_with(&w, &f, &mut svc).await;
    assert_eq!(r.outcome, Outcome::Done { requeue_after: None });
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert_eq!(server.requests(), 1, "a resync must not download again");

    // A restarted operator with the same cache directory, the server gone: still no download.
    server.set_down(true);
    let restarted = default_fetcher(cache.path());
    pass_with(&w, &restarted, &mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status.as_ref().unwrap().conditions);
    assert_eq!(server.requests(), 1);
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
}

#[tokio::test]
async fn single_module_url_is_named_by_its_last_segment() {
    let w = World::new(62).await;
    let server = FileServer::start().await;
    let url = server.put("v1/index.js", WORKER_JS.as_bytes().to_vec());
    let cache = tempfile::tempdir().unwrap();
    let mut svc = w.svc();
    svc.spec.body.worker.source = url_source(&url, &sha256_hex(WORKER_JS.as_bytes()));
    pass_with(&w, &default_fetcher(cache.path()), &mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status.as_ref().unwrap().conditions);
    assert_eq!(uploaded_module(&w, "index.js").as_deref(), Some(WORKER_JS.as_bytes()));
}

#[tokio::test]
async fn digest_mismatch_is_a_config_error_and_nothing_reaches_cloudflare() {
    let w = World::new(63).await;
    let server = FileServer::start().await;
    let url = server.put("bundle.tgz", tarball(&[("index.js", WORKER_JS.as_bytes())]));
    let cache = tempfile::tempdir().unwrap();
    let f = default_fetcher(cache.path());
    let mut svc = w.svc();
    svc.spec.body.worker.source = url_source(&url, &"0".repeat(64));
    let r = pass_with(&w, &f, &mut svc).await;
    assert_eq!(r.outcome, Outcome::Terminal);
    let (status, reason, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "DigestMismatch"), "{message}");
    assert!(message.starts_with("spec.worker.source.url.url: digest mismatch"), "{message}");
    assert_eq!(svc.status.as_ref().unwrap().phase, Some(Phase::Failed));
    assert!(w.emu.journal().is_empty(), "no Cloudflare call: {:?}", w.emu.journal());
    assert!(f.cache().keys().is_empty(), "unverified content is never cached");
}

#[tokio::test]
async fn oversized_bundle_is_refused_before_any_cloudflare_call() {
    let w = World::new(64).await;
    let server = FileServer::start().await;
    let big = tarball(&[("index.js", WORKER_JS.as_bytes()), ("data.bin", &noise(300 * 1024, 7))]);
    let url = server.put("big.tar.gz", big.clone());
    let cache = tempfile::tempdir().unwrap();
    // Limits: 256 KiB compressed, 8 MiB uncompressed.
    let f = fetcher(cache.path(), 256 * 1024, 8 << 20);
    let mut svc = w.svc();
    svc.spec.body.worker.source = url_source(&url, &sha256_hex(&big));
    let r = pass_with(&w, &f, &mut svc).await;
    assert_eq!(r.outcome, Outcome::Terminal);
    let (status, reason, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "ArtifactTooLarge"), "{message}");
    assert!(message.contains("262144-byte Worker size limit"), "{message}");
    assert!(w.emu.journal().is_empty(), "{:?}", w.emu.journal());
}

#[tokio::test]
async fn unreachable_server_is_retried_with_backoff_and_uploads_nothing() {
    let w = World::new(65).await;
    let server = FileServer::start().await;
    let bundle = tarball(&[("index.js", WORKER_JS.as_bytes())]);
    let url = server.put("b.tar.gz", bundle.clone());
    server.set_down(true);
    let cache = tempfile::tempdir().unwrap();
    let f = default_fetcher(cache.path());
    let mut svc = w.svc();
    svc.spec.body.worker.source = url_source(&url, &sha256_hex(&bundle));
    let r = pass_with(&w, &f, &mut svc).await;
    assert!(matches!(r.outcome, Outcome::Retry(_)), "{:?}", r.outcome);
    let (status, reason, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!((status.as_str(), reason.as_str()), ("Unknown", "ArtifactUnavailable"), "{message}");
    assert!(message.contains("after 3 attempt(s)") && message.contains("HTTP 503"), "{message}");
    assert_eq!(server.requests(), 3, "three attempts within the pass");
    assert!(w.emu.journal().is_empty(), "{:?}", w.emu.journal());
    // The server recovers: the next pass deploys.
    server.set_down(false);
    pass_with(&w, &f, &mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status.as_ref().unwrap().conditions);
}

#[tokio::test]
async fn main_module_must_be_in_the_artifact() {
    let w = World::new(66).await;
    let server = FileServer::start().await;
    let bundle = tarball(&[("worker.mjs", WORKER_JS.as_bytes())]);
    let url = server.put("b.tar.gz", bundle.clone());
    let cache = tempfile::tempdir().unwrap();
    let mut svc = w.svc();
    svc.spec.body.worker.source = url_source(&url, &sha256_hex(&bundle));
    pass_with(&w, &default_fetcher(cache.path()), &mut svc).await;
    let (status, _, message) = condition(&svc, c::CONFIG_VALID);
    assert_eq!(status, "False");
    assert!(message.contains("spec.worker.mainModule") && message.contains("worker.mjs"), "{message}");
}

fn service_json(source: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "clodo.dev/v1alpha1",
        "kind": "CloudflareService",
        "metadata": { "name": "svc", "namespace": "acme" },
        "spec": {
            "customerRef": { "name": "acme" },
            "environment": "production",
            "worker": { "mainModule": "index.js", "source": source, "compatibilityDate": "2025-10-01" }
        }
    })
}

fn cel(source: serde_json::Value) -> Option<String> {
    let svc: CloudflareService = serde_json::from_value(service_json(source)).expect("schema");
    svc.validate_cel().err().map(|e| format!("{e:?}"))
}

#[test]
fn exactly_one_source_is_enforced_by_cel() {
    let sha = "a".repeat(64);
    assert_eq!(cel(json!({ "configMapRef": { "name": "code" } })), None);
    assert_eq!(cel(json!({ "oci": { "ref": "registry.example.com/acme/app:1.4.2" } })), None);
    assert_eq!(cel(json!({ "url": { "url": "https://x.example/b.tar.gz", "sha256": sha } })), None);
    let one_of = "set exactly one of configMapRef, oci or url";
    for bad in [
        json!({}),
        json!({ "configMapRef": { "name": "code" }, "oci": { "ref": "r.example/a:1" } }),
        json!({ "oci": { "ref": "r.example/a:1" }, "url": { "url": "https://x.example/a.js", "sha256": sha } }),
    ] {
        let err = cel(bad.clone()).unwrap_or_else(|| panic!("accepted {bad}"));
        assert!(err.contains(one_of), "{err}");
    }
    let err = cel(json!({ "oci": { "ref": "https://r.example/a:1" } })).unwrap();
    assert!(err.contains("no scheme"), "{err}");
    let err = cel(json!({ "url": { "url": "ftp://x.example/a.js", "sha256": sha } })).unwrap();
    assert!(err.contains("must start with https://"), "{err}");
}

/// Write the world's manifests (with `svc`) as YAML files into a directory.
fn write_manifests(w: &World, svc: &CloudflareService, dir: &std::path::Path) {
    let mut docs = Vec::new();
    for c in &w.manifests.customers {
        docs.push(serde_norway::to_string(c).unwrap());
    }
    for s in &w.manifests.secrets {
        docs.push(serde_norway::to_string(s).unwrap());
    }
    for c in &w.manifests.config_maps {
        docs.push(serde_norway::to_string(c).unwrap());
    }
    docs.push(serde_norway::to_string(svc).unwrap());
    std::fs::write(dir.join("all.yaml"), docs.join("---\n")).unwrap();
}

fn validate(dir: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clodo-operator"))
        .arg("validate")
        .arg("-f")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string())
}

// Multi-threaded: the CLI runs as a blocking child process while the file server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_fetches_artifacts_only_with_online() {
    let w = World::new(67).await;
    let server = FileServer::start().await;
    let bundle = tarball(&[("index.js", WORKER_JS.as_bytes())]);
    let url = server.put("b.tar.gz", bundle.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = format!("--artifact-cache-dir={}", cache.path().display());
    let mut svc = w.svc();

    // A wrong digest: offline validation cannot know and makes no request; --online fails.
    svc.spec.body.worker.source = url_source(&url, &"1".repeat(64));
    write_manifests(&w, &svc, dir.path());
    let (code, out) = validate(dir.path(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not fetched (pass --online"), "{out}");
    assert_eq!(server.requests(), 0);
    let (code, out) = validate(dir.path(), &["--online", &cache_arg]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("spec.worker.source.url.url: digest mismatch"), "{out}");

    svc.spec.body.worker.source = url_source(&url, &sha256_hex(&bundle));
    write_manifests(&w, &svc, dir.path());
    let (code, out) = validate(dir.path(), &["--online", &cache_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("code url sha256:{} fetched and verified", sha256_hex(&bundle))), "{out}");
}
