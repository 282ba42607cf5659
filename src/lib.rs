//! clodo-operator: run Cloudflare Workers services from Kubernetes custom resources.

pub mod admin;
pub mod cli;
pub mod cloudflare;
pub mod controller;
pub mod crd;
pub mod engine;
pub mod import;
pub mod lease;
pub mod metrics;
pub mod prodtest;
pub mod source;
pub mod telemetry;
