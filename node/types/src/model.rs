//! Domain types: what components work on. The gRPC edge converts to and from
//! the wire types in `sms-proto`; the store serialises these with postcard.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Milliseconds since the Unix epoch, the one clock every record uses.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the epoch as an RFC 3339 UTC time, for messages.
pub fn fmt_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// Version of the site software this build installs and reports in CT2s.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A validated site code: exactly three characters `[A-Z0-9]`, not a reserved
/// device name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SiteCode(String);

/// Names Windows reserves for devices; SMS refused them as site codes.
const RESERVED_CODES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];

/// Why a string is not a site code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SiteCodeError {
    #[error("site code {0:?} must be exactly 3 characters")]
    Length(String),
    #[error("site code {0:?} may only contain A-Z and 0-9")]
    Charset(String),
    #[error("site code {0:?} is a reserved device name")]
    Reserved(String),
}

impl SiteCode {
    /// The code as bytes, the prefix of per-site store keys.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SiteCode {
    type Err = SiteCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.chars().count() != 3 {
            return Err(SiteCodeError::Length(crate::limits::clip(s)));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Err(SiteCodeError::Charset(crate::limits::clip(s)));
        }
        if RESERVED_CODES.contains(&s) {
            return Err(SiteCodeError::Reserved(s.to_string()));
        }
        Ok(SiteCode(s.to_string()))
    }
}

impl TryFrom<String> for SiteCode {
    type Error = SiteCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SiteCode> for String {
    fn from(c: SiteCode) -> String {
        c.0
    }
}

impl fmt::Display for SiteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SiteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Job priority; the discriminant orders outbox keys (high first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    High = 0,
    Medium = 1,
    Low = 2,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Medium, Priority::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "high" => Ok(Priority::High),
            "medium" => Ok(Priority::Medium),
            "low" => Ok(Priority::Low),
            other => Err(format!("unknown priority {other:?} (high, medium, low)")),
        }
    }
}

/// Primary sites may have children; secondaries may not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteKind {
    Primary,
    Secondary,
}

impl SiteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteKind::Primary => "primary",
            SiteKind::Secondary => "secondary",
        }
    }
}

impl FromStr for SiteKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "primary" => Ok(SiteKind::Primary),
            "secondary" => Ok(SiteKind::Secondary),
            other => Err(format!("unknown site kind {other:?} (primary, secondary)")),
        }
    }
}

/// How this site reaches its parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    pub site_code: SiteCode,
    pub address: String,
    /// Secret presented in every Hello to the parent's despooler.
    pub link_secret: String,
}

/// What this node is once installed. A bare node has none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub site_code: SiteCode,
    pub site_name: String,
    pub kind: SiteKind,
    pub parent: Option<ParentLink>,
    pub installed_unix_ms: u64,
    pub version: String,
    /// Every site above this one, nearest first: none of them may be
    /// created or attached below it.
    pub ancestors: Vec<SiteCode>,
}

/// A route to a neighbouring site (SMS "address").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub site_code: SiteCode,
    pub server: String,
    pub retry_count: u32,
    pub retry_delay_ms: u64,
    pub concurrent_sendings: u32,
    pub rate_limit_bytes_per_sec: u64,
    pub schedule: Vec<ScheduleRule>,
    /// Seconds without traffic before the link's connection is probed (an
    /// HTTP/2 PING and TCP keepalive), and to wait for the answer: a link
    /// whose packets silently vanish is noticed within twice this. None:
    /// the node's `--keepalive-secs`. Per address because a slow or costly
    /// WAN link wants fewer probes than a LAN one wants quick detection.
    pub keepalive_secs: Option<u32>,
}

/// Between two UTC hours, only jobs of at least `lowest` priority pass
/// (SMS address schedules). `end_hour < start_hour` wraps past midnight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRule {
    pub start_hour: u8,
    pub end_hour: u8,
    pub lowest: Priority,
}

