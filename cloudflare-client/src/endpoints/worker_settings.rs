//! Typed worker settings (observability, placement, limits, tail consumers) and the versioned
//! `PATCH .../scripts/:script/settings` (multipart part `settings`; makes and deploys a new
//! version). The non-versioned `script-settings` PATCH is
//! [`CloudflareClient::patch_script_settings`].
//!
//! wrangler's deploy turns observability off unless it is configured: always send the desired
//! value explicitly.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{CloudflareClient, Request, enc};
use crate::endpoints::bindings::Binding;
use crate::endpoints::scripts::{EP_SCRIPT_SETTINGS, ScriptSettings};
use crate::error::CloudflareError;
use crate::multipart::{MultipartBody, Part};

/// Highest `cpu_ms` the API accepts (opt-in; the default is 30 000).
pub const MAX_CPU_MS: u64 = 300_000;

/// `observability.logs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservabilityLogs {
    pub enabled: bool,
    pub invocation_logs: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_sampling_rate: Option<f64>,
}

/// `observability`: Workers Logs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observability {
    pub enabled: bool,
    /// 0.0..=1.0
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_sampling_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<ObservabilityLogs>,
}

/// `placement`: `{"mode":"smart"}` or a targeted hint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Placement {
    pub fn smart() -> Self {
        Self { mode: Some("smart".into()), ..Self::default() }
    }
}

/// `limits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
}

/// One `tail_consumers` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailConsumer {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Body of the versioned settings PATCH. `None` = unchanged. `bindings`, when given, replaces
/// the set; `{name, type}` alone keeps an existing binding.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerSettingsPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Vec<Binding>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatibility_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatibility_flags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observability: Option<Observability>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<WorkerLimits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logpush: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_consumers: Option<Vec<TailConsumer>>,
    /// Durable Object migrations ([`crate::DoMigrations::to_value`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations: Option<Value>,
}

impl WorkerSettingsPatch {
    pub fn validate(&self) -> Result<(), CloudflareError> {
        if let Some(cpu) = self.limits.as_ref().and_then(|l| l.cpu_ms)
            && !(1..=MAX_CPU_MS).contains(&cpu)
        {
            return Err(CloudflareError::InvalidInput(format!("limits.cpu_ms must be 1..={MAX_CPU_MS}, got {cpu}")));
        }
        let rates = self.observability.iter().flat_map(|o| {
            [o.head_sampling_rate, o.logs.as_ref().and_then(|l| l.head_sampling_rate)].into_iter().flatten()
        });
        for r in rates {
            if !(0.0..=1.0).contains(&r) {
                return Err(CloudflareError::InvalidInput(format!(
                    "observability head_sampling_rate must be 0..=1, got {r}"
                )));
            }
        }
        if let Some(t) = &self.tail_consumers
            && t.iter().any(|c| c.service.is_empty())
        {
            return Err(CloudflareError::InvalidInput("tail_consumers[].service must not be empty".into()));
        }
        Ok(())
    }
}

impl CloudflareClient {
    /// `PATCH .../scripts/:script/settings`: new version with these changes, deployed at 100%.
    pub async fn patch_worker_settings(
        &self,
        account_id: &str,
        script: &str,
        patch: &WorkerSettingsPatch,
    ) -> Result<ScriptSettings, CloudflareError> {
        patch.validate()?;
        let json = serde_json::to_vec(patch)
            .map_err(|_| CloudflareError::InvalidInput("worker settings could not be serialized".into()))?;
        let body = MultipartBody::encode(&[Part {
            name: "settings".into(),
            filename: None,
            content_type: Some("application/json".into()),
            data: Bytes::from(json),
        }]);
        let path = format!("/accounts/{}/workers/scripts/{}/settings", enc(account_id), enc(script));
        let r: Option<ScriptSettings> = self.call(Request::patch(EP_SCRIPT_SETTINGS, path).multipart(body)).await?;
        Ok(r.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn patch_body_and_validation() {
        let p = WorkerSettingsPatch {
            observability: Some(Observability { enabled: true, head_sampling_rate: Some(0.5), logs: None }),
            limits: Some(WorkerLimits { cpu_ms: Some(50_000) }),
            placement: Some(Placement::smart()),
            tail_consumers: Some(vec![TailConsumer { service: "tail".into(), ..Default::default() }]),
            ..Default::default()
        };
        assert!(p.validate().is_ok());
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"observability": {"enabled": true, "head_sampling_rate": 0.5}, "placement": {"mode": "smart"},
                   "limits": {"cpu_ms": 50000}, "tail_consumers": [{"service": "tail"}]})
        );
        let too_much =
            WorkerSettingsPatch { limits: Some(WorkerLimits { cpu_ms: Some(400_000) }), ..Default::default() };
        assert!(too_much.validate().unwrap_err().to_string().contains("cpu_ms"));
    }
}
