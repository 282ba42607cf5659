//! workerd configuration (Cap'n Proto text) for one Worker version.
//!
//! One config per version: a `main` service running the version's modules with its
//! compatibility settings and bindings, an `emulator` external service (the emulator's own
//! HTTP listener, used by the D1 binding shim) and one HTTP socket on a unix socket path that
//! the edge proxies to. D1 bindings are *wrapped bindings* around the internal module
//! [`D1_SHIM_MODULE`], which implements the D1 client API over the emulator's D1 engine.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};

use crate::model::{Module, Version};

/// Name of the internal module implementing D1 bindings.
pub(crate) const D1_SHIM_MODULE: &str = "clodo-emulator:d1";
/// Its source.
pub(crate) const D1_SHIM_SOURCE: &str = include_str!("d1_shim.js");
/// Header carrying the per-emulator key on the D1 shim's calls.
pub(crate) const KV_SHIM_MODULE: &str = "clodo-emulator:kv";
pub(crate) const KV_SHIM_SOURCE: &str = include_str!("kv_shim.js");
pub(crate) const QUEUE_SHIM_MODULE: &str = "clodo-emulator:queue";
pub(crate) const QUEUE_SHIM_SOURCE: &str = include_str!("queue_shim.js");
const ENTRY_WRAPPER_SOURCE: &str = include_str!("entry_wrapper.js");
/// Name of the generated entry module of ES-module Workers.
pub(crate) const ENTRY_MODULE: &str = "__clodo_emulator_entry.js";
pub(crate) const RUNTIME_KEY_HEADER: &str = "x-emulator-runtime-key";
/// Header from which workerd takes the scheme of `request.url`.
pub(crate) const FORWARDED_PROTO_HEADER: &str = "X-Forwarded-Proto";

/// What the config needs besides the version.
pub(crate) struct ConfigInput<'a> {
    pub account: &'a str,
    pub script: &'a str,
    /// Durable Object storage (one SQLite file per object, per namespace id).
    pub do_dir: &'a Path,
    pub version: &'a Version,
    /// Compatibility date actually used (the version's, capped at what the binary supports).
    pub compatibility_date: &'a str,
    /// The emulator's HTTP address as workerd should dial it.
    pub emulator_addr: SocketAddr,
    pub runtime_key: &'a str,
    pub socket: &'a Path,
}

/// A generated config plus what the caller should know about it.
pub(crate) struct Generated {
    pub text: String,
    /// Binding values that must never appear in logs (secrets and plain text alike).
    pub sensitive: Vec<String>,
    /// `name (type)` of bindings that were left out (types the emulator cannot run).
    pub skipped: Vec<String>,
}

/// A config that cannot be generated.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConfigError(pub String);

/// A Cap'n Proto text literal.
pub(crate) fn text(s: &str) -> Result<String, ConfigError> {
    if s.contains('\0') {
        return Err(ConfigError("text contains a NUL character, which workerd's config cannot hold".into()));
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// A Cap'n Proto data literal (`0x"…"`).
fn data(bytes: &[u8]) -> String {
    format!("0x\"{}\"", hex::encode(bytes))
}

fn utf8(m: &Module) -> Result<&str, ConfigError> {
    std::str::from_utf8(&m.content).map_err(|_| ConfigError(format!("module {} is not valid UTF-8", m.name)))
}

/// How a module is declared in `modules = [...]`, by content type.
fn module_entry(m: &Module) -> Result<Option<String>, ConfigError> {
    let ct = m.content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let body = match ct.as_str() {
        "application/javascript+module" | "text/javascript+module" => format!("esModule = {}", text(utf8(m)?)?),
        "application/javascript" | "text/javascript" => format!("commonJsModule = {}", text(utf8(m)?)?),
        "application/wasm" => format!("wasm = {}", data(&m.content)),
        "text/plain" => format!("text = {}", text(utf8(m)?)?),
        "application/json" => format!("json = {}", text(utf8(m)?)?),
        "application/octet-stream" => format!("data = {}", data(&m.content)),
        "text/x-python" => format!("pythonModule = {}", text(utf8(m)?)?),
        "text/x-python-requirement" => format!("pythonRequirement = {}", text(utf8(m)?)?),
        "application/source-map" => return Ok(None),
        other => {
            return Err(ConfigError(format!(
                "module {} has content type {other:?}, which workerd cannot load",
                m.name
            )));
        }
    };
    Ok(Some(format!("(name = {}, {body})", text(&m.name)?)))
}

/// A service-worker script's extra parts become global bindings.
fn service_worker_part(m: &Module) -> Result<Option<String>, ConfigError> {
    let ct = m.content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let body = match ct.as_str() {
        "application/wasm" => format!("wasmModule = {}", data(&m.content)),
        "text/plain" => format!("text = {}", text(utf8(m)?)?),
        "application/octet-stream" => format!("data = {}", data(&m.content)),
        "application/json" => format!("json = {}", text(utf8(m)?)?),
        _ => return Ok(None),
    };
    Ok(Some(format!("(name = {}, {body})", text(&m.name)?)))
}

fn str_field<'a>(b: &'a Value, key: &str) -> Option<&'a str> {
    b.get(key).and_then(Value::as_str)
}

