//! Logging setup: `RUST_LOG` filter, JSON output when `LOG_FORMAT=json`.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Colour codes only for a person at a terminal: never in files, pipes or log collectors.
fn ansi() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Install the global subscriber. Safe to call once per process.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn,hyper=warn,tower=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(std::io::stderr))
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(false).with_ansi(ansi()).with_writer(std::io::stderr)).try_init()
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

/// Quieter logging for one-shot commands: warnings only unless `RUST_LOG` says otherwise.
pub fn init_cli() {
    if std::env::var_os("RUST_LOG").is_none() {
        let _ = tracing_subscriber::registry()
            .with(EnvFilter::new("warn"))
            .with(fmt::layer().with_target(false).with_ansi(ansi()).with_writer(std::io::stderr))
            .try_init();
    } else {
        init();
    }
}
