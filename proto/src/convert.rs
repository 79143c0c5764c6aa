//! Conversions between domain types and wire types. Wire input is untrusted:
//! every conversion from the wire validates and says what is wrong.

use uuid::Uuid;

use crate::v1 as pb;
use sms_types::*;

/// A wire value that does not make a valid domain value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

impl From<WireError> for tonic::Status {
    fn from(e: WireError) -> Self {
        tonic::Status::invalid_argument(e.0)
    }
}

type R<T> = Result<T, WireError>;

pub fn code(s: &str, field: &str) -> R<SiteCode> {
    s.parse().map_err(|e| WireError(format!("{field}: {e}")))
}

pub fn opt_code(s: &str, field: &str) -> R<Option<SiteCode>> {
    if s.is_empty() {
        Ok(None)
    } else {
        code(s, field).map(Some)
    }
}

fn opt_str(c: &Option<SiteCode>) -> String {
    c.as_ref().map(|c| c.to_string()).unwrap_or_default()
}

pub fn uuid(b: &[u8], field: &str) -> R<Uuid> {
    Uuid::from_slice(b).map_err(|_| WireError(format!("{field}: not a 16-byte UUID")))
}

pub fn priority_to(p: Priority) -> i32 {
    (match p {
        Priority::High => pb::Priority::High,
        Priority::Medium => pb::Priority::Medium,
        Priority::Low => pb::Priority::Low,
    }) as i32
}

pub fn priority_from(v: i32) -> R<Priority> {
    match pb::Priority::try_from(v) {
        Ok(pb::Priority::High) => Ok(Priority::High),
        Ok(pb::Priority::Medium) => Ok(Priority::Medium),
        Ok(pb::Priority::Low) => Ok(Priority::Low),
        _ => Err(WireError(format!(
            "priority: {v} is not high, medium or low"
        ))),
    }
}

fn severity_to(s: Severity) -> i32 {
    (match s {
        Severity::Informational => pb::Severity::Informational,
        Severity::Warning => pb::Severity::Warning,
        Severity::Error => pb::Severity::Error,
    }) as i32
}

fn severity_from(v: i32) -> R<Severity> {
    match pb::Severity::try_from(v) {
        Ok(pb::Severity::Informational) => Ok(Severity::Informational),
        Ok(pb::Severity::Warning) => Ok(Severity::Warning),
        Ok(pb::Severity::Error) => Ok(Severity::Error),
        _ => Err(WireError(format!("severity: {v} is not valid"))),
    }
}

pub fn address_to(a: &Address) -> pb::Address {
    pb::Address {
        site_code: a.site_code.to_string(),
        server: a.server.clone(),
        retry_count: a.retry_count,
        retry_delay_ms: a.retry_delay_ms,
        concurrent_sendings: a.concurrent_sendings,
        rate_limit_bytes_per_sec: a.rate_limit_bytes_per_sec,
        schedule: a.schedule.iter().map(rule_to).collect(),
        keepalive_secs: a.keepalive_secs,
    }
}

pub fn rule_to(r: &ScheduleRule) -> pb::ScheduleRule {
    pb::ScheduleRule {
        start_hour: r.start_hour as u32,
        end_hour: r.end_hour as u32,
        lowest: priority_to(r.lowest),
    }
}

pub fn rule_from(r: &pb::ScheduleRule) -> R<ScheduleRule> {
    if r.start_hour > 23 || r.end_hour > 24 {
        return Err(WireError(format!(
            "schedule hours {}-{} are outside 0-24",
            r.start_hour, r.end_hour
        )));
    }
    Ok(ScheduleRule {
        start_hour: r.start_hour as u8,
        end_hour: r.end_hour as u8,
        lowest: priority_from(r.lowest)?,
    })
}

