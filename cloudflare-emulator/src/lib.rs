//! A local emulator of the Cloudflare API v4 subset used by clodo-operator.
//!
//! Start one in-process on a random port:
//!
//! ```no_run
//! # async fn demo() -> Result<(), cloudflare_emulator::EmulatorError> {
//! let emu = cloudflare_emulator::Emulator::builder()
//!     .account("0123456789abcdef0123456789abcdef")
//!     .token("tok", &["0123456789abcdef0123456789abcdef"])
//!     .zone("example.com", "0123456789abcdef0123456789abcdef")
//!     .start()
//!     .await?;
//! println!("CLOUDFLARE_API_BASE_URL={}", emu.base_url());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! With a `workerd` binary ([`Workerd::discover`], [`EmulatorBuilder::workerd`]) it also runs
//! the deployed Worker versions and serves them on an edge listener ([`EmulatorHandle::edge_url`]).
//!
//! See the crate README for the endpoints, test controls and differences from the real API.

mod app;
mod auth;
mod bindings;
mod builder;
mod config;
mod d1;
mod do_migrations;
mod edge;
mod envelope;
mod faults;
mod handle;
mod ids;
mod journal;
pub mod model;
mod ratelimit;
mod routes;
pub mod runtime;
mod server;
mod views;
mod workers;

use std::path::PathBuf;

pub use builder::{Emulator, EmulatorBuilder};
pub use edge::{VERSION_KEY_HEADER, VERSION_OVERRIDES_HEADER};
pub use faults::Faults;
pub use handle::{EmulatorHandle, SHUTDOWN_GRACE};
pub use journal::{JOURNAL_CAPACITY, JournalEntry};
pub use runtime::{RuntimeError, WORKERD_NPM_VERSION, WorkerProcess, Workerd, WorkerdSource};

/// Path prefix of the API (`CLOUDFLARE_API_BASE_URL` = `http://ADDR/client/v4`).
pub const API_PREFIX: &str = "/client/v4";

/// Errors of the library API (starting, state directory, inspection helpers).
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is not valid: {message}")]
    StateFile { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("unknown account {0}")]
    UnknownAccount(String),
    #[error("unknown D1 database {0}")]
    UnknownDatabase(String),
    #[error("D1: {0}")]
    D1(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}
