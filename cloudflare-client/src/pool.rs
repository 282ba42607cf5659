//! One client per token, keyed by the token's hash.
//!
//! Services that share a token get the same [`CloudflareClient`] and so one client-side rate
//! budget. A rotated token hashes to a new key and gets a new client; the old one is dropped once
//! it has been idle for longer than the rate window (its limiter state is then empty anyway, so
//! dropping it loses nothing).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::client::{ClientConfig, CloudflareClient};
use crate::error::CloudflareError;
use crate::metrics::ClientMetrics;
use crate::secret::{ApiToken, TokenKey};

struct Entry {
    client: CloudflareClient,
    last_used: Instant,
}

struct PoolInner {
    config: ClientConfig,
    metrics: Option<Arc<ClientMetrics>>,
    clients: Mutex<HashMap<TokenKey, Entry>>,
}

/// Registry of clients by token. Cheap to clone.
#[derive(Clone)]
pub struct ClientPool {
    inner: Arc<PoolInner>,
}

impl fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientPool")
            .field("base_url", &self.inner.config.base_url)
            .field("clients", &self.len())
            .finish()
    }
}

impl ClientPool {
    pub fn new(config: ClientConfig, metrics: Option<Arc<ClientMetrics>>) -> Self {
        Self { inner: Arc::new(PoolInner { config, metrics, clients: Mutex::new(HashMap::new()) }) }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TokenKey, Entry>> {
        self.inner.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Idle time after which an entry is dropped: twice the rate window (at least a minute), so a
    /// dropped limiter could not have had reservations left in its window.
    fn idle_limit(&self) -> Duration {
        let c = &self.inner.config;
        (c.rate_limit.window.max(c.max_retry_after) * 2).max(Duration::from_secs(60))
    }

    /// The client for `token`, created on first use.
    pub fn client_for(&self, token: &ApiToken) -> Result<CloudflareClient, CloudflareError> {
        let key = token.key();
        let now = Instant::now();
        let idle = self.idle_limit();
        let mut clients = self.lock();
        clients.retain(|k, e| *k == key || now.saturating_duration_since(e.last_used) <= idle);
        if let Some(e) = clients.get_mut(&key) {
            e.last_used = now;
            return Ok(e.client.clone());
        }
        let client = CloudflareClient::new(self.inner.config.clone(), token.clone(), self.inner.metrics.clone())?;
        clients.insert(key, Entry { client: client.clone(), last_used: now });
        Ok(client)
    }

    /// Drop the client of `token` (e.g. after the token was revoked). Returns whether it existed.
    pub fn evict(&self, token: &ApiToken) -> bool {
        self.lock().remove(&token.key()).is_some()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::RateLimit;

    #[tokio::test(start_paused = true)]
    async fn one_client_per_token_and_idle_eviction() {
        let cfg = ClientConfig { rate_limit: RateLimit::new(10, Duration::from_secs(300)), ..ClientConfig::default() };
        let pool = ClientPool::new(cfg, None);
        let a1 = pool.client_for(&ApiToken::new("token-a")).unwrap();
        let a2 = pool.client_for(&ApiToken::new("token-a\n")).unwrap();
        let b = pool.client_for(&ApiToken::new("token-b")).unwrap();
        assert!(a1.same_client(&a2), "same token shares a client");
        assert!(!a1.same_client(&b));
        assert_eq!(pool.len(), 2);
        assert!(!format!("{pool:?}").contains("token-"));

        // a1 consumes budget; a2 sees it (one limiter)
        a1.rate_limiter().acquire(crate::ratelimit::Priority::Change).await.unwrap();
        assert_eq!(a2.rate_limiter().in_window(Instant::now()), 1);

        // rotation: token-b unused for longer than the idle limit is dropped when another is used
        tokio::time::advance(Duration::from_secs(400)).await;
        pool.client_for(&ApiToken::new("token-a")).unwrap();
        tokio::time::advance(Duration::from_secs(300)).await;
        let c = pool.client_for(&ApiToken::new("token-c")).unwrap();
        assert_eq!(pool.len(), 2, "token-b evicted, token-a and token-c kept");
        assert!(pool.evict(&ApiToken::new("token-a")));
        assert!(!pool.evict(&ApiToken::new("token-a")));
        assert_eq!(pool.len(), 1);
        assert!(c.same_client(&pool.client_for(&ApiToken::new("token-c")).unwrap()));
        assert!(pool.client_for(&ApiToken::new("")).is_err());
    }
}
