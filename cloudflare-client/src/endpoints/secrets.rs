//! Script secrets. Every write creates and deploys a new version; it fails with code 10215 when
//! the newest version is not the deployed one (undeployed version upload or split deployment).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::envelope;
use crate::error::CloudflareError;
use crate::secret::SecretString;

pub const EP_SECRETS: &str = "/accounts/:account/workers/scripts/:script/secrets";
pub const EP_SECRET: &str = "/accounts/:account/workers/scripts/:script/secrets/:secret";
pub const EP_SECRETS_BULK: &str = "/accounts/:account/workers/scripts/:script/secrets-bulk";

/// Code for "latest version is not deployed" on secret writes.
pub const CODE_LATEST_NOT_DEPLOYED: u32 = 10215;

/// A secret's name and type (values are write-only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub name: String,
    /// `secret_text` or `secret_key`.
    #[serde(rename = "type", default, deserialize_with = "de::lenient_string")]
    pub secret_type: String,
}

#[derive(Serialize)]
struct PutSecret<'a> {
    name: &'a str,
    text: &'a SecretString,
    #[serde(rename = "type")]
    secret_type: &'static str,
}

#[derive(Serialize)]
struct BulkSecret<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    secret_type: &'static str,
    text: &'a SecretString,
}

#[derive(Serialize)]
struct BulkBody<'a> {
    /// JSON merge patch: object = create/update, null = delete.
    secrets: BTreeMap<&'a str, Option<BulkSecret<'a>>>,
}

fn secrets_path(account: &str, script: &str) -> String {
    format!("/accounts/{}/workers/scripts/{}/secrets", enc(account), enc(script))
}

/// Bulk result: a map of name to `{name, type}` (documented) or an array of them.
fn bulk_result(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Array(
            m.into_iter()
                .map(|(k, v)| match v {
                    Value::Object(mut o) => {
                        o.entry("name").or_insert(Value::String(k));
                        Value::Object(o)
                    }
                    _ => serde_json::json!({ "name": k }),
                })
                .collect(),
        ),
        other => other,
    }
}

impl CloudflareClient {
    /// `PUT .../secrets`: create or overwrite one `secret_text`. Creates and deploys a version.
    pub async fn put_secret(
        &self,
        account_id: &str,
        script: &str,
        name: &str,
        value: &SecretString,
    ) -> Result<SecretInfo, CloudflareError> {
        let body = PutSecret { name, text: value, secret_type: "secret_text" };
        let req = Request::put(EP_SECRETS, secrets_path(account_id, script)).json(&body)?;
        self.call(req).await
    }

    /// `GET .../secrets`: names and types only.
    pub async fn list_secrets(&self, account_id: &str, script: &str) -> Result<Vec<SecretInfo>, CloudflareError> {
        let r: Option<Vec<SecretInfo>> = self.call(Request::get(EP_SECRETS, secrets_path(account_id, script))).await?;
        Ok(r.unwrap_or_default())
    }

    /// `GET .../secrets/:secret?url_encoded=true`.
    pub async fn get_secret(&self, account_id: &str, script: &str, name: &str) -> Result<SecretInfo, CloudflareError> {
        let req = Request::get(EP_SECRET, format!("{}/{}", secrets_path(account_id, script), enc(name)))
            .query("url_encoded", "true");
        self.call(req).await
    }

    /// `DELETE .../secrets/:secret?url_encoded=true` (the name is percent-encoded, as wrangler does).
    pub async fn delete_secret(&self, account_id: &str, script: &str, name: &str) -> Result<(), CloudflareError> {
        let req = Request::delete(EP_SECRET, format!("{}/{}", secrets_path(account_id, script), enc(name)))
            .query("url_encoded", "true");
        self.call_unit(req).await
    }

    /// `PATCH .../secrets-bulk`: one version for all changes. `Some(value)` creates or updates,
    /// `None` deletes; names not in `changes` stay. Returns the resulting secrets.
    pub async fn bulk_patch_secrets(
        &self,
        account_id: &str,
        script: &str,
        changes: &BTreeMap<String, Option<SecretString>>,
    ) -> Result<Vec<SecretInfo>, CloudflareError> {
        let body = BulkBody {
            secrets: changes
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str(),
                        v.as_ref().map(|text| BulkSecret { name: k.as_str(), secret_type: "secret_text", text }),
                    )
                })
                .collect(),
        };
        let req = Request::patch(
            EP_SECRETS_BULK,
            format!("/accounts/{}/workers/scripts/{}/secrets-bulk", enc(account_id), enc(script)),
        )
        .json(&body)?;
        let v: Value = self.call(req.clone()).await?;
        let list: Option<Vec<SecretInfo>> = envelope::decode_result(bulk_result(v), &req.method, req.endpoint)?;
        Ok(list.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bulk_body_is_a_merge_patch() {
        let a = SecretString::new("aaa");
        let body = BulkBody {
            secrets: [("A", Some(BulkSecret { name: "A", secret_type: "secret_text", text: &a })), ("B", None)]
                .into_iter()
                .collect(),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"secrets": {"A": {"name": "A", "type": "secret_text", "text": "aaa"}, "B": null}})
        );
    }

    #[test]
    fn bulk_result_shapes() {
        let m: Vec<SecretInfo> = serde_json::from_value(bulk_result(
            json!({"A": {"name": "A", "type": "secret_text"}, "B": {"type": "secret_text"}}),
        ))
        .unwrap();
        assert_eq!(m.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["A", "B"]);
        let a: Vec<SecretInfo> =
            serde_json::from_value(bulk_result(json!([{"name": "X", "type": "secret_text"}]))).unwrap();
        assert_eq!(a[0].name, "X");
        assert_eq!(bulk_result(Value::Null), Value::Null);
    }
}