impl ScheduleRule {
    pub fn covers(&self, hour: u8) -> bool {
        if self.start_hour <= self.end_hour {
            (self.start_hour..self.end_hour).contains(&hour)
        } else {
            hour >= self.start_hour || hour < self.end_hour
        }
    }
}

impl Address {
    /// Whether jobs of priority `p` may pass at UTC `hour`.
    pub fn allows(&self, p: Priority, hour: u8) -> bool {
        self.schedule
            .iter()
            .filter(|r| r.covers(hour))
            .all(|r| p <= r.lowest)
    }

    /// Defaults: generous retries with a short backoff ceiling, so a restarted
    /// neighbour is reached again within seconds.
    pub fn new(site_code: SiteCode, server: String) -> Self {
        Address {
            site_code,
            server,
            retry_count: 20,
            retry_delay_ms: 2_000,
            concurrent_sendings: 256,
            rate_limit_bytes_per_sec: 0,
            schedule: vec![],
            keepalive_secs: None,
        }
    }
}

/// Install state of a logon server in site control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogonState {
    PendingInstall,
    Active,
    PendingUninstall,
}

impl LogonState {
    pub fn as_str(self) -> &'static str {
        match self {
            LogonState::PendingInstall => "pending-install",
            LogonState::Active => "active",
            LogonState::PendingUninstall => "pending-uninstall",
        }
    }
}

impl FromStr for LogonState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending-install" => Ok(LogonState::PendingInstall),
            "active" => Ok(LogonState::Active),
            "pending-uninstall" => Ok(LogonState::PendingUninstall),
            other => Err(format!("unknown logon server state {other:?}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogonServer {
    pub server: String,
    pub state: LogonState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub name: String,
    pub browse: Vec<String>,
    pub logon_servers: Vec<LogonServer>,
}

/// Default watchdog polling interval when a site control does not set one.
pub const DEFAULT_POLLING_INTERVAL_MS: u64 = 60_000;

/// A site control image (CT0), or the proposal a CT1 carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteControl {
    pub site_code: SiteCode,
    pub site_name: String,
    pub serial: u64,
    pub parent_site_code: Option<SiteCode>,
    pub polling_interval_ms: u64,
    pub domains: Vec<Domain>,
    pub addresses: Vec<Address>,
    pub version: String,
    /// Next SMS unique ID range start handed to logon servers.
    pub next_unique_id: u64,
    /// Servers holding the management point role (seed 001).
    pub management_points: Vec<crate::mp::ManagementPoint>,
    /// Status filter rules, in order ([`crate::status_rules`]).
    pub status_rules: Vec<crate::status_rules::StatusRule>,
}

impl SiteControl {
    /// A newly installed site's first control image: serial 1, the default
    /// polling interval, this software's version, nothing configured yet.
    pub fn first(
        site_code: SiteCode,
        site_name: String,
        parent_site_code: Option<SiteCode>,
    ) -> SiteControl {
        SiteControl {
            site_code,
            site_name,
            serial: 1,
            parent_site_code,
            polling_interval_ms: DEFAULT_POLLING_INTERVAL_MS,
            domains: vec![],
            addresses: vec![],
            version: SOFTWARE_VERSION.to_string(),
            next_unique_id: 1,
            management_points: vec![],
            status_rules: vec![],
        }
    }
}

/// A proposed change to a site's control image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ct1 {
    /// Serial of the CT0 this was made against: older means stale.
    pub base_serial: u64,
    pub proposed: SiteControl,
    pub origin: String,
    /// The signing site's signature. On a secure site a CT1 is applied
    /// only from its signed body, so what is applied is exactly what the
    /// signer signed, whatever the hops did to the other fields.
    #[serde(default)]
    pub signature: Option<SignedBody>,
}

/// A signature over a body (the postcard encoding of the signed record,
/// without its signature), with the signer's certificate chain.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBody {
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
    /// DER, the signer's certificate first.
    pub chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SignedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedBody")
            .field("body_len", &self.body.len())
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentState {
    pub name: String,
    pub state: String,
}

