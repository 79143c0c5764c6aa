//! Unit tests of the domain types.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::fault::{Fault, FaultError};
use crate::link::{LinkState, NodeRole};
use crate::records::*;
use crate::*;

fn code(s: &str) -> SiteCode {
    s.parse().unwrap()
}

fn install(ranges: Vec<(u64, u64)>, next_id: u64) -> LogonInstall {
    LogonInstall {
        site_code: code("S01"),
        site_address: "s01:1".into(),
        domain: "CORP".into(),
        script_version: 1,
        script: "echo".into(),
        ranges,
        next_id,
    }
}

fn rule(start_hour: u8, end_hour: u8, lowest: Priority) -> ScheduleRule {
    ScheduleRule {
        start_hour,
        end_hour,
        lowest,
    }
}

/// Encodes with postcard and decodes again; the value must come back equal.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T) {
    let bytes = postcard::to_stdvec(v).expect("encodes");
    let back: T = postcard::from_bytes(&bytes).expect("decodes");
    assert_eq!(&back, v);
}

fn control() -> SiteControl {
    SiteControl {
        site_code: code("S01"),
        site_name: "Site one".into(),
        serial: 7,
        parent_site_code: Some(code("PRI")),
        polling_interval_ms: 30_000,
        domains: vec![Domain {
            name: "CORP".into(),
            browse: vec!["CORP".into(), "LAB".into()],
            logon_servers: vec![
                LogonServer {
                    server: "dc1".into(),
                    state: LogonState::Active,
                },
                LogonServer {
                    server: "dc2".into(),
                    state: LogonState::PendingUninstall,
                },
            ],
        }],
        addresses: vec![Address {
            schedule: vec![rule(22, 6, Priority::High)],
            keepalive_secs: Some(25),
            ..Address::new(code("PRI"), "pri:7000".into())
        }],
        version: "1.2.3".into(),
        next_unique_id: 1_000,
        management_points: vec![],
        status_rules: vec![],
    }
}

fn status_msg() -> StatusMessage {
    StatusMessage {
        uid: Uuid::now_v7(),
        id: 2800,
        severity: Severity::Warning,
        site_code: code("S01"),
        component: "SMS_SITE_CONFIG_MANAGER".into(),
        machine: "s01".into(),
        time_unix_ms: 1_700_000_000_000,
        insertion_strings: vec!["S01".into(), "".into(), "ünïcode".into()],
        text: "text".into(),
    }
}

fn ct2() -> Ct2 {
    Ct2 {
        signature: None,
        site_code: code("S01"),
        parent_site_code: None,
        serial: 7,
        control: control(),
        components: vec![ComponentState {
            name: "SMS_DESPOOLER".into(),
            state: "running".into(),
        }],
        version: "1.2.3".into(),
        reported_unix_ms: 5,
        server: "s01:7000".into(),
        kind: SiteKind::Secondary,
    }
}

fn bootstrap() -> BootstrapPackage {
    BootstrapPackage {
        site_code: code("S02"),
        site_name: "two".into(),
        parent_site_code: code("S01"),
        parent_address: "s01:7000".into(),
        init_control: control(),
        link_secret: "secret".into(),
        content: vec![0, 1, 2, 255],
        content_sha256: vec![9; 32],
        required_free_bytes: u64::MAX,
        version: "1".into(),
        server: "s02:7000".into(),
        ancestors: vec![code("S01"), code("PRI")],
    }
}

fn file_pkg() -> FilePackage {
    FilePackage {
        name: "pkg.bin".into(),
        total_size: 3 << 20,
        chunk_count: 3,
        chunk_size: 1 << 20,
        sha256: vec![1; 32],
    }
}

