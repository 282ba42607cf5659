use clap::Parser;
use clodo_operator::cli::{self, Cli, Command};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crds { dir }) => cli::crds(dir),
        other => anyhow::bail!("command not available yet: {other:?}"),
    }
}
