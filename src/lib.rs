//! clodo-operator: run Cloudflare Workers services from Kubernetes custom resources.

pub mod cli;
pub mod crd;
pub mod engine;
