//! The renderers every command shares: human tables by default, one JSON
//! document with `--json`. A link, a fault list, a site record, a status
//! message, a failed job or a site control looks the same wherever it is
//! printed because it is rendered here, and only here.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::{json, Value};
use sms_proto::v1 as pb;
use uuid::Uuid;

/// Global output options.
#[derive(Clone, Debug)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints `value` as JSON, or runs `human` to print it for people.
    pub fn print(&self, value: &Value, human: impl FnOnce()) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).expect("json"));
        } else {
            human();
        }
    }
}

/// A table with a header row.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// Milliseconds since the epoch as an RFC 3339 UTC time.
pub fn time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A job or package id as its UUID text; empty if the node sent bytes that
/// are not a UUID (an empty cell is more honest than a made-up id).
pub fn uuid(b: &[u8]) -> String {
    Uuid::from_slice(b)
        .map(|u| u.to_string())
        .unwrap_or_default()
}

/// `-` for an empty table cell, so a missing parent or link reads as absent.
pub fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// The name of a job priority; `None` for a value the proto does not name
/// (each caller decides what an unnamed priority prints as).
pub fn priority_name(p: i32) -> Option<&'static str> {
    match pb::Priority::try_from(p) {
        Ok(pb::Priority::High) => Some("high"),
        Ok(pb::Priority::Medium) => Some("medium"),
        Ok(pb::Priority::Low) => Some("low"),
        _ => None,
    }
}

/// The priority named `high`, `medium` or `low` (the only spellings the
/// command line and CT1 files use).
pub fn parse_priority(s: &str) -> Option<pb::Priority> {
    match s {
        "high" => Some(pb::Priority::High),
        "medium" => Some(pb::Priority::Medium),
        "low" => Some(pb::Priority::Low),
        _ => None,
    }
}

/// The name of a status message severity.
pub fn severity(s: i32) -> &'static str {
    match pb::Severity::try_from(s) {
        Ok(pb::Severity::Informational) => "informational",
        Ok(pb::Severity::Warning) => "warning",
        Ok(pb::Severity::Error) => "error",
        _ => "unknown",
    }
}

/// JSON of a link as `status`, `sever-link`, `restore-link`, `retry-jobs`
/// and `diagnose` print it.
pub fn link_json(l: &pb::LinkState) -> Value {
    json!({
        "to": l.to,
        "state": l.state,
        "queued_jobs": l.queued_jobs,
        "failed_jobs": l.failed_jobs,
        "server": l.server,
        "detail": l.detail,
        "refused_frames": l.refused_frames,
    })
}

/// One line saying how a link stands after it was changed.
pub fn link_line(l: &pb::LinkState) -> String {
    format!(
        "link to {}: {} ({} queued, {} failed){}",
        l.to,
        l.state,
        l.queued_jobs,
        l.failed_jobs,
        if l.detail.is_empty() {
            String::new()
        } else {
            format!(" - {}", l.detail)
        }
    )
}

/// Prints a link as [`link_line`] or [`link_json`].
pub fn print_link(out: &Out, l: &pb::LinkState) {
    out.print(&link_json(l), || println!("{}", link_line(l)));
}

/// The table of a node's links in `status`.
pub fn links_table(links: &[pb::LinkState]) -> Table {
    let mut t = table(&["link to", "state", "queued", "failed", "server", "detail"]);
    for l in links {
        t.add_row(vec![
            l.to.clone(),
            l.state.clone(),
            l.queued_jobs.to_string(),
            l.failed_jobs.to_string(),
            l.server.clone(),
            l.detail.clone(),
        ]);
    }
    t
}

/// JSON of a fault list; the phase only where a fault has one.
pub fn faults_json(f: &pb::FaultList) -> Value {
    json!({
        "faults": f.faults.iter().map(|f| {
            if f.phase > 0 { json!({"name": f.name, "phase": f.phase}) } else { json!({"name": f.name}) }
        }).collect::<Vec<_>>()
    })
}

/// The lines a fault list prints as, one per fault.
pub fn fault_lines(f: &pb::FaultList) -> Vec<String> {
    if f.faults.is_empty() {
        return vec!["no faults injected".into()];
    }
    f.faults
        .iter()
        .map(|x| {
            if x.phase > 0 {
                format!("{} (phase {})", x.name, x.phase)
            } else {
                x.name.clone()
            }
        })
        .collect()
}

/// Prints the faults in force after `inject-fault` or `clear-fault`.
pub fn print_faults(out: &Out, f: &pb::FaultList) {
    out.print(&faults_json(f), || {
        for l in fault_lines(f) {
            println!("{l}");
        }
    });
}

