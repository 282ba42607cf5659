//! Typed client for the subset of the Cloudflare API v4 that clodo-operator uses: token
//! verification, zones, Workers scripts, versions, deployments, secrets, workers.dev, custom
//! domains, routes, D1 and DNS. It knows nothing of Kubernetes.
//!
//! Every call goes through one send path ([`CloudflareClient`]) that owns bearer auth, the
//! client-side rate limit per token, retries with full jitter (honouring `Retry-After`),
//! per-request timeouts, envelope decoding into [`CloudflareError`], metrics and a tracing span
//! per request. Use [`ClientPool`] to share one client (and one rate budget) per token.
//!
//! The token lives in [`ApiToken`] and secret values in [`SecretString`]; both print `***`, and
//! neither appears in errors, logs or metrics.

mod client;
mod de;
pub mod endpoints;
mod envelope;
mod error;
mod fence;
mod metrics;
mod multipart;
pub mod pagination;
mod pool;
pub mod ratelimit;
pub mod retry;
mod secret;

pub use client::{BASE_URL_ENV, ClientConfig, CloudflareClient, DEFAULT_BASE_URL};
pub use endpoints::d1::{
    CreateD1Database, D1Database, D1Meta, D1Query, D1QueryResult, D1RawResult, D1RawRows, D1Statement, RestoreResult,
    RestoreTarget,
};
pub use endpoints::deployments::{CreateDeployment, Deployment, DeploymentVersion};
pub use endpoints::dns::{DnsFilter, DnsRecord, DnsRecordInput, DnsRecordPatch};
pub use endpoints::domains::{AttachDomain, CustomDomain, DomainFilter};
pub use endpoints::routes::{RouteSpec, WorkerRoute};
pub use endpoints::scripts::{
    Annotations, Binding, Script, ScriptLevelSettings, ScriptRoute, ScriptSettings, ServiceEnvironment, WorkerMetadata,
    WorkerModule, WorkerService, WorkerUpload, module_content_type,
};
pub use endpoints::secrets::SecretInfo;
pub use endpoints::subdomain::{ScriptSubdomain, workers_dev_url};
pub use endpoints::tokens::TokenStatus;
pub use endpoints::versions::{ScriptRuntime, Version, VersionMetadata, VersionResources};
pub use endpoints::zones::{Zone, ZoneAccount, ZoneFilter};
pub use envelope::ResultInfo;
pub use error::{ApiErrorItem, CloudflareError, TransportKind};
pub use fence::Fence;
pub use metrics::ClientMetrics;
pub use multipart::{MultipartBody, Part};
pub use pagination::Page;
pub use pool::ClientPool;
pub use ratelimit::{RateLimit, RateLimiter};
pub use retry::RetryPolicy;
pub use secret::{ApiToken, SecretString, TokenKey};

/// Result alias for client calls.
pub type Result<T, E = CloudflareError> = std::result::Result<T, E>;
