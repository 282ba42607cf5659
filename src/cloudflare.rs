//! The Cloudflare client (workspace crate `cloudflare-client`), re-exported for the operator.

pub use cloudflare_client::*;
