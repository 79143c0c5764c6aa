//! Management points (seed 001): the site system role that serves clients
//! over HTTP. The role is assigned in site control; the install state the
//! site tracks, what a target reports about itself, and what the site sends
//! it to install are here.

use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The version of the management point component this build installs. A
/// target that already holds a later one refuses the install (seed 001:
/// "Is a management point already installed with a later version?").
pub const MP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Free space the install volume needs (seed 001: MP.msi wants 70 MB).
pub const MP_MIN_FREE_BYTES: u64 = 70 * 1000 * 1000;

/// The directory made on the chosen volume.
pub const MP_INSTALL_DIR: &str = "SMS_MP";

/// Where a target keeps the installed component's version on its volume.
pub const MP_VERSION_FILE: &str = "mp.version";

/// The management point role of one server, as site control lists it.
/// `state`, `detail` and the verification fields are the site's view,
/// merged in when the control is shown or reported; the stored CT0 holds
/// only the assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagementPoint {
    /// The server's node address (HOST:PORT of its `sms-node`).
    pub server: String,
    /// The HTTP port the management point serves clients on (0: the target
    /// picks a free one when it installs).
    pub port: u16,
    /// Clients of the site are sent to the default management point.
    pub is_default: bool,
    pub state: MpState,
    /// Why an install failed, or what the last step was.
    pub detail: String,
    /// Last verification by the MP Control Manager (0: never).
    pub verified_unix_ms: u64,
    /// Its result, as `mpcontrol.log` words it.
    pub verification: String,
    /// The port it serves on once installed (0: not serving).
    pub bound_port: u16,
}

impl ManagementPoint {
    pub fn new(server: String, port: u16, is_default: bool) -> ManagementPoint {
        ManagementPoint {
            server,
            port,
            is_default,
            state: MpState::PendingInstall,
            detail: String::new(),
            verified_unix_ms: 0,
            verification: String::new(),
            bound_port: 0,
        }
    }

    /// Only the assignment: what a CT1 proposes and the CT0 keeps.
    pub fn assignment(&self) -> ManagementPoint {
        ManagementPoint::new(self.server.clone(), self.port, self.is_default)
    }
}

/// Where a management point's install stands at its site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MpState {
    PendingInstall,
    Installing,
    Active,
    Failed,
    PendingUninstall,
}

impl MpState {
    pub fn as_str(self) -> &'static str {
        match self {
            MpState::PendingInstall => "pending-install",
            MpState::Installing => "installing",
            MpState::Active => "active",
            MpState::Failed => "failed",
            MpState::PendingUninstall => "pending-uninstall",
        }
    }
}

impl FromStr for MpState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending-install" => MpState::PendingInstall,
            "installing" => MpState::Installing,
            "active" => MpState::Active,
            "failed" => MpState::Failed,
            "pending-uninstall" => MpState::PendingUninstall,
            other => return Err(format!("unknown management point state {other:?}")),
        })
    }
}

/// The site's record of one management point (kept beside the CT0, like
/// logon servers, so install progress never bumps the serial).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpRecord {
    pub server: String,
    /// The port asked for in site control.
    pub port: u16,
    /// The port the installed management point serves on.
    pub bound_port: u16,
    pub state: MpState,
    pub detail: String,
    /// The target's node id once it answered.
    pub node_id: String,
    pub install_dir: String,
    pub attempts: u32,
    pub changed_unix_ms: u64,
    pub verified_unix_ms: u64,
    pub verification: String,
    /// Whether the last verification failed (its error message is raised
    /// once and cleared on recovery).
    pub verification_failing: bool,
    /// The policy version the management point holds.
    pub policy_version: u64,
}

impl MpRecord {
    pub fn new(server: String, port: u16) -> MpRecord {
        MpRecord {
            server,
            port,
            bound_port: 0,
            state: MpState::PendingInstall,
            detail: String::new(),
            node_id: String::new(),
            install_dir: String::new(),
            attempts: 0,
            changed_unix_ms: 0,
            verified_unix_ms: 0,
            verification: String::new(),
            verification_failing: false,
            policy_version: 0,
        }
    }
}

/// One data volume a target allows installs on, as it sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpVolume {
    pub path: String,
    /// The filesystem type (`ext4`, `tmpfs`, ...).
    pub fs_type: String,
    pub free_bytes: u64,
    /// Whether an install may go there (a filesystem that honours fsync,
    /// mounted read-write).
    pub supported: bool,
    /// Why not, when it is not supported.
    pub why: String,
}

/// What a (potential) management point server says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpTarget {
    pub node_id: String,
    /// `site-server`, `logon-server` or `bare`.
    pub role: String,
    /// The site this node is the server of (empty unless a site server).
    pub site_code: String,
    /// The site whose management point is installed here (empty: none).
    pub mp_site: String,
    pub mp_port: u16,
    pub mp_version: String,
    /// Whether the agent (the policy service) answers clients.
    pub agent_running: bool,
    pub install_dir: String,
    pub policy_version: u64,
    pub volumes: Vec<MpVolume>,
    /// A later version found on an allowed volume (path and version).
    pub later_version: Option<(String, String)>,
    /// The host the node listens on (the management point binds there).
    pub host: String,
    /// With a management point installed: whether its site database
    /// accepts it now, and what the site said.
    pub database: Option<Result<String, String>>,
    /// The label of the node's own certificate (empty without TLS): the site
    /// database accepts this management point's calls only with it.
    pub cert_label: String,
}

