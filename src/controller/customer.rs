//! Customer controller: verify the token (cached per Secret version, rate-limited), resolve zones,
//! count the services using it.
//!
//! The verdict lands in `CredentialsValid`, which every service of the customer reads before
//! calling Cloudflare: `False` stops their Cloudflare calls. A changed Secret is verified at once;
//! an unchanged one after [`TOKEN_RECHECK`], or sooner (at most every [`TOKEN_MIN_INTERVAL`]) when a
//! service saw Cloudflare reject the token.

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
use crate::engine::hash::digest_strings;
use crate::engine::resolve::{ResolveError, read_secret_key};
use crate::engine::{PassEvent, ops};

const KIND: &str = "Customer";
/// A token verified for this Secret version is re-verified after this long.
pub const TOKEN_RECHECK: Duration = Duration::from_secs(3600);
/// Least time between two verifications of an unchanged Secret (a changed Secret is verified at
/// once): the rate limit for re-checks that a service's rejected call asks for.
pub const TOKEN_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Zones that were not found are looked up again (with the token) after this long.
pub const ZONE_RETRY: Duration = Duration::from_secs(300);

/// Whether this pass asks Cloudflare about the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// Trust the verdict in status.
    Cached,
    /// Trust it for now, verify again after this long (rate limit).
    CachedFor(Duration),
    /// Verify now; the reason is for logs.
    Verify(&'static str),
}

/// Decide whether to verify the token. `checked_for` identifies the Secret version and account
/// of this pass; `rejected_at` is the newest time a service of this customer saw Cloudflare
/// reject the token (`CredentialsValid=False, TokenInvalid`).
pub fn token_check(
    prev: &CustomerStatus,
    checked_for: &str,
    now: Timestamp,
    rejected_at: Option<Timestamp>,
) -> TokenCheck {
    let Some(token) = prev.token.as_ref().filter(|t| t.checked_for.as_deref() == Some(checked_for)) else {
        return TokenCheck::Verify("the token Secret changed or was never verified");
    };
    let Some(at) = token.checked_at.as_ref().map(|t| t.0) else {
        return TokenCheck::Verify("never verified");
    };
    let Some(verdict) = c::find(&prev.conditions, c::CREDENTIALS_VALID).filter(|x| x.status != "Unknown") else {
        return TokenCheck::Verify("the last verification did not finish");
    };
    let age = Duration::from_secs(now.duration_since(at).as_secs().max(0) as u64);
    if age >= TOKEN_RECHECK {
        return TokenCheck::Verify("the cached verification is older than an hour");
    }
    if verdict.status != "True" {
        return TokenCheck::Cached;
    }
    let expired = token.expires_on.as_deref().and_then(|e| e.parse::<Timestamp>().ok()).is_some_and(|e| e <= now);
    let zones_failing = !c::is_true(&prev.conditions, c::ZONES_RESOLVED);
    let rejected = rejected_at.is_some_and(|r| r >= at);
    if expired || rejected || zones_failing {
        let min = if zones_failing && !expired && !rejected { ZONE_RETRY } else { TOKEN_MIN_INTERVAL };
        if age >= min {
            return TokenCheck::Verify(if expired {
                "the token has reached its expiry"
            } else if rejected {
                "a service saw Cloudflare reject the token"
            } else {
                "zones were not resolved"
            });
        }
        return TokenCheck::CachedFor(min - age);
    }
    TokenCheck::Cached
}

