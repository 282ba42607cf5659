//! The emulated account state. Serialized as JSON for `--state-dir` and exposed read-only
//! to tests through [`crate::EmulatorHandle`].
//!
//! Each Worker version keeps its module files, bindings (secret values included: they are
//! needed to run the version later) and compatibility settings.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything the emulator knows, keyed by account id and zone id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub accounts: BTreeMap<String, Account>,
    pub zones: BTreeMap<String, Zone>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub created_on: DateTime<Utc>,
    /// The account's workers.dev subdomain (`<sub>.workers.dev`); `None` = never registered.
    pub workers_subdomain: Option<String>,
    pub scripts: BTreeMap<String, Script>,
    /// D1 databases by uuid.
    pub d1_databases: BTreeMap<String, D1Database>,
    pub custom_domains: Vec<CustomDomain>,
    pub kv_namespaces: Vec<KvNamespace>,
    #[serde(default)]
    pub r2_buckets: Vec<R2Bucket>,
    #[serde(default)]
    pub queues: Vec<Queue>,
    /// Durable Object namespaces (created by migrations).
    #[serde(default)]
    pub do_namespaces: Vec<DoNamespace>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Zone {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub created_on: DateTime<Utc>,
    pub routes: Vec<Route>,
    pub dns_records: Vec<DnsRecord>,
}

/// A Worker script with its full version and deployment history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Script {
    pub name: String,
    /// Immutable script id (32 hex).
    pub tag: String,
    pub created_on: DateTime<Utc>,
    pub modified_on: DateTime<Utc>,
    /// Script tags (ownership markers), stored verbatim.
    pub tags: Vec<String>,
    pub logpush: bool,
    pub observability: Option<Value>,
    pub tail_consumers: Option<Value>,
    /// `wrangler` or `api`, from the uploading client's User-Agent.
    pub last_deployed_from: String,
    pub workers_dev_enabled: bool,
    pub previews_enabled: bool,
    pub schedules: Vec<Schedule>,
    /// Oldest first; `number` starts at 1.
    pub versions: Vec<Version>,
    /// Oldest first; the last one serves traffic.
    pub deployments: Vec<Deployment>,
    pub migration_tag: Option<String>,
}

impl Script {
    pub fn latest_version(&self) -> Option<&Version> {
        self.versions.last()
    }

    pub fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }

    pub fn active_deployment(&self) -> Option<&Deployment> {
        self.deployments.last()
    }

    /// The version serving the largest share of traffic (the latest version if never deployed).
    pub fn primary_version(&self) -> Option<&Version> {
        self.active_deployment()
            .and_then(|d| {
                d.versions
                    .iter()
                    .max_by(|a, b| a.percentage.total_cmp(&b.percentage))
                    .and_then(|dv| self.version(&dv.version_id))
            })
            .or_else(|| self.latest_version())
    }
}

/// One immutable Worker version.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Version {
    pub id: String,
    pub number: u64,
    pub created_on: DateTime<Utc>,
    /// `wrangler` or `api`.
    pub source: String,
    pub author_email: String,
    /// `workers/message`, `workers/tag`, `workers/triggered_by`, ...
    pub annotations: BTreeMap<String, String>,
    pub main_module: Option<String>,
    pub body_part: Option<String>,
    pub modules: Vec<Module>,
    /// Bindings as uploaded (secret values included), `inherit` already resolved.
    pub bindings: Vec<Value>,
    pub compatibility_date: String,
    pub compatibility_flags: Vec<String>,
    pub usage_model: String,
    pub limits: Option<Value>,
    pub placement: Option<Value>,
    pub etag: String,
    pub handlers: Vec<String>,
}

impl Version {
    pub fn binding(&self, name: &str) -> Option<&Value> {
        self.bindings.iter().find(|b| b.get("name").and_then(Value::as_str) == Some(name))
    }

    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.name == name)
    }
}

/// One uploaded file of a version.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Module {
    pub name: String,
    pub content_type: String,
    #[serde(with = "b64")]
    pub content: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub created_on: DateTime<Utc>,
    pub source: String,
    pub strategy: String,
    pub author_email: String,
    pub versions: Vec<DeploymentVersion>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentVersion {
    pub version_id: String,
    pub percentage: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Schedule {
    pub cron: String,
    pub created_on: DateTime<Utc>,
    pub modified_on: DateTime<Utc>,
}

/// A zone-level Worker route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub id: String,
    pub pattern: String,
    pub script: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DnsRecord {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub content: String,
    pub ttl: u32,
    pub proxied: bool,
    pub comment: Option<String>,
    pub tags: Vec<String>,
    pub settings: Value,
    pub priority: Option<u64>,
    pub data: Option<Value>,
    pub created_on: DateTime<Utc>,
    pub modified_on: DateTime<Utc>,
}

/// A Workers custom domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomDomain {
    pub id: String,
    pub hostname: String,
    pub service: String,
    pub zone_id: String,
    pub zone_name: String,
    pub cert_id: String,
    pub environment: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct D1Database {
    pub uuid: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub primary_location_hint: Option<String>,
    pub jurisdiction: Option<String>,
    pub read_replication_mode: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvNamespace {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// Keys with their values (expired keys are dropped when read).
    #[serde(default)]
    pub keys: BTreeMap<String, KvEntry>,
}

/// One KV value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    /// Unix seconds after which the key is gone.
    pub expiration: Option<i64>,
    pub metadata: Option<Value>,
}

impl KvEntry {
    pub fn live(&self, now: i64) -> bool {
        self.expiration.is_none_or(|e| e > now)
    }
}

/// An R2 bucket; objects written through the object API or a Worker's R2 binding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct R2Bucket {
    pub name: String,
    pub creation_date: DateTime<Utc>,
    /// `default`, `eu`, `fedramp`, ...
    pub jurisdiction: String,
    pub location: String,
    pub storage_class: String,
    #[serde(default)]
    pub objects: BTreeMap<String, R2Object>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct R2Object {
    #[serde(with = "b64")]
    pub body: Vec<u8>,
    pub etag: String,
    pub uploaded: DateTime<Utc>,
    pub http_metadata: BTreeMap<String, String>,
    pub custom_metadata: BTreeMap<String, String>,
}

/// A queue with its consumers; producers are derived from the Workers' bindings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub id: String,
    pub name: String,
    pub created_on: DateTime<Utc>,
    pub modified_on: DateTime<Utc>,
    pub settings: Value,
    pub consumers: Vec<QueueConsumer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueConsumer {
    pub id: String,
    pub created_on: DateTime<Utc>,
    /// `worker` or `http_pull`.
    pub kind: String,
    pub script: Option<String>,
    pub dead_letter_queue: String,
    pub settings: Value,
}

/// A Durable Object namespace: one class of one script.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoNamespace {
    pub id: String,
    pub name: String,
    pub script: String,
    pub class: String,
    pub use_sqlite: bool,
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
