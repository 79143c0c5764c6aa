//! `sms-types`: the domain vocabulary every layer shares, with no I/O.
//!
//! Site codes, site status, site control (CT0/CT1/CT2), jobs and their
//! payloads, status messages and their catalogue, faults, logon records,
//! the link vocabulary the transport's ports speak, and the read models the
//! admin surface shows. The store serialises these; `sms-proto` converts
//! them to and from the wire.

pub mod catalog;
pub mod fault;
pub mod json_diff;
pub mod limits;
pub mod link;
mod model;
pub mod mp;
pub mod records;
pub mod stats;
pub mod status_rules;
pub mod views;

pub use model::*;

#[cfg(test)]
mod tests;
