//! Customer controller: verify the token (cached, rate-limited), resolve zones, count services.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info_span, warn};

use super::source::KubeSource;
use super::{Context, Error, object_key};
use crate::crd::conditions::{self as c, CondSpec, reason};
use crate::crd::keys::FIELD_MANAGER;
use crate::crd::{CloudflareService, Customer, TokenStatus, ZoneStatus};
use crate::engine::hash::digest_strings;
use crate::engine::resolve::{ResolveError, read_secret_key};
use crate::engine::{PassEvent, ops};

const KIND: &str = "Customer";
/// A token verified for this Secret version is re-verified after this long.
pub const TOKEN_RECHECK: Duration = Duration::from_secs(3600);

/// Reconcile one customer.
pub async fn reconcile(cust: Arc<Customer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cust.namespace().unwrap_or_else(|| "default".into());
    let span = info_span!("reconcile", kind = KIND, namespace = %ns, name = %cust.name_any(), generation = cust.metadata.generation.unwrap_or_default());
    async move {
        let start = Instant::now();
        let result = apply(&cust, &ctx, &ns).await;
        let label = if result.is_ok() { "ok" } else { "error" };
        ctx.metrics.reconcile_total.with_label_values(&["customer", label]).inc();
        ctx.metrics.reconcile_duration.with_label_values(&["customer", label]).observe(start.elapsed().as_secs_f64());
        result
    }
    .instrument(span)
    .await
}

async fn apply(cust: &Customer, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let source = KubeSource::new(ctx.client.clone());
    let prev = cust.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let mut status = prev.clone();
    let mut conds: Vec<CondSpec> = Vec::new();
    let mut events = Vec::new();
    let mut retry: Option<String> = None;

    let services: Api<CloudflareService> = Api::namespaced(ctx.client.clone(), ns);
    status.services = services
        .list(&Default::default())
        .await?
        .items
        .iter()
        .filter(|s| s.spec.customer_ref.name == cust.name_any())
        .count() as i32;

    let token = read_secret_key(&source, ns, "spec.apiTokenSecretRef", &cust.spec.api_token_secret_ref).await;
    let (token, secret_version) = match token {
        Ok((t, v)) if !t.is_empty() => (Some(t), v),
        Ok(_) => {
            conds.push(CondSpec::fail(
                c::CREDENTIALS_VALID,
                reason::TOKEN_MISSING,
                "spec.apiTokenSecretRef: the token Secret key is empty",
            ));
            (None, String::new())
        }
        Err(ResolveError::Config(e)) => {
            conds.push(CondSpec::fail(c::CREDENTIALS_VALID, reason::TOKEN_MISSING, e.to_string()));
            (None, String::new())
        }
        Err(ResolveError::Source(e)) => return Err(Error::Engine(e.to_string())),
    };

    if let Some(token) = token {
        let checked_for = digest_strings(&[secret_version, cust.spec.account_id.clone()]);
        let fresh = prev.token.as_ref().is_some_and(|t| {
            t.checked_for.as_deref() == Some(checked_for.as_str())
                && t.checked_at
                    .as_ref()
                    .is_some_and(|at| now.0.duration_since(at.0).as_secs() < TOKEN_RECHECK.as_secs() as i64)
        }) && c::find(&prev.conditions, c::CREDENTIALS_VALID).is_some_and(|x| x.status != "Unknown");
        let client = ctx.engine.client_for(token.expose()).map_err(|e| Error::Engine(e.to_string()))?;
        if fresh {
            if let Some(x) = c::find(&prev.conditions, c::CREDENTIALS_VALID) {
                let st = match x.status.as_str() {
                    "True" => Some(true),
                    "False" => Some(false),
                    _ => None,
                };
                conds.push(CondSpec::new(c::CREDENTIALS_VALID, st, &x.reason, x.message.clone()));
            }
        } else {
            match ops::verify_token(&client, &cust.spec.account_id).await {
                Ok(v) => {
                    status.token = Some(TokenStatus {
                        status: v.status.clone(),
                        expires_on: v.expires_on.clone(),
                        checked_for: Some(checked_for),
                        checked_at: Some(now.clone()),
                    });
                    if v.active {
                        let exp = v.expires_on.as_deref().map(|e| format!(", expires {e}")).unwrap_or_default();
                        conds.push(CondSpec::ok(
                            c::CREDENTIALS_VALID,
                            reason::TOKEN_VALID,
                            format!("token is active{exp}"),
                        ));
                    } else {
                        conds.push(CondSpec::fail(
                            c::CREDENTIALS_VALID,
                            reason::TOKEN_INVALID,
                            format!("token status is {}", v.status),
                        ));
                    }
                }
                Err(e) if e.is_auth_error() => {
                    status.token = Some(TokenStatus {
                        status: "invalid".into(),
                        expires_on: None,
                        checked_for: Some(checked_for),
                        checked_at: Some(now.clone()),
                    });
                    conds.push(CondSpec::fail(
                        c::CREDENTIALS_VALID,
                        reason::TOKEN_INVALID,
                        format!("Cloudflare rejected the token: {e}"),
                    ));
                }
                Err(e) => {
                    conds.push(CondSpec::unknown(
                        c::CREDENTIALS_VALID,
                        crate::engine::cf_reason(&e),
                        format!("verifying the token: {e}"),
                    ));
                    retry = Some(e.to_string());
                }
            }
        }
        let creds_ok = conds.iter().any(|x| x.type_ == c::CREDENTIALS_VALID && x.status == Some(true));
        let zones_cached = fresh
            && c::is_true(&prev.conditions, c::ZONES_RESOLVED)
            && prev.zones.iter().map(|z| &z.name).eq(cust.spec.zones.iter());
        if creds_ok && zones_cached {
            if let Some(x) = c::find(&prev.conditions, c::ZONES_RESOLVED) {
                conds.push(CondSpec::ok(c::ZONES_RESOLVED, &x.reason, x.message.clone()));
            }
        } else if creds_ok {
            let mut zones = Vec::new();
            let mut missing = Vec::new();
            for z in &cust.spec.zones {
                match ops::zone_details(&client, &cust.spec.account_id, z).await {
                    Ok(Some((id, st))) => zones.push(ZoneStatus { name: z.clone(), id, status: st }),
                    Ok(None) => missing.push(z.clone()),
                    Err(e) => {
                        retry = Some(e.to_string());
                        missing.push(format!("{z} ({e})"));
                    }
                }
            }
            status.zones = zones;
            if missing.is_empty() {
                conds.push(CondSpec::ok(
                    c::ZONES_RESOLVED,
                    reason::ZONES_RESOLVED,
                    format!("{} zone(s) resolved", cust.spec.zones.len()),
                ));
            } else {
                conds.push(CondSpec::fail(
                    c::ZONES_RESOLVED,
                    reason::ZONE_NOT_FOUND,
                    format!("spec.zones: not found in account {}: {}", cust.spec.account_id, missing.join(", ")),
                ));
            }
        }
    }
    if !conds.iter().any(|x| x.type_ == c::ZONES_RESOLVED) {
        conds.push(CondSpec::unknown(c::ZONES_RESOLVED, reason::BLOCKED, "not evaluated: credentials are not valid"));
    }
    let ready = match conds.iter().find(|x| x.status != Some(true)) {
        None => CondSpec::ok(c::READY, reason::READY, "credentials valid and zones resolved"),
        Some(x) => CondSpec::fail(c::READY, &x.reason.clone(), format!("{}: {}", x.type_, x.message)),
    };
    conds.push(ready);
    status.conditions = c::merge(&prev.conditions, &conds, cust.metadata.generation, &now);
    status.observed_generation = cust.metadata.generation;

    let was = c::find(&prev.conditions, c::CREDENTIALS_VALID).map(|x| x.status.clone());
    let is = c::find(&status.conditions, c::CREDENTIALS_VALID).map(|x| x.status.clone());
    if was != is
        && let Some(x) = c::find(&status.conditions, c::CREDENTIALS_VALID)
    {
        let ev = if x.status == "True" {
            PassEvent::normal(&x.reason, "VerifyToken", x.message.clone())
        } else {
            PassEvent::warning(&x.reason, "VerifyToken", x.message.clone())
        };
        events.push(ev);
    }
    ctx.publish(&cust.object_ref(&()), &events).await;

    if status != prev {
        let api: Api<Customer> = Api::namespaced(ctx.client.clone(), ns);
        let patch = json!({ "apiVersion": "clodo.dev/v1alpha1", "kind": KIND, "status": status });
        api.patch_status(&cust.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    }
    let key = object_key(KIND, Some(ns), &cust.name_any());
    match retry {
        Some(msg) => Err(Error::Engine(msg)),
        None => {
            ctx.reset_failures(&key);
            Ok(Action::requeue(ctx.resync_with_jitter()))
        }
    }
}

/// Error policy: capped exponential backoff per object.
pub fn error_policy(cust: Arc<Customer>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = object_key(KIND, cust.namespace().as_deref(), &cust.name_any());
    let wait = ctx.record_failure(&key);
    warn!(namespace = %cust.namespace().unwrap_or_default(), name = %cust.name_any(), error = %err, "customer reconcile failed");
    Action::requeue(wait)
}

/// Run the Customer controller until shutdown. Returns its store for other controllers' mappers.
pub fn controller(ctx: Arc<Context>, namespace: Option<String>) -> (Controller<Customer>, Store<Customer>) {
    let client = ctx.client.clone();
    let api: Api<Customer> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let c = Controller::new(api, ctx.watcher_config())
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency));
    let store = c.store();
    (c, store)
}

