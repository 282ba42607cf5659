//! Static configuration assembled by the builder (accounts, tokens, zones, limits).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which accounts a token may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenScope {
    All,
    Accounts(Vec<String>),
}

impl TokenScope {
    pub(crate) fn allows(&self, account_id: &str) -> bool {
        match self {
            TokenScope::All => true,
            TokenScope::Accounts(ids) => ids.iter().any(|a| a == account_id),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct TokenConfig {
    pub value: String,
    /// Public id (32 hex) reported by token verify and in the journal.
    pub id: String,
    pub scope: TokenScope,
}

#[derive(Clone, Debug)]
pub(crate) struct ZoneConfig {
    pub name: String,
    pub account_id: String,
    pub id: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub accounts: Vec<String>,
    pub tokens: Vec<TokenConfig>,
    pub zones: Vec<ZoneConfig>,
    /// Explicit workers.dev subdomains; other accounts get `<first 8 of account id>`.
    pub subdomains: BTreeMap<String, String>,
    pub rate_limit: u32,
    pub rate_window: Duration,
    pub latency: Duration,
    pub state_dir: Option<PathBuf>,
    pub listen: SocketAddr,
    /// Runs deployed Workers when set.
    pub workerd: Option<crate::runtime::Workerd>,
    /// Edge listener address; `None` = `127.0.0.1:0` when a runtime is configured, else no edge.
    pub edge_listen: Option<SocketAddr>,
}

impl Config {
    pub(crate) fn token(&self, value: &str) -> Option<&TokenConfig> {
        self.tokens.iter().find(|t| t.value == value)
    }
}

/// Default workers.dev subdomain for an account: its first 8 alphanumeric characters.
pub(crate) fn default_subdomain(account_id: &str) -> String {
    let s: String =
        account_id.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect::<String>().to_ascii_lowercase();
    if s.is_empty() { "emulated".to_string() } else { s }
}
