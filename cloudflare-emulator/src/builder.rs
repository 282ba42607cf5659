//! `Emulator::builder()`: configure accounts, tokens, zones and limits, then `start()`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::info;

use crate::app::App;
use crate::config::{Config, TokenConfig, TokenScope, ZoneConfig};
use crate::handle::EmulatorHandle;
use crate::runtime::Workerd;
use crate::{EmulatorError, ids, server};

/// Entry point of the library API.
pub struct Emulator;

impl Emulator {
    /// A builder with the defaults: no accounts, 1200 requests / 300 s per token, no added
    /// latency, in-memory state, listening on `127.0.0.1:0`.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Configuration of an emulator instance.
#[derive(Clone, Debug)]
pub struct EmulatorBuilder {
    accounts: Vec<String>,
    tokens: Vec<(String, TokenScope)>,
    zones: Vec<(String, String)>,
    subdomains: BTreeMap<String, String>,
    rate_limit: u32,
    rate_window: Duration,
    latency: Duration,
    state_dir: Option<PathBuf>,
    listen: SocketAddr,
    workerd: Option<Workerd>,
    edge_listen: Option<SocketAddr>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            accounts: Vec::new(),
            tokens: Vec::new(),
            zones: Vec::new(),
            subdomains: BTreeMap::new(),
            rate_limit: 1200,
            rate_window: Duration::from_secs(300),
            latency: Duration::ZERO,
            state_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workerd: None,
            edge_listen: None,
        }
    }
}

impl EmulatorBuilder {
    /// Add an account (32-hex ids are what Cloudflare uses; any non-empty string works).
    /// Each account gets the workers.dev subdomain `<first 8 of its id>` unless
    /// [`Self::workers_subdomain`] says otherwise.
    pub fn account(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        if !self.accounts.contains(&id) {
            self.accounts.push(id);
        }
        self
    }

    /// Add a token scoped to `accounts` (which are added as accounts too).
    pub fn token<A: AsRef<str>>(mut self, token: impl Into<String>, accounts: &[A]) -> Self {
        let ids: Vec<String> = accounts.iter().map(|a| a.as_ref().to_string()).collect();
        for id in &ids {
            self = self.account(id.clone());
        }
        self.tokens.push((token.into(), TokenScope::Accounts(ids)));
        self
    }

    /// Add a token valid for every account.
    pub fn token_all(mut self, token: impl Into<String>) -> Self {
        self.tokens.push((token.into(), TokenScope::All));
        self
    }

    /// Add a zone owned by `account` (added as an account too); it gets a random 32-hex id.
    pub fn zone(mut self, name: impl Into<String>, account: impl Into<String>) -> Self {
        let account = account.into();
        self = self.account(account.clone());
        self.zones.push((name.into().to_ascii_lowercase(), account));
        self
    }

    /// Register `subdomain` as the account's workers.dev subdomain.
    pub fn workers_subdomain(mut self, account: impl Into<String>, subdomain: impl Into<String>) -> Self {
        let account = account.into();
        self = self.account(account.clone());
        self.subdomains.insert(account, subdomain.into());
        self
    }

    /// Per-token limit: `requests` per `window` (sliding window); then 429 + `Retry-After`.
    pub fn rate_limit(mut self, requests: u32, window: Duration) -> Self {
        self.rate_limit = requests;
        self.rate_window = window;
        self
    }

    /// Latency added to every API call.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Persist state (JSON) and D1 databases (one SQLite file each) under `dir`;
    /// `None` keeps everything in memory.
    pub fn state_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.state_dir = dir;
        self
    }

    /// Address to listen on (port 0 = any free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Run deployed Worker versions on this workerd binary and serve them on the edge
    /// listener ([`EmulatorHandle::edge_url`]).
    pub fn workerd(mut self, workerd: Workerd) -> Self {
        self.workerd = Some(workerd);
        self
    }

    /// Address of the edge listener (default `127.0.0.1:0` when a workerd binary is set; without
    /// one the edge only starts when this is given, and answers 503 for deployed Workers).
    pub fn edge_listen(mut self, addr: SocketAddr) -> Self {
        self.edge_listen = Some(addr);
        self
    }

    fn config(self) -> Result<Config, EmulatorError> {
        if self.accounts.iter().any(|a| a.is_empty() || a.contains('/')) {
            return Err(EmulatorError::Config("account ids must be non-empty and contain no '/'".into()));
        }
        let mut zones: Vec<ZoneConfig> = Vec::new();
        for (name, account_id) in self.zones {
            if name.is_empty() || !name.contains('.') {
                return Err(EmulatorError::Config(format!("invalid zone name {name:?}")));
            }
            if zones.iter().any(|z| z.name == name) {
                return Err(EmulatorError::Config(format!("zone {name} configured twice")));
            }
            zones.push(ZoneConfig { name, account_id, id: ids::hex32() });
        }
        let mut tokens: Vec<TokenConfig> = Vec::new();
        for (value, scope) in self.tokens {
            if value.is_empty() {
                return Err(EmulatorError::Config("empty token".into()));
            }
            if tokens.iter().any(|t| t.value == value) {
                return Err(EmulatorError::Config("a token was configured twice".into()));
            }
            tokens.push(TokenConfig { value, id: ids::hex32(), scope });
        }
        Ok(Config {
            accounts: self.accounts,
            tokens,
            zones,
            subdomains: self.subdomains,
            rate_limit: self.rate_limit,
            rate_window: self.rate_window,
            latency: self.latency,
            state_dir: self.state_dir,
            listen: self.listen,
            workerd: self.workerd,
            edge_listen: self.edge_listen,
        })
    }

    /// Bind and serve in the background.
    pub async fn start(self) -> Result<EmulatorHandle, EmulatorError> {
        let config = self.config()?;
        let listen = config.listen;
        let edge_listen = match (&config.workerd, config.edge_listen) {
            (_, Some(addr)) => Some(addr),
            (Some(_), None) => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            (None, None) => None,
        };
        let app = Arc::new(App::new(config)?);
        let listener =
            TcpListener::bind(listen).await.map_err(|source| EmulatorError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| EmulatorError::Bind { addr: listen, source })?;
        let edge_listener = match edge_listen {
            Some(e) => Some(TcpListener::bind(e).await.map_err(|source| EmulatorError::Bind { addr: e, source })?),
            None => None,
        };
        let router = server::router(app.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "emulator server stopped with an error");
            }
        });
        info!(%addr, "cloudflare emulator listening");
        let mut handle = EmulatorHandle::new(app.clone(), addr, tx, task);
        if let Some(rt) = &app.runtime {
            rt.set_emulator_addr(addr);
            info!(workerd = %rt.workerd().path().display(), version = %rt.workerd().date(), "running Workers on workerd");
            handle.add_task(tokio::spawn(crate::runtime::supervise(app.clone(), rt.clone())));
        }
        if let Some(edge) = edge_listener {
            let edge_addr = edge
                .local_addr()
                .map_err(|source| EmulatorError::Bind { addr: edge_listen.unwrap_or(addr), source })?;
            let router = crate::edge::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
            let mut stopping = app.subscribe_stopping();
            let edge_task = tokio::spawn(async move {
                let served = axum::serve(edge, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopping.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "emulator edge listener stopped with an error");
                }
            });
            info!(addr = %edge_addr, "cloudflare emulator edge listening");
            handle.set_edge(edge_addr, edge_task);
        }
        Ok(handle)
    }
}
