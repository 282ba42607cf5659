//! Command line: `run | crds | deploy | plan | validate`.

pub mod deploy;
pub mod import;
pub mod manifests;
pub mod output;
pub mod run;
pub mod schema_check;
pub mod validate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run Cloudflare Workers services from Kubernetes custom resources.
#[derive(Debug, Parser)]
#[command(name = "clodo-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers (default).
    Run(RunArgs),
    /// Print all CRDs as YAML, or write one file per kind with --dir.
    Crds {
        /// Write `<kind>.yaml` files into this directory instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Reconcile the manifests once against Cloudflare and print the final status.
    Deploy(DeployArgs),
    /// Dry run: print the changes a deploy would make, change nothing.
    Plan(DeployArgs),
    /// Offline checks for CI: schema, CEL rules, templates and security policy. Exit 1 on violations.
    Validate {
        /// Manifest files or directories.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Also fetch OCI and URL code sources: checks reachability, digests and size limits.
        #[arg(long)]
        online: bool,
        #[command(flatten)]
        artifacts: crate::source::SourceArgs,
        #[command(flatten)]
        common: output::CommonArgs,
    },
    /// Write clodo-operator manifests for an existing wrangler project or Clodo framework service.
    #[command(subcommand)]
    Import(import::ImportCommand),
}

/// Arguments of `deploy` and `plan`.
#[derive(Debug, Args, Clone)]
pub struct DeployArgs {
    /// Manifest files or directories (Customer, Secret, ConfigMap, CloudflareService).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Start the local Cloudflare emulator in-process, seeded from the Customer manifests.
    #[arg(long)]
    pub sandbox: bool,
    /// Where generated secrets and last statuses are kept between runs (not used with --sandbox).
    #[arg(long, default_value = ".clodo")]
    pub state_dir: PathBuf,
    /// Cloudflare API base URL.
    #[arg(long, env = "CLOUDFLARE_API_BASE_URL")]
    pub cloudflare_api_base_url: Option<String>,
    /// workerd binary that runs the sandbox's deployed Workers, so production tests reach real code
    /// [default: `workerd` on PATH, then node_modules/ of the working directory or a parent].
    #[arg(long, env = "WORKERD_BIN")]
    pub workerd: Option<PathBuf>,
    /// Artifact cache and size limits for OCI and URL code sources.
    #[command(flatten)]
    pub artifacts: crate::source::SourceArgs,
    #[command(flatten)]
    pub common: output::CommonArgs,
}

/// Arguments of `run`.
#[derive(Debug, Clone, Parser)]
pub struct RunArgs {
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "CLODO_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Take a coordination Lease so that only one replica reconciles.
    #[arg(long, env = "CLODO_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "CLODO_LEASE_NAME", default_value = "clodo-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Seconds a Lease stays valid without renewal (others wait this long to take over).
    #[arg(long, env = "CLODO_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds the leader keeps acting without a successful renewal; then it stops all
    /// Cloudflare requests and exits. Must be shorter than the lease duration.
    #[arg(long, env = "CLODO_RENEW_DEADLINE_SECONDS", default_value_t = 10)]
    pub renew_deadline_seconds: u64,
    /// Seconds between renewals (and between a standby's attempts).
    #[arg(long, env = "CLODO_RETRY_PERIOD_SECONDS", default_value_t = 2)]
    pub retry_period_seconds: u64,
    /// Identity of this replica in the Lease.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Only watch these namespaces (comma separated); empty = all.
    #[arg(long, env = "CLODO_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Only reconcile objects matching this label selector (e.g. clodo.dev/shard=a).
    #[arg(long, env = "CLODO_SELECTOR")]
    pub selector: Option<String>,
    /// Resync interval in seconds (jittered by up to 10%).
    #[arg(long, env = "CLODO_RESYNC_SECONDS", default_value_t = 600)]
    pub resync_seconds: u64,
    /// Concurrent reconciles per controller.
    #[arg(long, env = "CLODO_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Cloudflare API base URL.
    #[arg(long, env = "CLOUDFLARE_API_BASE_URL")]
    pub cloudflare_api_base_url: Option<String>,
    /// Client-side Cloudflare rate limit per token, REQUESTS/SECONDS.
    #[arg(long, env = "CLODO_CF_RATE_LIMIT", default_value = "1200/300")]
    pub rate_limit: RateLimitArg,
    /// Share of each token's budget that periodic resync reads may use, in (0, 1]. Changes
    /// (new or edited services) are always served first; resyncs are spaced to fit this share.
    #[arg(long, env = "CLODO_RESYNC_BUDGET_SHARE", default_value = "0.5")]
    pub resync_budget_share: crate::cloudflare::ResyncShare,
    /// Artifact cache and size limits for OCI and URL code sources.
    #[command(flatten)]
    pub artifacts: crate::source::SourceArgs,
}

/// `N/SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitArg {
    pub requests: u32,
    pub seconds: u64,
}

impl std::str::FromStr for RateLimitArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, secs) = s.split_once('/').ok_or_else(|| format!("expected REQUESTS/SECONDS, got {s:?}"))?;
        let requests: u32 = n.trim().parse().map_err(|_| format!("bad request count in {s:?}"))?;
        let seconds: u64 = secs.trim().parse().map_err(|_| format!("bad seconds in {s:?}"))?;
        if requests == 0 || seconds == 0 {
            return Err(format!("rate limit {s:?} must be positive"));
        }
        Ok(Self { requests, seconds })
    }
}

/// `crds`: print or write the CRDs.
pub fn crds(dir: Option<PathBuf>) -> anyhow::Result<()> {
    match dir {
        None => print!("{}", crate::crd::all_crds_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (stem, crd) in crate::crd::all_crds() {
                std::fs::write(dir.join(format!("{stem}.yaml")), crate::crd::crd_yaml(&crd)?)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_parses() {
        assert_eq!("1200/300".parse::<RateLimitArg>().unwrap(), RateLimitArg { requests: 1200, seconds: 300 });
        for bad in ["1200", "0/5", "x/5", "5/0"] {
            assert!(bad.parse::<RateLimitArg>().is_err(), "{bad}");
        }
    }

    #[test]
    fn resync_budget_share_is_validated_naming_the_flag() {
        let parse = |v: &str| Cli::try_parse_from(["clodo-operator", "run", &format!("--resync-budget-share={v}")]);
        match parse("0.25").unwrap().command {
            Some(Command::Run(r)) => assert_eq!(r.resync_budget_share.fraction(), 0.25),
            other => panic!("{other:?}"),
        }
        for bad in ["0", "1.5", "-1", "half"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("--resync-budget-share") && e.contains("greater than 0 and at most 1"), "{bad}: {e}");
        }
        match Cli::try_parse_from(["clodo-operator", "run"]).unwrap().command {
            Some(Command::Run(r)) => assert_eq!(r.resync_budget_share.fraction(), 0.5),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_commands() {
        let cli = Cli::try_parse_from(["clodo-operator", "deploy", "-f", "examples/", "--sandbox"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Deploy(DeployArgs { sandbox: true, .. }))));
        let cli =
            Cli::try_parse_from(["clodo-operator", "run", "--leader-election", "false", "--watch-namespaces", "a,b"])
                .unwrap();
        match cli.command {
            Some(Command::Run(r)) => {
                assert!(!r.leader_election);
                assert_eq!(r.watch_namespaces, vec!["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
