//! Running deployed Worker versions on Cloudflare's open-source runtime, workerd.
//!
//! One workerd process per version, each on its own unix socket in a private temporary
//! directory. A version's process starts when a deployment puts it in service (or on the
//! first request that needs it) and stops when the version has left the active deployment
//! and served nothing for [`IDLE_GRACE`], when its script is deleted, and when the emulator
//! stops. The edge listener ([`crate::edge`]) proxies requests to these sockets.

mod config;
mod d1_endpoint;
mod discover;
mod process;
mod triggers;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::app::SharedApp;
use crate::model::Version;
pub(crate) use config::RUNTIME_KEY_HEADER;
pub(crate) use d1_endpoint::handle as d1_endpoint;
pub use discover::{WORKERD_NPM_VERSION, Workerd, WorkerdSource};
use process::{Process, Spawner, lock};
pub(crate) use triggers::{kv_endpoint, queue_endpoint, scheduled_trigger};

/// A version that left the active deployment keeps its process this long after its last
/// request (version overrides and preview URLs may still use it).
pub const IDLE_GRACE: Duration = Duration::from_secs(60);
/// How long a workerd process may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A version whose start failed is retried after this long.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How often the supervisor sweeps even without state changes.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Errors of the runtime's public API (finding workerd, starting the runtime).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{path} is not a usable workerd binary: {reason}")]
    Unusable { path: PathBuf, reason: String },
    #[error("cannot set up the Workers runtime: {0}")]
    Setup(String),
}

/// A running workerd process (for tests and diagnostics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerProcess {
    pub account_id: String,
    pub script: String,
    pub version_id: String,
    pub pid: u32,
}

/// One version's process, started at most once (concurrent requests wait for the same start).
struct Slot {
    account: String,
    script: String,
    version: String,
    cell: OnceCell<Result<Arc<Process>, String>>,
    last_used: Mutex<Instant>,
    settled_at: Mutex<Option<Instant>>,
}

impl Slot {
    fn new(account: &str, script: &str, version: &str) -> Self {
        Self {
            account: account.to_string(),
            script: script.to_string(),
            version: version.to_string(),
            cell: OnceCell::new(),
            last_used: Mutex::new(Instant::now()),
            settled_at: Mutex::new(None),
        }
    }

    fn running(&self) -> Option<&Arc<Process>> {
        match self.cell.get() {
            Some(Ok(p)) => Some(p),
            _ => None,
        }
    }

    /// Failed (or its process died) long enough ago to try again.
    fn should_retry(&self) -> bool {
        let stale = lock(&self.settled_at).is_some_and(|at| at.elapsed() >= RETRY_AFTER);
        match self.cell.get() {
            Some(Err(_)) => stale,
            Some(Ok(p)) => p.exited().is_some(),
            None => false,
        }
    }
}

/// The process manager.
pub(crate) struct Runtime {
    workerd: Workerd,
    /// Authenticates the D1 shim's calls to the emulator's internal endpoint.
    key: String,
    emulator_addr: OnceLock<SocketAddr>,
    dir: tempfile::TempDir,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    spawner: Spawner,
    stopped: AtomicBool,
    counter: AtomicU64,
}

impl Runtime {
    pub(crate) fn new(workerd: Workerd) -> Result<Self, RuntimeError> {
        let dir = tempfile::Builder::new()
            .prefix("clodo-workerd-")
            .tempdir()
            .map_err(|e| RuntimeError::Setup(format!("temporary directory: {e}")))?;
        let spawner = Spawner::new().map_err(|e| RuntimeError::Setup(format!("spawner thread: {e}")))?;
        Ok(Self {
            workerd,
            key: crate::ids::hex32(),
            emulator_addr: OnceLock::new(),
            dir,
            slots: Mutex::new(HashMap::new()),
            spawner,
            stopped: AtomicBool::new(false),
            counter: AtomicU64::new(0),
        })
    }

