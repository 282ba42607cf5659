//! Fixed strings shared by the controllers, the engine and the CLI.

/// API group of all clodo custom resources.
pub const GROUP: &str = "clodo.dev";
/// Finalizer that guards Cloudflare cleanup on deletion.
pub const FINALIZER: &str = "clodo.dev/cleanup";
/// Field manager used for server-side apply.
pub const FIELD_MANAGER: &str = "clodo-operator";
/// Annotation that allows adopting an existing, unowned Worker script.
pub const ANNOTATION_ADOPT: &str = "clodo.dev/adopt";
/// Annotation that requests a manual rollback to a Worker version id.
pub const ANNOTATION_ROLLBACK_TO: &str = "clodo.dev/rollback-to";
/// Label put on objects the operator creates (generated secrets, portfolio children).
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "clodo-operator";
/// Label on portfolio children naming their Portfolio.
pub const LABEL_PORTFOLIO: &str = "clodo.dev/portfolio";
/// Label on generated-secret Secrets naming the owning service.
pub const LABEL_SERVICE: &str = "clodo.dev/service";
/// Prefix of the Worker script tag that records the owning resource (`clodo-owner=<ns>.<name>`).
pub const OWNER_TAG_PREFIX: &str = "clodo-owner=";
/// Version annotation message prefix written on every upload.
pub const VERSION_MESSAGE_PREFIX: &str = "clodo-operator";
/// Name of the wrangler-compatible migrations tracking table.
pub const MIGRATIONS_TABLE: &str = "d1_migrations";

/// The owner tag for a resource, as stored in the Worker script's tags.
pub fn owner_tag(namespace: &str, name: &str) -> String {
    format!("{OWNER_TAG_PREFIX}{namespace}.{name}")
}
