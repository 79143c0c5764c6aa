//! `sms-node`: one node of an SMS-style site hierarchy.
//!
//! Each SMS component is a module with its own run loop: [`scheduler`],
//! [`sender`], [`despooler`], [`site_config`] (Site Configuration Manager),
//! [`hierarchy`] (Hierarchy Manager), [`status_manager`], [`site_component`]
//! (Site Component Manager) and [`bootstrap`]. [`store`] owns the sled
//! database; [`rpc`] is the gRPC edge; [`node`] wires them and shuts them
//! down.

pub mod bootstrap;
pub mod catalog;
pub mod despooler;
pub mod hierarchy;
pub mod logging;
pub mod logon;
pub mod model;
pub mod node;
pub mod rpc;
pub mod scheduler;
pub mod sender;
pub mod site_component;
pub mod site_config;
pub mod status_manager;
pub mod store;

pub use node::{Node, NodeConfig};
