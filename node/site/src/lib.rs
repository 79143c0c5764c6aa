//! `sms-site`: the SMS site components, domain only (no wire types: this
//! crate does not depend on tonic, prost or the proto crate).
//!
//! Layers, lowest first; a module calls only modules below it, and calls
//! that must go up (a stored phase report to the Hierarchy Manager, a
//! finished deinstall, an install's phase 1 and 2) go through [`ports::Upcalls`],
//! registered by [`wiring`]:
//!
//! 1. [`core`] (shared core), [`ports`] (remote nodes, upcalls),
//!    [`site_component`] (the component record), [`site_records`] (the
//!    Hierarchy Manager's records under one lock), [`links`] (link registry),
//!    [`retention`] (how long received packages are kept),
//!    [`status_rules`] (status filter rules, compiled)
//! 2. [`status_actions`] (the rules' webhooks and programs), then
//!    [`status`]: reporting a status message
//! 3. transport: [`sender`], [`scheduler`] (routing, queueing, links),
//!    [`despooler`]
//! 4. [`status_manager`] (store and replicate), [`bootstrap`], [`logon`],
//!    management points: [`mp_setup`] and [`mp_agent`] (on the server that
//!    holds the role), [`mp_db`] (the site database they use),
//!    [`mp_install`] (the Site Component Manager's installs) and
//!    [`mp_control`] (MP Control Manager's verification)
//! 5. [`site_config`] (Site Configuration Manager: the watchdog cycle)
//! 6. [`hierarchy`] (Hierarchy Manager), [`stale`] (sites silent too long)
//! 7. [`ops`] (the administrator's operations), [`queries`] (read models)
//!    and [`relay`] (reaching a site by its code, hop by hop)
//! 8. [`wiring`]

pub mod bootstrap;
pub mod core;
pub mod despooler;
pub mod error;
pub mod hierarchy;
pub mod links;
pub mod logon;
pub mod mp_agent;
pub mod mp_control;
pub mod mp_db;
pub mod mp_install;
pub mod mp_setup;
pub mod ops;
pub mod ports;
pub mod queries;
pub mod relay;
pub mod retention;
pub mod scheduler;
pub mod sender;
pub mod site_component;
pub mod site_config;
pub mod site_records;
pub mod stale;
pub mod status;
pub mod status_actions;
pub mod status_manager;
pub mod status_rules;
pub mod trust;
pub mod wiring;
pub mod witness;

pub use crate::core::{CoreConfig, Ctx, DEINSTALL_MARKER};

#[cfg(test)]
mod tests;
