//! The binary as a user runs it: deploy, plan and validate over manifest files.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_clodo-operator");
const EXAMPLE_TOKEN: &str = "sandbox-token-acme-3f9c1e7a";
const EXAMPLE_JWT: &str = "Zt8qL2vN9xR4mK7pW3sB6yH1cF5gJ0dQ";

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("CLOUDFLARE_API_TOKEN")
        .env_remove("WORKERD_BIN")
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn sandbox_deploy_of_the_examples_succeeds_and_never_prints_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (code, out) =
        run(&["deploy", "-f", examples().to_str().unwrap(), "--sandbox", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    for step in [
        "create d1 database acme-data-service-production",
        "applied 0001_init.sql",
        "applied 0002_seed.sql",
        "upload and deploy new worker acme-data-service-production",
        "create route api.acme.com/*",
        "attach custom domain api.acme.com",
    ] {
        assert!(out.contains(step), "missing step {step:?} in:\n{out}");
    }
    assert!(out.contains("status:") && out.contains("type: Ready"), "{out}");
    assert!(!out.contains(EXAMPLE_TOKEN) && !out.contains(EXAMPLE_JWT), "a secret was printed:\n{out}");
    assert!(!state.exists(), "the sandbox keeps no state between runs");
}

#[test]
fn plan_lists_changes_and_changes_nothing() {
    let (code, out) = run(&["plan", "-f", examples().to_str().unwrap(), "--sandbox"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("plan:"), "{out}");
    assert!(out.contains("- create d1 database acme-data-service-production (binding DB)"), "{out}");
    assert!(out.contains("- upload and deploy new worker acme-data-service-production"), "{out}");
    assert!(out.contains("reason: DryRun"), "{out}");
    assert!(!out.contains("✓ applied"), "a dry run applies nothing:\n{out}");
}

#[test]
fn validate_passes_the_examples_and_fails_weak_secrets() {
    let (code, out) = run(&["validate", "-f", examples().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ CloudflareService acme/data-service: valid"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap().replace(EXAMPLE_JWT, "changeme");
        std::fs::write(dir.path().join(p.file_name().unwrap()), text).unwrap();
    }
    let (code, out) = run(&["validate", "-f", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("spec.worker.secrets.JWT_SECRET") && out.contains("dummy"), "{out}");
    assert!(!out.contains("changeme"), "the value is never printed:\n{out}");
}

#[test]
fn bad_manifests_fail_with_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("svc.yaml"),
        "apiVersion: clodo.dev/v1alpha1\nkind: CloudflareService\nmetadata: {name: x}\nspec: {customerRef: {name: a}, environment: prod, worker: {}}\n",
    )
    .unwrap();
    let (code, out) = run(&["validate", "-f", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("svc.yaml") && out.contains("CloudflareService"), "{out}");
    let (code, out) = run(&["deploy", "-f", "/nonexistent/path.yaml", "--sandbox"]);
    assert_ne!(code, 0);
    assert!(out.contains("/nonexistent/path.yaml"), "{out}");
}

#[test]
fn crds_dir_writes_one_file_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = run(&["crds", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, vec!["cloudflareservice.yaml", "customer.yaml", "portfolio.yaml"]);
}

#[test]
fn portfolios_deploy_their_children_in_dependency_order() {
    let dir = examples();
    let (code, out) = run(&[
        "deploy",
        "-f",
        dir.join("01-customer.yaml").to_str().unwrap(),
        "-f",
        dir.join("portfolio").to_str().unwrap(),
        "--sandbox",
    ]);
    assert_eq!(code, 0, "{out}");
    let pos = |name: &str| {
        out.find(&format!("[acme/{name}] ✓ upload and deploy")).unwrap_or_else(|| panic!("{name} not deployed:\n{out}"))
    };
    for dep in ["acme-suite-auth-acme-com", "acme-suite-data-acme-io"] {
        assert!(pos(dep) < pos("acme-suite-api-acme-com"), "{dep} must deploy before api");
    }
    let (code, out) = run(&[
        "validate",
        "-f",
        dir.join("01-customer.yaml").to_str().unwrap(),
        "-f",
        dir.join("portfolio").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ CloudflareService acme/acme-suite-api-acme-io: valid"), "{out}");
}
