//! Step 2 of a pass: load every referenced object through the narrow [`ObjectSource`] interface
//! and turn it into plain inputs. Missing or invalid references become [`ConfigError`]s that name
//! the exact field.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::migrations::{self, MigrationFile};
use super::secret::SecretValue;
use crate::crd::conditions::reason;
use crate::crd::{CloudflareService, Customer, SecretKeyRef, SourceStatus, WorkerSource};
use crate::source::Fetcher;

/// Largest total size of a Worker's modules (Cloudflare's paid-plan limit, compressed size aside).
pub const MAX_SCRIPT_BYTES: usize = 10 * 1024 * 1024;

/// Access to the Kubernetes objects a service references, always in the service's namespace.
#[async_trait]
pub trait ObjectSource: Send + Sync {
    async fn customer(&self, namespace: &str, name: &str) -> Result<Option<Customer>, SourceError>;
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError>;
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, SourceError>;
    /// The stored value of a `generate` secret, if one is stored (never creates one).
    async fn stored_generated_secret(
        &self,
        service: &CloudflareService,
        secret_name: &str,
    ) -> Result<Option<SecretValue>, SourceError>;
    /// Get or create the operator-owned value of a `generate` secret. A value, once created, is
    /// returned unchanged on every later call; `created` says a new value was made this call.
    /// Called only when the Worker does not have the secret yet.
    async fn generated_secret(
        &self,
        service: &CloudflareService,
        secret_name: &str,
        length: u32,
    ) -> Result<Generated, SourceError>;
    /// Persist `status` in the middle of a pass, before a step that status must be able to
    /// vouch for after a crash (creating a resource that carries no owner tag, like a D1
    /// database). Sources without a durable status store keep it in memory only.
    async fn checkpoint(
        &self,
        _service: &CloudflareService,
        _status: &crate::crd::CloudflareServiceStatus,
    ) -> Result<(), SourceError> {
        Ok(())
    }
    /// Fetcher for OCI and URL code sources. `None` = offline: such code is not loaded
    /// (`validate` without `--online`).
    fn code_fetcher(&self) -> Option<&Fetcher> {
        None
    }
    /// True when code artifacts are deliberately not fetched (offline validation).
    fn code_offline(&self) -> bool {
        false
    }
}

/// A `generate` secret of the spec. Its value is set on the Worker once, when the Worker lacks
/// that secret, and kept there afterwards (uploads inherit it), so neither a lost store nor a
/// CLI run from a fresh checkout ever rotates it.
#[derive(Debug, Clone)]
pub struct GeneratedSecret {
    pub name: String,
    pub length: u32,
    /// The stored value, when the object store has one.
    pub value: Option<SecretValue>,
}

/// A generated secret value.
#[derive(Debug, Clone)]
pub struct Generated {
    pub value: SecretValue,
    /// True when no value existed and this one was just made (first use, or the store lost it).
    pub created: bool,
}

/// The object store could not be read (retryable).
#[derive(Debug, thiserror::Error)]
#[error("reading {what}: {message}")]
pub struct SourceError {
    pub what: String,
    pub message: String,
}

/// A reference or value in the spec that cannot be used (terminal until the spec or object changes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
    /// The condition reason: `MissingReference` (a reference does not resolve), `InvalidSpec`
    /// (the referenced content cannot be used), `UnresolvedPlaceholder`, or a code artifact's own.
    reason: &'static str,
    /// The cause may go away by itself (an unreachable registry): retry with backoff.
    pub retryable: bool,
}

impl ConfigError {
    /// A reference that does not resolve (reason `MissingReference`).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), reason: reason::MISSING_REFERENCE, retryable: false }
    }

    /// The object is there, its content is not usable (empty, too large, not valid SQL, ...).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { reason: reason::INVALID_SPEC, ..Self::new(field, message) }
    }

    /// A template placeholder no variable fills (reason `UnresolvedPlaceholder`).
    pub fn unresolved(e: super::render::Unresolved) -> Self {
        Self {
            reason: reason::UNRESOLVED_PLACEHOLDER,
            ..Self::new(e.field, format!("unresolved placeholder {{{{{}}}}}", e.placeholder))
        }
    }

    /// A code artifact that cannot be used, with the fetch error's own reason; retryable
    /// failures (registry down) get backoff instead of waiting for an edit.
    pub fn artifact(field: impl Into<String>, e: &crate::source::FetchError) -> Self {
        Self { reason: e.reason(), retryable: e.is_retryable(), ..Self::invalid(field, e.to_string()) }
    }

    /// The condition reason this error reports.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// One Worker module file.
