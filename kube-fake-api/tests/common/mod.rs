//! Shared test fixtures: a small CRD with a status subresource and CEL rules, and waits.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How long any wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Staging,
    Production,
}

/// A test resource shaped like the operator's: enum, range, pattern, CEL rules.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "test.clodo.dev",
    version = "v1",
    kind = "Widget",
    plural = "widgets",
    shortname = "wd",
    namespaced,
    cel,
    status = "WidgetStatus"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.environment != 'development' || self.replicas <= 10").message("development allows at most 10 replicas"))]
pub struct WidgetSpec {
    pub environment: Environment,
    #[schemars(range(min = 1, max = 100))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(h, h.matches('^[a-z0-9.-]+$'))").message("hosts: each entry must be a lowercase hostname"))]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub script_name: Option<String>,
    #[x_kube(validation = Rule::new("self == oldSelf").message("owner is immutable"))]
    pub owner: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<String>>,
}

pub fn spec(replicas: i32) -> WidgetSpec {
    WidgetSpec {
        environment: Environment::Staging,
        replicas,
        hosts: Vec::new(),
        script_name: None,
        owner: "team-a".into(),
    }
}

pub fn widget(name: &str, replicas: i32) -> Widget {
    Widget::new(name, spec(replicas))
}

/// Install the Widget CRD through the API, like `kubectl apply`, and wait until it is established.
pub async fn install_widget_crd(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd()).await?;
    let name = Widget::crd_name();
    tokio::time::timeout(WAIT, await_condition(crds, name, conditions::is_crd_established())).await??;
    Ok(())
}

/// Poll `probe` until it yields a value, failing after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `Status` of a failed kube call.
pub fn api_status(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}
