//! The `cloudflare-emulator` binary: flags, first stdout line, serving curl-style requests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudflare-emulator"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn emulator binary");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (running, url)
}

#[tokio::test]
async fn binary_serves_the_api() {
    let (_child, url) = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--account",
        "A",
        "--account",
        "B",
        "--token",
        "T",
        "--token",
        "TB=B",
        "--zone",
        "example.com",
        "--zone",
        "other.org=B",
        "--rate-limit",
        "5/60",
        "--latency-ms",
        "1",
    ]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let get = |token: &'static str, path: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http.get(format!("{url}/client/v4{path}")).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = get("T", "/zones").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["result"].as_array().unwrap().iter().map(|z| z["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["example.com", "other.org"]);
    assert_eq!(body["result"][0]["account"]["id"], "A");
    let (status, body) = get("TB", "/zones").await;
    assert_eq!(status, 200);
    assert_eq!(body["result"].as_array().unwrap().len(), 1, "TB is scoped to B");
    let (status, body) = get("TB", "/accounts/A/workers/scripts").await;
    assert_eq!((status, body["errors"][0]["code"].as_i64()), (403, Some(10000)));
    // rate limit flag: T has used 1 of 5
    for _ in 0..4 {
        assert_eq!(get("T", "/user/tokens/verify").await.0, 200);
    }
    let (status, body) = get("T", "/user/tokens/verify").await;
    assert_eq!((status, body["errors"][0]["code"].as_i64()), (429, Some(971)));
    let journal: serde_json::Value =
        http.get(format!("{url}/__emulator/journal")).send().await.unwrap().json().await.unwrap();
    assert_eq!(journal.as_array().unwrap().len(), 8);
}

#[test]
fn bad_flags_fail() {
    let out = Command::new(env!("CARGO_BIN_EXE_cloudflare-emulator"))
        .args(["--listen", "127.0.0.1:0", "--rate-limit", "nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rate-limit"));
}
