//! What crosses between sites, in domain terms: the transport's link
//! handshake and its answers, and the views one node asks another for.
//! The server crate maps these to and from gRPC; components never see the
//! wire.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::model::SiteCode;

/// Who opens a link, sent as the first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkHello {
    pub source_site: SiteCode,
    pub dest_site: SiteCode,
    pub source_address: String,
    pub link_secret: String,
    /// The sender's clock when it opened the link (0: not sent).
    pub sent_unix_ms: u64,
}

/// How a link's connection is opened, from the address's settings (the
/// connector applies them per connection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkOptions {
    /// Probe the connection after this long without traffic, and drop it
    /// when the probe is not answered within as long again. None: the
    /// node's own keepalive (`--keepalive-secs`).
    pub keepalive: Option<std::time::Duration>,
    /// Present a certificate from an authority outside this hierarchy, as a
    /// site whose certificate exchange failed does (fault
    /// `cert-exchange-failure`): the neighbour refuses the connection.
    pub foreign_certificate: bool,
}

/// What the despooler at the other end answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// (job id, chunk index, duplicate)
    Acks(Vec<(Uuid, u32, bool)>),
    Refused {
        job_id: Uuid,
        reason: String,
    },
}

/// Why a link session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The peer severed the link on purpose: pause, charge nothing.
    #[error("{0}")]
    Severed(String),
    /// The peer refuses us (not a neighbour, bad secret, not installed).
    #[error("{0}")]
    Refused(String),
    /// Network or peer failure.
    #[error("{0}")]
    Failed(String),
    /// Frames were out and nothing came back for much longer than the link
    /// usually takes: the connection is replaced (a TCP connection whose
    /// retransmission timeout has backed off to seconds under loss stalls
    /// the whole direction while it still looks up). Charges nothing.
    #[error("{0}")]
    Stalled(String),
    /// This one job can never go on the link (its frame is larger than the
    /// link takes): it alone fails, the stream goes on.
    #[error("{0}")]
    TooLarge(String),
    /// The receiver cannot store anything now (its disk is full, or its
    /// store failed to write and is reopening). Nothing is wrong with the
    /// jobs: the link backs off and charges none of them.
    #[error("{0}")]
    ReceiverFull(String),
}

/// Why a link is refused by this site's despooler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Cut by an administrator; the peer should wait without giving up.
    Severed(String),
    /// The peer is not a neighbour, or presented the wrong secret.
    NotNeighbour(String),
    /// This node cannot receive jobs (bare, or the despooler is not installed).
    Unavailable(String),
    /// This node cannot store jobs now (see [`LinkError::ReceiverFull`]).
    Full(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Severed(m)
            | Refusal::NotNeighbour(m)
            | Refusal::Unavailable(m)
            | Refusal::Full(m) => m,
        }
    }
}

/// Link state as the sender sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Nothing to send and no stream open.
    Idle,
    Connecting,
    Up,
    /// Waiting after a failure before the next attempt.
    Retrying,
    /// Cut by an administrator.
    Severed,
    /// The bootstrap was delivered; the child has not reported yet.
    AwaitingChild,
}

impl LinkState {
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkState::Idle => "idle",
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Retrying => "retrying",
            LinkState::Severed => "severed",
            LinkState::AwaitingChild => "awaiting-child",
        }
    }
}

impl FromStr for LinkState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            LinkState::Idle,
            LinkState::Connecting,
            LinkState::Up,
            LinkState::Retrying,
            LinkState::Severed,
            LinkState::AwaitingChild,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
        .ok_or_else(|| format!("unknown link state {s:?}"))
    }
}

/// A failed bootstrap delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapError {
    pub message: String,
    /// The node will never take this install (e.g. already installed).
    pub permanent: bool,
}

/// What a node is: the answer to "who are you" that installs, discovery
/// and deletes branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Bare,
    SiteServer,
    LogonServer,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Bare => "bare",
            NodeRole::SiteServer => "site-server",
            NodeRole::LogonServer => "logon-server",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NodeRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bare" => Ok(NodeRole::Bare),
            "site-server" => Ok(NodeRole::SiteServer),
            "logon-server" => Ok(NodeRole::LogonServer),
            other => Err(format!(
                "unknown node role {other:?} (bare, site-server, logon-server)"
            )),
        }
    }
}

/// A node's answer to a probe of its bootstrap service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProbe {
    pub role: NodeRole,
    pub site_code: String,
    /// none, running, failed, complete
    pub bootstrap_state: String,
    pub bootstrap_detail: String,
    pub node_id: String,
    pub domain: String,
}

/// A parent primary's answer to "attach me below you".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub parent_site_code: String,
    pub parent_address: String,
    pub link_secret: String,
    /// The parent and every site above it, nearest first.
    pub ancestors: Vec<String>,
}

/// What a node reports of itself as a (potential) logon server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonView {
    pub role: NodeRole,
    /// The domain this node is a member server of (empty: none).
    pub domain: String,
    /// The site whose logon server (or site server) this node is.
    pub site_code: String,
    pub site_address: String,
    pub script_version: u64,
    /// Current SMS unique ID range [range_start, range_end) and what is left.
    pub range_start: u64,
    pub range_end: u64,
    pub next_id: u64,
    pub remaining: u64,
    pub node_id: String,
}

/// A site's request to install its logon server component on a member server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonInstallRequest {
    pub site_code: String,
    pub site_address: String,
    pub domain: String,
    pub script_version: u64,
    pub script: String,
    pub range_start: u64,
    pub range_end: u64,
}

/// A site's current logon script, pushed to its logon servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonScript {
    pub site_code: String,
    pub version: u64,
    pub script: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_refuse_unknowns() {
        for r in [NodeRole::Bare, NodeRole::SiteServer, NodeRole::LogonServer] {
            assert_eq!(r.as_str().parse::<NodeRole>(), Ok(r));
            assert_eq!(r.to_string(), r.as_str());
        }
        assert!("Bare".parse::<NodeRole>().is_err());
    }

    #[test]
    fn refusal_message_is_the_reason() {
        assert_eq!(Refusal::Severed("cut".into()).message(), "cut");
        assert_eq!(Refusal::NotNeighbour("who".into()).message(), "who");
        assert_eq!(Refusal::Unavailable("bare".into()).message(), "bare");
    }
}
