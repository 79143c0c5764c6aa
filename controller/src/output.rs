//! The renderers every command shares: human tables by default, one JSON
//! document with `--json`. A link, a fault list, a site record, a status
//! message, a failed job or a site control looks the same wherever it is
//! printed because it is rendered here, and only here.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::{json, Value};
use sms_proto::v1 as pb;
use uuid::Uuid;

/// Stdout could not be written. A closed pipe (`controller status | head
/// -1`) ends the process quietly with status 0: the reader took what it
/// wanted, as with `head` or `grep -q`, and 0 (rather than the shell's 141
/// for SIGPIPE) keeps `set -o pipefail` scripts working. Anything else is
/// reported.
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("controller: cannot write the output: {e}");
    std::process::exit(1)
}

/// Makes every `println!` behave as [`stdout_failed`] on a closed pipe:
/// std ignores SIGPIPE and panics with "failed printing to stdout: Broken
/// pipe"; this hook turns that one panic into the quiet exit and leaves
/// every other panic to the default hook.
pub fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if closed_stdout(msg) {
            std::process::exit(0);
        }
        default(info)
    }));
}

/// Whether a panic message is std's for a write to a closed stdout.
fn closed_stdout(msg: &str) -> bool {
    msg.starts_with("failed printing to stdout")
        && (msg.contains("Broken pipe") || msg.contains("os error 32"))
}

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

/// A time for a table: [`time`] with how long ago (or ahead) it is, as
/// `2026-11-30T05:00:01.000Z (3 min ago)`; `-` for 0 (never or unknown).
/// JSON keeps [`time`] and the milliseconds: an age is stale once printed.
pub fn time_ago(ms: u64) -> String {
    time_ago_at(ms, crate::units::now_ms())
}

/// [`time_ago`] as seen at `now_ms`.
pub fn time_ago_at(ms: u64, now_ms: u64) -> String {
    if ms == 0 {
        return "-".to_string();
    }
    format!("{} ({})", time(ms), crate::units::relative(ms, now_ms))
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
        shown(s)
    }
}

/// Text that came from a node (and so perhaps from another site), made safe
/// to print on a terminal: control characters (escape sequences, newlines,
/// NUL, C1 controls) and the bidirectional overrides that reorder what is
/// shown are printed as escapes, so no site can repaint the operator's
/// screen or disguise a value. Everything else, accents included, is kept.
pub fn shown(s: &str) -> String {
    let bidi = |c: char| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(|c| c.is_control() || bidi(c)) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() || bidi(c) {
            out.extend(c.escape_debug());
            if c.escape_debug().len() == 1 {
                // escape_debug leaves some controls as they are.
                out.pop();
                out.extend(c.escape_unicode());
            }
        } else {
            out.push(c);
        }
    }
    out
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
        "clock_skew_ms": l.clock_skew_ms,
    })
}

/// How far a neighbour's clock is from this node's, in words ("3 s ahead",
/// "30 days behind"), or None when it is unknown.
pub fn skew_words(ms: Option<i64>) -> Option<String> {
    let ms = ms?;
    let secs = ms.unsigned_abs() / 1000;
    let amount = if secs >= 86_400 {
        format!("{:.1} days", secs as f64 / 86_400.0)
    } else if secs >= 3_600 {
        format!("{:.1} h", secs as f64 / 3_600.0)
    } else if secs >= 60 {
        format!("{} min", secs / 60)
    } else {
        format!("{} s", secs)
    };
    Some(format!(
        "{amount} {}",
        if ms < 0 { "behind" } else { "ahead" }
    ))
}

/// One line saying how a link stands after it was changed.
pub fn link_line(l: &pb::LinkState) -> String {
    format!(
        "link to {}: {} ({} queued, {} failed){}",
        shown(&l.to),
        shown(&l.state),
        l.queued_jobs,
        l.failed_jobs,
        if l.detail.is_empty() {
            String::new()
        } else {
            format!(" - {}", shown(&l.detail))
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
            shown(&l.to),
            shown(&l.state),
            l.queued_jobs.to_string(),
            l.failed_jobs.to_string(),
            shown(&l.server),
            shown(&l.detail),
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
                format!("{} (phase {})", shown(&x.name), x.phase)
            } else {
                shown(&x.name)
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
        "status": shown_status(s),
        "stale": s.stale,
        "serial": s.serial,
        "status_changed_unix_ms": s.status_changed_unix_ms,
        "last_report_unix_ms": (s.last_report_unix_ms > 0).then_some(s.last_report_unix_ms),
        "last_report_age_ms": (s.last_report_unix_ms > 0).then_some(s.last_report_age_ms),
        "version": s.version,
        "link_state": s.link_state,
        "recent_errors": s.recent_errors,
        "recent_warnings": s.recent_warnings,
    })
}

