//! Typed endpoints, one file per API area. Each adds methods to [`crate::CloudflareClient`] and
//! defines its request/response types; `EP_*` constants are the route templates used as the
//! `endpoint` label.

pub mod bindings;
pub mod d1;
pub mod d1_export;
pub mod deployments;
pub mod dns;
pub mod domains;
pub mod durable_objects;
pub mod kv;
pub mod queues;
pub mod r2;
pub mod routes;
pub mod schedules;
pub mod scripts;
pub mod secrets;
pub mod subdomain;
pub mod tokens;
pub mod versions;
pub mod worker_settings;
pub mod zones;