fn every_payload() -> Vec<Payload> {
    vec![
        Payload::Ct1(Ct1 {
            signature: None,
            base_serial: 6,
            proposed: control(),
            origin: "PRI".into(),
        }),
        Payload::Ct2(ct2()),
        Payload::Status(vec![status_msg(), status_msg()]),
        Payload::Status(vec![]),
        Payload::Probe(vec![]),
        Payload::Probe(vec![7; 1000]),
        Payload::File(file_pkg()),
        Payload::Bootstrap(Box::new(bootstrap())),
        Payload::Deinstall(code("S02")),
        Payload::Revocations(vec![("0a1b".into(), "site S03 was deleted".into())]),
    ]
}

// ---- LogonInstall ---------------------------------------------------------

#[test]
fn logon_take_walks_across_ranges_in_order() {
    let mut l = install(vec![(10, 13), (20, 22)], 10);
    assert_eq!(l.remaining(), 5);
    assert_eq!(l.take(2), vec![10, 11]);
    assert_eq!(l.remaining(), 3);
    // Crosses into the second range.
    assert_eq!(l.take(2), vec![12, 20]);
    assert_eq!(l.ranges, vec![(20, 22)]);
    assert_eq!(l.next_id, 21);
    assert_eq!(l.remaining(), 1);
}

#[test]
fn logon_take_stops_when_the_ranges_run_out() {
    let mut l = install(vec![(1, 3), (5, 6)], 1);
    assert_eq!(l.take(10), vec![1, 2, 5]);
    assert_eq!(l.remaining(), 0);
    assert!(l.take(1).is_empty());
    assert!(l.ranges.is_empty() || l.next_id >= l.ranges[0].1);
    assert_eq!(l.remaining(), 0);
}

#[test]
fn logon_next_id_below_the_range_start_begins_at_the_start() {
    let mut l = install(vec![(100, 103)], 0);
    assert_eq!(l.remaining(), 3, "ids below the range are not counted");
    assert_eq!(l.take(1), vec![100]);
    assert_eq!(l.next_id, 101);
    assert_eq!(l.remaining(), 2);
}

#[test]
fn logon_partial_take_resumes_where_it_stopped() {
    let mut l = install(vec![(50, 60)], 55);
    assert_eq!(l.remaining(), 5);
    assert_eq!(l.take(0), Vec::<u64>::new());
    assert_eq!(l.take(3), vec![55, 56, 57]);
    assert_eq!(l.take(3), vec![58, 59]);
    assert_eq!(l.remaining(), 0);
}

#[test]
fn logon_exhausted_first_range_counts_only_later_ones() {
    // next_id sits at the end of the first range: it is used up.
    let l = install(vec![(1, 4), (10, 20)], 4);
    assert_eq!(l.remaining(), 10);
    let empty = install(vec![], 42);
    assert_eq!(empty.remaining(), 0);
    let mut e = empty.clone();
    assert!(e.take(3).is_empty());
    assert_eq!(e, empty);
}

#[test]
fn logon_take_never_hands_out_an_id_twice() {
    let mut l = install(vec![(1, 4), (4, 8), (20, 25)], 0);
    let total = l.remaining();
    let mut all = vec![];
    while let Some(&id) = l.take(1).first() {
        all.push(id);
    }
    assert_eq!(all.len() as u64, total);
    let mut sorted = all.clone();
    sorted.dedup();
    assert_eq!(sorted, all);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
}

// ---- schedules ------------------------------------------------------------

#[test]
fn schedule_rule_is_start_inclusive_end_exclusive() {
    let r = rule(8, 18, Priority::High);
    assert!(!r.covers(7));
    assert!(r.covers(8));
    assert!(r.covers(17));
    assert!(!r.covers(18));
    // An empty rule covers nothing.
    let empty = rule(5, 5, Priority::High);
    assert!((0..24).all(|h| !empty.covers(h)));
    // 0-24 covers the whole day.
    let all_day = rule(0, 24, Priority::High);
    assert!((0..24).all(|h| all_day.covers(h)));
}

