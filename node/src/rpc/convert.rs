//! Conversions between domain types and wire types. Wire input is untrusted:
//! every conversion from the wire validates and says what is wrong.

use sms_proto::v1 as pb;
use uuid::Uuid;

use crate::model::*;

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
        (Payload::Ct1(c), _) => Kind::Ct1(pb::Ct1 {
            base_serial: c.base_serial,
            proposed: Some(control_to(&c.proposed)),
            origin: c.origin.clone(),
        }),
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
                data,
                sha256: f.sha256.clone(),
            })
        }
        (Payload::Bootstrap(b), _) => Kind::Bootstrap(bootstrap_to(b)),
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
            chunk = Some((f.chunk_index, f.data));
            Payload::File(FilePackage {
                name: f.name,
                total_size: f.total_size,
                chunk_count: f.chunk_count,
                sha256: f.sha256,
            })
        }
        Kind::Bootstrap(b) => Payload::Bootstrap(Box::new(bootstrap_from(&b)?)),
        Kind::Deinstall(d) => Payload::Deinstall(code(&d.site_code, "deinstall.site_code")?),
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
    pb::SiteRecord {
        recent_errors: 0,
        recent_warnings: 0,
        link_state: String::new(),
        version: String::new(),
        site_code: r.site_code.to_string(),
        parent_site_code: opt_str(&r.parent_site_code),
        kind: r.kind.as_str().to_string(),
        server: r.server.clone(),
        status: r.status.to_string(),
        serial: r.serial,
        status_changed_unix_ms: r.status_changed_unix_ms,
    }
}
