//! `import wrangler` with environments, D1 migrations, routes and secrets; `import clodo` on a
//! service laid out as the Clodo framework documents it; the result goes through `validate`
//! (OpenAPI schema + CEL + policy) and `deploy --sandbox --token-env` end to end.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_clodo-operator");
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("CLOUDFLARE_API_TOKEN").env_remove("CLOUDFLARE_API_BASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run clodo-operator")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

const WORKER: &str = "export default { async fetch(req, env) { return new Response('ok ' + env.GREETING); } };\n";

fn wrangler_project(dir: &Path) {
    write(
        dir,
        "wrangler.toml",
        r#"
name = "shop-api"
main = "src/worker.js"
compatibility_date = 2025-09-01
compatibility_flags = ["nodejs_compat"]
workers_dev = false
routes = [{ pattern = "api.shop.example/*", zone_name = "shop.example" }]

[vars]
GREETING = "hello from the top level"

[[d1_databases]]
binding = "DB"
database_name = "shop-prod"
database_id = "00000000-0000-0000-0000-000000000000"

[env.staging]
routes = [
  { pattern = "staging-api.shop.example/*", zone_name = "shop.example" },
  { pattern = "status.shop.example", custom_domain = true },
]
vars = { GREETING = "hello staging", MAX_ITEMS = 50 }

[[env.staging.d1_databases]]
binding = "DB"
database_name = "shop-staging"
migrations_dir = "db/migrations"

[[env.staging.kv_namespaces]]
binding = "CACHE"
id = "abc"

[env.staging.triggers]
crons = ["*/5 * * * *"]
"#,
    );
    write(dir, "src/worker.js", WORKER);
    write(dir, "db/migrations/0001_init.sql", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\n");
    write(dir, "db/migrations/0002_seed.sql", "INSERT INTO items (name) VALUES ('first');\n");
    write(dir, ".dev.vars", "STRIPE_KEY=sk_test_value_never_copied\n# comment\nGREETING=local override\n");
}

#[test]
fn wrangler_env_import_validates_and_deploys_to_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("shop");
    wrangler_project(&project);
    let out = tmp.path().join("out");
    let o = cli(
        &[
            "import",
            "wrangler",
            project.to_str().unwrap(),
            "--env",
            "staging",
            "--customer",
            "shop",
            "--namespace",
            "shop",
            "--account-id",
            ACCOUNT,
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // Non-inheritable and unsupported keys are reported with their key paths.
    for needle in [
        "unmapped: env.staging.kv_namespaces[0]: kv_namespaces bindings are not supported by CloudflareService yet (CACHE)",
        "unmapped: env.staging.triggers.crons",
        "unmapped: env.staging.vars.MAX_ITEMS: JSON (non-text) vars",
        "unmapped: workers_dev",
        "note: secret names taken from",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing:\n{stderr}");
    }
    let all: String = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!all.contains("sk_test_value_never_copied"), "secret values are never copied");
    let svc = std::fs::read_to_string(out.join("04-service.yaml")).unwrap();
    for needle in [
        "name: shop-api-staging",
        "environment: staging",
        "scriptName: shop-api-staging",
        "GREETING: hello staging",
        "name: shop-staging",
        "name: shop-api-staging-migrations",
        "pattern: staging-api.shop.example/*",
        "zone: shop.example",
        "- status.shop.example",
        "- nodejs_compat",
        "name: STRIPE_KEY",
    ] {
        assert!(svc.contains(needle), "{needle:?} missing:\n{svc}");
    }
    assert!(!svc.contains("top level"), "top-level vars are not inherited into env.staging");
    let cms = std::fs::read_to_string(out.join("03-configmaps.yaml")).unwrap();
    assert!(cms.contains("0001_init.sql") && cms.contains("0002_seed.sql") && cms.contains("worker.js"));

    // validate accepts the stubs (reported as still to fill in) ...
    let v = cli(&["validate", "-f", out.to_str().unwrap()], &[]);
    let vout = text(&v.stdout);
    assert!(v.status.success(), "{vout}{}", text(&v.stderr));
    assert!(vout.contains("import stub: fill in"), "{vout}");

    // ... and once the secret is filled in, the import deploys (sandbox; token from --token-env).
    let secrets = out.join("02-secrets.yaml");
    let filled = std::fs::read_to_string(&secrets)
        .unwrap()
        .replace("STRIPE_KEY: ''", "STRIPE_KEY: 'Xk2Lm9Qw7Rt4Yp8Zs3Vb6Nc1Hd5Jf0Ga'");
    std::fs::write(&secrets, filled).unwrap();
    let d = cli(
        &["deploy", "-f", out.to_str().unwrap(), "--sandbox", "--token-env", "SHOP_CF_TOKEN", "--output", "json"],
        &[("SHOP_CF_TOKEN", "shop-token-8f7e6d5c4b3a2910")],
    );
    let dout = text(&d.stdout);
    assert!(d.status.success(), "{dout}\n{}", text(&d.stderr));
    let report: serde_json::Value = serde_json::from_str(&dout).expect("deploy --output json prints one document");
    assert_eq!(report["ok"], true);
    let st = &report["resources"][0]["status"];
    assert_eq!(st["databases"][0]["appliedMigrations"].as_array().map(Vec::len), Some(2), "{st:#}");
    assert!(!dout.contains("shop-token-8f7e6d5c4b3a2910"), "the token is never printed");
}

#[test]
fn validate_runs_the_openapi_schema_offline() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "bad.yaml",
        r#"
apiVersion: clodo.dev/v1alpha1
kind: Customer
metadata: { name: acme }
spec:
  accountId: "not-an-account"
  apiTokenSecretRef: { name: t, key: token }
---
apiVersion: clodo.dev/v1alpha1
kind: CloudflareService
metadata: { name: api }
spec:
  customerRef: { name: acme }
  environment: production
  worker:
    mainModule: index.js
    source: { configMapRef: { name: code } }
    compatibilityDate: "2025-10-01"
  productionTests:
    timeoutSeconds: 0
    throughput: { requests: 0, minRequestsPerSecond: 5 }
"#,
    );
    let v = cli(&["validate", "-f", tmp.path().to_str().unwrap(), "--output", "yaml", "--quiet"], &[]);
    assert_eq!(v.status.code(), Some(1));
    let out = text(&v.stdout);
    let doc: serde_json::Value = serde_norway::from_str(&out).expect("one YAML document on stdout");
    assert_eq!(doc["ok"], false);
    let errors = doc.to_string();
    for needle in ["spec.accountId", "spec.productionTests.timeoutSeconds", "spec.productionTests.throughput.requests"]
    {
        assert!(errors.contains(needle), "{needle} missing: {out}");
    }
}