#[test]
fn schedule_rule_wraps_past_midnight() {
    let r = rule(22, 2, Priority::Medium);
    for h in [22, 23, 0, 1] {
        assert!(r.covers(h), "hour {h}");
    }
    for h in [2, 3, 12, 21] {
        assert!(!r.covers(h), "hour {h}");
    }
    // Wrapping to 0 covers only the late hours.
    let late = rule(23, 0, Priority::High);
    assert!(late.covers(23));
    assert!(!late.covers(0));
}

#[test]
fn address_allows_only_priorities_at_least_as_high_as_every_covering_rule() {
    let mut a = Address::new(code("PRI"), "pri".into());
    assert!(Priority::ALL
        .iter()
        .all(|p| (0..24).all(|h| a.allows(*p, h))));
    a.schedule = vec![rule(0, 12, Priority::Medium), rule(6, 9, Priority::High)];
    assert!(a.allows(Priority::Medium, 5));
    assert!(!a.allows(Priority::Low, 5));
    // Two rules cover 06-09: the stricter one wins.
    assert!(!a.allows(Priority::Medium, 6));
    assert!(a.allows(Priority::High, 8));
    assert!(a.allows(Priority::Medium, 9));
    // No rule covers noon.
    assert!(a.allows(Priority::Low, 12));
}

#[test]
fn address_defaults() {
    let a = Address::new(code("S01"), "s01:7000".into());
    assert_eq!(a.site_code, code("S01"));
    assert_eq!(a.server, "s01:7000");
    assert!(a.retry_count > 0);
    assert!(a.concurrent_sendings > 0);
    assert_eq!(a.rate_limit_bytes_per_sec, 0);
    assert!(a.schedule.is_empty());
}

// ---- parsing --------------------------------------------------------------

#[test]
fn priority_parse_is_case_insensitive_and_round_trips() {
    for p in Priority::ALL {
        assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
        assert_eq!(p.as_str().to_uppercase().parse::<Priority>(), Ok(p));
    }
    assert_eq!("MeDiUm".parse::<Priority>(), Ok(Priority::Medium));
    assert!(Priority::High < Priority::Medium && Priority::Medium < Priority::Low);
    assert_eq!(Priority::High as u8, 0);
    assert_eq!(Priority::Low as u8, 2);
}

#[test]
fn priority_refuses_unknowns_with_the_list() {
    for bad in ["urgent", "", " high", "hi"] {
        let e = bad.parse::<Priority>().unwrap_err();
        assert!(
            e.contains("high") && e.contains("medium") && e.contains("low"),
            "{e}"
        );
        assert!(e.contains("unknown priority"), "{e}");
    }
}

#[test]
fn site_kind_round_trips_and_refuses_unknowns() {
    for k in [SiteKind::Primary, SiteKind::Secondary] {
        assert_eq!(k.as_str().parse::<SiteKind>(), Ok(k));
    }
    let e = "Primary".parse::<SiteKind>().unwrap_err();
    assert!(e.contains("primary, secondary"), "{e}");
    assert!("tertiary".parse::<SiteKind>().is_err());
}

#[test]
fn logon_state_round_trips_and_refuses_unknowns() {
    for s in [
        LogonState::PendingInstall,
        LogonState::Active,
        LogonState::PendingUninstall,
    ] {
        assert_eq!(s.as_str().parse::<LogonState>(), Ok(s));
    }
    let e = "installed".parse::<LogonState>().unwrap_err();
    assert!(e.contains("installed"), "{e}");
    assert!("Active".parse::<LogonState>().is_err());
}

#[test]
fn site_code_serde_validates_on_decode() {
    // A site code is serialised as its string...
    let bytes = postcard::to_stdvec(&code("S01")).unwrap();
    assert_eq!(bytes, postcard::to_stdvec(&"S01".to_string()).unwrap());
    // ...and a bad string never decodes into one.
    for bad in ["s01", "CON", "TOOLONG", ""] {
        let bytes = postcard::to_stdvec(&bad.to_string()).unwrap();
        assert!(postcard::from_bytes::<SiteCode>(&bytes).is_err(), "{bad}");
    }
    assert_eq!(code("AB1").as_bytes(), b"AB1");
    assert_eq!(format!("{:?}", code("AB1")), "AB1");
    assert_eq!(String::from(code("AB1")), "AB1");
}

