//! Management point messages: wire <-> domain.

use crate::convert::WireError;
use crate::v1 as pb;
use sms_types::mp::*;

type R<T> = Result<T, WireError>;

fn port(p: u32, field: &str) -> R<u16> {
    u16::try_from(p).map_err(|_| WireError(format!("{field} {p} is not a TCP port (0..=65535)")))
}

pub fn management_point_to(m: &ManagementPoint) -> pb::ManagementPoint {
    pb::ManagementPoint {
        server: m.server.clone(),
        port: m.port as u32,
        is_default: m.is_default,
        state: m.state.as_str().to_string(),
        detail: m.detail.clone(),
        verified_unix_ms: m.verified_unix_ms,
        verification: m.verification.clone(),
        bound_port: m.bound_port as u32,
    }
}

pub fn management_point_from(m: &pb::ManagementPoint) -> R<ManagementPoint> {
    Ok(ManagementPoint {
        server: m.server.clone(),
        port: port(m.port, "management_point.port")?,
        is_default: m.is_default,
        state: if m.state.is_empty() {
            MpState::PendingInstall
        } else {
            m.state.parse().map_err(WireError)?
        },
        detail: m.detail.clone(),
        verified_unix_ms: m.verified_unix_ms,
        verification: m.verification.clone(),
        bound_port: port(m.bound_port, "management_point.bound_port")?,
    })
}

pub fn target_to(t: &MpTarget) -> pb::MpTarget {
    let (lp, lv) = t.later_version.clone().unwrap_or_default();
    pb::MpTarget {
        node_id: t.node_id.clone(),
        role: t.role.clone(),
        site_code: t.site_code.clone(),
        mp_site: t.mp_site.clone(),
        mp_port: t.mp_port as u32,
        mp_version: t.mp_version.clone(),
        agent_running: t.agent_running,
        install_dir: t.install_dir.clone(),
        policy_version: t.policy_version,
        volumes: t
            .volumes
            .iter()
            .map(|v| pb::MpVolume {
                path: v.path.clone(),
                fs_type: v.fs_type.clone(),
                free_bytes: v.free_bytes,
                supported: v.supported,
                why: v.why.clone(),
            })
            .collect(),
        later_version_path: lp,
        later_version: lv,
        host: t.host.clone(),
        database_checked: t.database.is_some(),
        database_ok: matches!(t.database, Some(Ok(_))),
        database: match &t.database {
            Some(Ok(s)) | Some(Err(s)) => s.clone(),
            None => String::new(),
        },
        cert_label: t.cert_label.clone(),
    }
}

pub fn target_from(t: pb::MpTarget) -> R<MpTarget> {
    Ok(MpTarget {
        mp_port: port(t.mp_port, "mp_port")?,
        node_id: t.node_id,
        role: t.role,
        site_code: t.site_code,
        mp_site: t.mp_site,
        mp_version: t.mp_version,
        agent_running: t.agent_running,
        install_dir: t.install_dir,
        policy_version: t.policy_version,
        volumes: t
            .volumes
            .into_iter()
            .map(|v| MpVolume {
                path: v.path,
                fs_type: v.fs_type,
                free_bytes: v.free_bytes,
                supported: v.supported,
                why: v.why,
            })
            .collect(),
        later_version: (!t.later_version_path.is_empty())
            .then_some((t.later_version_path, t.later_version)),
        host: t.host,
        cert_label: t.cert_label,
        database: match (t.database_checked, t.database_ok) {
            (false, _) => None,
            (true, true) => Some(Ok(t.database)),
            (true, false) => Some(Err(t.database)),
        },
    })
}

fn policy_to(p: &Policy) -> pb::Policy {
    pb::Policy {
        id: p.id.clone(),
        version: p.version,
        body: p.body.clone(),
    }
}

fn policy_from(p: pb::Policy) -> Policy {
    Policy {
        id: p.id,
        version: p.version,
        body: p.body,
    }
}

pub fn prepare_to(p: &MpPrepare) -> pb::MpPrepareRequest {
    pb::MpPrepareRequest {
        site_code: p.site_code.clone(),
        site_address: p.site_address.clone(),
        volume: p.volume.clone(),
        files: p
            .files
            .iter()
            .map(|f| pb::MpFile {
                name: f.name.clone(),
                bytes: f.bytes.clone(),
            })
            .collect(),
    }
}

pub fn prepare_from(p: pb::MpPrepareRequest) -> MpPrepare {
    MpPrepare {
        site_code: p.site_code,
        site_address: p.site_address,
        volume: p.volume,
        files: p
            .files
            .into_iter()
            .map(|f| MpFile {
                name: f.name,
                bytes: f.bytes,
            })
            .collect(),
    }
}

pub fn setup_to(s: &MpSetup) -> pb::MpSetupRequest {
    pb::MpSetupRequest {
        site_code: s.site_code.clone(),
        site_address: s.site_address.clone(),
        port: s.port as u32,
        version: s.version.clone(),
        install_dir: s.install_dir.clone(),
        site_certificate: s.site_certificate.clone(),
        policies: s.policies.iter().map(policy_to).collect(),
    }
}

pub fn setup_from(s: pb::MpSetupRequest) -> R<MpSetup> {
    Ok(MpSetup {
        port: port(s.port, "port")?,
        site_code: s.site_code,
        site_address: s.site_address,
        version: s.version,
        install_dir: s.install_dir,
        site_certificate: s.site_certificate,
        policies: s.policies.into_iter().map(policy_from).collect(),
    })
}

pub fn setup_result_to(r: &MpSetupResult) -> pb::MpSetupReply {
    match &r.outcome {
        Ok(p) => pb::MpSetupReply {
            lines: r.lines.clone(),
            ok: true,
            port: *p as u32,
            failed_check: String::new(),
            detail: String::new(),
        },
        Err((check, detail)) => pb::MpSetupReply {
            lines: r.lines.clone(),
            ok: false,
            port: 0,
            failed_check: check.as_str().to_string(),
            detail: detail.clone(),
        },
    }
}

pub fn setup_result_from(r: pb::MpSetupReply) -> R<MpSetupResult> {
    Ok(MpSetupResult {
        outcome: if r.ok {
            Ok(port(r.port, "port")?)
        } else {
            Err((r.failed_check.parse().map_err(WireError)?, r.detail))
        },
        lines: r.lines,
    })
}

pub fn client_messages_to(m: &[ClientMessage]) -> Vec<pb::ClientMessage> {
    m.iter()
        .map(|m| pb::ClientMessage {
            id: m.id,
            severity: m.severity.clone(),
            component: m.component.clone(),
            text: m.text.clone(),
        })
        .collect()
}

pub fn client_messages_from(m: Vec<pb::ClientMessage>) -> Vec<ClientMessage> {
    m.into_iter()
        .map(|m| ClientMessage {
            id: m.id,
            severity: m.severity,
            component: m.component,
            text: m.text,
        })
        .collect()
}
