//! Shared server state: configuration, account state (persisted with `--state-dir`),
//! D1 databases, journal, faults and rate limiter.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::error;

use crate::EmulatorError;
use crate::config::{Config, default_subdomain};
use crate::d1::D1Store;
use crate::envelope::ApiError;
use crate::faults::{FaultState, Faults};
use crate::ids;
use crate::journal::Journal;
use crate::model::{Account, State, Zone};
use crate::ratelimit::RateLimiter;
use crate::runtime::Runtime;

pub(crate) type SharedApp = Arc<App>;

pub(crate) struct App {
    pub config: Config,
    state: Mutex<State>,
    pub d1: D1Store,
    /// Finished D1 exports behind their signed URLs.
    pub exports: crate::routes::d1_export::Exports,
    pub journal: Journal,
    pub faults: FaultState,
    pub limiter: RateLimiter,
    pub user_id: String,
    /// Flips to `true` when the server stops; held requests end early.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Bumped on every state change (the Workers runtime follows deployments).
    changes: tokio::sync::watch::Sender<u64>,
    /// Runs deployed Workers (when a workerd binary is configured).
    pub runtime: Option<Arc<Runtime>>,
}

const STATE_FILE: &str = "state.json";

impl App {
    pub(crate) fn new(config: Config) -> Result<Self, EmulatorError> {
        let mut state = match &config.state_dir {
            Some(dir) => load_state(dir)?,
            None => State::default(),
        };
        seed(&config, &mut state);
        let d1_dir = config.state_dir.as_ref().map(|d| d.join("d1"));
        let runtime = match &config.workerd {
            Some(w) => Some(Arc::new(Runtime::new(w.clone())?)),
            None => None,
        };
        let app = Self {
            d1: D1Store::new(d1_dir),
            exports: Default::default(),
            journal: Journal::default(),
            faults: FaultState::default(),
            limiter: RateLimiter::new(config.rate_limit, config.rate_window),
            user_id: ids::hex32(),
            stopping: tokio::sync::watch::Sender::new(false),
            changes: tokio::sync::watch::Sender::new(0),
            runtime,
            state: Mutex::new(State::default()),
            config,
        };
        app.persist(&state);
        *app.lock() = state;
        Ok(app)
    }

    /// Signal held requests (latency, injected timeouts) to finish now.
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    pub(crate) fn subscribe_stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Notified after every state change.
    pub(crate) fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Sleep for `d`, or less if the server is stopping. Returns `false` when cut short.
    pub(crate) async fn hold(&self, d: std::time::Duration) -> bool {
        let mut rx = self.stopping.subscribe();
        if *rx.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = rx.wait_for(|stopping| *stopping) => false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read the state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.lock())
    }

    /// Change the state; on success it is persisted (with `--state-dir`). On error the
    /// closure must not have changed anything.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut State) -> Result<T, ApiError>) -> Result<T, ApiError> {
        let mut state = self.lock();
        let out = f(&mut state)?;
        self.persist(&state);
        drop(state);
        self.changed();
        Ok(out)
    }

    /// Back to the configured initial state: no scripts, databases, routes, records;
    /// journal, faults and rate-limit counters cleared.
    pub(crate) fn reset(&self) {
        let mut state = self.lock();
        *state = State::default();
        seed(&self.config, &mut state);
        self.d1.clear();
        self.persist(&state);
        drop(state);
        self.journal.clear();
        self.faults.set(Faults::default());
        self.limiter.reset();
        self.changed();
    }

    fn persist(&self, state: &State) {
        let Some(dir) = &self.config.state_dir else {
            return;
        };
        if let Err(e) = write_state(dir, state) {
            error!(error = %e, dir = %dir.display(), "could not persist emulator state");
        }
    }
}

fn load_state(dir: &Path) -> Result<State, EmulatorError> {
    std::fs::create_dir_all(dir).map_err(|source| EmulatorError::StateDir { path: dir.to_path_buf(), source })?;
    let file = dir.join(STATE_FILE);
    match std::fs::read(&file) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| EmulatorError::StateFile { path: file, message: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(source) => Err(EmulatorError::StateDir { path: file, source }),
    }
}

fn write_state(dir: &Path, state: &State) -> std::io::Result<()> {
    let tmp: PathBuf = dir.join(format!("{STATE_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(STATE_FILE))
}

/// Make sure configured accounts and zones exist (existing persisted objects are kept).
fn seed(config: &Config, state: &mut State) {
    for id in &config.accounts {
        let account = state.accounts.entry(id.clone()).or_insert_with(|| Account {
            id: id.clone(),
            name: format!("Emulated account {}", &id[..id.len().min(8)]),
            created_on: ids::now(),
            workers_subdomain: Some(default_subdomain(id)),
            scripts: Default::default(),
            d1_databases: Default::default(),
            custom_domains: Vec::new(),
            kv_namespaces: Vec::new(),
            r2_buckets: Vec::new(),
            queues: Vec::new(),
            do_namespaces: Vec::new(),
        });
        if let Some(sub) = config.subdomains.get(id) {
            account.workers_subdomain = Some(sub.clone());
        }
    }
    for z in &config.zones {
        if state.zones.values().any(|existing| existing.name == z.name) {
            continue;
        }
        state.zones.insert(
            z.id.clone(),
            Zone {
                id: z.id.clone(),
                name: z.name.clone(),
                account_id: z.account_id.clone(),
                created_on: ids::now(),
                routes: Vec::new(),
                dns_records: Vec::new(),
            },
        );
    }
}