#[test]
fn site_codes_refuse_non_ascii_and_lowercase_reserved_names() {
    // Three characters, but not three ASCII bytes.
    assert!(matches!(
        "ÄB1".parse::<SiteCode>(),
        Err(SiteCodeError::Charset(_))
    ));
    for r in ["PRN", "AUX", "NUL"] {
        assert_eq!(
            r.parse::<SiteCode>(),
            Err(SiteCodeError::Reserved(r.into()))
        );
    }
    // Reserved names are only the upper-case ones; lower case is a charset error.
    assert!(matches!(
        "con".parse::<SiteCode>(),
        Err(SiteCodeError::Charset(_))
    ));
}

// ---- site status ----------------------------------------------------------

#[test]
fn site_status_display_names_every_state() {
    let cases = [
        (SiteStatus::Pending, "Pending"),
        (SiteStatus::Phase(1), "Phase 1 Complete"),
        (SiteStatus::Phase(4), "Phase 4 Complete"),
        (SiteStatus::Active, "Active"),
        (SiteStatus::Failed, "Failed"),
        (SiteStatus::Deleting, "Deleting"),
        (SiteStatus::Upgrading, "Upgrading"),
    ];
    for (s, text) in cases {
        assert_eq!(s.to_string(), text);
    }
}

#[test]
fn site_status_progress_is_monotonic_through_the_install() {
    let install = [
        SiteStatus::Pending,
        SiteStatus::Phase(1),
        SiteStatus::Phase(2),
        SiteStatus::Phase(3),
        SiteStatus::Phase(4),
        SiteStatus::Active,
    ];
    let ranks: Vec<u8> = install.iter().map(|s| s.progress().unwrap()).collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
    for s in [
        SiteStatus::Failed,
        SiteStatus::Deleting,
        SiteStatus::Upgrading,
    ] {
        assert_eq!(s.progress(), None, "{s}");
    }
}

// ---- jobs -----------------------------------------------------------------

#[test]
fn job_new_ids_are_time_ordered_and_fresh() {
    let before = now_ms();
    let jobs: Vec<Job> = (0..500)
        .map(|_| {
            Job::new(
                code("S01"),
                code("PRI"),
                Priority::Low,
                Payload::Probe(vec![]),
            )
        })
        .collect();
    let after = now_ms();
    assert!(jobs.windows(2).all(|w| w[0].id < w[1].id));
    for j in &jobs {
        assert_eq!(j.id.get_version_num(), 7);
        assert_eq!(j.attempts, 0);
        assert_eq!(j.acked_chunks, 0);
        assert!(j.created_unix_ms >= before && j.created_unix_ms <= after);
    }
}

#[test]
fn payload_kinds_are_distinct() {
    let kinds: Vec<&str> = every_payload().iter().map(|p| p.kind()).collect();
    for k in [
        "ct1",
        "ct2",
        "status",
        "probe",
        "file",
        "bootstrap",
        "deinstall",
    ] {
        assert!(kinds.contains(&k), "{k}");
    }
}