/// A site's report of its installed state, sent up the tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ct2 {
    pub site_code: SiteCode,
    pub parent_site_code: Option<SiteCode>,
    pub serial: u64,
    pub control: SiteControl,
    pub components: Vec<ComponentState>,
    pub version: String,
    pub reported_unix_ms: u64,
    pub server: String,
    pub kind: SiteKind,
    /// The reporting site's signature (see [`Ct1::signature`]).
    #[serde(default)]
    pub signature: Option<SignedBody>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Severity {
    Informational,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "informational" | "info" => Ok(Severity::Informational),
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            other => Err(format!(
                "severity {:?} is not informational, warning or error",
                crate::limits::clip(other)
            )),
        }
    }
}

/// One status message occurrence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMessage {
    /// UUID v7: unique, time ordered, the key at every site it reaches.
    pub uid: Uuid,
    pub id: u32,
    pub severity: Severity,
    pub site_code: SiteCode,
    pub component: String,
    pub machine: String,
    pub time_unix_ms: u64,
    pub insertion_strings: Vec<String>,
    pub text: String,
}

/// Everything a bare node needs to install a secondary site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapPackage {
    pub site_code: SiteCode,
    pub site_name: String,
    pub parent_site_code: SiteCode,
    pub parent_address: String,
    pub init_control: SiteControl,
    pub link_secret: String,
    pub content: Vec<u8>,
    pub content_sha256: Vec<u8>,
    pub required_free_bytes: u64,
    pub version: String,
    pub server: String,
    pub ancestors: Vec<SiteCode>,
}

/// A file package as it sits in an outbox: its bytes live in the store's
/// package store (one file per package) under the job id, so a large
/// package is never one value. Every chunk but the last is `chunk_size`
/// bytes, which places chunk `i` at `i * chunk_size` in that file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePackage {
    pub name: String,
    pub total_size: u64,
    pub chunk_count: u32,
    pub chunk_size: u32,
    pub sha256: Vec<u8>,
}

impl FilePackage {
    /// Checks that size, chunk size and chunk count describe one layout
    /// (what the package store relies on to place chunks).
    pub fn check_layout(&self) -> Result<(), String> {
        if self.total_size == 0 || self.chunk_size == 0 {
            return Err(format!(
                "package {:?} has total size {} and chunk size {}; both must be above zero",
                short(&self.name),
                self.total_size,
                self.chunk_size
            ));
        }
        let expected = self.total_size.div_ceil(u64::from(self.chunk_size));
        if expected != u64::from(self.chunk_count) {
            return Err(format!(
                "package {:?} of {} bytes in chunks of {} has {} chunks, not {}",
                short(&self.name),
                self.total_size,
                self.chunk_size,
                expected,
                self.chunk_count
            ));
        }
        Ok(())
    }

    /// Where chunk `index` sits in the package: (offset, length), or None
    /// past the last chunk.
    pub fn chunk_range(&self, index: u32) -> Option<(u64, usize)> {
        if index >= self.chunk_count || self.chunk_size == 0 {
            return None;
        }
        let offset = u64::from(index) * u64::from(self.chunk_size);
        let len = self
            .total_size
            .checked_sub(offset)?
            .min(u64::from(self.chunk_size));
        (len > 0).then_some((offset, len as usize))
    }
}

/// A name cut for an error message: never echo a whole hostile value.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// One chunk of a file package on the wire: (index, bytes).
pub type Chunk = (u32, Vec<u8>);

