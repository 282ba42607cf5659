//! CI's small bench run: `clodo-bench --services 200` (no added latency) must not send more
//! Cloudflare or Kubernetes API requests than bench/baseline.json allows. Request counts are
//! deterministic, so this catches an economy regression; times are printed, never asserted.

use std::process::Command;

use serde_json::Value;

fn field(v: &Value, name: &str) -> f64 {
    v.get(name).and_then(Value::as_f64).unwrap_or_else(|| panic!("field {name} missing in {v}"))
}

/// Run the bench; its JSON report and stderr.
fn run_bench(args: &[&str]) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clodo-bench"))
        .args(["--latency-ms", "0", "--rate-limit", "100000/10", "--timeout-s", "600"])
        .args(args)
        .output()
        .expect("running clodo-bench");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "clodo-bench failed:\n{stderr}");
    let line = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    eprintln!("clodo-bench {args:?}: {report}");
    (report, stderr)
}

#[test]
fn request_counts_stay_within_the_baseline() {
    let baseline: Value = serde_json::from_str(include_str!("../baseline.json")).expect("bench/baseline.json is JSON");
    let n = field(&baseline, "services") as usize;
    let (report, stderr) = run_bench(&["--services", &n.to_string()]);
    assert_eq!(field(&report, "services") as usize, n);

    let ceilings = [
        ("requests_per_service", field(&report, "requests_per_service")),
        ("kube_requests_per_service", field(&report, "kube_requests_per_service")),
        ("noop_pass_requests_per_service", field(&report, "noop_pass_requests") / n as f64),
        ("noop_pass_mutations", field(&report, "noop_pass_mutations")),
        ("http_429", field(&report, "http_429")),
    ];
    let over: Vec<String> = ceilings
        .iter()
        .filter(|(name, got)| *got > field(&baseline, name))
        .map(|(name, got)| format!("{name}: {got} > baseline {}", field(&baseline, name)))
        .collect();
    assert!(over.is_empty(), "request counts regressed:\n{}\n{stderr}", over.join("\n"));
}

/// Two replicas sharded by label selector converge the same fleet, and no Worker script gets
/// requests from both.
#[test]
fn two_shards_converge_without_overlap() {
    let (report, stderr) = run_bench(&["--services", "40", "--shards", "2"]);
    assert_eq!(field(&report, "shards"), 2.0);
    assert_eq!(field(&report, "shard_overlap"), 0.0, "{stderr}");
    assert_eq!(field(&report, "noop_pass_requests"), 40.0, "one read per service in the resync:\n{stderr}");
    assert_eq!(field(&report, "noop_pass_mutations"), 0.0);
    assert_eq!(field(&report, "http_429"), 0.0);
}