pub fn address_from(a: &pb::Address) -> R<Address> {
    Ok(Address {
        site_code: code(&a.site_code, "address.site_code")?,
        server: a.server.clone(),
        retry_count: a.retry_count,
        retry_delay_ms: a.retry_delay_ms,
        concurrent_sendings: a.concurrent_sendings,
        rate_limit_bytes_per_sec: a.rate_limit_bytes_per_sec,
        schedule: a.schedule.iter().map(rule_from).collect::<R<_>>()?,
        keepalive_secs: a.keepalive_secs,
    })
}

pub fn control_to(c: &SiteControl) -> pb::SiteControl {
    pb::SiteControl {
        site_code: c.site_code.to_string(),
        site_name: c.site_name.clone(),
        serial: c.serial,
        parent_site_code: opt_str(&c.parent_site_code),
        polling_interval_ms: c.polling_interval_ms,
        domains: c
            .domains
            .iter()
            .map(|d| pb::Domain {
                name: d.name.clone(),
                browse: d.browse.clone(),
                logon_servers: d
                    .logon_servers
                    .iter()
                    .map(|l| pb::LogonServer {
                        server: l.server.clone(),
                        state: l.state.as_str().to_string(),
                    })
                    .collect(),
            })
            .collect(),
        addresses: c.addresses.iter().map(address_to).collect(),
        version: c.version.clone(),
        next_unique_id: c.next_unique_id,
        management_points: c
            .management_points
            .iter()
            .map(crate::convert_mp::management_point_to)
            .collect(),
        status_rules: c
            .status_rules
            .iter()
            .map(crate::convert_rules::rule_to)
            .collect(),
    }
}

pub fn control_from(c: &pb::SiteControl) -> R<SiteControl> {
    let mut domains = Vec::with_capacity(c.domains.len());
    for d in &c.domains {
        let mut logon_servers = Vec::with_capacity(d.logon_servers.len());
        for l in &d.logon_servers {
            logon_servers.push(LogonServer {
                server: l.server.clone(),
                state: l.state.parse().map_err(WireError)?,
            });
        }
        domains.push(Domain {
            name: d.name.clone(),
            browse: d.browse.clone(),
            logon_servers,
        });
    }
    Ok(SiteControl {
        site_code: code(&c.site_code, "site_control.site_code")?,
        site_name: c.site_name.clone(),
        serial: c.serial,
        parent_site_code: opt_code(&c.parent_site_code, "site_control.parent_site_code")?,
        polling_interval_ms: c.polling_interval_ms,
        domains,
        addresses: c.addresses.iter().map(address_from).collect::<R<_>>()?,
        version: c.version.clone(),
        next_unique_id: c.next_unique_id,
        management_points: c
            .management_points
            .iter()
            .map(crate::convert_mp::management_point_from)
            .collect::<R<_>>()?,
        status_rules: c
            .status_rules
            .iter()
            .map(crate::convert_rules::rule_from)
            .collect::<R<_>>()?,
    })
}

fn required<'a, T>(v: &'a Option<T>, field: &str) -> R<&'a T> {
    v.as_ref()
        .ok_or_else(|| WireError(format!("{field} is missing")))
}

pub fn components_to(c: &[ComponentState]) -> Vec<pb::ComponentState> {
    c.iter()
        .map(|c| pb::ComponentState {
            name: c.name.clone(),
            state: c.state.clone(),
        })
        .collect()
}

pub fn ct2_to(c: &Ct2) -> pb::Ct2 {
    pb::Ct2 {
        site_code: c.site_code.to_string(),
        parent_site_code: opt_str(&c.parent_site_code),
        serial: c.serial,
        control: Some(control_to(&c.control)),
        components: components_to(&c.components),
        version: c.version.clone(),
        reported_unix_ms: c.reported_unix_ms,
        server: c.server.clone(),
        kind: c.kind.as_str().to_string(),
        signed_body: c
            .signature
            .as_ref()
            .map(|s| s.body.clone())
            .unwrap_or_default(),
        signature: c
            .signature
            .as_ref()
            .map(|s| s.signature.clone())
            .unwrap_or_default(),
        signer_chain: c
            .signature
            .as_ref()
            .map(|s| s.chain.clone())
            .unwrap_or_default(),
    }
}