    pub(crate) fn workerd(&self) -> &Workerd {
        &self.workerd
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Where workerd reaches the emulator's API listener (a wildcard address becomes loopback).
    pub(crate) fn set_emulator_addr(&self, addr: SocketAddr) {
        let ip = match addr.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let _ = self.emulator_addr.set(SocketAddr::new(ip, addr.port()));
    }

    /// The socket of the process serving `version`, started if needed.
    pub(crate) async fn socket_for(&self, account: &str, script: &str, version: &Version) -> Result<PathBuf, String> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err("the emulator is stopping".into());
        }
        let slot = {
            let mut slots = lock(&self.slots);
            let existing = slots.get(&version.id).filter(|s| !s.should_retry()).cloned();
            match existing {
                Some(s) => s,
                None => {
                    let s = Arc::new(Slot::new(account, script, &version.id));
                    slots.insert(version.id.clone(), s.clone());
                    s
                }
            }
        };
        *lock(&slot.last_used) = Instant::now();
        let result = slot
            .cell
            .get_or_init(|| async {
                let r = self.start(account, script, version).await;
                *lock(&slot.settled_at) = Some(Instant::now());
                r
            })
            .await;
        match result {
            Ok(p) => match p.exited() {
                None => Ok(p.socket.clone()),
                Some(status) => {
                    *lock(&slot.settled_at) = Some(Instant::now());
                    let tail = p.tail.text();
                    Err(format!("workerd for version {} exited with {status}:\n{tail}", version.id))
                }
            },
            Err(e) => Err(e.clone()),
        }
    }

    async fn start(&self, account: &str, script: &str, version: &Version) -> Result<Arc<Process>, String> {
        let Some(emulator_addr) = self.emulator_addr.get().copied() else {
            return Err("the emulator's address is not known yet".into());
        };
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let socket = self.dir.path().join(format!("w{n}.sock"));
        let config_path = self.dir.path().join(format!("w{n}.capnp"));
        let date = if version.compatibility_date.as_str() > self.workerd.date() {
            tracing::info!(
                script,
                version = %version.id,
                requested = %version.compatibility_date,
                used = %self.workerd.date(),
                "compatibility date is newer than this workerd supports; using workerd's date"
            );
            self.workerd.date().to_string()
        } else {
            version.compatibility_date.clone()
        };
        let do_dir = self.dir.path().join("do");
        std::fs::create_dir_all(&do_dir).map_err(|e| format!("cannot create {}: {e}", do_dir.display()))?;
        let generated = config::generate(&config::ConfigInput {
            account,
            do_dir: &do_dir,
            script,
            version,
            compatibility_date: &date,
            emulator_addr,
            runtime_key: &self.key,
            socket: &socket,
        })
        .map_err(|e| format!("cannot run version {} of {script} on workerd: {e}", version.id))?;
        if !generated.skipped.is_empty() {
            tracing::warn!(
                script,
                version = %version.id,
                bindings = %generated.skipped.join(", "),
                "bindings of these types are not available to Workers run by the emulator"
            );
        }
        write_private(&config_path, generated.text.as_bytes())
            .map_err(|e| format!("cannot write the workerd config {}: {e}", config_path.display()))?;
        let mut sensitive = generated.sensitive;
        sensitive.push(self.key.clone());
        let label = format!("{script}@{}", short(&version.id));
        let started = Instant::now();
        let result = Process::start(
            &self.spawner,
            self.workerd.path(),
            &config_path,
            socket,
            label,
            Arc::new(sensitive),
            START_TIMEOUT,
        )
        .await;
        match result {
            Ok(p) if self.stopped.load(Ordering::SeqCst) => {
                drop(p);
                Err("the emulator is stopping".into())
            }
            Ok(p) => {
                tracing::info!(
                    account,
                    script,
                    version = %version.id,
                    pid = p.pid(),
                    ms = started.elapsed().as_millis() as u64,
                    "workerd is serving the version"
                );
                Ok(Arc::new(p))
            }
            Err(e) => {
                let e = format!("version {} of {script} did not start on workerd: {e}", version.id);
                tracing::warn!(account, script, version = %version.id, "{e}");
                Err(e)
            }
        }
    }

    /// Stop processes whose version no longer exists, and idle ones that left service.
    fn sweep(&self, live: &HashSet<String>, existing: &HashSet<String>) {
        let mut removed = Vec::new();
        {
            let mut slots = lock(&self.slots);
            slots.retain(|id, slot| {
                let keep = existing.contains(id) && (live.contains(id) || lock(&slot.last_used).elapsed() < IDLE_GRACE);
                if !keep {
                    removed.push(slot.clone());
                }
                keep
            });
        }
        for slot in removed {
            if let Some(p) = slot.running() {
                tracing::info!(script = %slot.script, version = %slot.version, pid = p.pid(), "stopping workerd");
            }
        }
    }

    /// Kill every process; no new ones start.
    pub(crate) fn stop_all(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let slots: Vec<Arc<Slot>> = lock(&self.slots).drain().map(|(_, s)| s).collect();
        for s in slots {
            if let Some(p) = s.running() {
                p.kill();
            }
        }
    }

    pub(crate) fn processes(&self) -> Vec<WorkerProcess> {
        let mut out: Vec<WorkerProcess> = lock(&self.slots)
            .values()
            .filter_map(|s| {
                let p = s.running()?;
                p.exited().is_none().then(|| WorkerProcess {
                    account_id: s.account.clone(),
                    script: s.script.clone(),
                    version_id: s.version.clone(),
                    pid: p.pid(),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.script, &a.version_id).cmp(&(&b.script, &b.version_id)));
        out
    }

    fn has_slot(&self, version: &str) -> bool {
        lock(&self.slots).contains_key(version)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Write a file only the current user can read (it holds secret values).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)
}

/// Keep processes in line with the deployments: start the versions that serve traffic, stop
/// the ones that left. Runs until the emulator stops.
pub(crate) async fn supervise(app: SharedApp, rt: Arc<Runtime>) {
    let mut changes = app.subscribe_changes();
    let mut stopping = app.subscribe_stopping();
    loop {
        if *stopping.borrow() {
            break;
        }
        let (live, existing, warm) = app.read(|s| {
            let mut live = HashSet::new();
            let mut existing = HashSet::new();
            let mut warm: Vec<(String, String, Version)> = Vec::new();
            for (account_id, account) in &s.accounts {
                for (name, script) in &account.scripts {
                    existing.extend(script.versions.iter().map(|v| v.id.clone()));
                    let Some(dep) = script.active_deployment() else { continue };
                    for dv in &dep.versions {
                        if let Some(v) = script.version(&dv.version_id) {
                            live.insert(v.id.clone());
                            if !rt.has_slot(&v.id) {
                                warm.push((account_id.clone(), name.clone(), v.clone()));
                            }
                        }
                    }
                }
            }
            (live, existing, warm)
        });
        rt.sweep(&live, &existing);
        for (account, script, version) in warm {
            let rt = rt.clone();
            tokio::spawn(async move {
                let _ = rt.socket_for(&account, &script, &version).await;
            });
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { break },
            _ = stopping.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
        }
    }
    rt.stop_all();
}
