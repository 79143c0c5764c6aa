//! Unit tests of the site components' logic (in-crate, so they reach
//! `pub(crate)` items), with a temp store and fake ports.

mod support;

mod bootstrap;
mod control_change;
mod delete;
mod delivery;
mod keepalive;
mod limits;
mod mp;
mod ops;
mod poison;
mod records;
mod relay;
mod routing;
mod sender;
mod skew;
mod stale;
mod stall;
mod status;
mod status_rules;
mod storage_faults;
mod trust;
mod validate;