/// A site's status as an operator reads it: `Stale` for an Active site
/// that has been silent too long, its install status otherwise.
pub fn shown_status(s: &pb::SiteRecord) -> String {
    if s.stale {
        "Stale".to_string()
    } else {
        s.status.clone()
    }
}

/// When a site last reported, as an age (`-` if it has not since the node
/// began keeping track).
pub fn report_age(s: &pb::SiteRecord) -> String {
    if s.last_report_unix_ms == 0 {
        return "-".to_string();
    }
    let secs = std::time::Duration::from_secs(s.last_report_age_ms / 1000);
    format!("{} ago", humantime::format_duration(secs))
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
        "last report",
        "link",
        "errors/warnings (1 h)",
    ]);
    for s in sites {
        t.add_row(vec![
            shown(&s.site_code),
            or_dash(&s.parent_site_code),
            shown(&s.kind),
            shown(&s.server),
            shown(&shown_status(s)),
            s.serial.to_string(),
            time_ago(s.status_changed_unix_ms),
            report_age(s),
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
        shown(&m.site_code),
        m.id,
        severity(m.severity),
        shown(&m.text)
    )
}

/// Status messages as a table.
pub fn messages_table(msgs: &[pb::StatusMessage]) -> Table {
    let mut t = table(&["time (UTC)", "site", "id", "severity", "component", "text"]);
    for m in msgs {
        t.add_row(vec![
            time_ago(m.time_unix_ms),
            shown(&m.site_code),
            m.id.to_string(),
            severity(m.severity).to_string(),
            shown(&m.component),
            shown(&m.text),
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
            shown(&j.kind),
            shown(&j.dest_site),
            j.attempts.to_string(),
            time_ago(j.failed_unix_ms),
            shown(&j.reason),
        ]);
    }
    t
}

/// A site control (CT0) as JSON: what `site-control --json` prints and the
/// shape of `proposed` in the CT1 file `submit-ct1` reads.
/// One management point as `mp list` and `site-control` show it.
pub fn mp_json(m: &pb::ManagementPoint) -> Value {
    json!({
        "server": m.server,
        "port": m.port,
        "bound_port": m.bound_port,
        "default": m.is_default,
        "state": m.state,
        "detail": m.detail,
        "verified": if m.verified_unix_ms == 0 { Value::Null } else { json!(time(m.verified_unix_ms)) },
        "verification": m.verification,
    })
}

pub fn control_json(c: &pb::SiteControl) -> Value {
    json!({
        "site_code": c.site_code,
        "site_name": c.site_name,
        "serial": c.serial,
        "parent_site_code": c.parent_site_code,
        "polling_interval_ms": c.polling_interval_ms,
        "version": c.version,
        "next_unique_id": c.next_unique_id,
        "management_points": c.management_points.iter().map(mp_json).collect::<Vec<_>>(),
        "status_rules": c.status_rules.iter().enumerate().map(|(i, r)| crate::commands::status_rules::rule_json(i + 1, r)).collect::<Vec<_>>(),
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
            // null: the sending node's --keepalive-secs.
            "keepalive_secs": a.keepalive_secs,
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
    use super::*;

    #[test]
    fn text_from_other_sites_cannot_drive_the_terminal() {
        assert_eq!(shown("Zürich site"), "Zürich site");
        assert_eq!(shown("red\u{1b}[31m!"), "red\\u{1b}[31m!");
        assert_eq!(shown("a\nb\0c"), "a\\nb\\0c");
        assert_eq!(shown("x\u{202E}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(shown("\u{9b}2J"), "\\u{9b}2J");
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort();
        k
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_795_219_200_123), "2026-11-21T00:00:00.123Z");
    }

    #[test]
    fn ids_print_as_uuids_and_garbage_as_nothing() {
        let u = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(uuid(u.as_bytes()), "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(uuid(&[1, 2, 3]), "");
        assert_eq!(uuid(&[]), "");
    }

    #[test]
    fn priorities_round_trip_by_name_and_unknown_ones_are_not_named() {
        for name in ["high", "medium", "low"] {
            let p = parse_priority(name).unwrap();
            assert_eq!(priority_name(p as i32), Some(name));
        }
        assert_eq!(parse_priority("urgent"), None);
        assert_eq!(parse_priority("High"), None);
        assert_eq!(priority_name(pb::Priority::Unspecified as i32), None);
        assert_eq!(priority_name(99), None);
    }

    #[test]
    fn severities_have_names_and_unknown_ones_say_so() {
        assert_eq!(
            severity(pb::Severity::Informational as i32),
            "informational"
        );
        assert_eq!(severity(pb::Severity::Warning as i32), "warning");
        assert_eq!(severity(pb::Severity::Error as i32), "error");
        assert_eq!(severity(0), "unknown");
        assert_eq!(severity(42), "unknown");
    }

    #[test]
    fn a_link_renders_its_fields_and_its_detail_only_when_there_is_one() {
        let mut l = pb::LinkState {
            to: "S01".into(),
            state: "severed".into(),
            queued_jobs: 3,
            failed_jobs: 1,
            server: "127.0.0.1:9".into(),
            detail: String::new(),
            refused_frames: 2,
            chunk_bytes_sent: 5,
            ..Default::default()
        };
        assert_eq!(link_line(&l), "link to S01: severed (3 queued, 1 failed)");
        l.detail = "by administrator".into();
        assert_eq!(
            link_line(&l),
            "link to S01: severed (3 queued, 1 failed) - by administrator"
        );
        let v = link_json(&l);
        assert_eq!(
            keys(&v),
            [
                "clock_skew_ms",
                "detail",
                "failed_jobs",
                "queued_jobs",
                "refused_frames",
                "server",
                "state",
                "to"
            ]
        );
        assert_eq!(v["queued_jobs"], 3);
        assert!(v["clock_skew_ms"].is_null(), "unknown skew is null");
        let t = links_table(&[l]).to_string();
        assert!(t.contains("link to") && t.contains("S01") && t.contains("by administrator"));
    }

    #[test]
    fn faults_show_a_phase_only_when_they_have_one() {
        let f = pb::FaultList {
            faults: vec![
                pb::Fault {
                    name: "bootstrap-failure".into(),
                    phase: 3,
                },
                pb::Fault {
                    name: "ct2-job-failure".into(),
                    phase: 0,
                },
            ],
        };
        assert_eq!(
            faults_json(&f),
            json!({"faults": [{"name": "bootstrap-failure", "phase": 3}, {"name": "ct2-job-failure"}]})
        );
        assert_eq!(
            fault_lines(&f),
            ["bootstrap-failure (phase 3)", "ct2-job-failure"]
        );
        let none = pb::FaultList::default();
        assert_eq!(faults_json(&none), json!({"faults": []}));
        assert_eq!(fault_lines(&none), ["no faults injected"]);
    }

    #[test]
    fn a_site_record_without_parent_or_link_shows_dashes() {
        let s = pb::SiteRecord {
            site_code: "PRI".into(),
            kind: "primary".into(),
            status: "Active".into(),
            serial: 4,
            recent_errors: 2,
            recent_warnings: 5,
            ..Default::default()
        };
        let v = site_json(&s);
        assert_eq!(v["parent_site_code"], "");
        assert_eq!(v["status_changed_unix_ms"], 0);
        assert_eq!(keys(&v).len(), 14);
        assert_eq!(v["stale"], false);
        assert!(v["last_report_unix_ms"].is_null(), "never reported: null");
        let t = sites_table(&[s]).to_string();
        assert!(t.contains("errors/warnings (1 h)"), "{t}");
        assert!(t.contains("2/5"), "{t}");
        assert!(t.contains(" - "), "empty parent and link print as -: {t}");
        assert!(
            !t.contains("1970-01-01"),
            "an unknown time is not shown as 1970: {t}"
        );
    }

    #[test]
    fn a_stale_site_shows_stale_with_the_age_of_its_last_report() {
        let s = pb::SiteRecord {
            site_code: "S01".into(),
            status: "Active".into(),
            stale: true,
            last_report_unix_ms: 1_000,
            last_report_age_ms: 95_000,
            ..Default::default()
        };
        let v = site_json(&s);
        assert_eq!(v["status"], "Stale");
        assert_eq!(v["stale"], true);
        assert_eq!(v["last_report_unix_ms"], 1_000);
        assert_eq!(v["last_report_age_ms"], 95_000);
        let t = sites_table(&[s]).to_string();
        assert!(t.contains("Stale"), "{t}");
        assert!(t.contains("1m 35s ago"), "{t}");
    }

    #[test]
    fn a_status_message_renders_as_json_line_and_table() {
        let m = pb::StatusMessage {
            id: 3101,
            severity: pb::Severity::Warning as i32,
            site_code: "S01".into(),
            component: "hman".into(),
            time_unix_ms: 1_000,
            text: "status changed".into(),
            insertion_strings: vec!["S01".into()],
            ..Default::default()
        };
        assert_eq!(
            message_line(&m),
            "1970-01-01T00:00:01.000Z  S01   3101 warning       status changed"
        );
        let v = message_json(&m);
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["time"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["time_unix_ms"], 1000);
        assert_eq!(v["insertion_strings"], json!(["S01"]));
        assert_eq!(keys(&v).len(), 9);
        let t = messages_table(&[m]).to_string();
        assert!(t.contains("time (UTC)") && t.contains("hman") && t.contains("3101"));
    }

    #[test]
    fn a_failed_job_renders_its_id_time_and_reason() {
        let j = pb::FailedJob {
            job_id: Uuid::nil().as_bytes().to_vec(),
            kind: "ct2".into(),
            dest_site: "PRI".into(),
            attempts: 5,
            reason: "injected fault".into(),
            failed_unix_ms: 0,
        };
        assert_eq!(
            failed_job_json(&j),
            json!({"job_id": Uuid::nil().to_string(), "kind": "ct2", "dest_site": "PRI",
                   "attempts": 5, "reason": "injected fault", "failed": "1970-01-01T00:00:00.000Z"})
        );
        let t = failed_jobs_table(&[j]).to_string();
        assert!(t.contains("failed (UTC)") && t.contains("injected fault"));
    }

    #[test]
    fn a_site_control_schedule_names_its_priorities_and_defaults_to_low() {
        let c = pb::SiteControl {
            site_code: "S01".into(),
            addresses: vec![pb::Address {
                site_code: "PRI".into(),
                schedule: vec![
                    pb::ScheduleRule {
                        start_hour: 8,
                        end_hour: 18,
                        lowest: pb::Priority::High as i32,
                    },
                    pb::ScheduleRule {
                        start_hour: 18,
                        end_hour: 8,
                        lowest: 0,
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = control_json(&c);
        let rules = &v["addresses"][0]["schedule"];
        assert_eq!(rules[0]["lowest"], "high");
        assert_eq!(rules[1]["lowest"], "low");
        assert_eq!(v["domains"], json!([]));
        assert_eq!(keys(&v).len(), 11);
        assert_eq!(v["management_points"], json!([]));
        assert_eq!(v["status_rules"], json!([]));
    }

    #[test]
    fn only_a_closed_stdout_panic_is_taken_for_one() {
        let e = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(!closed_stdout(&e.to_string()));
        let e = std::io::Error::from_raw_os_error(32);
        assert!(closed_stdout(&format!("failed printing to stdout: {e}")));
        assert!(!closed_stdout(&format!("failed printing to stderr: {e}")));
        assert!(!closed_stdout(
            "failed printing to stdout: No space left on device (os error 28)"
        ));
        assert!(!closed_stdout("index out of bounds"));
    }

    #[test]
    fn table_times_carry_their_age_and_json_keeps_the_time_alone() {
        let t = 1_795_219_200_000;
        assert_eq!(
            time_ago_at(t, t + 180_000),
            "2026-11-21T00:00:00.000Z (3 min ago)"
        );
        assert_eq!(
            time_ago_at(t, t - 89 * 86_400_000),
            "2026-11-21T00:00:00.000Z (in 89 days)"
        );
        assert_eq!(time_ago_at(0, t), "-");
        let s = pb::SiteRecord {
            site_code: "S01".into(),
            status_changed_unix_ms: crate::units::now_ms() - 120_000,
            ..Default::default()
        };
        let table = sites_table(std::slice::from_ref(&s)).to_string();
        assert!(table.contains("(2 min ago)"), "{table}");
        assert_eq!(
            site_json(&s)["status_changed_unix_ms"],
            s.status_changed_unix_ms
        );
    }

    #[test]
    fn or_dash_marks_only_empty_cells() {
        assert_eq!(or_dash(""), "-");
        assert_eq!(or_dash("PRI"), "PRI");
    }

    #[test]
    fn clock_skew_reads_in_words() {
        assert_eq!(skew_words(None), None);
        assert_eq!(skew_words(Some(3_400)).as_deref(), Some("3 s ahead"));
        assert_eq!(skew_words(Some(-125_000)).as_deref(), Some("2 min behind"));
        assert_eq!(
            skew_words(Some(-30 * 86_400_000)).as_deref(),
            Some("30.0 days behind")
        );
    }
}
