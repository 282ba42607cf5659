//! The Helm chart ships the CRDs as files (charts/clodo-operator/files/crds/*.yaml) that
//! templates/crds.yaml includes. They must be byte-for-byte copies of crds/*.yaml, which
//! `clodo-operator crds` generates (tests/crds_drift.rs checks that side).
//!
//! After regenerating crds/, refresh the chart's copy with
//! `cp crds/*.yaml charts/clodo-operator/files/crds/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const STEMS: [(&str, &str, &str); 3] = [
    ("cloudflareservice", "CloudflareService", "cloudflareservices.clodo.dev"),
    ("customer", "Customer", "customers.clodo.dev"),
    ("portfolio", "Portfolio", "portfolios.clodo.dev"),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn source_dir() -> PathBuf {
    root().join("crds")
}

fn chart_dir() -> PathBuf {
    root().join("charts/clodo-operator/files/crds")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn yaml_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect()
}

/// First differing line, for a readable failure.
fn first_difference(a: &str, b: &str) -> String {
    for (n, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: crds/ has {x:?}, chart has {y:?}", n + 1);
        }
    }
    format!("one is a prefix of the other ({} vs {} lines)", a.lines().count(), b.lines().count())
}

#[test]
fn chart_crd_files_are_copies_of_crds_dir() {
    let mut drifted = Vec::new();
    for (stem, _, _) in STEMS {
        let want = read(&source_dir().join(format!("{stem}.yaml")));
        let have = read(&chart_dir().join(format!("{stem}.yaml")));
        if want != have {
            drifted.push(format!("{stem}.yaml: {}", first_difference(&want, &have)));
        }
    }
    assert!(
        drifted.is_empty(),
        "charts/clodo-operator/files/crds/ differs from crds/:\n  {}\n\
         Refresh with `cp crds/*.yaml charts/clodo-operator/files/crds/`",
        drifted.join("\n  ")
    );
}

#[test]
fn both_directories_hold_exactly_the_three_kinds() {
    let want: BTreeSet<String> = STEMS.iter().map(|(s, _, _)| format!("{s}.yaml")).collect();
    assert_eq!(yaml_files(&source_dir()), want, "files in crds/");
    assert_eq!(
        yaml_files(&chart_dir()),
        want,
        "files in charts/clodo-operator/files/crds/ (templates/crds.yaml renders exactly these)"
    );
}

#[test]
fn chart_crd_files_are_single_crds_the_template_can_render() {
    // templates/crds.yaml adds the chart's metadata by replacing the header, so each file must be
    // one document that starts exactly like this.
    for (stem, kind, name) in STEMS {
        let text = read(&chart_dir().join(format!("{stem}.yaml")));
        let header = format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {name}\nspec:\n"
        );
        assert!(
            text.starts_with(&header),
            "{stem}.yaml must start with {header:?} (no leading ---, no labels or annotations)"
        );
        let docs: Vec<serde_norway::Value> = serde_norway::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
            .collect();
        assert_eq!(docs.len(), 1, "{stem}.yaml holds {} documents", docs.len());
        let doc = &docs[0];
        assert_eq!(doc["spec"]["group"].as_str(), Some("clodo.dev"), "{stem}.yaml group");
        assert_eq!(doc["spec"]["names"]["kind"].as_str(), Some(kind), "{stem}.yaml kind");
        assert_eq!(doc["spec"]["scope"].as_str(), Some("Namespaced"), "{stem}.yaml scope");
        let versions = doc["spec"]["versions"].as_sequence().expect("versions");
        assert!(
            versions.iter().any(|v| v["name"].as_str() == Some("v1alpha1")
                && v["storage"].as_bool() == Some(true)
                && v["subresources"]["status"].is_mapping()),
            "{stem}.yaml: v1alpha1 must be the storage version with a status subresource"
        );
    }
}

#[test]
fn crd_template_renders_every_chart_file() {
    let template = read(&root().join("charts/clodo-operator/templates/crds.yaml"));
    for (stem, _, _) in STEMS {
        assert!(
            template.contains(&format!("\"{stem}\"")),
            "templates/crds.yaml does not render files/crds/{stem}.yaml"
        );
    }
}