/// What a job carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    Ct1(Ct1),
    Ct2(Ct2),
    Status(Vec<StatusMessage>),
    Probe(Vec<u8>),
    File(FilePackage),
    Bootstrap(Box<BootstrapPackage>),
    /// The parent removed this site from its hierarchy (delete-site): a
    /// secondary removes its install, a primary detaches and carries on as
    /// a central site with the sites below it.
    Deinstall(SiteCode),
    /// Certificates revoked at or above the sending site, for its whole
    /// subtree to refuse (serial in hex, reason). Sent down by a parent,
    /// whole each time (the list is small), and forwarded down again.
    Revocations(Vec<(String, String)>),
}

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Ct1(_) => "ct1",
            Payload::Ct2(_) => "ct2",
            Payload::Status(_) => "status",
            Payload::Probe(_) => "probe",
            Payload::File(_) => "file",
            Payload::Bootstrap(_) => "bootstrap",
            Payload::Deinstall(_) => "deinstall",
            Payload::Revocations(_) => "revocations",
        }
    }
}

/// A mini-job: the durable unit of site-to-site transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub source: SiteCode,
    pub dest: SiteCode,
    pub priority: Priority,
    pub created_unix_ms: u64,
    pub payload: Payload,
    /// Failed delivery attempts so far (bounded by the address retry count).
    pub attempts: u32,
    /// File packages: chunks the next hop has acknowledged (resume point).
    pub acked_chunks: u32,
}

impl Job {
    pub fn new(source: SiteCode, dest: SiteCode, priority: Priority, payload: Payload) -> Self {
        Job {
            id: Uuid::now_v7(),
            source,
            dest,
            priority,
            created_unix_ms: now_ms(),
            payload,
            attempts: 0,
            acked_chunks: 0,
        }
    }
}

/// A job whose retries are exhausted: kept, visible, retryable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedJob {
    pub job: Job,
    pub reason: String,
    pub failed_unix_ms: u64,
}

/// Status of a site in its parent Hierarchy Manager's site list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SiteStatus {
    Pending,
    Phase(u8),
    Active,
    Failed,
    Deleting,
    Upgrading,
}

impl SiteStatus {
    /// Install progress rank; reports never move a site backwards.
    pub fn progress(self) -> Option<u8> {
        match self {
            SiteStatus::Pending => Some(0),
            SiteStatus::Phase(n) => Some(n),
            SiteStatus::Active => Some(5),
            _ => None,
        }
    }
}

impl fmt::Display for SiteStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SiteStatus::Pending => f.write_str("Pending"),
            SiteStatus::Phase(n) => write!(f, "Phase {n} Complete"),
            SiteStatus::Active => f.write_str("Active"),
            SiteStatus::Failed => f.write_str("Failed"),
            SiteStatus::Deleting => f.write_str("Deleting"),
            SiteStatus::Upgrading => f.write_str("Upgrading"),
        }
    }
}

/// A site in the Hierarchy Manager's site list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub site_code: SiteCode,
    pub parent_site_code: Option<SiteCode>,
    pub kind: SiteKind,
    pub server: String,
    pub status: SiteStatus,
    pub status_changed_unix_ms: u64,
    /// Serial of the site's control as its last CT2 reported it.
    pub serial: u64,
    /// Secret the child presents on its link (children of this site only).
    pub link_secret: String,
    /// Sever the link the moment the bootstrap has started (fault on demand).
    pub sever_link_mid_bootstrap: bool,
}

pub use crate::fault::Fault;

/// What a parent keeps of a deleted child site, so that a site re-created
/// with the same code goes on with its SMS unique ID counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedSite {
    pub site_code: SiteCode,
    pub next_unique_id: u64,
    pub deleted_unix_ms: u64,
    /// Its server could not be told; it may still hold its install.
    pub orphaned: bool,
    pub server: String,
}

/// A logon server of this site, as the site tracks it (kept beside CT0,
/// merged into the site control views and CT2s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogonRecord {
    pub domain: String,
    pub server: String,
    pub state: LogonState,
    pub node_id: String,
    /// The last SMS unique ID range handed to it.
    pub range: (u64, u64),
    pub changed_unix_ms: u64,
}

