//! Leader election on a `coordination.k8s.io/v1` Lease. Only the holder reconciles.
//!
//! Semantics follow client-go's leader election: a holder renews every `retry_period`; if no
//! renewal succeeds within `renew_deadline` (shorter than `lease_duration`), it stops at once:
//! its [`Fence`] closes, so no further Cloudflare request leaves the process, before any other
//! replica may consider the Lease expired. Each renewal is measured from the moment it was sent,
//! and a renewal that hangs is cut off at the deadline.
//!
//! Why not a crate: `kube-lease-manager` (the maintained crate for kube 5) keeps reporting
//! leadership while renewals fail (it has no renew deadline) and counts whole seconds, and
//! kubert's lease comes with kubert's runtime; the part that matters here, tying the deadline to
//! the Cloudflare client's fence, would have to be written around either one anyway.

use std::time::Duration;

use crate::cloudflare::Fence;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the holder keeps acting without a successful renewal (< `lease_duration`).
    pub renew_deadline: Duration,
    /// How often the holder renews and a standby retries.
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn new(name: impl Into<String>, namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Set the three durations, checking `retry_period < renew_deadline < lease_duration`.
    pub fn with_timing(mut self, lease: Duration, renew_deadline: Duration, retry: Duration) -> Result<Self, String> {
        if renew_deadline >= lease {
            return Err(format!(
                "--renew-deadline-seconds ({}) must be shorter than --lease-duration-seconds ({})",
                renew_deadline.as_secs(),
                lease.as_secs()
            ));
        }
        if retry.is_zero() || retry >= renew_deadline {
            return Err(format!(
                "--retry-period-seconds ({}) must be positive and shorter than --renew-deadline-seconds ({})",
                retry.as_secs(),
                renew_deadline.as_secs()
            ));
        }
        self.lease_duration = lease;
        self.renew_deadline = renew_deadline;
        self.retry_period = retry;
        Ok(self)
    }
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// We hold the lease (acquired or renewed).
    Leading,
    /// Someone else holds a valid lease.
    Standby { holder: String },
}

/// Leader elector over one Lease object.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
}

impl LeaderElector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        Self { api: Api::namespaced(client, &cfg.namespace), cfg }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// One acquire-or-renew attempt. Conflicts (another replica wrote first) read as standby.
    pub async fn try_acquire(&self) -> Result<LeaseState, kube::Error> {
        let now = Timestamp::now();
        let duration_secs = i32::try_from(self.cfg.lease_duration.as_secs()).unwrap_or(15);
        match self.api.get_opt(&self.cfg.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.cfg.name.clone()), ..Default::default() },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.cfg.identity.clone()),
                        lease_duration_seconds: Some(duration_secs),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(LeaseState::Leading),
                    Err(kube::Error::Api(e)) if e.code == 409 => self.standby_from_current().await,
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.clone().unwrap_or_default();
                let mine = holder == self.cfg.identity;
                if !mine && !holder.is_empty() && !expired(&spec, now) {
                    return Ok(LeaseState::Standby { holder });
                }
                let mut new_spec = spec.clone();
                new_spec.holder_identity = Some(self.cfg.identity.clone());
                new_spec.lease_duration_seconds = Some(duration_secs);
                new_spec.renew_time = Some(MicroTime(now));
                if !mine {
                    new_spec.acquire_time = Some(MicroTime(now));
                    new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                lease.spec = Some(new_spec);
                match self.api.replace(&self.cfg.name, &PostParams::default(), &lease).await {
                    Ok(_) => Ok(LeaseState::Leading),
                    Err(kube::Error::Api(e)) if e.code == 409 => self.standby_from_current().await,
                    Err(e) => Err(e),
                }
            }
        }
    }

    async fn standby_from_current(&self) -> Result<LeaseState, kube::Error> {
        let holder = self
            .api
            .get_opt(&self.cfg.name)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        Ok(LeaseState::Standby { holder })
    }

    /// Give the lease up so a standby can take over at once (on graceful shutdown).
    pub async fn release(&self) -> Result<(), kube::Error> {
        if let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() == Some(self.cfg.identity.as_str()) {
                spec.holder_identity = None;
                spec.renew_time = None;
                spec.acquire_time = None;
                self.api.replace(&self.cfg.name, &PostParams::default(), &lease).await?;
            }
        }
        Ok(())
    }
}

/// Why [`LeaderElector::keep`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadershipEnd {
    /// The process is stopping (the Lease is released by the caller).
    Stopped,
    /// Another replica holds the Lease.
    Lost { holder: String },
    /// No renewal succeeded within the renew deadline.
    DeadlinePassed,
}

impl LeaderElector {
    /// Renew the Lease until `stop` resolves, another replica takes it, or no renewal succeeds
    /// within the renew deadline counted from `renewed` (when the last successful renewal was
    /// sent). On the last two, `fence` is closed before this returns.
    pub async fn keep(
        &self,
        mut renewed: tokio::time::Instant,
        fence: &Fence,
        stop: impl std::future::Future<Output = ()>,
    ) -> LeadershipEnd {
        tokio::pin!(stop);
        loop {
            let deadline = renewed + self.cfg.renew_deadline;
            let next = (tokio::time::Instant::now() + self.cfg.retry_period).min(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = &mut stop => return LeadershipEnd::Stopped,
            }
            let sent = tokio::time::Instant::now();
            let attempt =
                if sent >= deadline { None } else { tokio::time::timeout_at(deadline, self.try_acquire()).await.ok() };
            match attempt {
                Some(Ok(LeaseState::Leading)) => renewed = sent,
                Some(Ok(LeaseState::Standby { holder })) => {
                    fence.close();
                    tracing::warn!(holder = %holder, "lost leadership; Cloudflare requests stopped");
                    return LeadershipEnd::Lost { holder };
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "renewing the lease failed; retrying until the renew deadline")
                }
                None => {
                    fence.close();
                    tracing::error!(
                        renew_deadline_ms = self.cfg.renew_deadline.as_millis() as u64,
                        "no lease renewal succeeded within the renew deadline; Cloudflare requests stopped"
                    );
                    return LeadershipEnd::DeadlinePassed;
                }
            }
        }
    }
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renew) = &spec.renew_time else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    renew.0.checked_add(SignedDuration::from_secs(secs)).map(|until| until < now).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry() {
        let now = Timestamp::from_second(1_000).unwrap();
        let spec = |renew: i64| LeaseSpec {
            renew_time: Some(MicroTime(Timestamp::from_second(renew).unwrap())),
            lease_duration_seconds: Some(15),
            ..Default::default()
        };
        assert!(!expired(&spec(990), now));
        assert!(expired(&spec(980), now));
        assert!(expired(&LeaseSpec::default(), now));
    }
}
