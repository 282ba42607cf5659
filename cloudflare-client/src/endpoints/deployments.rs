//! Deployments: percentage deployments of one or two versions (also how rollback works), list.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

use super::scripts::{Annotations, lenient_annotations};
use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::envelope;
use crate::error::CloudflareError;

pub const EP_DEPLOYMENTS: &str = "/accounts/:account/workers/scripts/:script/deployments";
pub const EP_DEPLOYMENT: &str = "/accounts/:account/workers/scripts/:script/deployments/:deployment";

/// Code for "rollback blocked because secrets changed" (retry with `force`).
pub const CODE_SECRETS_CHANGED: u32 = 10220;

/// One version's share of traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentVersion {
    pub version_id: String,
    /// 0..=100; whole numbers are sent as integers.
    #[serde(serialize_with = "ser_percentage", deserialize_with = "de_percentage", default)]
    pub percentage: f64,
}

impl DeploymentVersion {
    pub fn new(version_id: impl Into<String>, percentage: f64) -> Self {
        Self { version_id: version_id.into(), percentage }
    }
}

fn ser_percentage<S: Serializer>(p: &f64, s: S) -> Result<S::Ok, S::Error> {
    if p.fract() == 0.0 && (0.0..=100.0).contains(p) { s.serialize_u64(*p as u64) } else { s.serialize_f64(*p) }
}

fn de_percentage<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(0.0),
        serde_json::Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    })
}

/// Body of `POST .../deployments`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateDeployment {
    /// Always `percentage`.
    pub strategy: String,
    pub versions: Vec<DeploymentVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

impl CreateDeployment {
    /// One version at 100% (a normal deploy or a rollback).
    pub fn single(version_id: impl Into<String>, message: Option<&str>) -> Self {
        Self {
            strategy: "percentage".into(),
            versions: vec![DeploymentVersion::new(version_id, 100.0)],
            annotations: message.map(|m| Annotations::new(Some(m), None)),
        }
    }

    /// A split: `new_version` at `new_percentage`, `old_version` at the rest.
    pub fn split(
        new_version: impl Into<String>,
        new_percentage: f64,
        old_version: impl Into<String>,
        message: Option<&str>,
    ) -> Self {
        Self {
            strategy: "percentage".into(),
            versions: vec![
                DeploymentVersion::new(new_version, new_percentage),
                DeploymentVersion::new(old_version, 100.0 - new_percentage),
            ],
            annotations: message.map(|m| Annotations::new(Some(m), None)),
        }
    }

    /// The API's rules, checked before sending: 1 or 2 distinct versions, each 0..=100, sum 100.
    pub fn validate(&self) -> Result<(), CloudflareError> {
        let n = self.versions.len();
        if !(1..=2).contains(&n) {
            return Err(CloudflareError::InvalidInput(format!("a deployment holds 1 or 2 versions, not {n}")));
        }
        if n == 2 && self.versions[0].version_id == self.versions[1].version_id {
            return Err(CloudflareError::InvalidInput("a split deployment needs two different versions".into()));
        }
        if self.versions.iter().any(|v| v.version_id.is_empty()) {
            return Err(CloudflareError::InvalidInput("deployment version_id is empty".into()));
        }
        if self.versions.iter().any(|v| !(0.0..=100.0).contains(&v.percentage)) {
            return Err(CloudflareError::InvalidInput("deployment percentages must be within 0..=100".into()));
        }
        let sum: f64 = self.versions.iter().map(|v| v.percentage).sum();
        if (sum - 100.0).abs() > 1e-6 {
            return Err(CloudflareError::InvalidInput(format!("deployment percentages sum to {sum}, not 100")));
        }
        Ok(())
    }
}

/// A deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    #[serde(default, deserialize_with = "de::lenient_datetime")]
    pub created_on: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub strategy: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub author_email: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub versions: Vec<DeploymentVersion>,
    #[serde(default, deserialize_with = "lenient_annotations")]
    pub annotations: Option<Annotations>,
}

impl Deployment {
    /// `(version_id, percentage)` pairs, percentages rounded to whole numbers.
    pub fn traffic(&self) -> Vec<(String, u8)> {
        self.versions.iter().map(|v| (v.version_id.clone(), v.percentage.round().clamp(0.0, 100.0) as u8)).collect()
    }

    /// The version at 100%, if the deployment is not split.
    pub fn sole_version(&self) -> Option<&str> {
        match self.versions.as_slice() {
            [v] if (v.percentage - 100.0).abs() < 1e-6 => Some(&v.version_id),
            _ => None,
        }
    }
}

/// `result.deployments` (documented), tolerating `result.items` or a bare array.
fn deployments_value(result: serde_json::Value) -> serde_json::Value {
    match result {
        serde_json::Value::Object(mut m) => {
            m.remove("deployments").or_else(|| m.remove("items")).unwrap_or(serde_json::Value::Null)
        }
        other => other,
    }
}

/// Newest first by `created_on` (entries without a timestamp last), keeping the API's order
/// among equals.
pub fn sort_newest_first(deployments: &mut [Deployment]) {
    deployments.sort_by_key(|d| std::cmp::Reverse(d.created_on));
}