pub fn ct2_from(c: &pb::Ct2) -> R<Ct2> {
    Ok(Ct2 {
        site_code: code(&c.site_code, "ct2.site_code")?,
        parent_site_code: opt_code(&c.parent_site_code, "ct2.parent_site_code")?,
        serial: c.serial,
        control: control_from(required(&c.control, "ct2.control")?)?,
        components: c
            .components
            .iter()
            .map(|c| ComponentState {
                name: c.name.clone(),
                state: c.state.clone(),
            })
            .collect(),
        version: c.version.clone(),
        reported_unix_ms: c.reported_unix_ms,
        server: c.server.clone(),
        kind: c.kind.parse().map_err(WireError)?,
        signature: signed_from(
            c.signed_body.clone(),
            c.signature.clone(),
            c.signer_chain.clone(),
        ),
    })
}

pub fn status_to(m: &StatusMessage) -> pb::StatusMessage {
    pb::StatusMessage {
        uid: m.uid.as_bytes().to_vec(),
        id: m.id,
        severity: severity_to(m.severity),
        site_code: m.site_code.to_string(),
        component: m.component.clone(),
        machine: m.machine.clone(),
        time_unix_ms: m.time_unix_ms,
        insertion_strings: m.insertion_strings.clone(),
        text: m.text.clone(),
    }
}

pub fn status_from(m: &pb::StatusMessage) -> R<StatusMessage> {
    Ok(StatusMessage {
        uid: uuid(&m.uid, "status.uid")?,
        id: m.id,
        severity: severity_from(m.severity)?,
        site_code: code(&m.site_code, "status.site_code")?,
        component: m.component.clone(),
        machine: m.machine.clone(),
        time_unix_ms: m.time_unix_ms,
        insertion_strings: m.insertion_strings.clone(),
        text: m.text.clone(),
    })
}

pub fn bootstrap_to(b: &BootstrapPackage) -> pb::BootstrapPackage {
    pb::BootstrapPackage {
        site_code: b.site_code.to_string(),
        site_name: b.site_name.clone(),
        parent_site_code: b.parent_site_code.to_string(),
        parent_address: b.parent_address.clone(),
        init_control: Some(control_to(&b.init_control)),
        link_secret: b.link_secret.clone(),
        content: b.content.clone(),
        content_sha256: b.content_sha256.clone(),
        required_free_bytes: b.required_free_bytes,
        version: b.version.clone(),
        server: b.server.clone(),
        ancestors: b.ancestors.iter().map(|c| c.to_string()).collect(),
    }
}

pub fn bootstrap_from(b: &pb::BootstrapPackage) -> R<BootstrapPackage> {
    Ok(BootstrapPackage {
        site_code: code(&b.site_code, "package.site_code")?,
        site_name: b.site_name.clone(),
        parent_site_code: code(&b.parent_site_code, "package.parent_site_code")?,
        parent_address: b.parent_address.clone(),
        init_control: control_from(required(&b.init_control, "package.init_control")?)?,
        link_secret: b.link_secret.clone(),
        content: b.content.clone(),
        content_sha256: b.content_sha256.clone(),
        required_free_bytes: b.required_free_bytes,
        version: b.version.clone(),
        server: b.server.clone(),
        ancestors: b
            .ancestors
            .iter()
            .map(|c| code(c, "package.ancestors"))
            .collect::<R<_>>()?,
    })
}

