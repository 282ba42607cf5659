//! CI's small bench run: `clodo-bench --services 200` (no added latency) must not send more
//! Cloudflare or Kubernetes API requests than bench/baseline.json allows. Request counts are
//! deterministic, so this catches an economy regression; times are printed, never asserted.

use std::process::Command;

use serde_json::Value;

fn field(v: &Value, name: &str) -> f64 {
    v.get(name).and_then(Value::as_f64).unwrap_or_else(|| panic!("field {name} missing in {v}"))
}

#[test]
fn request_counts_stay_within_the_baseline() {
    let baseline: Value = serde_json::from_str(include_str!("../baseline.json")).expect("bench/baseline.json is JSON");
    let n = field(&baseline, "services") as usize;
    let out = Command::new(env!("CARGO_BIN_EXE_clodo-bench"))
        .args(["--services", &n.to_string(), "--latency-ms", "0", "--rate-limit", "100000/10", "--timeout-s", "600"])
        .output()
        .expect("running clodo-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "clodo-bench failed:\n{stderr}");
    let line = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    eprintln!("clodo-bench --services {n}: {report}");
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
