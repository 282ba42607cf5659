//! The reconcile core shared by the controllers and the CLI. It never touches `kube::Api`:
//! Kubernetes objects come in through [`resolve::ObjectSource`].

pub mod desired;
#[cfg(test)]
pub mod fixtures;
pub mod hash;
pub mod migrations;
pub mod plan;
pub mod render;
pub mod resolve;
pub mod secret;
pub mod security;
pub mod status;