/// A job on the wire. File packages travel as one frame per chunk.
pub fn job_to(job: &Job, chunk: Option<Chunk>) -> pb::Job {
    use pb::job_payload::Kind;
    let kind = match (&job.payload, chunk) {
        (Payload::Ct1(c), _) => Kind::Ct1(ct1_to(c)),
        (Payload::Ct2(c), _) => Kind::Ct2(ct2_to(c)),
        (Payload::Status(m), _) => Kind::Status(pb::StatusBatch {
            messages: m.iter().map(status_to).collect(),
        }),
        (Payload::Probe(d), _) => Kind::Probe(pb::Probe { data: d.clone() }),
        (Payload::File(f), chunk) => {
            let (index, data) = chunk.unwrap_or_default();
            Kind::FileChunk(pb::FileChunk {
                name: f.name.clone(),
                total_size: f.total_size,
                chunk_index: index,
                chunk_count: f.chunk_count,
                chunk_size: f.chunk_size,
                data,
                sha256: f.sha256.clone(),
            })
        }
        (Payload::Bootstrap(b), _) => Kind::Bootstrap(bootstrap_to(b)),
        (Payload::Revocations(list), _) => Kind::Revocations(pb::Revocations {
            revoked: list
                .iter()
                .map(|(serial, reason)| pb::Revoked {
                    serial: serial.clone(),
                    reason: reason.clone(),
                })
                .collect(),
        }),
        (Payload::Deinstall(c), _) => Kind::Deinstall(pb::Deinstall {
            site_code: c.to_string(),
        }),
    };
    pb::Job {
        id: job.id.as_bytes().to_vec(),
        source_site: job.source.to_string(),
        dest_site: job.dest.to_string(),
        priority: priority_to(job.priority),
        created_unix_ms: job.created_unix_ms,
        payload: Some(pb::JobPayload { kind: Some(kind) }),
    }
}

/// A job from the wire, with its chunk (index, data) for file packages.
pub fn job_from(j: pb::Job) -> R<(Job, Option<Chunk>)> {
    use pb::job_payload::Kind;
    let kind = j
        .payload
        .and_then(|p| p.kind)
        .ok_or_else(|| WireError("job.payload is missing".into()))?;
    let mut chunk = None;
    let payload = match kind {
        Kind::Ct1(c) => Payload::Ct1(Ct1 {
            base_serial: c.base_serial,
            proposed: control_from(required(&c.proposed, "ct1.proposed")?)?,
            signature: signed_from(c.signed_body, c.signature, c.signer_chain),
            origin: c.origin,
        }),
        Kind::Ct2(c) => Payload::Ct2(ct2_from(&c)?),
        Kind::Status(b) => Payload::Status(b.messages.iter().map(status_from).collect::<R<_>>()?),
        Kind::Probe(p) => Payload::Probe(p.data),
        Kind::FileChunk(f) => {
            if f.chunk_count == 0 || f.chunk_index >= f.chunk_count {
                return Err(WireError(format!(
                    "file chunk {} of {} is out of range",
                    f.chunk_index, f.chunk_count
                )));
            }
            let pkg = FilePackage {
                name: f.name,
                total_size: f.total_size,
                chunk_count: f.chunk_count,
                chunk_size: f.chunk_size,
                sha256: f.sha256,
            };
            pkg.check_layout().map_err(WireError)?;
            // The chunk must be exactly as long as its place in the package:
            // the receiver writes it there.
            let (_, len) = pkg.chunk_range(f.chunk_index).unwrap_or_default();
            if f.data.len() != len {
                return Err(WireError(format!(
                    "file chunk {} of {} holds {} bytes; its place in the package holds {len}",
                    f.chunk_index,
                    f.chunk_count,
                    f.data.len()
                )));
            }
            chunk = Some((f.chunk_index, f.data));
            Payload::File(pkg)
        }
        Kind::Bootstrap(b) => Payload::Bootstrap(Box::new(bootstrap_from(&b)?)),
        Kind::Deinstall(d) => Payload::Deinstall(code(&d.site_code, "deinstall.site_code")?),
        Kind::Revocations(r) => Payload::Revocations(revocations_from(r)?),
    };
    Ok((
        Job {
            id: uuid(&j.id, "job.id")?,
            source: code(&j.source_site, "job.source_site")?,
            dest: code(&j.dest_site, "job.dest_site")?,
            priority: priority_from(j.priority)?,
            created_unix_ms: j.created_unix_ms,
            payload,
            attempts: 0,
            acked_chunks: 0,
        },
        chunk,
    ))
}

