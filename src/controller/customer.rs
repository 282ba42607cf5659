//! Customer controller: verify the token (cached per Secret version, rate-limited), resolve zones,
//! count the services using it.
//!
//! The verdict lands in `CredentialsValid`, which every service of the customer reads before
//! calling Cloudflare: `False` stops their Cloudflare calls. When a token is verified again is
//! decided by [`credentials::recheck`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span, warn};

use super::source::KubeSource;
use super::{Context, Error, object_key};
use crate::crd::conditions::{self as c, CondSpec, reason};
use crate::crd::{CloudflareService, Customer, CustomerStatus, TokenStatus, ZoneStatus};
use crate::engine::PassEvent;
use crate::engine::credentials::{self, Recheck, Verification};
use crate::engine::hash::digest_strings;
use crate::engine::resolve::{ResolveError, read_secret_key};
use crate::engine::zones::{self, ZoneError};

const KIND: &str = "Customer";

/// Newest time a service saw Cloudflare reject the token.
fn rejected_at(services: &[&CloudflareService]) -> Option<Timestamp> {
    services
        .iter()
        .filter_map(|s| s.status.as_ref())
        .filter_map(|st| c::find(&st.conditions, c::CREDENTIALS_VALID))
        .filter(|x| x.status == "False" && x.reason == reason::TOKEN_INVALID)
        .map(|x| x.last_transition_time.0)
        .max()
}

/// What a service contributes to its Customer's reconcile: which Customer, whether it is going
/// away, and when it last saw the token rejected.
fn customer_facing(s: &CloudflareService) -> u64 {
    use std::hash::{Hash, Hasher};
    let rejected = s
        .status
        .as_ref()
        .and_then(|st| c::find(&st.conditions, c::CREDENTIALS_VALID))
        .filter(|x| x.status == "False" && x.reason == reason::TOKEN_INVALID)
        .map(|x| x.last_transition_time.0.to_string());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&s.spec.customer_ref.name, s.metadata.deletion_timestamp.is_some(), rejected).hash(&mut h);
    h.finish()
}

/// Service changes that can change a Customer's reconcile: a service appears or goes away, moves
/// to another Customer, or sees its token rejected. The status churn of services converging is
/// left out: every trigger lists the namespace's services, so passing it on would cost a list
/// of N services per service change (O(N^2) for a fleet).
fn service_triggers(
    api: Api<CloudflareService>,
) -> impl futures::Stream<Item = Result<CloudflareService, watcher::Error>> + Send + 'static {
    let mut seen: std::collections::HashMap<String, u64> = Default::default();
    watcher(api, watcher::Config::default()).filter_map(move |ev| {
        let out = match ev {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                let key = s.metadata.uid.clone().unwrap_or_else(|| s.name_any());
                let facing = customer_facing(&s);
                (seen.insert(key, facing) != Some(facing)).then_some(Ok(s))
            }
            Ok(watcher::Event::Delete(s)) => {
                seen.remove(&s.metadata.uid.clone().unwrap_or_else(|| s.name_any()));
                Some(Ok(s))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(out)
    })
}

/// Reconcile one customer.
pub async fn reconcile(cust: Arc<Customer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cust.namespace().unwrap_or_else(|| "default".into());
    let span = info_span!("reconcile", kind = KIND, namespace = %ns, name = %cust.name_any(), generation = cust.metadata.generation.unwrap_or_default());
    async move {
        let start = Instant::now();
        let result = apply(&cust, &ctx, &ns).await;
        let label = super::result_label(&result);
        ctx.metrics.reconcile_total.with_label_values(&["customer", label]).inc();
        ctx.metrics.reconcile_duration.with_label_values(&["customer", label]).observe(start.elapsed().as_secs_f64());
        result
    }
    .instrument(span)
    .await
}