/// The workerd bindings of a version.
struct Bindings {
    entries: Vec<String>,
    /// Durable Object classes of this Worker: (class, namespace id).
    classes: Vec<(String, String)>,
    sensitive: Vec<String>,
    skipped: Vec<String>,
}

fn bindings(input: &ConfigInput<'_>) -> Result<Bindings, ConfigError> {
    let v = input.version;
    let mut out = Vec::new();
    let mut sensitive = Vec::new();
    let mut skipped = Vec::new();
    let mut classes: Vec<(String, String)> = Vec::new();
    for b in &v.bindings {
        let Some(name) = str_field(b, "name") else { continue };
        let kind = str_field(b, "type").unwrap_or_default();
        let entry = match kind {
            "plain_text" | "secret_text" => {
                let value = str_field(b, "text").unwrap_or_default();
                if !value.is_empty() {
                    sensitive.push(value.to_string());
                }
                format!("text = {}", text(value)?)
            }
            "json" => format!("json = {}", text(&b.get("json").cloned().unwrap_or(Value::Null).to_string())?),
            "d1" => {
                let Some(id) = str_field(b, "database_id").or_else(|| str_field(b, "id")) else {
                    skipped.push(format!("{name} (d1 without a database id)"));
                    continue;
                };
                format!(
                    "wrapped = (moduleName = {}, entrypoint = \"default\", innerBindings = [\
                     (name = \"database\", text = {}), (name = \"key\", text = {}), \
                     (name = \"backend\", service = \"emulator\")])",
                    text(D1_SHIM_MODULE)?,
                    text(id)?,
                    text(input.runtime_key)?,
                )
            }
            "kv_namespace" => {
                let Some(id) = str_field(b, "namespace_id") else {
                    skipped.push(format!("{name} (kv_namespace without a namespace id)"));
                    continue;
                };
                format!(
                    "wrapped = (moduleName = {}, entrypoint = \"default\", innerBindings = [\
                     (name = \"namespace\", text = {}), (name = \"key\", text = {}), \
                     (name = \"backend\", service = \"emulator\")])",
                    text(KV_SHIM_MODULE)?,
                    text(id)?,
                    text(input.runtime_key)?,
                )
            }
            "queue" => {
                let Some(queue) = str_field(b, "queue_name") else {
                    skipped.push(format!("{name} (queue without a queue_name)"));
                    continue;
                };
                format!(
                    "wrapped = (moduleName = {}, entrypoint = \"default\", innerBindings = [\
                     (name = \"account\", text = {}), (name = \"queue\", text = {}), \
                     (name = \"key\", text = {}), (name = \"backend\", service = \"emulator\")])",
                    text(QUEUE_SHIM_MODULE)?,
                    text(input.account)?,
                    text(queue)?,
                    text(input.runtime_key)?,
                )
            }
            "durable_object_namespace" => {
                let owner = str_field(b, "script_name").unwrap_or(input.script);
                let (Some(class), Some(id)) = (str_field(b, "class_name"), str_field(b, "namespace_id")) else {
                    skipped.push(format!("{name} (durable_object_namespace without class or namespace id)"));
                    continue;
                };
                if owner != input.script || v.main_module.is_none() {
                    skipped.push(format!("{name} (Durable Object class {class} of another Worker)"));
                    continue;
                }
                if !classes.iter().any(|(c, _)| c == class) {
                    classes.push((class.to_string(), id.to_string()));
                }
                format!("durableObjectNamespace = (className = {})", text(class)?)
            }
            "version_metadata" => {
                let meta = json!({
                    "id": v.id,
                    "tag": v.annotations.get("workers/tag").cloned().unwrap_or_default(),
                    "timestamp": crate::ids::ts(&v.created_on),
                });
                format!("json = {}", text(&meta.to_string())?)
            }
            other => {
                skipped.push(format!("{name} ({other})"));
                continue;
            }
        };
        out.push(format!("(name = {}, {entry})", text(name)?));
    }
    Ok(Bindings { entries: out, classes, sensitive, skipped })
}

