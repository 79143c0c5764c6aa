//! Read models: what the admin surface shows, assembled by the site's
//! queries and converted to the wire at the edge.

use crate::link::LinkState;
use crate::model::*;

/// One link as an administrator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkView {
    pub to: SiteCode,
    pub state: LinkState,
    pub queued_jobs: u64,
    pub failed_jobs: u64,
    pub server: String,
    pub detail: String,
    pub refused_frames: u64,
    pub chunk_bytes_sent: u64,
    /// How far the neighbour's clock is ahead of this node's (negative:
    /// behind), from its last link handshake here.
    pub clock_skew_ms: Option<i64>,
}

/// A site in the list a primary keeps, with health at a glance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteRow {
    pub record: SiteRecord,
    /// Error and warning status messages from the site in the last hour.
    pub recent_errors: u32,
    pub recent_warnings: u32,
    /// This node's link to the site (direct neighbours with a sender only).
    pub link_state: Option<LinkState>,
    /// The software version its last CT2 reported.
    pub version: String,
    /// When it last reported to this site (a CT2 or a status message), by
    /// this site's clock; None: not since tracking began.
    pub last_report_unix_ms: Option<u64>,
    /// How long ago that was, when the row was made.
    pub report_age_ms: Option<u64>,
    /// Silent for longer than its polling intervals allow.
    pub stale: bool,
}

impl SiteRow {
    /// The status an operator sees: `Stale` for a silent site, else the
    /// install status.
    pub fn shown_status(&self) -> String {
        if self.stale {
            "Stale".to_string()
        } else {
            self.record.status.to_string()
        }
    }
}

/// What a node reports about itself (`controller status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub identity: Option<Identity>,
    pub logon: crate::link::LogonView,
    pub components: Vec<ComponentState>,
    pub links: Vec<LinkView>,
    pub address: String,
    pub node_id: String,
    pub serial: u64,
    pub bootstrap_state: String,
    pub bootstrap_detail: String,
    pub duplicates_dropped: u64,
    pub connections_refused: u64,
    pub calls_refused: u64,
}

/// A file package received here, with the digest of what actually landed
/// (empty until it is complete at its destination).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageView {
    pub package: crate::records::ReceivedPackage,
    pub sha256_hex: String,
}

/// What `send-package` queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageSent {
    pub job_id: uuid::Uuid,
    pub size_bytes: u64,
    pub chunk_count: u32,
    pub sha256_hex: String,
}