/// A file of the component, copied by the Site Component Manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A policy document served to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub id: String,
    pub version: u64,
    pub body: String,
}

/// Step 1 of an install: make the install directory on a volume, write the
/// identification, copy the files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpPrepare {
    pub site_code: String,
    pub site_address: String,
    pub volume: String,
    pub files: Vec<MpFile>,
}

/// Step 2: run setup (the prerequisite checks, then start the agent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpSetup {
    pub site_code: String,
    pub site_address: String,
    pub port: u16,
    pub version: String,
    pub install_dir: String,
    /// The site's certificate (DER), answered to `mpcert` as hex.
    pub site_certificate: Vec<u8>,
    pub policies: Vec<Policy>,
}

/// Which prerequisite a setup refused on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MpCheck {
    Filesystem,
    Space,
    Port,
    Version,
    Database,
    Other,
}

impl MpCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            MpCheck::Filesystem => "filesystem",
            MpCheck::Space => "space",
            MpCheck::Port => "port",
            MpCheck::Version => "version",
            MpCheck::Database => "database",
            MpCheck::Other => "other",
        }
    }
}

impl FromStr for MpCheck {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "filesystem" => MpCheck::Filesystem,
            "space" => MpCheck::Space,
            "port" => MpCheck::Port,
            "version" => MpCheck::Version,
            "database" => MpCheck::Database,
            "other" | "" => MpCheck::Other,
            other => return Err(format!("unknown setup check {other:?}")),
        })
    }
}

/// What a setup did: the `mpsetup.log` lines, and either the port it
/// serves on or the check it refused on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpSetupResult {
    pub lines: Vec<String>,
    pub outcome: Result<u16, (MpCheck, String)>,
}

/// What a management point keeps about its install (on the target).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpInstall {
    pub site_code: String,
    pub site_address: String,
    pub port: u16,
    pub version: String,
    pub install_dir: String,
    pub site_certificate: Vec<u8>,
    pub policies: Vec<Policy>,
}

/// A client's status message as a management point posts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMessage {
    pub id: u32,
    /// `informational`, `warning` or `error`.
    pub severity: String,
    pub component: String,
    pub text: String,
}

/// Client status message ids (SMS numbered client messages from 10000).
pub const CLIENT_MESSAGE_IDS: std::ops::RangeInclusive<u32> = 10000..=19999;

/// The policy every client of a site gets: its assignment and settings.
pub fn machine_policy(site: &str, serial: u64, polling_interval_ms: u64, mps: &[String]) -> Policy {
    Policy {
        id: format!("{site}-MACHINE"),
        version: serial,
        body: format!(
            "<Policy id=\"{site}-MACHINE\" version=\"{serial}\">\n  <SiteAssignment site=\"{site}\"/>\n  \
             <PollingIntervalMs>{polling_interval_ms}</PollingIntervalMs>\n  <ManagementPoints>{}</ManagementPoints>\n</Policy>\n",
            mps.join(",")
        ),
    }
}

/// Parses `<PolicyID>.<Version>` as `/sms_mp/.sms_pol?` takes it.
pub fn parse_policy_ref(s: &str) -> Result<(String, u64), String> {
    let (id, v) = s
        .rsplit_once('.')
        .ok_or_else(|| format!("{:?} is not <PolicyID>.<Version>", crate::limits::clip(s)))?;
    let v = v.parse().map_err(|_| {
        format!(
            "policy version {:?} is not a number",
            crate::limits::clip(v)
        )
    })?;
    if id.is_empty() {
        return Err("the policy id is empty".into());
    }
    Ok((id.to_string(), v))
}

/// Compares dotted versions numerically (`0.10.0` is later than `0.9.1`).
pub fn version_later(a: &str, b: &str) -> bool {
    let parts = |s: &str| -> Vec<u64> {
        s.split('.')
            .map(|p| p.trim().parse().unwrap_or(0))
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x > y;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_later("0.10.0", "0.9.1"));
        assert!(version_later("1.0", "0.99.99"));
        assert!(!version_later("0.1.0", "0.1.0"));
        assert!(!version_later("0.1", "0.1.0"));
        assert!(!version_later("0.0.9", "0.1.0"));
    }

    #[test]
    fn policy_refs_parse_and_refuse() {
        assert_eq!(
            parse_policy_ref("S01-MACHINE.7").unwrap(),
            ("S01-MACHINE".into(), 7)
        );
        assert!(parse_policy_ref("S01-MACHINE").is_err());
        assert!(parse_policy_ref(".7").is_err());
        assert!(parse_policy_ref("X.seven").is_err());
    }

    #[test]
    fn states_round_trip() {
        for s in [
            MpState::PendingInstall,
            MpState::Installing,
            MpState::Active,
            MpState::Failed,
            MpState::PendingUninstall,
        ] {
            assert_eq!(s.as_str().parse::<MpState>().unwrap(), s);
        }
        assert!("up".parse::<MpState>().is_err());
    }
}