fn deployments_path(account: &str, script: &str) -> String {
    format!("/accounts/{}/workers/scripts/{}/deployments", enc(account), enc(script))
}

impl CloudflareClient {
    /// `POST .../deployments`. `force` overrides blocks such as code 10220 (secrets differ from
    /// the target version). Validated client-side first.
    pub async fn create_deployment(
        &self,
        account_id: &str,
        script: &str,
        deployment: &CreateDeployment,
        force: bool,
    ) -> Result<Deployment, CloudflareError> {
        deployment.validate()?;
        let mut body = deployment.clone();
        body.annotations = body.annotations.as_ref().map(Annotations::for_request).filter(|a| !a.is_empty());
        let req = Request::post(EP_DEPLOYMENTS, deployments_path(account_id, script))
            .query_opt("force", force.then_some("true"))
            .json(&body)?;
        self.call(req).await
    }

    /// `GET .../deployments` (`result.deployments`), sorted newest first; element 0 serves traffic.
    pub async fn list_deployments(&self, account_id: &str, script: &str) -> Result<Vec<Deployment>, CloudflareError> {
        let req = Request::get(EP_DEPLOYMENTS, deployments_path(account_id, script));
        let result: serde_json::Value = self.call(req.clone()).await?;
        let list: Option<Vec<Deployment>> =
            envelope::decode_result(deployments_value(result), &req.method, req.endpoint)?;
        let mut list = list.unwrap_or_default();
        sort_newest_first(&mut list);
        Ok(list)
    }

    /// The deployment serving traffic now (newest), if any.
    pub async fn active_deployment(
        &self,
        account_id: &str,
        script: &str,
    ) -> Result<Option<Deployment>, CloudflareError> {
        Ok(self.list_deployments(account_id, script).await?.into_iter().next())
    }

    /// `GET .../deployments/:deployment`.
    pub async fn get_deployment(
        &self,
        account_id: &str,
        script: &str,
        deployment_id: &str,
    ) -> Result<Deployment, CloudflareError> {
        let req =
            Request::get(EP_DEPLOYMENT, format!("{}/{}", deployments_path(account_id, script), enc(deployment_id)));
        self.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_rules() {
        assert!(CreateDeployment::single("v1", None).validate().is_ok());
        assert!(CreateDeployment::split("v2", 10.0, "v1", Some("canary")).validate().is_ok());
        assert!(
            CreateDeployment::split("v2", 0.0, "v1", None).validate().is_ok(),
            "0% is allowed (smoke test via override)"
        );
        assert!(CreateDeployment::split("v1", 10.0, "v1", None).validate().is_err());
        assert!(CreateDeployment::split("v2", 120.0, "v1", None).validate().is_err());
        let mut three = CreateDeployment::split("a", 50.0, "b", None);
        three.versions.push(DeploymentVersion::new("c", 0.0));
        assert!(three.validate().is_err());
        let mut bad_sum = CreateDeployment::single("a", None);
        bad_sum.versions[0].percentage = 90.0;
        assert!(bad_sum.validate().unwrap_err().to_string().contains("sum to 90"));
        assert!(
            CreateDeployment { strategy: "percentage".into(), versions: vec![], annotations: None }.validate().is_err()
        );
        assert!(CreateDeployment::single("", None).validate().is_err());
    }

    #[test]
    fn body_shape() {
        let d = CreateDeployment::split("new", 10.0, "old", Some("canary 10%"));
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"strategy": "percentage",
                   "versions": [{"version_id": "new", "percentage": 10}, {"version_id": "old", "percentage": 90}],
                   "annotations": {"workers/message": "canary 10%"}})
        );
        let half = DeploymentVersion::new("x", 12.5);
        assert_eq!(serde_json::to_value(&half).unwrap()["percentage"], json!(12.5));
    }

    #[test]
    fn sorting_and_helpers() {
        let mut list: Vec<Deployment> = serde_json::from_value(deployments_value(json!({"deployments": [
            {"id": "old", "created_on": "2025-01-01T00:00:00Z", "versions": [{"version_id": "v1", "percentage": 100}]},
            {"id": "none", "versions": []},
            {"id": "new", "created_on": "2025-03-01T00:00:00.123456Z", "versions": [
                {"version_id": "v2", "percentage": 10.0}, {"version_id": "v1", "percentage": "90"}]}
        ]})))
        .unwrap();
        sort_newest_first(&mut list);
        let ids: Vec<&str> = list.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["new", "old", "none"]);
        assert_eq!(list[0].traffic(), vec![("v2".to_string(), 10), ("v1".to_string(), 90)]);
        assert_eq!(list[0].sole_version(), None);
        assert_eq!(list[1].sole_version(), Some("v1"));
        assert_eq!(deployments_value(json!([{"id": "a"}])), json!([{"id": "a"}]));
        assert_eq!(deployments_value(json!({"items": [1]})), json!([1]));
        assert_eq!(deployments_value(json!({})), serde_json::Value::Null);
    }
}
