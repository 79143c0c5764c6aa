//! The end-to-end tests: real `sms-node` and `controller` processes on
//! loopback, started through the cluster runner (`sms-cluster`). One test
//! binary, so the suite is linked once rather than once per file.

mod support;

mod cli;
mod console;
mod console_tls;
mod crash_recovery;
mod create_secondary;
mod disk_full;
mod failure_modes;
mod grpc_surface;
mod k8s_tokens;
mod lifecycle;
mod logon;
mod logs;
mod metrics;
mod mp;
mod node_config;
mod route;
mod status_load;
mod status_rules;
mod transport;
mod trust;
