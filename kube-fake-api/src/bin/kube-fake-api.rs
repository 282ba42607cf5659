//! `kube-fake-api` binary: serve the fake Kubernetes API until Ctrl-C or SIGTERM, so
//! kubectl, helm or the operator can be pointed at it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// A fake Kubernetes API server (no authentication, in memory).
#[derive(Debug, Parser)]
#[command(name = "kube-fake-api", version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Write a kubeconfig pointing at the server to this file.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Create a missing namespace on first use instead of answering 404 like a real cluster.
    #[arg(long)]
    auto_create_namespaces: bool,
}

#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error(transparent)]
    Start(#[from] kube_fake_api::Error),
    #[error("writing the kubeconfig {path}: {source}")]
    Kubeconfig { path: PathBuf, source: std::io::Error },
    #[error("waiting for a signal: {0}")]
    Signal(std::io::Error),
}

#[tokio::main]
async fn main() -> Result<(), MainError> {
    let cli = Cli::parse();
    let api = kube_fake_api::FakeApiServer::builder()
        .listen(cli.listen)
        .strict_namespaces(!cli.auto_create_namespaces)
        .start()
        .await?;
    if let Some(path) = &cli.kubeconfig {
        std::fs::write(path, api.kubeconfig())
            .map_err(|source| MainError::Kubeconfig { path: path.clone(), source })?;
    }
    println!("listening on {}", api.url());
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(MainError::Signal)?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(MainError::Signal)?,
        _ = term.recv() => {}
    }
    api.shutdown().await;
    Ok(())
}