#[derive(Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub content: Vec<u8>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Module({}, {} bytes)", self.name, self.content.len())
    }
}

/// Everything a pass needs, read from Kubernetes.
#[derive(Debug, Clone)]
pub struct ServiceInputs {
    pub service: CloudflareService,
    pub customer: Customer,
    /// The API token, or None when its Secret or key is missing or empty.
    pub token: Option<SecretValue>,
    /// Why the token is unusable, when it is.
    pub token_problem: Option<ConfigError>,
    pub modules: Vec<Module>,
    /// Migration files per D1 binding.
    pub migrations: BTreeMap<String, Vec<MigrationFile>>,
    /// Secret bindings with their values, in spec order.
    pub secrets: Vec<(String, SecretValue)>,
    /// `generate` secrets, with their stored value when there is one.
    pub generated: Vec<GeneratedSecret>,
    /// Credential header value for the auth production test.
    pub test_credential: Option<SecretValue>,
    /// The artifact the code came from (OCI and URL sources).
    pub source: Option<SourceStatus>,
    /// Secret values of production-test headers, by `prodtest::headers::secret_key`.
    pub test_secrets: BTreeMap<String, SecretValue>,
}

/// Why resolution stopped.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Read a Secret key as text.
pub async fn read_secret_key(
    src: &dyn ObjectSource,
    namespace: &str,
    field: &str,
    r: &SecretKeyRef,
) -> Result<(SecretValue, String), ResolveError> {
    let secret = src
        .secret(namespace, &r.name)
        .await?
        .ok_or_else(|| ConfigError::new(field, format!("Secret {:?} not found in namespace {namespace:?}", r.name)))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.clone())
        .or_else(|| secret.string_data.as_ref().and_then(|d| d.get(&r.key)).map(|s| s.clone().into_bytes()))
        .ok_or_else(|| ConfigError::new(field, format!("Secret {:?} has no key {:?}", r.name, r.key)))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError::invalid(field, format!("Secret {:?} key {:?} is not UTF-8 text", r.name, r.key)))?;
    let text = text.trim_end_matches(['\n', '\r']).to_string();
    Ok((SecretValue::new(text), version_of(&secret.metadata)))
}

fn version_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!("{}@{}", meta.name.as_deref().unwrap_or_default(), meta.resource_version.as_deref().unwrap_or_default())
}

