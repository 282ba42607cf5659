//! Leader election on a `coordination.k8s.io/v1` Lease. Only the holder reconciles.

use std::time::Duration;

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
            retry_period: Duration::from_secs(4),
        }
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