/// JSON of one record of the Hierarchy Manager's site list.
pub fn site_json(s: &pb::SiteRecord) -> Value {
    json!({
        "site_code": s.site_code,
        "parent_site_code": s.parent_site_code,
        "kind": s.kind,
        "server": s.server,
        "status": s.status,
        "serial": s.serial,
        "status_changed_unix_ms": s.status_changed_unix_ms,
        "version": s.version,
        "link_state": s.link_state,
        "recent_errors": s.recent_errors,
        "recent_warnings": s.recent_warnings,
    })
}

/// The site list as a table.
pub fn sites_table(sites: &[pb::SiteRecord]) -> Table {
    let mut t = table(&[
        "site",
        "parent",
        "kind",
        "server",
        "status",
        "serial",
        "since",
        "link",
        "errors/warnings (1 h)",
    ]);
    for s in sites {
        t.add_row(vec![
            s.site_code.clone(),
            or_dash(&s.parent_site_code),
            s.kind.clone(),
            s.server.clone(),
            s.status.clone(),
            s.serial.to_string(),
            time(s.status_changed_unix_ms),
            or_dash(&s.link_state),
            format!("{}/{}", s.recent_errors, s.recent_warnings),
        ]);
    }
    t
}

/// JSON of a status message, with its time both readable and in ms.
pub fn message_json(m: &pb::StatusMessage) -> Value {
    json!({
        "id": m.id,
        "severity": severity(m.severity),
        "site_code": m.site_code,
        "component": m.component,
        "machine": m.machine,
        "time": time(m.time_unix_ms),
        "time_unix_ms": m.time_unix_ms,
        "text": m.text,
        "insertion_strings": m.insertion_strings,
    })
}

/// A status message on one line, as `status-messages --follow` streams it
/// (a table cannot grow as messages arrive).
pub fn message_line(m: &pb::StatusMessage) -> String {
    format!(
        "{}  {}  {:>5} {:<13} {}",
        time(m.time_unix_ms),
        m.site_code,
        m.id,
        severity(m.severity),
        m.text
    )
}

/// Status messages as a table.
pub fn messages_table(msgs: &[pb::StatusMessage]) -> Table {
    let mut t = table(&["time (UTC)", "site", "id", "severity", "component", "text"]);
    for m in msgs {
        t.add_row(vec![
            time(m.time_unix_ms),
            m.site_code.clone(),
            m.id.to_string(),
            severity(m.severity).to_string(),
            m.component.clone(),
            m.text.clone(),
        ]);
    }
    t
}

/// JSON of a job whose retries ran out.
pub fn failed_job_json(j: &pb::FailedJob) -> Value {
    json!({
        "job_id": uuid(&j.job_id), "kind": j.kind, "dest_site": j.dest_site,
        "attempts": j.attempts, "reason": j.reason, "failed": time(j.failed_unix_ms),
    })
}

/// Failed jobs as a table.
pub fn failed_jobs_table(jobs: &[pb::FailedJob]) -> Table {
    let mut t = table(&["job", "kind", "for", "attempts", "failed (UTC)", "reason"]);
    for j in jobs {
        t.add_row(vec![
            uuid(&j.job_id),
            j.kind.clone(),
            j.dest_site.clone(),
            j.attempts.to_string(),
            time(j.failed_unix_ms),
            j.reason.clone(),
        ]);
    }
    t
}

/// A site control (CT0) as JSON: what `site-control --json` prints and the
/// shape of `proposed` in the CT1 file `submit-ct1` reads.
pub fn control_json(c: &pb::SiteControl) -> Value {
    json!({
        "site_code": c.site_code,
        "site_name": c.site_name,
        "serial": c.serial,
        "parent_site_code": c.parent_site_code,
        "polling_interval_ms": c.polling_interval_ms,
        "version": c.version,
        "next_unique_id": c.next_unique_id,
        "domains": c.domains.iter().map(|d| json!({
            "name": d.name,
            "browse": d.browse,
            "logon_servers": d.logon_servers.iter().map(|l| json!({"server": l.server, "state": l.state})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "addresses": c.addresses.iter().map(|a| json!({
            "site_code": a.site_code,
            "server": a.server,
            "retry_count": a.retry_count,
            "retry_delay_ms": a.retry_delay_ms,
            "concurrent_sendings": a.concurrent_sendings,
            "rate_limit_bytes_per_sec": a.rate_limit_bytes_per_sec,
            "schedule": a.schedule.iter().map(|r| json!({
                "start_hour": r.start_hour,
                "end_hour": r.end_hour,
                // A rule always has a lowest priority; low lets everything through.
                "lowest": priority_name(r.lowest).unwrap_or("low"),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::time(1_795_219_200_123), "2026-11-21T00:00:00.123Z");
    }
}