#[test]
fn clock_helpers() {
    assert_eq!(fmt_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(fmt_ms(3_600_000 + 1), "1970-01-01T01:00:00.001Z");
    assert!(utc_hour() < 24);
    assert!(now_ms() > 1_600_000_000_000);
}

// ---- postcard round trips ---------------------------------------------------

#[test]
fn postcard_round_trips_site_control_records() {
    round_trip(&control());
    round_trip(&SiteControl {
        parent_site_code: None,
        domains: vec![],
        addresses: vec![],
        ..control()
    });
    round_trip(&Ct1 {
        signature: None,
        base_serial: 1,
        proposed: control(),
        origin: "bootstrap".into(),
    });
    round_trip(&ct2());
    round_trip(&Identity {
        site_code: code("S01"),
        site_name: "one".into(),
        kind: SiteKind::Primary,
        parent: Some(ParentLink {
            site_code: code("PRI"),
            address: "pri:7000".into(),
            link_secret: "s".into(),
        }),
        installed_unix_ms: 1,
        version: "1".into(),
        ancestors: vec![code("PRI")],
    });
    round_trip(&BadCt1 {
        ct1: Ct1 {
            signature: None,
            base_serial: 0,
            proposed: control(),
            origin: String::new(),
        },
        reason: "stale".into(),
        rejected_unix_ms: 3,
    });
}

#[test]
fn postcard_round_trips_jobs_with_every_payload() {
    for payload in every_payload() {
        let mut job = Job::new(code("S01"), code("S02"), Priority::Medium, payload);
        job.attempts = 3;
        job.acked_chunks = 2;
        round_trip(&job);
        round_trip(&FailedJob {
            job,
            reason: "retries exhausted".into(),
            failed_unix_ms: 9,
        });
    }
}

#[test]
fn postcard_round_trips_hierarchy_and_logon_records() {
    for status in [
        SiteStatus::Pending,
        SiteStatus::Phase(3),
        SiteStatus::Active,
        SiteStatus::Failed,
        SiteStatus::Deleting,
        SiteStatus::Upgrading,
    ] {
        round_trip(&SiteRecord {
            site_code: code("S02"),
            parent_site_code: Some(code("S01")),
            kind: SiteKind::Secondary,
            server: "s02".into(),
            status,
            status_changed_unix_ms: 4,
            serial: 2,
            link_secret: "x".into(),
            sever_link_mid_bootstrap: true,
        });
    }
    round_trip(&DeletedSite {
        site_code: code("S02"),
        next_unique_id: u64::MAX,
        deleted_unix_ms: 1,
        orphaned: true,
        server: "s02".into(),
    });
    round_trip(&LogonRecord {
        domain: "CORP".into(),
        server: "dc1".into(),
        state: LogonState::PendingInstall,
        node_id: Uuid::now_v7().to_string(),
        range: (10, 20),
        changed_unix_ms: 5,
    });
    round_trip(&install(vec![(1, 2), (5, 9)], 1));
    for s in [
        BootstrapState::Running { completed_phase: 2 },
        BootstrapState::Failed {
            phase: 3,
            reason: "disk".into(),
        },
        BootstrapState::Complete,
    ] {
        round_trip(&s);
    }
    for f in [Fault::Ct2JobFailure, Fault::BootstrapFailure { phase: 4 }] {
        round_trip(&f);
    }
}

#[test]
fn postcard_round_trips_received_records() {
    round_trip(&status_msg());
    round_trip(&file_pkg());
    round_trip(&bootstrap());
    round_trip(&ReceivedProbe {
        job_id: Uuid::now_v7(),
        source: code("S01"),
        priority: Priority::Low,
        arrival: 17,
        received_unix_us: 1,
    });
    round_trip(&ReceivedPackage {
        job_id: Uuid::now_v7(),
        package: file_pkg(),
        source: code("S01"),
        dest: code("PRI"),
        priority: Priority::High,
        created_unix_ms: 1,
        chunks_received: 2,
        complete: false,
    });
    round_trip(&LinkFault {
        severed_unix_ms: 12,
    });
    round_trip(&ReceivedBootstrap {
        job_id: Uuid::now_v7(),
        package: bootstrap(),
        received_unix_ms: 8,
    });
}

#[test]
fn postcard_refuses_truncated_records() {
    let bytes = postcard::to_stdvec(&ct2()).unwrap();
    assert!(postcard::from_bytes::<Ct2>(&bytes[..bytes.len() / 2]).is_err());
    assert!(postcard::from_bytes::<Job>(&[]).is_err());
}

// ---- link vocabulary and faults ---------------------------------------------

#[test]
fn node_role_and_link_state_strings_round_trip() {
    for r in [NodeRole::Bare, NodeRole::SiteServer, NodeRole::LogonServer] {
        assert_eq!(r.to_string().parse::<NodeRole>(), Ok(r));
    }
    let e = "server".parse::<NodeRole>().unwrap_err();
    assert!(e.contains("bare, site-server, logon-server"), "{e}");
    let states = [
        LinkState::Idle,
        LinkState::Connecting,
        LinkState::Up,
        LinkState::Retrying,
        LinkState::Severed,
        LinkState::AwaitingChild,
    ];
    let mut names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    for s in states {
        assert_eq!(s.as_str().parse::<LinkState>(), Ok(s));
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), states.len(), "link state names are unique");
    assert_eq!(LinkState::AwaitingChild.as_str(), "awaiting-child");
    assert!("Up".parse::<LinkState>().is_err());
    assert!("down".parse::<LinkState>().unwrap_err().contains("down"));
}

