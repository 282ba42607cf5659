//! Shared helpers for the HTTP-level tests.
#![allow(dead_code)]

use cloudflare_emulator::{Emulator, EmulatorBuilder, EmulatorHandle};
use reqwest::Method;
use reqwest::header::HeaderMap;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

pub const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
pub const TOK_A: &str = "token-for-account-a";
pub const TOK_B: &str = "token-for-account-b";
pub const TOK_ALL: &str = "token-for-all-accounts";

/// Accounts A and B, tokens scoped to each plus one for both, zones example.com (A),
/// sub.example.com (A) and other.org (B).
pub fn builder() -> EmulatorBuilder {
    Emulator::builder()
        .account(A)
        .account(B)
        .token(TOK_A, &[A])
        .token(TOK_B, &[B])
        .token_all(TOK_ALL)
        .zone("example.com", A)
        .zone("sub.example.com", A)
        .zone("other.org", B)
}

pub async fn start() -> EmulatorHandle {
    builder().start().await.expect("start emulator")
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Resp {
    pub fn result(&self) -> &Value {
        &self.body["result"]
    }

    pub fn code(&self) -> i64 {
        self.body["errors"][0]["code"].as_i64().unwrap_or(-1)
    }

    pub fn message(&self) -> String {
        self.body["errors"][0]["message"].as_str().unwrap_or_default().to_string()
    }

    /// Assert a success envelope and return `result`.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "expected 200, got {}: {}", self.status, self.body);
        assert_eq!(self.body["success"], true, "{}", self.body);
        assert_eq!(self.body["errors"], serde_json::json!([]));
        self.result()
    }

    /// Assert a failure envelope with this status and first error code.
    #[track_caller]
    pub fn err(&self, status: u16, code: i64) {
        assert_eq!(self.status, status, "status for {}", self.body);
        assert_eq!(self.body["success"], false, "{}", self.body);
        assert_eq!(self.body["result"], Value::Null);
        assert_eq!(self.code(), code, "code for {}", self.body);
    }
}

pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn new(emu: &EmulatorHandle, token: &str) -> Self {
        Self { client: reqwest::Client::new(), base: emu.base_url(), token: Some(token.to_string()) }
    }

    pub fn anonymous(emu: &EmulatorHandle) -> Self {
        Self { client: reqwest::Client::new(), base: emu.base_url(), token: None }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp { status, body, headers }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut rb = self.req(method, path);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }

    /// Multipart upload like wrangler: `metadata` as a plain field, modules as files.
    pub async fn upload(&self, method: Method, path: &str, metadata: Value, modules: &[(&str, &str)]) -> Resp {
        let mut form = Form::new().text("metadata", metadata.to_string());
        for (name, src) in modules {
            let part = Part::bytes(src.as_bytes().to_vec())
                .file_name(name.to_string())
                .mime_str("application/javascript+module")
                .expect("mime");
            form = form.part(name.to_string(), part);
        }
        self.send(self.req(method, path).multipart(form)).await
    }

    /// PUT a module Worker with `index.js` and the given metadata additions.
    pub async fn put_script(&self, account: &str, name: &str, extra: Value) -> Resp {
        let mut meta = serde_json::json!({"main_module": "index.js", "compatibility_date": "2025-01-01"});
        if let (Some(m), Some(e)) = (meta.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        self.upload(
            Method::PUT,
            &format!("/accounts/{account}/workers/scripts/{name}"),
            meta,
            &[("index.js", "export default { async fetch(req, env) { return new Response('hi'); } };")],
        )
        .await
    }
}

pub fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.matches('-').count() == 4
}
