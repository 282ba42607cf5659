//! Durable Objects: namespace listing and the `migrations` value of upload metadata.
//!
//! Namespaces exist only through migrations. A migration carries `old_tag` (the script's
//! current `migration_tag`, none for the first one) and `new_tag`; a stale `old_tag` fails with
//! 10079 ([`CloudflareError::is_migration_tag_mismatch`]), a replayed step with 10074.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;
use crate::pagination::{Page, collect_pages};

pub const EP_DO_NAMESPACES: &str = "/accounts/:account/workers/durable_objects/namespaces";
const DO_PER_PAGE: u32 = 100;

/// A Durable Object namespace (one class of one script).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoNamespace {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub id: String,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub script: Option<String>,
    #[serde(rename = "class", default, deserialize_with = "de::lenient_opt_string")]
    pub class_name: Option<String>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub use_sqlite: Option<bool>,
}

/// `{from, to}` of a renamed class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenamedClass {
    pub from: String,
    pub to: String,
}

/// `{from, from_script, to}` of a class moved from another script.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferredClass {
    pub from: String,
    pub from_script: String,
    pub to: String,
}

/// One migration step. Within a step the API applies new, renamed, transferred, then deleted
/// classes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationStep {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_sqlite_classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renamed_classes: Vec<RenamedClass>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transferred_classes: Vec<TransferredClass>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted_classes: Vec<String>,
}

impl MigrationStep {
    pub fn is_empty(&self) -> bool {
        self.new_classes.is_empty()
            && self.new_sqlite_classes.is_empty()
            && self.renamed_classes.is_empty()
            && self.transferred_classes.is_empty()
            && self.deleted_classes.is_empty()
    }
}

/// `metadata.migrations` in the multi-step form wrangler sends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoMigrations {
    /// The script's current tag; `None` when it has none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_tag: Option<String>,
    pub new_tag: String,
    pub steps: Vec<MigrationStep>,
}

impl DoMigrations {
    /// Check tags and steps, then the JSON value for [`crate::WorkerMetadata::migrations`].
    pub fn to_value(&self) -> Result<Value, CloudflareError> {
        if self.new_tag.is_empty() {
            return Err(CloudflareError::InvalidInput("migrations.new_tag must not be empty".into()));
        }
        if self.old_tag.as_deref() == Some(self.new_tag.as_str()) {
            return Err(CloudflareError::InvalidInput("migrations.new_tag must differ from old_tag".into()));
        }
        if self.steps.is_empty() || self.steps.iter().any(MigrationStep::is_empty) {
            return Err(CloudflareError::InvalidInput("migrations.steps must be non-empty steps".into()));
        }
        serde_json::to_value(self)
            .map_err(|_| CloudflareError::InvalidInput("migrations could not be serialized".into()))
    }
}

impl CloudflareClient {
    /// One page of `GET .../workers/durable_objects/namespaces`.
    pub async fn list_do_namespaces_page(
        &self,
        account_id: &str,
        page: u32,
        per_page: u32,
    ) -> Result<Page<DoNamespace>, CloudflareError> {
        let req =
            Request::get(EP_DO_NAMESPACES, format!("/accounts/{}/workers/durable_objects/namespaces", enc(account_id)))
                .query("page", page)
                .query("per_page", per_page);
        self.page_array(req).await
    }

    /// Every Durable Object namespace of the account.
    pub async fn list_do_namespaces(&self, account_id: &str) -> Result<Vec<DoNamespace>, CloudflareError> {
        collect_pages(DO_PER_PAGE, |page| self.list_do_namespaces_page(account_id, page, DO_PER_PAGE)).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn migrations_serialize_like_wrangler() {
        let m = DoMigrations {
            old_tag: Some("v1".into()),
            new_tag: "v2".into(),
            steps: vec![
                MigrationStep { new_sqlite_classes: vec!["Counter".into()], ..Default::default() },
                MigrationStep {
                    renamed_classes: vec![RenamedClass { from: "A".into(), to: "B".into() }],
                    ..Default::default()
                },
            ],
        };
        assert_eq!(
            m.to_value().unwrap(),
            json!({"old_tag": "v1", "new_tag": "v2", "steps": [
                {"new_sqlite_classes": ["Counter"]}, {"renamed_classes": [{"from": "A", "to": "B"}]}]})
        );
        let empty = DoMigrations { new_tag: "v1".into(), steps: vec![MigrationStep::default()], ..Default::default() };
        assert!(empty.to_value().is_err());
        let ns: DoNamespace =
            serde_json::from_value(json!({"id": "n", "class": "Counter", "script": "w", "use_sqlite": true})).unwrap();
        assert_eq!(ns.class_name.as_deref(), Some("Counter"));
    }
}
