//! `sms-server`: one `sms-node` process.
//!
//! The composition root ([`node`]: `Node::start` and `shutdown`), the gRPC
//! services ([`rpc`]: convert, one call into the site, convert), the peer
//! clients that implement the site's ports over gRPC ([`peers`]), and
//! logging ([`logging`]). The components themselves are in `sms-site`; the
//! store in `sms-store`; the domain vocabulary in `sms-types`.

pub mod audit;
pub mod cli;
pub mod console;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod mp_http;
pub mod node;
pub mod peers;
mod peers_mp;
pub mod renewal;
pub mod rpc;
pub mod security;
pub mod service_manager;

pub use node::{Node, NodeConfig, ADDR_FILE};
pub use peers::Connector;
pub use security::{NodeTls, Security};
pub use sms_site::stale::DEFAULT_STALE_AFTER_INTERVALS;