#[test]
fn clodo_service_directory_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data-service");
    write(
        &dir,
        "clodo-service-manifest.json",
        r#"{
  "serviceName": "data-service",
  "serviceType": "data-service",
  "domain": "data.acme.com",
  "configuration": { "features": ["auth", "caching"], "timeout": 30000 }
}"#,
    );
    write(
        &dir,
        "wrangler.toml",
        "name = \"data-service\"\nmain = \"src/worker/index.js\"\ncompatibility_date = \"2025-10-01\"\n\n[[d1_databases]]\nbinding = \"DB\"\ndatabase_name = \"placeholder\"\n",
    );
    write(&dir, "src/worker/index.js", WORKER);
    write(&dir, "migrations/0001_init.sql", "CREATE TABLE t (id INTEGER PRIMARY KEY);\n");
    write(
        &dir,
        "config/customers/acme/production.env",
        "# Deployment Configuration - acme (production)\nCUSTOMER_ID=acme\nENVIRONMENT=production\n\
         CLOUDFLARE_ACCOUNT_ID=0123456789abcdef0123456789abcdef\nDOMAIN=data.acme.com\n\
         DATABASE_NAME=acme-com-production-db\nWORKER_URL=https://data.acme.com\nSUPPORT_EMAIL=ops@acme.com\n\
         PUBLIC_URL=https://{{DOMAIN}}\nJWT_SECRET=never-copied-value\n",
    );
    let o = cli(&["import", "clodo", dir.to_str().unwrap(), "--namespace", "acme"], &[]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{err}");
    for needle in [
        "serviceType: data-service",
        "name: acme-com-production-db",
        "- data.acme.com",
        "SUPPORT_EMAIL: ops@acme.com",
        "PUBLIC_URL: https://{{DOMAIN}}",
        "accountId: 0123456789abcdef0123456789abcdef",
        "name: JWT_SECRET",
        "- acme.com",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    assert!(!out.contains("never-copied-value"));
    assert!(err.contains("unmapped: clodo-service-manifest.json: configuration"), "{err}");
    let manifests = tmp.path().join("m.yaml");
    std::fs::write(&manifests, &out).unwrap();
    let v = cli(&["validate", "-f", manifests.to_str().unwrap()], &[]);
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
}
