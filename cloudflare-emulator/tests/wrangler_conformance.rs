//! Conformance: drive the REAL wrangler CLI (npm `wrangler@4.86.0`) against the emulator
//! and check the effects through the emulator's state.
//!
//! Needs `node` and `npm`. wrangler is installed into `$WRANGLER_CACHE_DIR` (default
//! `<workspace>/target/wrangler-cache`) on first use. Without node the test prints
//! `SKIPPED: node not found` and passes, except when `CI` is set: then it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cloudflare_emulator::{Emulator, EmulatorHandle};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const WRANGLER_VERSION: &str = "4.86.0";
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "conformance-token";
const WORKER: &str = "conf-worker";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(240);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crate lives in the workspace").to_path_buf()
}

fn cache_dir() -> PathBuf {
    std::env::var_os("WRANGLER_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("wrangler-cache"))
}

async fn tool_present(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Install wrangler into the cache dir unless the pinned version is already there.
async fn ensure_wrangler(cache: &Path) -> PathBuf {
    let pkg = cache.join("node_modules").join("wrangler");
    let entry = pkg.join("bin").join("wrangler.js");
    let installed = std::fs::read_to_string(pkg.join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string));
    if installed.as_deref() == Some(WRANGLER_VERSION) && entry.exists() {
        return entry;
    }
    std::fs::create_dir_all(cache).expect("create wrangler cache dir");
    eprintln!("installing wrangler@{WRANGLER_VERSION} into {}", cache.display());
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(cache)
            .arg(format!("wrangler@{WRANGLER_VERSION}"))
            .args(["--no-audit", "--no-fund", "--loglevel=error"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("npm install timed out")
    .expect("run npm");
    assert!(
        out.status.success(),
        "npm install wrangler failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("installed wrangler in {:?}", started.elapsed());
    assert!(entry.exists(), "wrangler entry point missing after install");
    entry
}

struct Wrangler<'a> {
    entry: PathBuf,
    emu: &'a EmulatorHandle,
    project: PathBuf,
    home: PathBuf,
}

struct Run {
    stdout: String,
    stderr: String,
}

impl Wrangler<'_> {
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let (status, run) = self.exec(args, stdin).await;
        assert!(
            status.success(),
            "wrangler {args:?} failed ({status:?})\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
        run
    }

    /// Run a command expected to fail: (success, stdout + stderr).
    async fn run_status(&self, args: &[&str]) -> (bool, String) {
        let (status, run) = self.exec(args, None).await;
        (status.success(), format!("{}{}", run.stdout, run.stderr))
    }

    async fn exec(&self, args: &[&str], stdin: Option<&str>) -> (std::process::ExitStatus, Run) {
        let started = Instant::now();
        let mut cmd = Command::new("node");
        cmd.arg(&self.entry)
            .args(args)
            .current_dir(&self.project)
            .env("CLOUDFLARE_API_BASE_URL", self.emu.base_url())
            .env("CLOUDFLARE_API_TOKEN", TOKEN)
            .env("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_SEND_ERROR_REPORTS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .env("XDG_CONFIG_HOME", &self.home)
            .env("WRANGLER_LOG_PATH", self.home.join("logs"))
            .env_remove("CLOUDFLARE_API_KEY")
            .env_remove("CLOUDFLARE_EMAIL")
            .env_remove("CF_API_BASE_URL")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn node");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).await.expect("write stdin");
            drop(pipe);
        }
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("wrangler {args:?} timed out"))
            .expect("wait for wrangler");
        let run = Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!("wrangler {args:?}: {:?} in {:?}", out.status, started.elapsed());
        (out.status, run)
    }
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write file");
}

fn count(emu: &EmulatorHandle, db: &str, sql: &str) -> i64 {
    emu.d1_query(ACCOUNT, db, sql).expect("query")[0]["n"].as_i64().expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_wrangler_creates_d1_applies_migrations_and_deploys() {
    let started = Instant::now();
    if !(tool_present("node").await && tool_present("npm").await) {
        if std::env::var_os("CI").is_some() {
            panic!("node/npm not found but CI is set: the wrangler conformance test must run in CI");
        }
        println!("SKIPPED: node not found (wrangler conformance test needs node and npm)");
        return;
    }
    let entry = ensure_wrangler(&cache_dir()).await;

    let emu = Emulator::builder()
        .account(ACCOUNT)
        .token(TOKEN, &[ACCOUNT])
        .zone("example.com", ACCOUNT)
        .start()
        .await
        .expect("start emulator");
    let tmp = tempfile::tempdir().expect("tempdir");
    let project = tmp.path().join("project");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&project).expect("mkdir project");
    std::fs::create_dir_all(&home).expect("mkdir home");
    let w = Wrangler { entry, emu: &emu, project: project.clone(), home };

    // --- d1 create
    let out = w.run(&["d1", "create", "conf-db"], None).await;
    let dbs = emu.d1_databases(ACCOUNT);
    assert_eq!(dbs.len(), 1, "one database created");
    let db = dbs[0].clone();
    assert_eq!(db.name, "conf-db");
    assert!(out.stdout.contains(&db.uuid), "wrangler printed the new uuid:\n{}", out.stdout);

    // --- project with two migrations
    let config = serde_json::json!({
        "name": WORKER,
        "main": "src/index.js",
        "compatibility_date": "2025-01-01",
        "workers_dev": true,
        "vars": {"GREETING": "hello"},
        "d1_databases": [{"binding": "DB", "database_name": "conf-db", "database_id": db.uuid}],
        "routes": [
            {"pattern": "conf.example.com/*", "zone_name": "example.com"},
            {"pattern": "api.example.com", "custom_domain": true}
        ],
        "triggers": {"crons": ["*/30 * * * *"]}
    });
    write(&project.join("wrangler.json"), &serde_json::to_string_pretty(&config).unwrap());
    write(
        &project.join("src/index.js"),
        "export default {\n  async fetch(request, env) {\n    const row = await env.DB.prepare(\"SELECT count(*) AS n FROM users\").first();\n    return new Response(`${env.GREETING} ${row.n}`);\n  },\n};\n",
    );
    write(
        &project.join("migrations/0001_create_users.sql"),
        "-- users; a semicolon in a comment; must not split\nCREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);\nINSERT INTO users (email) VALUES ('a@example.com;b');\n",
    );
    write(
        &project.join("migrations/0002_posts.sql"),
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT DEFAULT 'x;y');\nCREATE TRIGGER posts_touch AFTER INSERT ON posts BEGIN UPDATE users SET email = email WHERE id = NEW.user_id; END;\n",
    );

    // --- migrations apply: 2
    w.run(&["d1", "migrations", "apply", "conf-db", "--remote"], None).await;
    assert_eq!(count(&emu, &db.uuid, "SELECT count(*) AS n FROM d1_migrations"), 2);
    assert_eq!(
        count(&emu, &db.uuid, "SELECT count(*) AS n FROM sqlite_master WHERE name IN ('users','posts','posts_touch')"),
        3,
        "tables and trigger exist"
    );
    let users = emu.d1_query(ACCOUNT, &db.uuid, "SELECT email FROM users").unwrap();
    assert_eq!(users, serde_json::json!([{"email": "a@example.com;b"}]));

    // --- a third migration
    write(&project.join("migrations/0003_index.sql"), "CREATE INDEX posts_by_user ON posts(user_id);\n");
    w.run(&["d1", "migrations", "apply", "conf-db", "--remote"], None).await;
    assert_eq!(count(&emu, &db.uuid, "SELECT count(*) AS n FROM d1_migrations"), 3);
    let names = emu.d1_query(ACCOUNT, &db.uuid, "SELECT name FROM d1_migrations ORDER BY id").unwrap();
    assert_eq!(
        names,
        serde_json::json!([{"name": "0001_create_users.sql"}, {"name": "0002_posts.sql"}, {"name": "0003_index.sql"}])
    );
    assert_eq!(
        count(
            &emu,
            &db.uuid,
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'index' AND name = 'posts_by_user'"
        ),
        1
    );
    let again = w.run(&["d1", "migrations", "apply", "conf-db", "--remote"], None).await;
    assert!(
        format!("{}{}", again.stdout, again.stderr).contains("No migrations to apply"),
        "a repeated apply does nothing:\n{}",
        again.stdout
    );
    assert_eq!(count(&emu, &db.uuid, "SELECT count(*) AS n FROM d1_migrations"), 3);

    // --- first deploy (PUT script)
    emu.clear_journal();
    let out = w.run(&["deploy"], None).await;
    let script = emu.script(ACCOUNT, WORKER).expect("script deployed");
    assert_eq!(script.versions.len(), 1);
    let v1 = &script.versions[0];
    assert!(out.stdout.contains(&v1.id), "Current Version ID printed:\n{}", out.stdout);
    assert_eq!(v1.main_module.as_deref(), Some("index.js"));
    assert_eq!(v1.compatibility_date, "2025-01-01");
    let db_binding = v1.binding("DB").expect("DB binding");
    assert_eq!(db_binding["type"], "d1");
    assert_eq!(db_binding["database_id"], db.uuid.as_str());
    let var = v1.binding("GREETING").expect("GREETING var");
    assert_eq!(var["type"], "plain_text");
    assert_eq!(var["text"], "hello");
    assert!(String::from_utf8_lossy(&v1.modules[0].content).contains("SELECT count(*) AS n FROM users"));
    assert_eq!(v1.annotations["workers/triggered_by"], "upload");
    let d = script.active_deployment().expect("deployment");
    assert_eq!(d.versions.len(), 1);
    assert_eq!(d.versions[0].version_id, v1.id);
    assert_eq!(d.versions[0].percentage, 100.0);
    assert!(script.workers_dev_enabled, "workers.dev enabled by wrangler");
    assert_eq!(script.schedules.len(), 1);
    assert_eq!(script.schedules[0].cron, "*/30 * * * *");
    let routes = emu.routes("example.com");
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].pattern, "conf.example.com/*");
    assert_eq!(routes[0].script.as_deref(), Some(WORKER));
    let domains = emu.custom_domains(ACCOUNT);
    assert_eq!(domains.len(), 1);
    assert_eq!(domains[0].hostname, "api.example.com");
    assert_eq!(domains[0].service, WORKER);
    let journal = emu.journal();
    let token_id = emu.token_id(TOKEN).unwrap();
    assert!(journal.iter().any(|e| e.method == "PUT"
        && e.path == format!("/client/v4/accounts/{ACCOUNT}/workers/scripts/{WORKER}")
        && e.status == 200));
    assert!(journal.iter().all(|e| e.token_id.as_deref() == Some(token_id.as_str())));
    assert!(journal.iter().all(|e| e.status < 500), "no server errors: {journal:#?}");

    // --- a secret, then a second deploy through the versions API (secret must survive)
    w.run(&["secret", "put", "API_KEY"], Some("s3cr3t-value-for-conformance\n")).await;
    let script = emu.script(ACCOUNT, WORKER).unwrap();
    assert_eq!(script.versions.len(), 2);
    assert_eq!(script.versions[1].annotations["workers/triggered_by"], "secret");
    write(
        &project.join("src/index.js"),
        "export default {\n  async fetch(request, env) {\n    return new Response(`${env.GREETING} v2`);\n  },\n};\n",
    );
    emu.clear_journal();
    let out = w.run(&["deploy", "--message", "second deploy"], None).await;
    let journal = emu.journal();
    let versions_path = format!("/client/v4/accounts/{ACCOUNT}/workers/scripts/{WORKER}/versions");
    let deployments_path = format!("/client/v4/accounts/{ACCOUNT}/workers/scripts/{WORKER}/deployments");
    assert!(
        journal.iter().any(|e| e.method == "POST" && e.path == versions_path && e.status == 200),
        "second deploy used POST versions: {journal:#?}"
    );
    assert!(journal.iter().any(|e| e.method == "POST" && e.path == deployments_path && e.status == 200));
    assert!(journal.iter().all(|e| e.status < 500));
    let script = emu.script(ACCOUNT, WORKER).unwrap();
    assert_eq!(script.versions.len(), 3);
    let v3 = script.versions.last().unwrap();
    assert!(out.stdout.contains(&v3.id), "Current Version ID printed:\n{}", out.stdout);
    assert_eq!(v3.annotations.get("workers/message").map(String::as_str), Some("second deploy"));
    assert!(String::from_utf8_lossy(&v3.modules[0].content).contains("v2"));
    assert_eq!(v3.binding("API_KEY").expect("secret kept")["text"], "s3cr3t-value-for-conformance");
    assert_eq!(v3.binding("DB").unwrap()["database_id"], db.uuid.as_str());
    let d = script.active_deployment().unwrap();
    assert_eq!(d.versions.len(), 1);
    assert_eq!(d.versions[0].version_id, v3.id);
    assert_eq!(script.deployments.len(), 3);

    // --- versions upload (not deployed), then a 50/50 split with versions deploy
    let out = w.run(&["versions", "upload", "--message", "canary", "--tag", "hash-abc"], None).await;
    let script = emu.script(ACCOUNT, WORKER).unwrap();
    let v4 = script.versions.last().unwrap().clone();
    assert!(out.stdout.contains(&v4.id), "version id printed:\n{}", out.stdout);
    assert_eq!(v4.annotations.get("workers/tag").map(String::as_str), Some("hash-abc"));
    assert_eq!(script.active_deployment().unwrap().versions[0].version_id, v3.id, "upload does not deploy");
    let split = [format!("{}@50%", v3.id), format!("{}@50%", v4.id)];
    w.run(&["versions", "deploy", &split[0], &split[1], "-y", "--message", "half"], None).await;
    let script = emu.script(ACCOUNT, WORKER).unwrap();
    let d = script.active_deployment().unwrap();
    assert_eq!(d.versions.len(), 2);
    assert_eq!(d.annotations.get("workers/message").map(String::as_str), Some("half"));
    let status = w.run(&["deployments", "status", "--json"], None).await;
    assert!(status.stdout.contains(&v4.id), "deployments status shows the split:\n{}", status.stdout);

    // --- delete through the services endpoint
    w.run(&["delete", "--force"], None).await;
    assert!(emu.script(ACCOUNT, WORKER).is_none());
    assert!(emu.routes("example.com").is_empty());

    emu.shutdown().await;
    eprintln!("wrangler conformance test took {:?}", started.elapsed());
}

