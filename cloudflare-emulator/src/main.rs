//! `cloudflare-emulator` binary: serve the emulated API until Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use cloudflare_emulator::{Emulator, WORKERD_NPM_VERSION, Workerd};
use tracing_subscriber::EnvFilter;

/// Local emulator of the Cloudflare API v4 subset used by clodo-operator.
#[derive(Debug, Parser)]
#[command(name = "cloudflare-emulator", version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Account id (repeatable).
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// API token (repeatable): `TOKEN=ACCOUNT_ID[,ACCOUNT_ID]` scopes it to accounts,
    /// a bare `TOKEN` is valid for all accounts.
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// Zone (repeatable): `NAME=ACCOUNT_ID`, or bare `NAME` for the first account.
    #[arg(long = "zone")]
    zones: Vec<String>,
    /// Persist state and D1 databases here (in memory when absent).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Per-token rate limit as `REQUESTS/SECONDS`.
    #[arg(long, default_value = "1200/300")]
    rate_limit: String,
    /// Milliseconds added to every API call.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// workerd binary that runs the deployed Workers (default: `workerd` on PATH, then
    /// node_modules/ of the working directory or a parent).
    #[arg(long, env = "WORKERD_BIN", conflicts_with = "no_workerd")]
    workerd: Option<PathBuf>,
    /// Do not run Worker code even if workerd is installed.
    #[arg(long)]
    no_workerd: bool,
    /// Edge listener serving the deployed Workers by Host header (default: the --listen
    /// address with the next port; port 0 picks a free port).
    #[arg(long)]
    edge_listen: Option<SocketAddr>,
}

/// The edge address: the flag, else the API address with the next port (0 stays 0).
fn edge_addr(listen: SocketAddr, flag: Option<SocketAddr>) -> SocketAddr {
    flag.unwrap_or_else(|| {
        let port = if listen.port() == 0 { 0 } else { listen.port().saturating_add(1) };
        SocketAddr::new(listen.ip(), port)
    })
}

fn parse_rate(s: &str) -> Result<(u32, Duration)> {
    let (n, secs) = s.split_once('/').context("--rate-limit must look like REQUESTS/SECONDS, e.g. 1200/300")?;
    let n: u32 = n.trim().parse().context("--rate-limit: bad request count")?;
    let secs: u64 = secs.trim().parse().context("--rate-limit: bad seconds")?;
    if secs == 0 {
        bail!("--rate-limit: the window must be at least one second");
    }
    Ok((n, Duration::from_secs(secs)))
}

/// `TOKEN=A,B` -> scoped; `TOKEN` (or anything whose right side is empty) -> all accounts.
fn parse_token(s: &str) -> (String, Option<Vec<String>>) {
    match s.split_once('=') {
        Some((t, accs)) if !t.is_empty() && !accs.is_empty() && !accs.contains('=') => (
            t.to_string(),
            Some(accs.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect()),
        ),
        _ => (s.to_string(), None),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let (requests, window) = parse_rate(&cli.rate_limit)?;
    let mut builder = Emulator::builder()
        .listen(cli.listen)
        .rate_limit(requests, window)
        .latency(Duration::from_millis(cli.latency_ms))
        .state_dir(cli.state_dir.clone());
    for a in &cli.accounts {
        builder = builder.account(a.clone());
    }
    for t in &cli.tokens {
        builder = match parse_token(t) {
            (token, Some(accounts)) => builder.token(token, &accounts),
            (token, None) => builder.token_all(token),
        };
    }
    for z in &cli.zones {
        let (name, account) = match z.split_once('=') {
            Some((n, a)) => (n.to_string(), a.to_string()),
            None => {
                let first =
                    cli.accounts.first().context("--zone NAME without =ACCOUNT_ID needs at least one --account")?;
                (z.clone(), first.clone())
            }
        };
        builder = builder.zone(name, account);
    }
    builder = builder.edge_listen(edge_addr(cli.listen, cli.edge_listen));
    if !cli.no_workerd {
        match Workerd::discover(cli.workerd.as_deref()).context("--workerd / WORKERD_BIN")? {
            Some((w, _)) => builder = builder.workerd(w),
            None => eprintln!(
                "workerd not found (--workerd, WORKERD_BIN, PATH, node_modules): deployed Workers are not run; \
                 install it with `npm install --no-save workerd@{WORKERD_NPM_VERSION}`"
            ),
        }
    }
    let emu = builder.start().await.context("starting the emulator")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}", emu.addr())?;
        out.flush()?;
        // Second line, best effort: a reader that only wanted the first line may be gone.
        if let Some(edge) = emu.edge_url() {
            let _ = writeln!(out, "edge listening on {edge}").and_then(|()| out.flush());
        }
    }
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    emu.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_flags() {
        assert_eq!(parse_token("T"), ("T".into(), None));
        assert_eq!(parse_token("T=a,b"), ("T".into(), Some(vec!["a".into(), "b".into()])));
        assert_eq!(parse_token("abc=="), ("abc==".into(), None));
    }

    #[test]
    fn edge_defaults_to_the_next_port() {
        let l: SocketAddr = "127.0.0.1:8787".parse().unwrap();
        assert_eq!(edge_addr(l, None), "127.0.0.1:8788".parse().unwrap());
        assert_eq!(edge_addr("127.0.0.1:0".parse().unwrap(), None), "127.0.0.1:0".parse().unwrap());
        assert_eq!(edge_addr(l, Some("127.0.0.1:9".parse().unwrap())), "127.0.0.1:9".parse().unwrap());
    }

    #[test]
    fn rate_flag() {
        assert_eq!(parse_rate("10/5").unwrap(), (10, Duration::from_secs(5)));
        assert!(parse_rate("10").is_err());
        assert!(parse_rate("10/0").is_err());
    }
}
