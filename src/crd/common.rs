//! Small shared spec types: references and enums used by several resources.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Reference to an object by name in the same namespace (the tenancy boundary).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
pub struct LocalObjectRef {
    /// Name of the object in the same namespace.
    #[x_kube(validation = Rule::new("self.size() > 0").message("name must not be empty"))]
    pub name: String,
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
pub struct SecretKeyRef {
    /// Secret name.
    #[x_kube(validation = Rule::new("self.size() > 0").message("name must not be empty"))]
    pub name: String,
    /// Key inside the Secret's data.
    #[x_kube(validation = Rule::new("self.size() > 0").message("key must not be empty"))]
    pub key: String,
}

/// Where a value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// A key of a Secret in the same namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// A ConfigMap whose keys are files (Worker modules or SQL migrations).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSource {
    /// ConfigMap in the same namespace; each key (data or binaryData) is one file.
    pub config_map_ref: LocalObjectRef,
}

/// Deployment environment of a service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Security policy level (DESIGN §4). Ordered from most relaxed to strictest.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyLevel {
    /// Violations are reported as warning Events only.
    Relaxed,
    /// Blocks dummy values, unresolved placeholders and missing tokens; short secrets warn.
    Standard,
    /// Blocks everything in DESIGN §4.
    Strict,
}

impl PolicyLevel {
    /// The default policy of an environment.
    pub fn default_for(env: Environment) -> Self {
        match env {
            Environment::Production => PolicyLevel::Strict,
            Environment::Staging => PolicyLevel::Standard,
            Environment::Development => PolicyLevel::Relaxed,
        }
    }
}

/// How a resource came to manage a Cloudflare object that carries no owner tag (D1, and later
/// KV, R2, queues). Only objects with an ownership are ever changed or deleted by the operator.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Ownership {
    /// Created by this resource.
    Created,
    /// Existed before and was adopted on request (annotation `clodo.dev/adopt: "true"`), or was
    /// recorded by an operator version that did not record ownership yet.
    Adopted,
}