/// A site record as the Admin service lists it; health fields are filled by the caller.
pub fn site_to(r: &SiteRecord) -> pb::SiteRecord {
    let (status_kind, status_phase) = site_status_kind(r.status);
    pb::SiteRecord {
        status_kind,
        status_phase,
        recent_errors: 0,
        recent_warnings: 0,
        link_state: String::new(),
        version: String::new(),
        stale: false,
        last_report_unix_ms: 0,
        last_report_age_ms: 0,
        site_code: r.site_code.to_string(),
        parent_site_code: opt_str(&r.parent_site_code),
        kind: r.kind.as_str().to_string(),
        server: r.server.clone(),
        status: r.status.to_string(),
        serial: r.serial,
        status_changed_unix_ms: r.status_changed_unix_ms,
    }
}

// ---- node and logon views ------------------------------------------------

use sms_types::link::{
    LinkState, LogonInstallRequest, LogonScript, LogonView, NodeProbe, NodeRole,
};

pub fn role_kind(r: NodeRole) -> i32 {
    (match r {
        NodeRole::Bare => pb::NodeRole::Bare,
        NodeRole::SiteServer => pb::NodeRole::SiteServer,
        NodeRole::LogonServer => pb::NodeRole::LogonServer,
    }) as i32
}

/// A node role from the wire: the enum when an up-to-date node set it,
/// else the string older nodes send.
pub fn role_from(kind: i32, s: &str) -> R<NodeRole> {
    match pb::NodeRole::try_from(kind) {
        Ok(pb::NodeRole::Bare) => Ok(NodeRole::Bare),
        Ok(pb::NodeRole::SiteServer) => Ok(NodeRole::SiteServer),
        Ok(pb::NodeRole::LogonServer) => Ok(NodeRole::LogonServer),
        _ => s
            .parse()
            .map_err(|e: String| WireError(format!("role: {e}"))),
    }
}

pub fn link_state_kind(l: LinkState) -> i32 {
    (match l {
        LinkState::Idle => pb::LinkStateKind::Idle,
        LinkState::Connecting => pb::LinkStateKind::Connecting,
        LinkState::Up => pb::LinkStateKind::Up,
        LinkState::Retrying => pb::LinkStateKind::Retrying,
        LinkState::Severed => pb::LinkStateKind::Severed,
        LinkState::AwaitingChild => pb::LinkStateKind::AwaitingChild,
    }) as i32
}

/// A link state from the wire: the enum when set, else the string.
pub fn link_state_from(kind: i32, s: &str) -> R<LinkState> {
    match pb::LinkStateKind::try_from(kind) {
        Ok(pb::LinkStateKind::Idle) => Ok(LinkState::Idle),
        Ok(pb::LinkStateKind::Connecting) => Ok(LinkState::Connecting),
        Ok(pb::LinkStateKind::Up) => Ok(LinkState::Up),
        Ok(pb::LinkStateKind::Retrying) => Ok(LinkState::Retrying),
        Ok(pb::LinkStateKind::Severed) => Ok(LinkState::Severed),
        Ok(pb::LinkStateKind::AwaitingChild) => Ok(LinkState::AwaitingChild),
        _ => s
            .parse()
            .map_err(|e: String| WireError(format!("link state: {e}"))),
    }
}

/// (kind, phase) of a site status for the wire.
pub fn site_status_kind(st: SiteStatus) -> (i32, u32) {
    let (k, phase) = match st {
        SiteStatus::Pending => (pb::SiteStatusKind::Pending, 0),
        SiteStatus::Phase(n) => (pb::SiteStatusKind::Phase, n as u32),
        SiteStatus::Active => (pb::SiteStatusKind::Active, 0),
        SiteStatus::Failed => (pb::SiteStatusKind::Failed, 0),
        SiteStatus::Deleting => (pb::SiteStatusKind::Deleting, 0),
        SiteStatus::Upgrading => (pb::SiteStatusKind::Upgrading, 0),
    };
    (k as i32, phase)
}

