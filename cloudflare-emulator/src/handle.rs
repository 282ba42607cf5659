//! The running emulator: URLs, journal, faults, reset and state inspection for tests.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::SharedApp;
use crate::d1::SqlStatement;
use crate::faults::Faults;
use crate::journal::JournalEntry;
use crate::model::{Account, CustomDomain, D1Database, DnsRecord, Route, Script, State, Zone};
use crate::{API_PREFIX, EmulatorError};

/// How long [`EmulatorHandle::shutdown`] waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running emulator. Dropping it stops the server; [`Self::shutdown`] also waits for it.
pub struct EmulatorHandle {
    app: SharedApp,
    addr: SocketAddr,
    edge_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Edge listener and runtime supervisor; they stop when the app stops.
    tasks: Vec<JoinHandle<()>>,
}

impl EmulatorHandle {
    pub(crate) fn new(app: SharedApp, addr: SocketAddr, shutdown: oneshot::Sender<()>, task: JoinHandle<()>) -> Self {
        Self { app, addr, edge_addr: None, shutdown: Some(shutdown), task: Some(task), tasks: Vec::new() }
    }

    pub(crate) fn add_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    pub(crate) fn set_edge(&mut self, addr: SocketAddr, task: JoinHandle<()>) {
        self.edge_addr = Some(addr);
        self.tasks.push(task);
    }

    /// Address of the edge listener, which serves deployed Workers (the Host header picks the
    /// custom domain, route or workers.dev name). `None` without a workerd binary (unless
    /// [`crate::EmulatorBuilder::edge_listen`] was set).
    pub fn edge_addr(&self) -> Option<SocketAddr> {
        self.edge_addr
    }

    /// `http://127.0.0.1:PORT` of the edge listener.
    pub fn edge_url(&self) -> Option<String> {
        self.edge_addr.map(|a| format!("http://{a}"))
    }

    /// The workerd binary running the deployed Workers, if any.
    pub fn workerd(&self) -> Option<&crate::runtime::Workerd> {
        self.app.runtime.as_ref().map(|r| r.workerd())
    }

    /// workerd processes currently serving Worker versions.
    pub fn worker_processes(&self) -> Vec<crate::runtime::WorkerProcess> {
        self.app.runtime.as_ref().map(|r| r.processes()).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT/client/v4`, the value for `CLOUDFLARE_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}{API_PREFIX}", self.addr)
    }

    /// `http://127.0.0.1:PORT` (test controls live under `/__emulator/`).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every API request so far (since the last clear), oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.app.journal.entries()
    }

    pub fn clear_journal(&self) {
        self.app.journal.clear();
    }

    /// Enforce a new per-token rate limit from now on (e.g. Cloudflare's 1200 per 5 minutes
    /// after a fleet was set up quickly); the request counts start again.
    pub fn set_rate_limit(&self, requests: u32, window: std::time::Duration) {
        self.app.limiter.set(requests, window);
    }

    /// Replace the active faults (`Faults::default()` clears them).
    pub fn set_faults(&self, faults: Faults) {
        self.app.faults.set(faults);
    }

    pub fn faults(&self) -> Faults {
        self.app.faults.get()
    }

    /// Back to the configured initial state (see `POST /__emulator/reset`).
    pub fn reset(&self) {
        self.app.reset();
    }

    /// Id of a zone by name.
    pub fn zone_id(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.app.read(|s| s.zones.values().find(|z| z.name == name).map(|z| z.id.clone()))
    }

    /// The public id of a configured token (what token verify and the journal report).
    pub fn token_id(&self, token: &str) -> Option<String> {
        self.app.config.token(token).map(|t| t.id.clone())
    }

    /// A copy of the whole state.
    pub fn state(&self) -> State {
        self.app.read(|s| s.clone())
    }

    pub fn account(&self, account_id: &str) -> Option<Account> {
        self.app.read(|s| s.accounts.get(account_id).cloned())
    }

    /// The account's scripts with their tags, versions (modules, bindings, annotations)
    /// and deployments.
    pub fn scripts(&self, account_id: &str) -> Vec<Script> {
        self.app.read(|s| s.accounts.get(account_id).map(|a| a.scripts.values().cloned().collect()).unwrap_or_default())
    }

    pub fn script(&self, account_id: &str, name: &str) -> Option<Script> {
        self.app.read(|s| s.accounts.get(account_id).and_then(|a| a.scripts.get(name).cloned()))
    }

    fn zone_by(&self, s: &State, zone: &str) -> Option<Zone> {
        let lower = zone.to_ascii_lowercase();
        s.zones.get(zone).or_else(|| s.zones.values().find(|z| z.name == lower)).cloned()
    }

    /// Worker routes of a zone (by name or id).
    pub fn routes(&self, zone: &str) -> Vec<Route> {
        self.app.read(|s| self.zone_by(s, zone).map(|z| z.routes).unwrap_or_default())
    }

    /// DNS records of a zone (by name or id).
    pub fn dns_records(&self, zone: &str) -> Vec<DnsRecord> {
        self.app.read(|s| self.zone_by(s, zone).map(|z| z.dns_records).unwrap_or_default())
    }

    pub fn custom_domains(&self, account_id: &str) -> Vec<CustomDomain> {
        self.app.read(|s| s.accounts.get(account_id).map(|a| a.custom_domains.clone()).unwrap_or_default())
    }

    pub fn d1_databases(&self, account_id: &str) -> Vec<D1Database> {
        self.app.read(|s| {
            s.accounts.get(account_id).map(|a| a.d1_databases.values().cloned().collect()).unwrap_or_default()
        })
    }

    pub fn workers_subdomain(&self, account_id: &str) -> Option<String> {
        self.app.read(|s| s.accounts.get(account_id).and_then(|a| a.workers_subdomain.clone()))
    }

    /// Run SQL directly on a D1 database (by uuid or name), bypassing the API and the
    /// journal. Returns the rows of the last statement as a JSON array of objects.
    pub fn d1_query(&self, account_id: &str, database: &str, sql: &str) -> Result<Value, EmulatorError> {
        let uuid = self.app.read(|s| {
            let a = s.accounts.get(account_id).ok_or_else(|| EmulatorError::UnknownAccount(account_id.to_string()))?;
            a.d1_databases
                .get(database)
                .or_else(|| a.d1_databases.values().find(|d| d.name == database))
                .map(|d| d.uuid.clone())
                .ok_or_else(|| EmulatorError::UnknownDatabase(database.to_string()))
        })?;
        let db = self.app.d1.get(&uuid).map_err(|e| EmulatorError::D1(e.to_string()))?;
        let out = db
            .execute(&[SqlStatement { sql: sql.to_string(), params: Vec::new() }])
            .map_err(|f| EmulatorError::D1(f.error.to_string()))?;
        Ok(Value::Array(out.statements.last().map(|s| s.row_objects()).unwrap_or_default()))
    }

    /// Stop serving and wait for the server tasks; workerd processes are killed. Requests
    /// still in flight (for example ones held by an injected timeout) are answered at once
    /// (504); each server task gets [`SHUTDOWN_GRACE`] to finish, then is aborted.
    pub async fn shutdown(mut self) {
        self.app.stop();
        if let Some(rt) = &self.app.runtime {
            rt.stop_all();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let tasks: Vec<JoinHandle<()>> = self.task.take().into_iter().chain(self.tasks.drain(..)).collect();
        for mut task in tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.app.stop();
        if let Some(rt) = &self.app.runtime {
            rt.stop_all();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