/// The logon server component installed on a member server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogonInstall {
    pub site_code: SiteCode,
    pub site_address: String,
    pub domain: String,
    pub script_version: u64,
    pub script: String,
    /// ID ranges [start, end) still to hand out, in order; the first is current.
    pub ranges: Vec<(u64, u64)>,
    /// Next ID of the current range.
    pub next_id: u64,
}

impl LogonInstall {
    /// IDs left across all ranges.
    pub fn remaining(&self) -> u64 {
        self.ranges
            .iter()
            .enumerate()
            .map(|(i, (s, e))| {
                if i == 0 {
                    e.saturating_sub(self.next_id.max(*s))
                } else {
                    e - s
                }
            })
            .sum()
    }

    /// Takes up to `count` IDs; fewer if the ranges run out.
    pub fn take(&mut self, count: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let Some(&(start, end)) = self.ranges.first() else {
                break;
            };
            self.next_id = self.next_id.max(start);
            if self.next_id >= end {
                self.ranges.remove(0);
                continue;
            }
            out.push(self.next_id);
            self.next_id += 1;
        }
        out
    }
}

/// Where a bare node's bootstrap stands; persisted so a restart resumes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootstrapState {
    /// Package received; phases up to `completed_phase` are done.
    Running {
        completed_phase: u8,
    },
    Failed {
        phase: u8,
        reason: String,
    },
    Complete,
}

/// The current UTC hour (0-23).
pub fn utc_hour() -> u8 {
    ((now_ms() / 3_600_000) % 24) as u8
}

/// How long file packages received at a site are kept (applied by
/// `sms_site::retention`, which explains the rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackageRetention {
    pub keep: std::time::Duration,
    pub max_bytes: u64,
    pub min_keep: std::time::Duration,
}

impl Default for PackageRetention {
    /// Thirty days, at most 10 GiB, each kept at least ten minutes.
    fn default() -> Self {
        PackageRetention {
            keep: std::time::Duration::from_secs(30 * 24 * 3600),
            max_bytes: 10 * 1024 * 1024 * 1024,
            min_keep: std::time::Duration::from_secs(600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_gate_priorities_by_hour() {
        let mut a = Address::new("PRI".parse().unwrap(), String::new());
        assert!(a.allows(Priority::Low, 3));
        a.schedule.push(ScheduleRule {
            start_hour: 8,
            end_hour: 18,
            lowest: Priority::High,
        });
        a.schedule.push(ScheduleRule {
            start_hour: 22,
            end_hour: 2,
            lowest: Priority::Medium,
        });
        assert!(a.allows(Priority::High, 9));
        assert!(!a.allows(Priority::Medium, 9));
        assert!(a.allows(Priority::Low, 18));
        assert!(!a.allows(Priority::Low, 23) && a.allows(Priority::Medium, 1));
        assert!(a.allows(Priority::Low, 2));
    }

    #[test]
    fn site_codes_are_validated() {
        assert!("S01".parse::<SiteCode>().is_ok());
        assert!("PRI".parse::<SiteCode>().is_ok());
        assert_eq!(
            "s01".parse::<SiteCode>(),
            Err(SiteCodeError::Charset("s01".into()))
        );
        assert_eq!(
            "S0".parse::<SiteCode>(),
            Err(SiteCodeError::Length("S0".into()))
        );
        assert_eq!(
            "S001".parse::<SiteCode>(),
            Err(SiteCodeError::Length("S001".into()))
        );
        assert_eq!(
            "CON".parse::<SiteCode>(),
            Err(SiteCodeError::Reserved("CON".into()))
        );
        assert!("S-1".parse::<SiteCode>().is_err());
    }

    #[test]
    fn status_progress_orders_phases() {
        assert!(SiteStatus::Pending.progress() < SiteStatus::Phase(1).progress());
        assert!(SiteStatus::Phase(4).progress() < SiteStatus::Active.progress());
        assert_eq!(SiteStatus::Phase(3).to_string(), "Phase 3 Complete");
    }
}