/// Read all files of a ConfigMap (data and binaryData).
pub async fn read_config_map_files(
    src: &dyn ObjectSource,
    namespace: &str,
    field: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, ResolveError> {
    let cm = src
        .config_map(namespace, name)
        .await?
        .ok_or_else(|| ConfigError::new(field, format!("ConfigMap {name:?} not found in namespace {namespace:?}")))?;
    let mut files = BTreeMap::new();
    for (k, v) in cm.data.iter().flatten() {
        files.insert(k.clone(), v.clone().into_bytes());
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        files.insert(k.clone(), v.0.clone());
    }
    Ok(files)
}

/// Resolve every reference of a service.
pub async fn resolve(src: &dyn ObjectSource, service: &CloudflareService) -> Result<ServiceInputs, ResolveError> {
    let ns = service.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());

    let customer_name = &service.spec.customer_ref.name;
    let customer = src.customer(&ns, customer_name).await?.ok_or_else(|| {
        ConfigError::new("spec.customerRef.name", format!("Customer {customer_name:?} not found in namespace {ns:?}"))
    })?;

    let (token, token_problem) =
        match read_secret_key(src, &ns, "customer.spec.apiTokenSecretRef", &customer.spec.api_token_secret_ref).await {
            Ok((t, _)) if t.is_empty() => {
                (None, Some(ConfigError::new("customer.spec.apiTokenSecretRef", "the API token Secret key is empty")))
            }
            Ok((t, _)) => (Some(t), None),
            Err(ResolveError::Config(e)) => (None, Some(e)),
            Err(e) => return Err(e),
        };

    let worker = &service.spec.body.worker;
    let (files, source_status) = load_code(src, &ns, service).await?;
    let code_field = code_field(&worker.source);
    if let Some(files) = &files {
        if files.is_empty() {
            return Err(
                ConfigError::invalid(code_field, format!("{} has no files", code_origin(&worker.source))).into()
            );
        }
        if !files.contains_key(&worker.main_module) {
            return Err(ConfigError::new(
                "spec.worker.mainModule",
                format!(
                    "module {:?} is not a file of {} (files: {})",
                    worker.main_module,
                    code_origin(&worker.source),
                    files.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
            .into());
        }
    }
    let files = files.unwrap_or_default();
    let total: usize = files.values().map(Vec::len).sum();
    if worker.source.config_map_ref.is_some() && total > MAX_SCRIPT_BYTES {
        return Err(ConfigError::invalid(
            code_field,
            format!("modules total {total} bytes, over the {MAX_SCRIPT_BYTES}-byte Worker size limit"),
        )
        .into());
    }
    let modules = files.into_iter().map(|(name, content)| Module { name, content }).collect();

    let mut migrations = BTreeMap::new();
    for (i, db) in service.spec.body.d1_databases.iter().enumerate() {
        let Some(m) = &db.migrations else { continue };
        let field = format!("spec.d1Databases[{i}].migrations.configMapRef.name");
        let files = read_config_map_files(src, &ns, &field, &m.config_map_ref.name).await?;
        if files.is_empty() {
            return Err(ConfigError::invalid(
                field,
                format!("ConfigMap {:?} has no migration files", m.config_map_ref.name),
            )
            .into());
        }
        let mut text = BTreeMap::new();
        for (k, bytes) in files {
            let sql = String::from_utf8(bytes)
                .map_err(|_| ConfigError::invalid(field.clone(), format!("migration {k:?} is not UTF-8 text")))?;
            text.insert(k, sql);
        }
        let list = migrations::from_files_off_thread(&field, text).await.map_err(|e| {
            let msg = e.to_string();
            ConfigError::invalid(field.clone(), msg.strip_prefix(&format!("{field}: ")).unwrap_or(&msg))
        })?;
        migrations.insert(db.binding.clone(), list);
    }

    let mut secrets = Vec::new();
    let mut generated = Vec::new();
    for (i, s) in worker.secrets.iter().enumerate() {
        let field = format!("spec.worker.secrets[{i}]");
        match (&s.value_from, &s.generate) {
            (Some(vf), None) => {
                let (value, _) =
                    read_secret_key(src, &ns, &format!("{field}.valueFrom.secretKeyRef"), &vf.secret_key_ref).await?;
                secrets.push((s.name.clone(), value));
            }
            (None, Some(g)) => {
                let value = src.stored_generated_secret(service, &s.name).await?;
                generated.push(GeneratedSecret { name: s.name.clone(), length: g.length, value });
            }
            _ => {
                return Err(ConfigError::invalid(field, "exactly one of valueFrom or generate must be set").into());
            }
        }
    }

    let mut test_credential = None;
    if let Some(cred) = service
        .spec
        .body
        .production_tests
        .as_ref()
        .and_then(|t| t.auth.as_ref())
        .and_then(|a| a.with_credentials.as_ref())
    {
        let (value, _) = read_secret_key(
            src,
            &ns,
            "spec.productionTests.auth.withCredentials.valueFrom.secretKeyRef",
            &cred.value_from.secret_key_ref,
        )
        .await?;
        test_credential = Some(value);
    }

    let mut test_secrets = BTreeMap::new();
    if let Some(t) = &service.spec.body.production_tests {
        for (field, r) in crate::prodtest::headers::secret_refs(t) {
            let (value, _) = read_secret_key(src, &ns, &field, r).await?;
            test_secrets.insert(crate::prodtest::headers::secret_key(r), value);
        }
    }

    Ok(ServiceInputs {
        service: service.clone(),
        customer,
        token,
        token_problem,
        modules,
        migrations,
        secrets,
        generated,
        test_credential,
        source: source_status,
        test_secrets,
    })
}

/// The spec field that names the code source (for errors).
fn code_field(source: &WorkerSource) -> &'static str {
    if source.oci.is_some() {
        "spec.worker.source.oci.ref"
    } else if source.url.is_some() {
        "spec.worker.source.url.url"
    } else {
        "spec.worker.source.configMapRef.name"
    }
}

/// Human name of the code source (no URL: it may carry a signed query string).
fn code_origin(source: &WorkerSource) -> String {
    match (&source.config_map_ref, &source.oci) {
        (Some(cm), _) => format!("ConfigMap {:?}", cm.name),
        (None, Some(oci)) => format!("OCI artifact {:?}", oci.reference),
        (None, None) => "the URL source".to_string(),
    }
}

type CodeFiles = (Option<BTreeMap<String, Vec<u8>>>, Option<SourceStatus>);

/// Load the Worker's module files from its source. `None` files: an artifact source while
/// offline (the spec is checked, nothing is fetched).
async fn load_code(src: &dyn ObjectSource, ns: &str, service: &CloudflareService) -> Result<CodeFiles, ResolveError> {
    let source = &service.spec.body.worker.source;
    match (&source.config_map_ref, &source.oci, &source.url) {
        (Some(cm), None, None) => {
            Ok((Some(read_config_map_files(src, ns, "spec.worker.source.configMapRef.name", &cm.name).await?), None))
        }
        (None, Some(oci), None) => {
            let field = "spec.worker.source.oci.ref";
            let reference =
                crate::source::oci::parse_reference(&oci.reference).map_err(|e| ConfigError::artifact(field, &e))?;
            let auth = match &oci.pull_secret_ref {
                Some(r) => pull_auth(src, ns, &r.name, reference.resolve_registry()).await?,
                None => oci_client::secrets::RegistryAuth::Anonymous,
            };
            let Some(fetcher) = fetcher_or_offline(src, field)? else { return Ok((None, None)) };
            let fetched = fetcher.oci(oci, &auth).await.map_err(|e| ConfigError::artifact(field, &e))?;
            log_fetch("oci", &fetched);
            let status =
                SourceStatus { kind: "oci".into(), reference: Some(oci.reference.clone()), digest: fetched.digest };
            Ok((Some(fetched.files), Some(status)))
        }
        (None, None, Some(url)) => {
            let field = "spec.worker.source.url.url";
            crate::source::url::parse_url(&url.url).map_err(|e| ConfigError::artifact(field, &e))?;
            let Some(fetcher) = fetcher_or_offline(src, field)? else { return Ok((None, None)) };
            let fetched = fetcher.url(url).await.map_err(|e| ConfigError::artifact(field, &e))?;
            log_fetch("url", &fetched);
            Ok((
                Some(fetched.files),
                Some(SourceStatus { kind: "url".into(), reference: None, digest: fetched.digest }),
            ))
        }
        _ => Err(ConfigError::invalid("spec.worker.source", "set exactly one of configMapRef, oci or url").into()),
    }
}

fn log_fetch(kind: &str, f: &crate::source::Fetched) {
    if f.downloaded {
        tracing::info!(source = kind, digest = %f.digest, files = f.files.len(), "downloaded Worker code");
    } else {
        tracing::debug!(source = kind, digest = %f.digest, "Worker code from the artifact cache");
    }
}

/// Registry credentials from a `kubernetes.io/dockerconfigjson` (or `dockercfg`) Secret.
async fn pull_auth(
    src: &dyn ObjectSource,
    ns: &str,
    name: &str,
    registry: &str,
) -> Result<oci_client::secrets::RegistryAuth, ResolveError> {
    let field = "spec.worker.source.oci.pullSecretRef.name";
    let secret = src
        .secret(ns, name)
        .await?
        .ok_or_else(|| ConfigError::new(field, format!("Secret {name:?} not found in namespace {ns:?}")))?;
    let data = secret.data.unwrap_or_default();
    let (key, json) = [".dockerconfigjson", ".dockercfg"]
        .into_iter()
        .find_map(|k| data.get(k).map(|v| (k, v.0.clone())))
        .ok_or_else(|| {
            ConfigError::invalid(
                field,
                format!("Secret {name:?} has no .dockerconfigjson key (type kubernetes.io/dockerconfigjson)"),
            )
        })?;
    crate::source::oci::auth_from_docker_config(&json, registry)
        .map_err(|e| ConfigError::invalid(field, format!("Secret {name:?} key {key}: {e}")).into())
}

/// The fetcher, `None` when offline by design, or an error when the code cannot be loaded here.
fn fetcher_or_offline<'a>(src: &'a dyn ObjectSource, field: &str) -> Result<Option<&'a Fetcher>, ConfigError> {
    match src.code_fetcher() {
        Some(f) => Ok(Some(f)),
        None if src.code_offline() => Ok(None),
        None => Err(ConfigError::invalid(field, "no artifact fetcher is configured (see --artifact-cache-dir)")),
    }
}
