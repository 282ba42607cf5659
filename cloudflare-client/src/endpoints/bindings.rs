//! Worker bindings (metadata `bindings[]`, settings, version resources): one variant per type
//! clodo-operator declares, anything else kept verbatim.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::secret::SecretString;

/// A Worker binding (metadata `bindings[]`, settings, version resources). Unknown types and
/// known types with unexpected shapes are preserved verbatim in [`Binding::Unknown`].
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    PlainText {
        name: String,
        text: String,
    },
    /// `text` is absent when read back (secret values are write-only).
    SecretText {
        name: String,
        text: Option<SecretString>,
    },
    Json {
        name: String,
        json: Value,
    },
    /// D1 database by UUID. Sent as `id` (the form wrangler uses); read from `database_id` or `id`.
    D1 {
        name: String,
        database_id: String,
    },
    KvNamespace {
        name: String,
        namespace_id: String,
    },
    R2Bucket {
        name: String,
        bucket_name: String,
        jurisdiction: Option<String>,
    },
    Service {
        name: String,
        service: String,
        entrypoint: Option<String>,
        environment: Option<String>,
    },
    /// Queue producer.
    Queue {
        name: String,
        queue_name: String,
        /// Seconds (wrangler sends it; not in the SDK schema).
        delivery_delay: Option<u64>,
    },
    /// Durable Object namespace: a class of this Worker, or of `script_name`. The API reports
    /// `namespace_id` on reads.
    DurableObjectNamespace {
        name: String,
        class_name: String,
        script_name: Option<String>,
        environment: Option<String>,
        namespace_id: Option<String>,
    },
    AnalyticsEngine {
        name: String,
        dataset: String,
    },
    Ai {
        name: String,
    },
    /// Browser Rendering (`browser`; `browser_rendering` is read as this too).
    Browser {
        name: String,
    },
    Hyperdrive {
        name: String,
        id: String,
    },
    VersionMetadata {
        name: String,
    },
    /// Keep a binding from an earlier version (`version_id` defaults to `latest` server-side).
    Inherit {
        name: String,
        old_name: Option<String>,
        version_id: Option<String>,
    },
    Unknown(Value),
}

impl Binding {
    pub fn plain_text(name: impl Into<String>, text: impl Into<String>) -> Self {
        Binding::PlainText { name: name.into(), text: text.into() }
    }

    pub fn secret_text(name: impl Into<String>, text: SecretString) -> Self {
        Binding::SecretText { name: name.into(), text: Some(text) }
    }

    pub fn d1(name: impl Into<String>, database_id: impl Into<String>) -> Self {
        Binding::D1 { name: name.into(), database_id: database_id.into() }
    }

    pub fn kv(name: impl Into<String>, namespace_id: impl Into<String>) -> Self {
        Binding::KvNamespace { name: name.into(), namespace_id: namespace_id.into() }
    }

    pub fn r2(name: impl Into<String>, bucket_name: impl Into<String>, jurisdiction: Option<String>) -> Self {
        Binding::R2Bucket { name: name.into(), bucket_name: bucket_name.into(), jurisdiction }
    }

    pub fn queue(name: impl Into<String>, queue_name: impl Into<String>) -> Self {
        Binding::Queue { name: name.into(), queue_name: queue_name.into(), delivery_delay: None }
    }

    /// A Durable Object class of this Worker (`script_name: None`) or of another one.
    pub fn durable_object(name: impl Into<String>, class_name: impl Into<String>, script_name: Option<String>) -> Self {
        Binding::DurableObjectNamespace {
            name: name.into(),
            class_name: class_name.into(),
            script_name,
            environment: None,
            namespace_id: None,
        }
    }

    pub fn service(name: impl Into<String>, service: impl Into<String>, entrypoint: Option<String>) -> Self {
        Binding::Service { name: name.into(), service: service.into(), entrypoint, environment: None }
    }

