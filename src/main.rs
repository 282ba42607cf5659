use clap::Parser;
use clodo_operator::cli::{self, Cli, Command, RunArgs};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let code = runtime.block_on(async move {
        match cli.command {
            Some(Command::Crds { dir }) => cli::crds(dir).map(|_| 0),
            Some(Command::Deploy(args)) => {
                clodo_operator::telemetry::init_cli();
                cli::deploy::deploy(args, false).await
            }
            Some(Command::Plan(args)) => {
                clodo_operator::telemetry::init_cli();
                cli::deploy::deploy(args, true).await
            }
            Some(Command::Validate { files, online, artifacts, common }) => {
                cli::validate::validate(&files, &common, online.then_some(&artifacts)).await
            }
            Some(Command::Import(cmd)) => cli::import::run(cmd),
            Some(Command::Run(args)) => run(args).await.map(|_| 0),
            None => run(RunArgs::parse_from(["run"])).await.map(|_| 0),
        }
    })?;
    std::process::exit(code);
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    clodo_operator::telemetry::init();
    let client = kube::Client::try_default().await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        cli::run::shutdown_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight passes");
        let _ = stop_tx.send(true);
    });
    cli::run::run_operator(args, client, stop_rx, None).await
}