async fn apply(cust: &Customer, ctx: &Context, ns: &str) -> Result<Action, Error> {
    ctx.check_fresh(cust)?;
    let source = KubeSource::new(ctx.client.clone());
    let name = cust.name_any();
    let prev = cust.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let mut status = prev.clone();
    let mut conds: Vec<CondSpec> = Vec::new();
    let mut events = Vec::new();
    let mut retry: Option<String> = None;
    let mut requeue = ctx.resync_with_jitter();

    // Services referencing this customer: counted, and read for rejected calls.
    let services: Api<CloudflareService> = Api::namespaced(ctx.client.clone(), ns);
    let all = services.list(&Default::default()).await?.items;
    let mine: Vec<&CloudflareService> = all.iter().filter(|s| s.spec.customer_ref.name == name).collect();
    status.services = mine.len() as i32;

    let token = read_secret_key(&source, ns, "spec.apiTokenSecretRef", &cust.spec.api_token_secret_ref).await;
    let (token, secret_version) = match token {
        Ok((t, v)) if !t.is_empty() => (Some(t), v),
        Ok(_) => {
            conds.push(CondSpec::fail(
                c::CREDENTIALS_VALID,
                reason::TOKEN_MISSING,
                format!(
                    "spec.apiTokenSecretRef: key {:?} of Secret {:?} is empty",
                    cust.spec.api_token_secret_ref.key, cust.spec.api_token_secret_ref.name
                ),
            ));
            (None, String::new())
        }
        Err(ResolveError::Config(e)) => {
            conds.push(CondSpec::fail(c::CREDENTIALS_VALID, reason::TOKEN_MISSING, e.to_string()));
            (None, String::new())
        }
        Err(ResolveError::Source(e)) => return Err(Error::Engine(e.to_string())),
    };
    if token.is_none() {
        status.token = None;
    }

    if let Some(token) = token {
        let checked_for = digest_strings(&[secret_version, cust.spec.account_id.clone()]);
        let check = credentials::recheck(&prev, &checked_for, now.0, rejected_at(&mine));
        let client = ctx.engine.client_for(token.expose()).map_err(|e| Error::Engine(e.to_string()))?;
        let verified = match &check {
            Recheck::Cached | Recheck::CachedFor(_) => {
                if let Recheck::CachedFor(wait) = check {
                    requeue = requeue.min(wait);
                }
                if let Some(x) = c::find(&prev.conditions, c::CREDENTIALS_VALID) {
                    let st = (x.status == "True").then_some(true).or((x.status == "False").then_some(false));
                    conds.push(CondSpec::new(c::CREDENTIALS_VALID, st, &x.reason, x.message.clone()));
                }
                false
            }
            Recheck::Verify(why) => {
                tracing::debug!(why, "verifying the API token");
                let v = credentials::verify(&client, &cust.spec.account_id).await;
                if let Some((st, expires_on)) = v.recorded() {
                    status.token = Some(TokenStatus {
                        status: st,
                        expires_on,
                        checked_for: Some(checked_for.clone()),
                        checked_at: Some(now.clone()),
                    });
                }
                conds.push(v.condition(&cust.spec.account_id));
                if let Verification::Unavailable(e) = &v {
                    retry = Some(format!("verifying the token: {e}"));
                }
                true
            }
        };
        let creds_ok = conds.iter().any(|x| x.type_ == c::CREDENTIALS_VALID && x.status == Some(true));
        let zones_cached = !verified
            && prev.observed_generation == cust.metadata.generation
            && c::find(&prev.conditions, c::ZONES_RESOLVED).is_some_and(|x| x.status != "Unknown")
            && (!c::is_true(&prev.conditions, c::ZONES_RESOLVED)
                || prev.zones.iter().map(|z| &z.name).eq(cust.spec.zones.iter()));
        if creds_ok && zones_cached {
            if let Some(x) = c::find(&prev.conditions, c::ZONES_RESOLVED) {
                let st = Some(x.status == "True");
                conds.push(CondSpec::new(c::ZONES_RESOLVED, st, &x.reason, x.message.clone()));
            }
        } else if creds_ok {
            conds.push(resolve_zones(&client, cust, &mut status, &mut retry).await);
        }
        if creds_ok && !conds.iter().any(|x| x.type_ == c::ZONES_RESOLVED && x.status == Some(true)) {
            requeue = requeue.min(zones::ZONE_RETRY);
        }
        // Verify again when the token reaches its expiry (past that, `token_check` rate-limits).
        if creds_ok
            && let Some(exp) =
                status.token.as_ref().and_then(|t| t.expires_on.as_deref()).and_then(|e| e.parse::<Timestamp>().ok())
            && exp > now.0
        {
            let left = exp.duration_since(now.0).as_secs().max(1) as u64;
            requeue = requeue.min(Duration::from_secs(left));
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

    for t in [c::CREDENTIALS_VALID, c::ZONES_RESOLVED] {
        let was = c::find(&prev.conditions, t).map(|x| (x.status.clone(), x.reason.clone()));
        let is = c::find(&status.conditions, t).map(|x| (x.status.clone(), x.reason.clone()));
        if was == is {
            continue;
        }
        let Some(x) = c::find(&status.conditions, t) else { continue };
        let action = if t == c::CREDENTIALS_VALID { "VerifyToken" } else { "ResolveZones" };
        match x.status.as_str() {
            "True" => events.push(PassEvent::normal(&x.reason, action, x.message.clone())),
            "False" => events.push(PassEvent::warning(&x.reason, action, x.message.clone())),
            _ => {}
        }
    }
    ctx.publish(&cust.object_ref(&()), &events).await;

    if status != prev {
        ctx.write_status(cust, cust.resource_version(), &status).await?;
    }
    let key = object_key(KIND, Some(ns), &name);
    match retry {
        Some(msg) => Err(Error::Engine(msg)),
        None => {
            ctx.reset_failures(&key);
            Ok(Action::requeue(requeue))
        }
    }
}

/// Look up every zone of the customer in its account; fills `status.zones`.
async fn resolve_zones(
    client: &crate::cloudflare::CloudflareClient,
    cust: &Customer,
    status: &mut CustomerStatus,
    retry: &mut Option<String>,
) -> CondSpec {
    let resolved = match zones::resolve(client, &cust.spec.account_id, &cust.spec.zones).await {
        Ok(r) => r,
        Err(e @ ZoneError::Forbidden { .. }) => {
            let cf = e.cloudflare().map(ToString::to_string).unwrap_or_default();
            return CondSpec::fail(c::ZONES_RESOLVED, e.reason(), format!("spec.zones: {e}: {cf}"));
        }
        Err(e) => {
            let cf = e.cloudflare().map(ToString::to_string).unwrap_or_default();
            *retry = Some(format!("{e}: {cf}"));
            return CondSpec::unknown(c::ZONES_RESOLVED, e.reason(), format!("{e}: {cf}"));
        }
    };
    status.zones =
        resolved.found.into_iter().map(|z| ZoneStatus { name: z.name, id: z.id, status: z.status }).collect();
    if resolved.missing.is_empty() {
        CondSpec::ok(c::ZONES_RESOLVED, reason::ZONES_RESOLVED, format!("{} zone(s) resolved", cust.spec.zones.len()))
    } else {
        CondSpec::fail(
            c::ZONES_RESOLVED,
            reason::ZONE_NOT_FOUND,
            format!("spec.zones: not found in account {}: {}", cust.spec.account_id, resolved.missing.join(", ")),
        )
    }
}

/// Error policy: capped exponential backoff per object.
pub fn error_policy(cust: Arc<Customer>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Some(action) = err.no_backoff() {
        return action;
    }
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
        .watches_stream(service_triggers(services), by_service)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    gauge_task.abort();
}
