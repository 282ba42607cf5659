//! Typed client for the subset of the Cloudflare API v4 that clodo-operator uses: token
//! verification, zones, Workers scripts, versions, deployments, secrets, workers.dev, custom
//! domains, routes, D1, DNS, KV, R2, Queues, cron triggers, Durable Object namespaces and
//! worker settings. It knows nothing of Kubernetes.
//!
//! Every call goes through one send path ([`CloudflareClient`]) that owns bearer auth, the
//! client-side rate limit per token (with change traffic served before resync traffic, see
//! [`RateLimiter`]), retries with full jitter (honouring `Retry-After`),
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
mod limiter;
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
pub use endpoints::d1_export::{D1DumpOptions, D1ExportFile, D1ExportStatus};
pub use endpoints::deployments::{CreateDeployment, Deployment, DeploymentVersion};
pub use endpoints::dns::{DnsFilter, DnsRecord, DnsRecordInput, DnsRecordPatch};
pub use endpoints::domains::{AttachDomain, CustomDomain, DomainFilter};
pub use endpoints::durable_objects::{DoMigrations, DoNamespace, MigrationStep, RenamedClass, TransferredClass};
pub use endpoints::kv::{
    CreateKvNamespace, KvBulkResult, KvKey, KvKeyPage, KvNamespace, KvPair, PutKvValue, RenameKvNamespace,
};
pub use endpoints::queues::{
    ConsumerSettings, CreateQueue, Queue, QueueConsumer, QueueProducer, QueueSettings, WorkerConsumer, valid_queue_name,
};
pub use endpoints::r2::{CreateR2Bucket, R2Bucket, valid_bucket_name};
pub use endpoints::routes::{RouteSpec, WorkerRoute};
pub use endpoints::schedules::{CronTrigger, validate_cron};
pub use endpoints::scripts::{
    Annotations, Binding, Script, ScriptLevelSettings, ScriptRoute, ScriptSettings, ServiceEnvironment, WorkerMetadata,
    WorkerModule, WorkerService, WorkerUpload, module_content_type,
};
pub use endpoints::secrets::SecretInfo;
pub use endpoints::subdomain::{ScriptSubdomain, workers_dev_url};
pub use endpoints::tokens::TokenStatus;
pub use endpoints::versions::{ScriptRuntime, Version, VersionMetadata, VersionResources};
pub use endpoints::worker_settings::{
    Observability, ObservabilityLogs, Placement, TailConsumer, WorkerLimits, WorkerSettingsPatch,
};
pub use endpoints::zones::{Zone, ZoneAccount, ZoneFilter};
pub use envelope::ResultInfo;
pub use error::{ApiErrorItem, CODE_DO_MIGRATION_STEP, CODE_DO_MIGRATION_TAG, CloudflareError, TransportKind};
pub use fence::Fence;
pub use metrics::ClientMetrics;
pub use multipart::{MultipartBody, Part};
pub use pagination::Page;
pub use pool::ClientPool;
pub use ratelimit::{
    BudgetSnapshot, InvalidShare, Priority, RateLimit, RateLimiter, ResyncShare, effective_resync_period,
};
pub use retry::RetryPolicy;
pub use secret::{ApiToken, SecretString, TokenKey};

/// Result alias for client calls.
pub type Result<T, E = CloudflareError> = std::result::Result<T, E>;
