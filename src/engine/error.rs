//! Why a pass stopped early and will be retried: typed, with a bounded [`PassError::reason`]
//! that conditions, logs and metrics use (never the message text).

use std::sync::Arc;

use super::resolve::{ConfigError, SourceError};
use crate::cloudflare::CloudflareError;
use crate::crd::conditions::reason;

/// A retryable failure of one pass. Messages name the step and the field, never a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PassError {
    /// A Cloudflare request failed in a way that may go away (rate limit, timeout, 5xx).
    #[error("{what}: {source}")]
    Cloudflare {
        /// The condition the failed step reports on.
        condition: &'static str,
        what: String,
        #[source]
        source: Arc<CloudflareError>,
    },
    /// The Kubernetes object store could not be read or written.
    #[error("{what}: {source}")]
    Kubernetes {
        what: &'static str,
        #[source]
        source: Arc<SourceError>,
    },
    /// A reference whose cause may go away by itself (an unreachable registry).
    #[error(transparent)]
    Config(ConfigError),
}

impl PassError {
    pub fn cloudflare(condition: &'static str, what: impl Into<String>, source: CloudflareError) -> Self {
        PassError::Cloudflare { condition, what: what.into(), source: Arc::new(source) }
    }

    pub fn kubernetes(what: &'static str, source: SourceError) -> Self {
        PassError::Kubernetes { what, source: Arc::new(source) }
    }

    /// The condition reason (a bounded set: safe as a metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            PassError::Cloudflare { source, .. } => super::cf_reason(source),
            PassError::Kubernetes { .. } => reason::KUBERNETES_ERROR,
            PassError::Config(e) => e.reason(),
        }
    }
}

/// Two errors are the same outcome when they have the same reason and message.
impl PartialEq for PassError {
    fn eq(&self, other: &Self) -> bool {
        self.reason() == other.reason() && self.to_string() == other.to_string()
    }
}

impl Eq for PassError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_from_the_error_kind_not_its_text() {
        let k = PassError::kubernetes(
            "writing a status checkpoint",
            SourceError { what: "x".into(), message: "rate limited".into() },
        );
        assert_eq!(k.reason(), reason::KUBERNETES_ERROR);
        let cf = PassError::cloudflare(
            crate::crd::conditions::WORKER_DEPLOYED,
            "uploading",
            CloudflareError::not_found("zone acme.com"),
        );
        assert_eq!(cf.reason(), reason::ZONE_NOT_FOUND);
        assert!(cf.to_string().starts_with("uploading: "));
    }
}
