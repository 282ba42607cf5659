//! `crds/` must equal what `clodo-operator crds` prints, one file per kind.

use std::path::Path;

#[test]
fn crds_directory_matches_generated_definitions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stale = Vec::new();
    for (stem, crd) in clodo_operator::crd::all_crds() {
        let want = clodo_operator::crd::crd_yaml(&crd).unwrap();
        let path = root.join("crds").join(format!("{stem}.yaml"));
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "CRDs drifted: {stale:?}. Regenerate with `cargo run -- crds --dir crds` and copy them to charts/clodo-operator/files/crds/"
    );
}

#[test]
fn printed_stream_contains_every_kind_once() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clodo-operator")).arg("crds").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for kind in ["kind: CloudflareService", "kind: Customer", "kind: Portfolio"] {
        assert_eq!(text.matches(kind).count(), 1, "{kind}");
    }
}
