//! `sms-runtime`: where every task of a node runs.
//!
//! - [`TaskCenter`]: every task tracked and named, cancelled in one place,
//!   and waited for with a bound at shutdown (no task escapes a flush).
//! - [`Worker`]: a component loop under supervision: a loop that fails is
//!   logged, reported and started again after a growing pause.
//! - [`SingleFlight`]: at most one run of something at a time.
//! - [`retry`]: the one place that names the `backoff` crate.

pub mod retry;
mod single_flight;
mod task_center;
mod worker;

pub use single_flight::{Flight, SingleFlight};
pub use task_center::TaskCenter;
pub use worker::{Worker, WorkerState};