/// Drive a Customer controller built by [`controller`].
pub async fn run(
    ctx: Arc<Context>,
    controller: Controller<Customer>,
    store: Store<Customer>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let secrets: Api<PartialObjectMeta<Secret>> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let s = store.clone();
    let by_secret = move |m: PartialObjectMeta<Secret>| {
        let ns = m.namespace().unwrap_or_default();
        let name = m.name_any();
        s.state()
            .into_iter()
            .filter(|c| c.namespace().as_deref() == Some(ns.as_str()) && c.spec.api_token_secret_ref.name == name)
            .map(|c| ObjectRef::from_obj(&*c))
            .collect::<Vec<_>>()
    };
    let gauge = ctx.metrics.resources_ready.with_label_values(&[KIND]);
    let gs = store.clone();
    let gauge_task = tokio::spawn(async move {
        loop {
            let n = gs
                .state()
                .iter()
                .filter(|c| c.status.as_ref().is_some_and(|s| c::is_true(&s.conditions, c::READY)))
                .count();
            gauge.set(n as i64);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let services: Api<CloudflareService> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let by_service = |s: CloudflareService| {
        let ns = s.namespace().unwrap_or_default();
        Some(ObjectRef::<Customer>::new(&s.spec.customer_ref.name).within(&ns))
    };
    controller
        .watches_stream(watcher(secrets, watcher::Config::default()).touched_objects(), by_secret)
        .watches(services, watcher::Config::default(), by_service)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    gauge_task.abort();
}