/// A site status from the wire: the enum (with its phase) when set, else
/// the display string older nodes send ("Phase 3 Complete", "Active", ...).
pub fn site_status_from(kind: i32, phase: u32, s: &str) -> R<SiteStatus> {
    match pb::SiteStatusKind::try_from(kind) {
        Ok(pb::SiteStatusKind::Pending) => Ok(SiteStatus::Pending),
        Ok(pb::SiteStatusKind::Phase) => match phase {
            1..=4 => Ok(SiteStatus::Phase(phase as u8)),
            p => Err(WireError(format!("site status: phase {p} is not 1 to 4"))),
        },
        Ok(pb::SiteStatusKind::Active) => Ok(SiteStatus::Active),
        Ok(pb::SiteStatusKind::Failed) => Ok(SiteStatus::Failed),
        Ok(pb::SiteStatusKind::Deleting) => Ok(SiteStatus::Deleting),
        Ok(pb::SiteStatusKind::Upgrading) => Ok(SiteStatus::Upgrading),
        _ => match s {
            "Pending" => Ok(SiteStatus::Pending),
            "Active" => Ok(SiteStatus::Active),
            "Failed" => Ok(SiteStatus::Failed),
            "Deleting" => Ok(SiteStatus::Deleting),
            "Upgrading" => Ok(SiteStatus::Upgrading),
            other => other
                .strip_prefix("Phase ")
                .and_then(|r| r.strip_suffix(" Complete"))
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| (1..=4).contains(n))
                .map(SiteStatus::Phase)
                .ok_or_else(|| {
                    WireError(format!(
                        "site status: {:?} is not a site status",
                        sms_types::limits::clip(s)
                    ))
                }),
        },
    }
}

pub fn probe_to(p: &NodeProbe) -> pb::ProbeReply {
    pb::ProbeReply {
        role: p.role.as_str().to_string(),
        role_kind: role_kind(p.role),
        site_code: p.site_code.clone(),
        bootstrap_state: p.bootstrap_state.clone(),
        bootstrap_detail: p.bootstrap_detail.clone(),
        node_id: p.node_id.clone(),
        domain: p.domain.clone(),
    }
}

pub fn probe_from(p: pb::ProbeReply) -> R<NodeProbe> {
    Ok(NodeProbe {
        role: role_from(p.role_kind, &p.role)?,
        site_code: p.site_code,
        bootstrap_state: p.bootstrap_state,
        bootstrap_detail: p.bootstrap_detail,
        node_id: p.node_id,
        domain: p.domain,
    })
}

pub fn logon_view_to(v: &LogonView) -> pb::LogonState {
    pb::LogonState {
        role: v.role.as_str().to_string(),
        role_kind: role_kind(v.role),
        domain: v.domain.clone(),
        site_code: v.site_code.clone(),
        site_address: v.site_address.clone(),
        script_version: v.script_version,
        range_start: v.range_start,
        range_end: v.range_end,
        next_id: v.next_id,
        remaining: v.remaining,
        node_id: v.node_id.clone(),
    }
}

pub fn logon_view_from(v: pb::LogonState) -> R<LogonView> {
    Ok(LogonView {
        role: role_from(v.role_kind, &v.role)?,
        domain: v.domain,
        site_code: v.site_code,
        site_address: v.site_address,
        script_version: v.script_version,
        range_start: v.range_start,
        range_end: v.range_end,
        next_id: v.next_id,
        remaining: v.remaining,
        node_id: v.node_id,
    })
}

pub fn logon_install_to(r: &LogonInstallRequest) -> pb::LogonInstallRequest {
    pb::LogonInstallRequest {
        site_code: r.site_code.clone(),
        site_address: r.site_address.clone(),
        domain: r.domain.clone(),
        script_version: r.script_version,
        script: r.script.clone(),
        range_start: r.range_start,
        range_end: r.range_end,
    }
}

pub fn logon_install_from(r: pb::LogonInstallRequest) -> LogonInstallRequest {
    LogonInstallRequest {
        site_code: r.site_code,
        site_address: r.site_address,
        domain: r.domain,
        script_version: r.script_version,
        script: r.script,
        range_start: r.range_start,
        range_end: r.range_end,
    }
}

