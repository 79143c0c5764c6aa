//! `controller`: the administrator's CLI for an SMS site hierarchy. Every
//! command is one file under [`commands`]; all of them talk to a node's
//! Admin gRPC service.

pub mod cli;
pub mod client;
pub mod commands;
pub mod output;

pub use cli::Cli;