/// The node/wrangler prelude shared by the tests: `None` when skipped.
async fn wrangler_entry() -> Option<PathBuf> {
    if !(tool_present("node").await && tool_present("npm").await) {
        if std::env::var_os("CI").is_some() {
            panic!("node/npm not found but CI is set: the wrangler conformance test must run in CI");
        }
        println!("SKIPPED: node not found (wrangler conformance test needs node and npm)");
        return None;
    }
    Some(ensure_wrangler(&cache_dir()).await)
}

fn account(emu: &EmulatorHandle) -> cloudflare_emulator::model::Account {
    emu.account(ACCOUNT).expect("account")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_wrangler_manages_kv_r2_queues_crons_durable_objects_and_secret_bulk() {
    let Some(entry) = wrangler_entry().await else { return };
    let emu = Emulator::builder().account(ACCOUNT).token(TOKEN, &[ACCOUNT]).start().await.expect("start emulator");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (project, home) = (tmp.path().join("project"), tmp.path().join("home"));
    std::fs::create_dir_all(&home).expect("mkdir home");
    let w = Wrangler { entry, emu: &emu, project: project.clone(), home };
    write(&project.join("src/index.js"), "export default { fetch() { return new Response('v1') } };\n");
    let mut config = serde_json::json!({
        "name": "bind-worker", "main": "src/index.js", "compatibility_date": "2025-01-01",
        "vars": {"GREETING": "hello"}
    });
    write(&project.join("wrangler.json"), &config.to_string());
    w.run(&["deploy"], None).await;

    // --- secret bulk on a Worker with vars: vars kept, secrets added
    write(&project.join("secrets.json"), r#"{"API_KEY": "k-1", "OTHER": "k-2"}"#);
    w.run(&["secret", "bulk", "secrets.json"], None).await;
    let v = emu.script(ACCOUNT, "bind-worker").unwrap().latest_version().cloned().unwrap();
    assert_eq!(v.binding("GREETING").expect("var kept")["text"], "hello");
    assert_eq!(v.binding("API_KEY").expect("secret")["text"], "k-1");
    assert_eq!(v.binding("OTHER").expect("secret")["type"], "secret_text");

    // --- KV namespace and keys
    w.run(&["kv", "namespace", "create", "conf-kv"], None).await;
    let ns = account(&emu).kv_namespaces[0].id.clone();
    let list = w.run(&["kv", "namespace", "list"], None).await;
    assert!(list.stdout.contains(&ns), "{}", list.stdout);
    let nsf = format!("--namespace-id={ns}");
    w.run(&["kv", "key", "put", &nsf, "greeting", "hi", "--metadata", r#"{"a":1}"#, "--ttl", "600", "--remote"], None)
        .await;
    w.run(&["kv", "key", "put", &nsf, "plain", "v 2", "--remote"], None).await;
    let got = w.run(&["kv", "key", "get", &nsf, "greeting", "--remote"], None).await;
    assert!(got.stdout.starts_with("hi"), "{}", got.stdout);
    write(&project.join("bulk.json"), r#"[{"key":"b1","value":"x"},{"key":"b2","value":"y"}]"#);
    w.run(&["kv", "bulk", "put", "bulk.json", &nsf, "--remote"], None).await;
    write(&project.join("del.json"), r#"["b1"]"#);
    w.run(&["kv", "bulk", "delete", "del.json", &nsf, "--remote", "--force"], None).await;
    w.run(&["kv", "key", "delete", &nsf, "plain", "--remote"], None).await;
    let keys = w.run(&["kv", "key", "list", &nsf, "--remote"], None).await;
    let names: Vec<String> = serde_json::from_str::<Value>(&keys.stdout)
        .expect("key list JSON")
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["b2", "greeting"]);
    assert_eq!(account(&emu).kv_namespaces[0].keys["greeting"].metadata, Some(serde_json::json!({"a": 1})));

    // --- R2 buckets (location hint, jurisdiction), a non-empty delete refused
    w.run(&["r2", "bucket", "create", "conf-bucket", "--location", "weur"], None).await;
    w.run(&["r2", "bucket", "create", "conf-eu", "--jurisdiction", "eu"], None).await;
    let listed = w.run(&["r2", "bucket", "list"], None).await;
    assert!(listed.stdout.contains("conf-bucket") && !listed.stdout.contains("conf-eu"), "{}", listed.stdout);
    let buckets = account(&emu).r2_buckets;
    assert!(buckets.iter().any(|b| b.name == "conf-bucket" && b.location == "weur" && b.jurisdiction == "default"));
    assert!(buckets.iter().any(|b| b.name == "conf-eu" && b.jurisdiction == "eu"));
    w.run(&["r2", "object", "put", "conf-bucket/a.txt", "--file", "bulk.json", "--remote"], None).await;
    let refused = w.run_status(&["r2", "bucket", "delete", "conf-bucket"]).await;
    assert!(!refused.0 && refused.1.contains("10008"), "non-empty delete refused:\n{}", refused.1);
    w.run(&["r2", "object", "delete", "conf-bucket/a.txt", "--remote"], None).await;
    w.run(&["r2", "bucket", "delete", "conf-bucket"], None).await;
    assert_eq!(account(&emu).r2_buckets.len(), 1);

    // --- queues and a CLI consumer
    w.run(&["queues", "create", "conf-jobs"], None).await;
    w.run(&["queues", "create", "conf-dlq"], None).await;
    let qs = w.run(&["queues", "list"], None).await;
    assert!(qs.stdout.contains("conf-jobs") && qs.stdout.contains("conf-dlq"), "{}", qs.stdout);
    let consumer = [
        "queues",
        "consumer",
        "add",
        "conf-jobs",
        "bind-worker",
        "--batch-size",
        "20",
        "--batch-timeout",
        "3",
        "--message-retries",
        "4",
        "--dead-letter-queue",
        "conf-dlq",
    ];
    w.run(&consumer, None).await;
    let q = account(&emu).queues.into_iter().find(|q| q.name == "conf-jobs").unwrap();
    let c = &q.consumers[0];
    assert_eq!((c.script.as_deref(), c.dead_letter_queue.as_str()), (Some("bind-worker"), "conf-dlq"));
    assert_eq!(
        (
            c.settings["batch_size"].as_i64(),
            c.settings["max_wait_time_ms"].as_i64(),
            c.settings["max_retries"].as_i64()
        ),
        (Some(20), Some(3000), Some(4))
    );
    w.run(&["queues", "consumer", "remove", "conf-jobs", "bind-worker"], None).await;
    assert!(account(&emu).queues.iter().all(|q| q.consumers.is_empty()));

    // --- deploy binding all of it, with a DO migration, queue producer + consumer and a cron
    config["kv_namespaces"] = serde_json::json!([{"binding": "CACHE", "id": ns}]);
    config["r2_buckets"] = serde_json::json!([{"binding": "FILES", "bucket_name": "conf-eu", "jurisdiction": "eu"}]);
    config["queues"] = serde_json::json!({"producers": [{"binding": "JOBS", "queue": "conf-jobs"}],
        "consumers": [{"queue": "conf-jobs", "max_batch_size": 7, "max_batch_timeout": 2, "max_retries": 1, "dead_letter_queue": "conf-dlq"}]});
    config["durable_objects"] = serde_json::json!({"bindings": [{"name": "COUNTER", "class_name": "Counter"}]});
    config["migrations"] = serde_json::json!([{"tag": "v1", "new_sqlite_classes": ["Counter"]}]);
    config["triggers"] = serde_json::json!({"crons": ["*/10 * * * *"]});
    write(&project.join("wrangler.json"), &config.to_string());
    write(
        &project.join("src/index.js"),
        "import { DurableObject } from \"cloudflare:workers\";\nexport class Counter extends DurableObject { async fetch() { return new Response('1'); } }\nexport default { fetch() { return new Response('x') }, async queue(b) {}, async scheduled() {} };\n",
    );
    w.run(&["deploy"], None).await;
    let sc = emu.script(ACCOUNT, "bind-worker").unwrap();
    assert_eq!(sc.migration_tag.as_deref(), Some("v1"));
    let v = sc.latest_version().unwrap();
    for (name, kind) in [
        ("CACHE", "kv_namespace"),
        ("FILES", "r2_bucket"),
        ("JOBS", "queue"),
        ("COUNTER", "durable_object_namespace"),
        ("GREETING", "plain_text"),
        ("API_KEY", "secret_text"),
    ] {
        assert_eq!(v.binding(name).unwrap_or_else(|| panic!("binding {name}"))["type"], kind);
    }
    let dos = account(&emu).do_namespaces;
    assert_eq!((dos.len(), dos[0].class.as_str(), dos[0].use_sqlite), (1, "Counter", true));
    assert_eq!(v.binding("COUNTER").unwrap()["namespace_id"], dos[0].id.as_str());
    assert_eq!(sc.schedules.iter().map(|s| s.cron.as_str()).collect::<Vec<_>>(), ["*/10 * * * *"]);
    let q = account(&emu).queues.into_iter().find(|q| q.name == "conf-jobs").unwrap();
    assert_eq!((q.consumers.len(), q.consumers[0].settings["batch_size"].as_i64()), (1, Some(7)));

    // --- a second migration (rename), then a deploy with nothing new to migrate
    config["migrations"] = serde_json::json!([{"tag": "v1", "new_sqlite_classes": ["Counter"]},
        {"tag": "v2", "renamed_classes": [{"from": "Counter", "to": "Tally"}]}]);
    config["durable_objects"] = serde_json::json!({"bindings": [{"name": "COUNTER", "class_name": "Tally"}]});
    write(&project.join("wrangler.json"), &config.to_string());
    let src = std::fs::read_to_string(project.join("src/index.js")).unwrap().replace("class Counter", "class Tally");
    write(&project.join("src/index.js"), &src);
    w.run(&["deploy"], None).await;
    w.run(&["deploy"], None).await;
    let dos2 = account(&emu).do_namespaces;
    assert_eq!((dos2.len(), dos2[0].class.as_str(), dos2[0].id.as_str()), (1, "Tally", dos[0].id.as_str()));
    assert_eq!(emu.script(ACCOUNT, "bind-worker").unwrap().migration_tag.as_deref(), Some("v2"));

    // --- triggers deploy replaces the cron set
    config["triggers"] = serde_json::json!({"crons": ["0 4 * * *", "*/15 * * * *"]});
    write(&project.join("wrangler.json"), &config.to_string());
    w.run(&["triggers", "deploy"], None).await;
    let crons: Vec<String> =
        emu.script(ACCOUNT, "bind-worker").unwrap().schedules.iter().map(|s| s.cron.clone()).collect();
    assert_eq!(crons, ["0 4 * * *", "*/15 * * * *"]);

    // --- delete everything
    w.run(&["delete", "--force"], None).await;
    assert!(account(&emu).do_namespaces.is_empty());
    w.run(&["queues", "delete", "conf-jobs"], None).await;
    w.run(&["queues", "delete", "conf-dlq"], None).await;
    w.run(&["r2", "bucket", "delete", "conf-eu", "--jurisdiction", "eu"], None).await;
    w.run(&["kv", "namespace", "delete", &nsf], None).await;
    let a = account(&emu);
    assert!(a.queues.is_empty() && a.r2_buckets.is_empty() && a.kv_namespaces.is_empty());
    assert!(emu.journal().iter().all(|e| e.status < 500));
    emu.shutdown().await;
}
