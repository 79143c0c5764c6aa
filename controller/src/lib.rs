//! `controller`: the administrator's CLI for an SMS site hierarchy. The
//! commands live under [`commands`], grouped by the noun they act on; how
//! their results look is decided once, in [`output`]. All of them talk to a
//! node's Admin gRPC service through [`client`].

pub mod cli;
pub mod client;
pub mod commands;
pub mod k8s;
pub mod output;
pub mod units;
pub mod watch;
pub mod wire;

pub use cli::Cli;