#[test]
fn fault_parse_bounds_the_phase_and_names_the_faults() {
    for p in 1..=4 {
        let f = Fault::parse("bootstrap-failure", p).unwrap();
        assert_eq!(f.phase(), p);
        assert_eq!(f.name(), "bootstrap-failure");
    }
    // A phase given with a fault that has none is ignored.
    assert_eq!(Fault::parse("ct2-job-failure", 9), Ok(Fault::Ct2JobFailure));
    assert_eq!(Fault::Ct2JobFailure.phase(), 0);
    assert_eq!(
        Fault::parse("bootstrap-failure", u32::MAX),
        Err(FaultError::Phase(u32::MAX))
    );
    assert!(Fault::parse("Bootstrap-Failure", 1).is_err());
    for n in crate::fault::FAULT_NAMES {
        assert_eq!(Fault::check_name(n), Ok(n));
    }
    let e = FaultError::Phase(7).to_string();
    assert!(e.contains("1 to 4") && e.contains('7'), "{e}");
}

#[test]
fn a_package_layout_places_every_chunk_and_refuses_what_does_not_add_up() {
    let p = FilePackage {
        name: "p".into(),
        total_size: 10,
        chunk_count: 3,
        chunk_size: 4,
        sha256: vec![],
    };
    assert_eq!(p.check_layout(), Ok(()));
    assert_eq!(p.chunk_range(0), Some((0, 4)));
    assert_eq!(p.chunk_range(1), Some((4, 4)));
    assert_eq!(p.chunk_range(2), Some((8, 2)));
    assert_eq!(p.chunk_range(3), None);
    let wrong_count = FilePackage {
        chunk_count: 2,
        ..p.clone()
    };
    assert!(wrong_count
        .check_layout()
        .unwrap_err()
        .contains("has 3 chunks, not 2"));
    let no_size = FilePackage {
        chunk_size: 0,
        ..p.clone()
    };
    assert!(no_size.check_layout().is_err());
    assert_eq!(no_size.chunk_range(0), None);
    let huge_name = FilePackage {
        name: "x".repeat(1 << 20),
        chunk_count: 9,
        ..p
    };
    assert!(huge_name.check_layout().unwrap_err().len() < 200);
}

#[test]
fn an_error_never_echoes_a_whole_hostile_value() {
    let huge = "X".repeat(1 << 20);
    let e = huge.parse::<SiteCode>().unwrap_err().to_string();
    assert!(e.len() < 200, "{} bytes", e.len());
    assert!(e.contains("must be exactly 3 characters"), "{e}");
    let e = "a\u{202e}b".parse::<SiteCode>().unwrap_err().to_string();
    assert!(e.contains("A-Z and 0-9"), "{e}");
    assert_eq!(crate::limits::clip("short"), "short");
}