    /// The binding's variable name, if it has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Binding::PlainText { name, .. }
            | Binding::SecretText { name, .. }
            | Binding::Json { name, .. }
            | Binding::D1 { name, .. }
            | Binding::KvNamespace { name, .. }
            | Binding::R2Bucket { name, .. }
            | Binding::Service { name, .. }
            | Binding::Queue { name, .. }
            | Binding::DurableObjectNamespace { name, .. }
            | Binding::AnalyticsEngine { name, .. }
            | Binding::Ai { name }
            | Binding::Browser { name }
            | Binding::Hyperdrive { name, .. }
            | Binding::VersionMetadata { name }
            | Binding::Inherit { name, .. } => Some(name),
            Binding::Unknown(v) => v.get("name").and_then(Value::as_str),
        }
    }

    /// The wire `type`.
    pub fn type_name(&self) -> &str {
        match self {
            Binding::PlainText { .. } => "plain_text",
            Binding::SecretText { .. } => "secret_text",
            Binding::Json { .. } => "json",
            Binding::D1 { .. } => "d1",
            Binding::KvNamespace { .. } => "kv_namespace",
            Binding::R2Bucket { .. } => "r2_bucket",
            Binding::Service { .. } => "service",
            Binding::Queue { .. } => "queue",
            Binding::DurableObjectNamespace { .. } => "durable_object_namespace",
            Binding::AnalyticsEngine { .. } => "analytics_engine",
            Binding::Ai { .. } => "ai",
            Binding::Browser { .. } => "browser",
            Binding::Hyperdrive { .. } => "hyperdrive",
            Binding::VersionMetadata { .. } => "version_metadata",
            Binding::Inherit { .. } => "inherit",
            Binding::Unknown(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    fn to_value(&self) -> Value {
        let mut v = match self {
            Binding::PlainText { name, text } => {
                json!({"type": "plain_text", "name": name, "text": text})
            }
            Binding::SecretText { name, text } => {
                let mut v = json!({"type": "secret_text", "name": name});
                if let Some(t) = text {
                    v["text"] = Value::String(t.expose().to_string());
                }
                v
            }
            Binding::Json { name, json } => json!({"type": "json", "name": name, "json": json}),
            Binding::D1 { name, database_id } => {
                json!({"type": "d1", "name": name, "id": database_id})
            }
            Binding::KvNamespace { name, namespace_id } => {
                json!({"type": "kv_namespace", "name": name, "namespace_id": namespace_id})
            }
            Binding::R2Bucket { name, bucket_name, jurisdiction } => {
                json!({"type": "r2_bucket", "name": name, "bucket_name": bucket_name, "jurisdiction": jurisdiction})
            }
            Binding::Service { name, service, entrypoint, environment } => json!({
                "type": "service", "name": name, "service": service, "entrypoint": entrypoint, "environment": environment
            }),
            Binding::Queue { name, queue_name, delivery_delay } => {
                json!({"type": "queue", "name": name, "queue_name": queue_name, "delivery_delay": delivery_delay})
            }
            Binding::DurableObjectNamespace { name, class_name, script_name, environment, namespace_id } => json!({
                "type": "durable_object_namespace", "name": name, "class_name": class_name,
                "script_name": script_name, "environment": environment, "namespace_id": namespace_id
            }),
            Binding::AnalyticsEngine { name, dataset } => {
                json!({"type": "analytics_engine", "name": name, "dataset": dataset})
            }
            Binding::Ai { name } => json!({"type": "ai", "name": name}),
            Binding::Browser { name } => json!({"type": "browser", "name": name}),
            Binding::Hyperdrive { name, id } => json!({"type": "hyperdrive", "name": name, "id": id}),
            Binding::VersionMetadata { name } => json!({"type": "version_metadata", "name": name}),
            Binding::Inherit { name, old_name, version_id } => {
                json!({"type": "inherit", "name": name, "old_name": old_name, "version_id": version_id})
            }
            Binding::Unknown(v) => return v.clone(),
        };
        if let Value::Object(m) = &mut v {
            m.retain(|_, x| !x.is_null());
        }
        v
    }

    fn from_value(v: Value) -> Self {
        fn s(m: &Map<String, Value>, k: &str) -> Option<String> {
            m.get(k).and_then(Value::as_str).map(str::to_string)
        }
        let Value::Object(m) = &v else {
            return Binding::Unknown(v);
        };
        let (Some(ty), Some(name)) = (s(m, "type"), s(m, "name")) else {
            return Binding::Unknown(v);
        };
        let parsed = match ty.as_str() {
            "plain_text" => s(m, "text").map(|text| Binding::PlainText { name, text }),
            "secret_text" => Some(Binding::SecretText { name, text: s(m, "text").map(SecretString::new) }),
            "json" => m.get("json").map(|j| Binding::Json { name, json: j.clone() }),
            "d1" => s(m, "database_id").or_else(|| s(m, "id")).map(|database_id| Binding::D1 { name, database_id }),
            "kv_namespace" => s(m, "namespace_id").map(|namespace_id| Binding::KvNamespace { name, namespace_id }),
            "r2_bucket" => s(m, "bucket_name").map(|bucket_name| Binding::R2Bucket {
                name,
                bucket_name,
                jurisdiction: s(m, "jurisdiction"),
            }),
            "service" => s(m, "service").map(|service| Binding::Service {
                name,
                service,
                entrypoint: s(m, "entrypoint"),
                environment: s(m, "environment"),
            }),
            "queue" => s(m, "queue_name").map(|queue_name| Binding::Queue {
                name,
                queue_name,
                delivery_delay: m.get("delivery_delay").and_then(Value::as_u64),
            }),
            "durable_object_namespace" => s(m, "class_name").map(|class_name| Binding::DurableObjectNamespace {
                name,
                class_name,
                script_name: s(m, "script_name"),
                environment: s(m, "environment"),
                namespace_id: s(m, "namespace_id"),
            }),
            "analytics_engine" => s(m, "dataset").map(|dataset| Binding::AnalyticsEngine { name, dataset }),
            "ai" => Some(Binding::Ai { name }),
            "browser" | "browser_rendering" => Some(Binding::Browser { name }),
            "hyperdrive" => s(m, "id").map(|id| Binding::Hyperdrive { name, id }),
            "version_metadata" => Some(Binding::VersionMetadata { name }),
            "inherit" => Some(Binding::Inherit { name, old_name: s(m, "old_name"), version_id: s(m, "version_id") }),
            _ => None,
        };
        parsed.unwrap_or(Binding::Unknown(v))
    }
}

impl Serialize for Binding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Binding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if !v.is_object() {
            return Err(D::Error::custom("binding must be an object"));
        }
        Ok(Binding::from_value(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bindings_round_trip_and_preserve_unknown() {
        let wire = json!([
            {"type": "plain_text", "name": "MODE", "text": "prod"},
            {"type": "secret_text", "name": "API_KEY", "text": "s3cr3t"},
            {"type": "secret_text", "name": "READ_BACK"},
            {"type": "json", "name": "CFG", "json": {"a": 1}},
            {"type": "d1", "name": "DB", "id": "db-uuid"},
            {"type": "d1", "name": "DB2", "database_id": "db2-uuid"},
            {"type": "kv_namespace", "name": "CACHE", "namespace_id": "kv"},
            {"type": "r2_bucket", "name": "FILES", "bucket_name": "b", "jurisdiction": "eu"},
            {"type": "service", "name": "AUTH", "service": "auth-worker", "entrypoint": "Admin"},
            {"type": "inherit", "name": "OLD", "version_id": "latest"},
            {"type": "queue", "name": "Q", "queue_name": "jobs"},
            {"type": "kv_namespace", "name": "BROKEN"}
        ]);
        let bindings: Vec<Binding> = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(bindings[0], Binding::plain_text("MODE", "prod"));
        assert_eq!(bindings[1], Binding::secret_text("API_KEY", SecretString::new("s3cr3t")));
        assert_eq!(bindings[2], Binding::SecretText { name: "READ_BACK".into(), text: None });
        assert_eq!(bindings[4], Binding::d1("DB", "db-uuid"));
        assert_eq!(bindings[5], Binding::d1("DB2", "db2-uuid"));
        assert!(matches!(&bindings[7], Binding::R2Bucket { jurisdiction: Some(j), .. } if j == "eu"));
        assert!(
            matches!(&bindings[8], Binding::Service { entrypoint: Some(e), environment: None, .. } if e == "Admin")
        );
        assert_eq!(bindings[10], Binding::queue("Q", "jobs"));
        assert!(matches!(&bindings[11], Binding::Unknown(_)), "known type with missing field is kept verbatim");
        assert_eq!(bindings[10].type_name(), "queue");
        assert_eq!(bindings[10].name(), Some("Q"));
        // Secret values never show in Debug output.
        assert!(!format!("{bindings:?}").contains("s3cr3t"));

        let back = serde_json::to_value(&bindings).unwrap();
        let mut expected = wire;
        // D1 is always sent as `id`
        expected[5] = json!({"type": "d1", "name": "DB2", "id": "db2-uuid"});
        assert_eq!(back, expected);
        assert!(serde_json::from_value::<Binding>(json!("x")).is_err());
    }
}