/// `CredentialsValid` from Cloudflare's answer about a token it accepted.
pub fn verified_condition(v: &ops::TokenCheck) -> CondSpec {
    let exp = v.expires_on.as_deref().map(|e| format!(", expires {e}")).unwrap_or_default();
    if v.active {
        CondSpec::ok(c::CREDENTIALS_VALID, reason::TOKEN_VALID, format!("token is active{exp}"))
    } else {
        CondSpec::fail(
            c::CREDENTIALS_VALID,
            reason::TOKEN_INVALID,
            format!("Cloudflare reports the token as {}{exp}; put a valid token in the Secret", v.status),
        )
    }
}

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
        let check = token_check(&prev, &checked_for, now.0, rejected_at(&mine));
        let client = ctx.engine.client_for(token.expose()).map_err(|e| Error::Engine(e.to_string()))?;
        let verified = match &check {
            TokenCheck::Cached | TokenCheck::CachedFor(_) => {
                if let TokenCheck::CachedFor(wait) = check {
                    requeue = requeue.min(wait);
                }
                if let Some(x) = c::find(&prev.conditions, c::CREDENTIALS_VALID) {
                    let st = (x.status == "True").then_some(true).or((x.status == "False").then_some(false));
                    conds.push(CondSpec::new(c::CREDENTIALS_VALID, st, &x.reason, x.message.clone()));
                }
                false
            }
            TokenCheck::Verify(why) => {
                tracing::debug!(why, "verifying the API token");
                let mut token_status = |st: &str, expires_on: Option<String>| {
                    status.token = Some(TokenStatus {
                        status: st.to_string(),
                        expires_on,
                        checked_for: Some(checked_for.clone()),
                        checked_at: Some(now.clone()),
                    })
                };
                match ops::verify_token(&client, &cust.spec.account_id).await {
                    Ok(v) => {
                        token_status(&v.status, v.expires_on.clone());
                        conds.push(verified_condition(&v));
                    }
                    Err(e) if e.is_auth_error() => {
                        token_status("invalid", None);
                        conds.push(CondSpec::fail(
                            c::CREDENTIALS_VALID,
                            reason::TOKEN_INVALID,
                            format!(
                                "Cloudflare rejected the token for account {} (revoked, expired or without access to the account): {e}",
                                cust.spec.account_id
                            ),
                        ));
                    }
                    Err(e) => {
                        conds.push(CondSpec::unknown(
                            c::CREDENTIALS_VALID,
                            crate::engine::cf_reason(&e),
                            format!("verifying the token: {e}"),
                        ));
                        retry = Some(format!("verifying the token: {e}"));
                    }
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
            requeue = requeue.min(ZONE_RETRY);
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
    let mut zones = Vec::new();
    let mut missing = Vec::new();
    for z in &cust.spec.zones {
        match ops::zone_details(client, &cust.spec.account_id, z).await {
            Ok(Some((id, st))) => zones.push(ZoneStatus { name: z.clone(), id, status: st }),
            Ok(None) => missing.push(z.clone()),
            Err(e) if e.is_auth_error() => {
                return CondSpec::fail(
                    c::ZONES_RESOLVED,
                    reason::TOKEN_INVALID,
                    format!("spec.zones: the token may not read zone {z}: {e}"),
                );
            }
            Err(e) => {
                *retry = Some(format!("looking up zone {z}: {e}"));
                return CondSpec::unknown(
                    c::ZONES_RESOLVED,
                    crate::engine::cf_reason(&e),
                    format!("looking up zone {z}: {e}"),
                );
            }
        }
    }
    status.zones = zones;
    if missing.is_empty() {
        CondSpec::ok(c::ZONES_RESOLVED, reason::ZONES_RESOLVED, format!("{} zone(s) resolved", cust.spec.zones.len()))
    } else {
        CondSpec::fail(
            c::ZONES_RESOLVED,
            reason::ZONE_NOT_FOUND,
            format!("spec.zones: not found in account {}: {}", cust.spec.account_id, missing.join(", ")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_750_000_000 + secs).unwrap()
    }

    fn status(creds: &str, zones: &str, checked_at: i64, expires_on: Option<&str>) -> CustomerStatus {
        let cond = |t: &'static str, s: &str| {
            let st = match s {
                "True" => Some(true),
                "False" => Some(false),
                _ => None,
            };
            CondSpec::new(t, st, "R", "m")
        };
        CustomerStatus {
            conditions: c::merge(
                &[],
                &[cond(c::CREDENTIALS_VALID, creds), cond(c::ZONES_RESOLVED, zones)],
                Some(1),
                &Time(at(0)),
            ),
            token: Some(TokenStatus {
                status: "active".into(),
                expires_on: expires_on.map(str::to_string),
                checked_for: Some("v1".into()),
                checked_at: Some(Time(at(checked_at))),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn token_checks_are_cached_per_secret_version() {
        let st = status("True", "True", 0, None);
        assert_eq!(token_check(&st, "v1", at(60), None), TokenCheck::Cached);
        // A changed Secret (or account) is verified at once, however recent the last check.
        assert!(matches!(token_check(&st, "v2", at(1), None), TokenCheck::Verify(_)));
        assert!(matches!(token_check(&CustomerStatus::default(), "v1", at(1), None), TokenCheck::Verify(_)));
        // After an hour the cache expires, also for a token found invalid.
        assert!(matches!(token_check(&st, "v1", at(3600), None), TokenCheck::Verify(_)));
        let bad = status("False", "Unknown", 0, None);
        assert_eq!(token_check(&bad, "v1", at(3599), None), TokenCheck::Cached);
        assert!(matches!(token_check(&bad, "v1", at(3600), None), TokenCheck::Verify(_)));
        // An unfinished check (Unknown) is retried.
        let unknown = status("Unknown", "Unknown", 0, None);
        assert!(matches!(token_check(&unknown, "v1", at(1), None), TokenCheck::Verify(_)));
    }

    #[test]
    fn a_rejection_seen_by_a_service_reverifies_at_most_every_min_interval() {
        let st = status("True", "True", 100, None);
        // Rejected before our last check: already accounted for.
        assert_eq!(token_check(&st, "v1", at(200), Some(at(99))), TokenCheck::Cached);
        // Rejected since: verify, but not more often than TOKEN_MIN_INTERVAL.
        assert_eq!(token_check(&st, "v1", at(103), Some(at(102))), TokenCheck::CachedFor(Duration::from_secs(7)));
        assert!(matches!(token_check(&st, "v1", at(110), Some(at(102))), TokenCheck::Verify(_)));
        // Same second as the check counts (timestamps have second precision).
        assert!(matches!(token_check(&st, "v1", at(111), Some(at(100))), TokenCheck::Verify(_)));
        // Once the customer itself says the token is invalid, services' rejections change nothing.
        let bad = status("False", "Unknown", 100, None);
        assert_eq!(token_check(&bad, "v1", at(200), Some(at(150))), TokenCheck::Cached);
    }

    #[test]
    fn expiry_and_missing_zones_trigger_rechecks() {
        let st = status("True", "True", 0, Some("2025-06-15T15:06:50Z"));
        let exp: Timestamp = "2025-06-15T15:06:50Z".parse().unwrap();
        let before = exp.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(5)).unwrap();
        let st_before = CustomerStatus {
            token: st.token.clone().map(|t| TokenStatus {
                checked_at: Some(Time(before.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(60)).unwrap())),
                ..t
            }),
            ..st.clone()
        };
        assert_eq!(token_check(&st_before, "v1", before, None), TokenCheck::Cached);
        assert!(matches!(token_check(&st_before, "v1", exp, None), TokenCheck::Verify(_)));
        let zones = status("True", "False", 0, None);
        assert_eq!(
            token_check(&zones, "v1", at(60), None),
            TokenCheck::CachedFor(ZONE_RETRY - Duration::from_secs(60))
        );
        assert!(matches!(token_check(&zones, "v1", at(300), None), TokenCheck::Verify(_)));
    }

    #[test]
    fn credentials_condition_reports_expiry_and_inactive_tokens() {
        let ok = verified_condition(&ops::TokenCheck {
            active: true,
            status: "active".into(),
            expires_on: Some("2030-01-01T00:00:00Z".into()),
        });
        assert_eq!((ok.status, ok.reason.as_str()), (Some(true), reason::TOKEN_VALID));
        assert_eq!(ok.message, "token is active, expires 2030-01-01T00:00:00Z");
        let no_expiry =
            verified_condition(&ops::TokenCheck { active: true, status: "active".into(), expires_on: None });
        assert_eq!(no_expiry.message, "token is active");
        let disabled =
            verified_condition(&ops::TokenCheck { active: false, status: "disabled".into(), expires_on: None });
        assert_eq!((disabled.status, disabled.reason.as_str()), (Some(false), reason::TOKEN_INVALID));
        assert!(disabled.message.contains("disabled"), "{}", disabled.message);
    }
}
