//! The one local cluster runner: real `sms-node` processes on loopback, each
//! with its own data dir and an OS-chosen (or given) port. The end-to-end
//! tests, the benchmark and `controller up` all start nodes through it, so
//! how a node is launched, found, stopped and waited on is decided once.
//!
//! Process control ([`Cluster`], [`Node`]) is blocking; the gRPC helpers
//! ([`admin`], [`wait_active`], [`create_secondary`],
//! [`Cluster::three_tiers`]) are async, and [`block_on`] runs them from
//! synchronous tests.

mod binary;
mod grpc;
mod node;
mod trust;

pub use binary::{find_node_binary, Lookup, NodeBinary, Source, NODE_BIN_ENV};
pub use grpc::{
    admin, block_on, create_secondary, join_token, wait_active, wait_active_with, Admin, ThreeTiers,
};
pub use node::{parse_addr_file, Cluster, Node, StartError, Stopped, ADDR_FILE, STDERR_FILE};
pub use trust::{same_as, tls_for};