pub fn logon_script_to(s: &LogonScript) -> pb::LogonScript {
    pb::LogonScript {
        site_code: s.site_code.clone(),
        version: s.version,
        script: s.script.clone(),
    }
}

pub fn logon_script_from(s: pb::LogonScript) -> LogonScript {
    LogonScript {
        site_code: s.site_code,
        version: s.version,
        script: s.script,
    }
}

// ---- read models ------------------------------------------------------------

use sms_types::views::{LinkView, NodeView, PackageView, SiteRow};

pub fn link_view_to(l: &LinkView) -> pb::LinkState {
    pb::LinkState {
        to: l.to.to_string(),
        state: l.state.as_str().to_string(),
        state_kind: link_state_kind(l.state),
        clock_skew_ms: l.clock_skew_ms,
        queued_jobs: l.queued_jobs,
        failed_jobs: l.failed_jobs,
        server: l.server.clone(),
        detail: l.detail.clone(),
        refused_frames: l.refused_frames,
        chunk_bytes_sent: l.chunk_bytes_sent,
    }
}

/// A neighbour's link as its status reports it.
pub fn link_view_from(l: &pb::LinkState) -> R<LinkView> {
    Ok(LinkView {
        to: code(&l.to, "link.to")?,
        state: link_state_from(l.state_kind, &l.state)?,
        queued_jobs: l.queued_jobs,
        failed_jobs: l.failed_jobs,
        server: l.server.clone(),
        detail: l.detail.clone(),
        refused_frames: l.refused_frames,
        chunk_bytes_sent: l.chunk_bytes_sent,
        clock_skew_ms: l.clock_skew_ms,
    })
}

pub fn site_row_to(r: &SiteRow) -> pb::SiteRecord {
    let mut out = site_to(&r.record);
    out.recent_errors = r.recent_errors;
    out.recent_warnings = r.recent_warnings;
    out.link_state = r
        .link_state
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    out.version = r.version.clone();
    out.stale = r.stale;
    out.last_report_unix_ms = r.last_report_unix_ms.unwrap_or(0);
    out.last_report_age_ms = r.report_age_ms.unwrap_or(0);
    out
}

pub fn node_view_to(v: &NodeView) -> pb::NodeStatus {
    let id = v.identity.as_ref();
    let logon_server = v.logon.role == NodeRole::LogonServer;
    pb::NodeStatus {
        role: v.logon.role.as_str().to_string(),
        role_kind: role_kind(v.logon.role),
        domain: v.logon.domain.clone(),
        logon_site: if logon_server {
            v.logon.site_code.clone()
        } else {
            String::new()
        },
        range_start: v.logon.range_start,
        range_end: v.logon.range_end,
        ids_remaining: v.logon.remaining,
        site_code: id.map(|i| i.site_code.to_string()).unwrap_or_default(),
        parent_site_code: id
            .and_then(|i| i.parent.as_ref())
            .map(|p| p.site_code.to_string())
            .unwrap_or_default(),
        components: components_to(&v.components),
        links: v.links.iter().map(link_view_to).collect(),
        site_name: id.map(|i| i.site_name.clone()).unwrap_or_default(),
        kind: id.map(|i| i.kind.as_str().to_string()).unwrap_or_default(),
        address: v.address.clone(),
        version: SOFTWARE_VERSION.into(),
        node_id: v.node_id.clone(),
        serial: v.serial,
        bootstrap_state: v.bootstrap_state.clone(),
        bootstrap_detail: v.bootstrap_detail.clone(),
        duplicates_dropped: v.duplicates_dropped,
        connections_refused: v.connections_refused,
        calls_refused: v.calls_refused,
    }
}

pub fn failed_job_to(f: &FailedJob) -> pb::FailedJob {
    pb::FailedJob {
        job_id: f.job.id.as_bytes().to_vec(),
        kind: f.job.payload.kind().to_string(),
        dest_site: f.job.dest.to_string(),
        attempts: f.job.attempts,
        reason: f.reason.clone(),
        failed_unix_ms: f.failed_unix_ms,
    }
}

