//! The steps of a CloudflareService pass: every decision a pass makes is one of these, so the
//! plan (`clodo-operator plan`, `status.plan` of a dry run) lists exactly what `deploy` does.

use std::time::Duration;

use super::desired::Desired;
use super::migrations::MigrationFile;

/// One step of a pass, in execution order: first the pass-level steps (token, canary in flight,
/// manual rollback, drift check), then the changes to Cloudflare resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask Cloudflare whether the API token is active (no Customer status or recent check vouches).
    VerifyToken,
    /// The spec changed under a canary in flight: its previous version goes back to 100% first.
    StopCanary {
        version: String,
    },
    /// A canary step is not over yet: wait, change nothing.
    WaitCanary {
        version: String,
        percent: u32,
        left: Duration,
    },
    /// Give the canary version its next share of traffic and test it.
    AdvanceCanary {
        version: String,
        percent: u32,
    },
    /// The canary passed every step: deploy it at 100% and test it.
    PromoteCanary {
        version: String,
    },
    /// `clodo.dev/rollback-to`: make the named version serve 100% (nothing if it already does).
    ManualRollback {
        to: String,
    },
    /// The last pass converged on these inputs: one read tells whether the version still serves.
    DriftCheck {
        version: String,
    },
    CreateDatabase {
        binding: String,
        name: String,
    },
    ApplyMigrations {
        binding: String,
        database: String,
        files: Vec<MigrationFile>,
        bookmark: bool,
    },
    DeleteSecret {
        name: String,
    },
    UploadWorker {
        reason: UploadReason,
        mode: UploadMode,
    },
    /// The content differs, but `clodo.dev/rollback-to` pins the serving version: no upload.
    KeepPinned {
        version: String,
    },
    /// The content already failed its production tests and was rolled back: not redeployed.
    HoldBack {
        content_hash: String,
    },
    TagScript,
    CreateRoute {
        pattern: String,
        zone: String,
    },
    UpdateRoute {
        id: String,
        pattern: String,
        zone: String,
    },
    DeleteRoute {
        id: String,
        pattern: String,
        zone: String,
    },
    AttachDomain {
        hostname: String,
        zone: String,
    },
    DetachDomain {
        id: String,
        hostname: String,
    },
    EnableWorkersDev,
}

/// Why the Worker is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadReason {
    New,
    Changed,
}

/// How an uploaded version goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMode {
    /// Deployed at 100% at once.
    Full,
    /// Smoke-tested at 0%, then deployed at `percent` next to the serving version.
    Canary { percent: u32 },
}

fn short(v: &str) -> &str {
    v.get(..8).unwrap_or(v)
}

impl Step {
    /// Human-readable description (status.plan, CLI output, Events). Never contains secret values.
    pub fn describe(&self, d: &Desired) -> String {
        let script = &d.script_name;
        match self {
            Step::VerifyToken => "verify the API token".into(),
            Step::StopCanary { version } => format!(
                "stop the canary of version {} (the spec changed) and serve the previous version at 100%",
                short(version)
            ),
            Step::WaitCanary { version, percent, left } => format!(
                "wait {}s before the next canary step (version {} serves {percent}%)",
                left.as_secs().max(1),
                short(version)
            ),
            Step::AdvanceCanary { version, percent } => {
                format!("move the canary of version {} to {percent}% and test it", short(version))
            }
            Step::PromoteCanary { version } => {
                format!("promote the canary of version {} to 100% and test it", short(version))
            }
            Step::ManualRollback { to } => {
                format!("make version {} of worker {script} serve 100% (annotation clodo.dev/rollback-to)", short(to))
            }
            Step::DriftCheck { version } => {
                format!("check that worker {script} still serves version {} at 100%", short(version))
            }
            Step::CreateDatabase { name, binding } => {
                format!("create d1 database {name} (binding {binding})")
            }
            Step::ApplyMigrations { database, files, bookmark, .. } => {
                let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
                let bm = if *bookmark { " after recording a Time Travel bookmark" } else { "" };
                format!("apply migrations {} to d1 database {database}{bm}", names.join(", "))
            }
            Step::DeleteSecret { name } => format!("delete secret {name} from worker {script}"),
            Step::UploadWorker { reason: UploadReason::New, .. } => format!("upload and deploy new worker {script}"),
            Step::UploadWorker { reason: UploadReason::Changed, mode: UploadMode::Full } => {
                format!("upload and deploy a new version of worker {script}")
            }
            Step::UploadWorker { reason: UploadReason::Changed, mode: UploadMode::Canary { percent } } => {
                format!("upload a new version of worker {script} as a canary: smoke test at 0%, then {percent}%")
            }
            Step::KeepPinned { version } => format!(
                "keep version {} of worker {script} pinned (annotation clodo.dev/rollback-to); the spec is not deployed",
                short(version)
            ),
            Step::HoldBack { content_hash } => format!(
                "hold back content {}: it failed its production tests and was rolled back",
                content_hash.get(..15).unwrap_or(content_hash)
            ),
            Step::TagScript => format!("tag worker {script} as owned by {}/{}", d.namespace, d.name),
            Step::CreateRoute { pattern, zone } => format!("create route {pattern} in zone {zone}"),
            Step::UpdateRoute { pattern, zone, .. } => format!("point route {pattern} in zone {zone} at {script}"),
            Step::DeleteRoute { pattern, zone, .. } => format!("delete route {pattern} from zone {zone}"),
            Step::AttachDomain { hostname, .. } => format!("attach custom domain {hostname}"),
            Step::DetachDomain { hostname, .. } => format!("detach custom domain {hostname}"),
            Step::EnableWorkersDev => format!("enable the workers.dev URL of worker {script}"),
        }
    }

    /// Short name for Events and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::VerifyToken => "VerifyToken",
            Step::StopCanary { .. } => "StopCanary",
            Step::WaitCanary { .. } => "WaitCanary",
            Step::AdvanceCanary { .. } => "AdvanceCanary",
            Step::PromoteCanary { .. } => "PromoteCanary",
            Step::ManualRollback { .. } => "ManualRollback",
            Step::DriftCheck { .. } => "DriftCheck",
            Step::CreateDatabase { .. } => "CreateDatabase",
            Step::ApplyMigrations { .. } => "ApplyMigrations",
            Step::DeleteSecret { .. } => "DeleteSecret",
            Step::UploadWorker { .. } => "UploadWorker",
            Step::KeepPinned { .. } => "KeepPinned",
            Step::HoldBack { .. } => "HoldBack",
            Step::TagScript => "TagScript",
            Step::CreateRoute { .. } => "CreateRoute",
            Step::UpdateRoute { .. } => "UpdateRoute",
            Step::DeleteRoute { .. } => "DeleteRoute",
            Step::AttachDomain { .. } => "AttachDomain",
            Step::DetachDomain { .. } => "DetachDomain",
            Step::EnableWorkersDev => "EnableWorkersDev",
        }
    }

    /// Whether the step may change something in Cloudflare (checks, waits and holds do not;
    /// a manual rollback may).
    pub fn is_change(&self) -> bool {
        !matches!(
            self,
            Step::VerifyToken
                | Step::WaitCanary { .. }
                | Step::DriftCheck { .. }
                | Step::KeepPinned { .. }
                | Step::HoldBack { .. }
        )
    }

    /// Whether the step only reads: a dry run runs these and lists the rest.
    pub fn is_read(&self) -> bool {
        matches!(self, Step::VerifyToken | Step::DriftCheck { .. })
    }
}
