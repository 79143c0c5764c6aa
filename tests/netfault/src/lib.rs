//! Network faults between real `sms-node` processes.
//!
//! Loopback never loses, delays or blackholes a packet, so the transport's
//! behaviour on a bad line is only seen here: each node runs in a network
//! namespace of its own ([`net`]), the two joined by a veth pair, and the
//! faults are iptables rules on that pair (silent DROP for a blackhole or a
//! partition, the `statistic` match for random loss) plus a user-space
//! delay relay ([`relay`]) because this kernel has no netem. [`site`]
//! starts the sites through the one cluster runner (`sms-cluster`) and
//! drives them with the admin gRPC API from inside their namespaces.
//!
//! Needs root and `ip netns`; without them every test prints one
//! `SKIPPED: ...` line and passes. Namespaces and veths are created per
//! test and deleted by guards, also when a test fails.

pub mod net;
pub mod relay;
pub mod site;
pub mod tcp;

pub use net::{Link, Ns, NsRuntime};
pub use relay::Relay;
pub use site::{delivery, exclusive, flow, wait_until, Delivery, Flow, Rig, Site};
pub use tcp::TcpWorst;