pub fn bad_ct1_to(b: &sms_types::records::BadCt1) -> pb::BadCt1 {
    pb::BadCt1 {
        base_serial: b.ct1.base_serial,
        site_code: b.ct1.proposed.site_code.to_string(),
        origin: b.ct1.origin.clone(),
        reason: b.reason.clone(),
        rejected_unix_ms: b.rejected_unix_ms,
    }
}

pub fn faults_to(faults: &[Fault]) -> pb::FaultList {
    pb::FaultList {
        faults: faults
            .iter()
            .map(|f| pb::Fault {
                name: f.name().to_string(),
                phase: f.phase(),
            })
            .collect(),
    }
}

pub fn probe_record_to(p: &sms_types::records::ReceivedProbe, bytes: usize) -> pb::ReceivedProbe {
    pb::ReceivedProbe {
        job_id: p.job_id.as_bytes().to_vec(),
        source_site: p.source.to_string(),
        priority: priority_to(p.priority),
        arrival: p.arrival,
        received_unix_us: p.received_unix_us,
        payload_bytes: bytes as u64,
    }
}

pub fn package_to(v: &PackageView) -> pb::ReceivedPackage {
    let p = &v.package;
    pb::ReceivedPackage {
        job_id: p.job_id.as_bytes().to_vec(),
        name: p.package.name.clone(),
        source_site: p.source.to_string(),
        size_bytes: p.package.total_size,
        sha256: v.sha256_hex.clone(),
        chunks_received: p.chunks_received,
        chunk_count: p.package.chunk_count,
        complete: p.complete,
    }
}

/// A CT1 from the wire (`submit-ct1`); an empty origin reads "submit-ct1".
pub fn ct1_from(c: &pb::Ct1) -> R<Ct1> {
    let proposed = c
        .proposed
        .as_ref()
        .ok_or_else(|| WireError("ct1.proposed is missing".into()))?;
    Ok(Ct1 {
        base_serial: c.base_serial,
        proposed: control_from(proposed)?,
        origin: if c.origin.is_empty() {
            "submit-ct1".into()
        } else {
            c.origin.clone()
        },
        signature: signed_from(
            c.signed_body.clone(),
            c.signature.clone(),
            c.signer_chain.clone(),
        ),
    })
}

/// A CT1 on the wire, with its signature if it has one.
pub fn ct1_to(c: &Ct1) -> pb::Ct1 {
    let (signed_body, signature, signer_chain) = match &c.signature {
        Some(s) => (s.body.clone(), s.signature.clone(), s.chain.clone()),
        None => Default::default(),
    };
    pb::Ct1 {
        base_serial: c.base_serial,
        proposed: Some(control_to(&c.proposed)),
        origin: c.origin.clone(),
        signed_body,
        signature,
        signer_chain,
    }
}

fn signed_from(body: Vec<u8>, signature: Vec<u8>, chain: Vec<Vec<u8>>) -> Option<SignedBody> {
    (!signature.is_empty() || !body.is_empty()).then_some(SignedBody {
        body,
        signature,
        chain,
    })
}

/// Most revocations one list may carry: far more than a hierarchy revokes,
/// few enough that a hostile list cannot grow a node's store without bound.
pub const MAX_REVOCATIONS: usize = 10_000;

fn revocations_from(r: pb::Revocations) -> R<Vec<(String, String)>> {
    if r.revoked.len() > MAX_REVOCATIONS {
        return Err(WireError(format!(
            "a revocation list holds at most {MAX_REVOCATIONS} certificates, not {}",
            r.revoked.len()
        )));
    }
    r.revoked
        .into_iter()
        .map(|x| {
            let serial = x.serial.to_ascii_lowercase();
            if serial.is_empty()
                || serial.len() > 64
                || !serial.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(WireError(
                    "a revoked certificate's serial must be 1 to 64 hex digits".into(),
                ));
            }
            let reason: String = x
                .reason
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            Ok((serial, reason))
        })
        .collect()
}