/// The whole config file.
pub(crate) fn generate(input: &ConfigInput<'_>) -> Result<Generated, ConfigError> {
    let v = input.version;
    let Bindings { entries: mut binding_entries, classes, sensitive, skipped } = bindings(input)?;
    let mut worker = String::new();
    if let Some(main) = &v.main_module {
        // ES modules: the entry module first (the emulator stores it first); JavaScript
        // Workers get the emulator's entry wrapper in front (scheduled/queue triggers).
        let mut modules = Vec::new();
        if main.ends_with(".js") || main.ends_with(".mjs") {
            let wrapper =
                ENTRY_WRAPPER_SOURCE.replace("__MAIN__", &format!("./{main}")).replace("__KEY__", input.runtime_key);
            modules.push(format!("(name = {}, esModule = {})", text(ENTRY_MODULE)?, text(&wrapper)?));
        }
        let entry = v.module(main).ok_or_else(|| ConfigError(format!("entry module {main} is missing")))?;
        if let Some(m) = module_entry(entry)? {
            modules.push(m);
        }
        for m in v.modules.iter().filter(|m| &m.name != main) {
            if let Some(e) = module_entry(m)? {
                modules.push(e);
            }
        }
        let _ = write!(worker, "modules = [\n      {}\n    ],\n", modules.join(",\n      "));
    } else if let Some(part) = &v.body_part {
        let script = v.module(part).ok_or_else(|| ConfigError(format!("script part {part} is missing")))?;
        let _ = writeln!(worker, "serviceWorkerScript = {},", text(utf8(script)?)?);
        for m in v.modules.iter().filter(|m| &m.name != part) {
            if let Some(b) = service_worker_part(m)? {
                binding_entries.push(b);
            }
        }
    } else {
        return Err(ConfigError("the version names neither main_module nor body_part".into()));
    }
    let _ = writeln!(worker, "    compatibilityDate = {},", text(input.compatibility_date)?);
    let flags = v.compatibility_flags.iter().map(|f| text(f)).collect::<Result<Vec<_>, _>>()?;
    let _ = writeln!(worker, "    compatibilityFlags = [{}],", flags.join(", "));
    let _ = write!(worker, "    bindings = [\n      {}\n    ],", binding_entries.join(",\n      "));
    if !classes.is_empty() {
        let ns = classes
            .iter()
            .map(|(c, id)| Ok(format!("(className = {}, uniqueKey = {}, enableSql = true)", text(c)?, text(id)?)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let _ = write!(
            worker,
            "\n    durableObjectNamespaces = [{}],\n    durableObjectStorage = (localDisk = \"do-storage\"),",
            ns.join(", ")
        );
    }
    let do_dir = input
        .do_dir
        .to_str()
        .ok_or_else(|| ConfigError(format!("directory {} is not UTF-8", input.do_dir.display())))?;

    let socket = input
        .socket
        .to_str()
        .ok_or_else(|| ConfigError(format!("socket path {} is not UTF-8", input.socket.display())))?;
    let text = format!(
        r#"# workerd config generated by cloudflare-emulator for {script} version {version}
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "emulator", external = (address = {emulator}, http = ())),
    (name = "do-storage", disk = (path = {do_dir}, writable = true)),
  ],
  sockets = [
    (name = "http", address = {socket}, http = (forwardedProtoHeader = {proto}), service = "main"),
  ],
  extensions = [
    (modules = [
      (name = {shim_name}, internal = true, esModule = {shim}),
      (name = {kv_name}, internal = true, esModule = {kv}),
      (name = {queue_name}, internal = true, esModule = {queue}),
    ]),
  ],
);

const worker :Workerd.Worker = (
    {worker}
);
"#,
        script = input.script.replace('\n', " "),
        version = v.id,
        emulator = text(&input.emulator_addr.to_string())?,
        socket = text(&format!("unix:{socket}"))?,
        proto = text(FORWARDED_PROTO_HEADER)?,
        shim_name = text(D1_SHIM_MODULE)?,
        shim = text(D1_SHIM_SOURCE)?,
        kv_name = text(KV_SHIM_MODULE)?,
        kv = text(KV_SHIM_SOURCE)?,
        queue_name = text(QUEUE_SHIM_MODULE)?,
        queue = text(QUEUE_SHIM_SOURCE)?,
        do_dir = text(do_dir)?,
    );
    Ok(Generated { text, sensitive, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn version(bindings: Vec<Value>) -> Version {
        Version {
            id: "11111111-2222-3333-4444-555555555555".into(),
            number: 1,
            created_on: crate::ids::now(),
            source: "api".into(),
            author_email: "e@example.com".into(),
            annotations: BTreeMap::from([("workers/tag".to_string(), "t1".to_string())]),
            main_module: Some("index.js".into()),
            body_part: None,
            modules: vec![
                Module {
                    name: "index.js".into(),
                    content_type: "application/javascript+module".into(),
                    content: b"export default { fetch() { return new Response(\"a\\\\b\\n\") } };".to_vec(),
                },
                Module { name: "x.wasm".into(), content_type: "application/wasm".into(), content: vec![0, 97, 115] },
                Module { name: "index.js.map".into(), content_type: "application/source-map".into(), content: vec![] },
            ],
            bindings,
            compatibility_date: "2025-01-01".into(),
            compatibility_flags: vec!["nodejs_compat".into()],
            usage_model: "standard".into(),
            limits: None,
            placement: None,
            etag: "e".into(),
            handlers: vec!["fetch".into()],
        }
    }

    #[test]
    fn text_literals_escape_everything_capnp_needs() {
        assert_eq!(text("a\"b\\c\nd\te\u{1}é").unwrap(), "\"a\\\"b\\\\c\\nd\\te\\x01é\"");
        assert!(text("nul\0").is_err());
        assert_eq!(data(&[0, 255]), "0x\"00ff\"");
    }

    #[test]
    fn config_holds_modules_bindings_and_the_d1_shim() {
        let v = version(vec![
            json!({"type": "plain_text", "name": "MODE", "text": "prod"}),
            json!({"type": "secret_text", "name": "KEY", "text": "s3cr\"et"}),
            json!({"type": "json", "name": "CFG", "json": {"a": 1}}),
            json!({"type": "d1", "name": "DB", "id": "db-uuid"}),
            json!({"type": "version_metadata", "name": "VM"}),
            json!({"type": "kv_namespace", "name": "CACHE", "namespace_id": "x"}),
            json!({"type": "durable_object_namespace", "name": "DO", "class_name": "Room", "namespace_id": "n1"}),
            json!({"type": "durable_object_namespace", "name": "FOREIGN", "class_name": "R", "script_name": "o", "namespace_id": "n2"}),
            json!({"type": "ai", "name": "AI"}),
        ]);
        let g = generate(&ConfigInput {
            account: "a",
            do_dir: Path::new("/tmp/x/do"),
            script: "w",
            version: &v,
            compatibility_date: "2024-12-31",
            emulator_addr: "127.0.0.1:8787".parse().unwrap(),
            runtime_key: "k3y",
            socket: Path::new("/tmp/x/w1.sock"),
        })
        .unwrap();
        let t = &g.text;
        assert!(t.contains("(name = \"index.js\", esModule = \"export default"), "{t}");
        assert!(t.contains("(name = \"x.wasm\", wasm = 0x\"006173\")"), "{t}");
        assert!(!t.contains("index.js.map"));
        assert!(t.contains("compatibilityDate = \"2024-12-31\""));
        assert!(t.contains("compatibilityFlags = [\"nodejs_compat\"]"));
        assert!(t.contains("(name = \"MODE\", text = \"prod\")"));
        assert!(t.contains("(name = \"KEY\", text = \"s3cr\\\"et\")"));
        assert!(t.contains("(name = \"CFG\", json = \"{\\\"a\\\":1}\")"));
        assert!(t.contains("(name = \"database\", text = \"db-uuid\")"));
        assert!(t.contains("(name = \"key\", text = \"k3y\")"));
        assert!(t.contains("\\\"tag\\\":\\\"t1\\\""), "{t}");
        assert!(t.contains("address = \"unix:/tmp/x/w1.sock\""));
        assert!(t.contains("address = \"127.0.0.1:8787\""));
        assert_eq!(g.sensitive, vec!["prod".to_string(), "s3cr\"et".to_string()]);
        assert_eq!(
            g.skipped,
            vec!["FOREIGN (Durable Object class R of another Worker)".to_string(), "AI (ai)".to_string()]
        );
        assert!(t.contains("(name = \"namespace\", text = \"x\")"), "{t}");
        assert!(t.contains("(name = \"DO\", durableObjectNamespace = (className = \"Room\"))"), "{t}");
        assert!(t.contains("durableObjectNamespaces = [(className = \"Room\", uniqueKey = \"n1\", enableSql = true)]"));
        assert!(t.contains("disk = (path = \"/tmp/x/do\", writable = true)"));
        // The emulator's entry wrapper comes first, then the Worker's entry module.
        assert!(t.find(ENTRY_MODULE).unwrap() < t.find("(name = \"index.js\"").unwrap());
        assert!(t.contains("import * as user from \\\"./index.js\\\""), "{t}");
        assert!(t.find("(name = \"index.js\"").unwrap() < t.find("x.wasm").unwrap());
    }

    #[test]
    fn unknown_module_types_are_errors() {
        let mut v = version(vec![]);
        v.modules[1].content_type = "image/png".into();
        let err = generate(&ConfigInput {
            account: "a",
            do_dir: Path::new("/tmp/x/do"),
            script: "w",
            version: &v,
            compatibility_date: "2024-12-31",
            emulator_addr: "127.0.0.1:1".parse().unwrap(),
            runtime_key: "k",
            socket: Path::new("/tmp/s"),
        })
        .err()
        .unwrap();
        assert!(err.0.contains("x.wasm") && err.0.contains("image/png"), "{err}");
    }
}
