//! Round trips and refusals of the wire <-> domain conversions.

use sms_types::link::{LinkState, LogonView, NodeProbe, NodeRole};
use sms_types::views::{LinkView, NodeView, SiteRow};
use sms_types::*;
use uuid::Uuid;

use crate::convert::*;
use crate::v1 as pb;

fn sc(s: &str) -> SiteCode {
    s.parse().unwrap()
}

fn control() -> SiteControl {
    SiteControl {
        site_code: sc("S01"),
        site_name: "Site one".into(),
        serial: 12,
        parent_site_code: Some(sc("PRI")),
        polling_interval_ms: 15_000,
        domains: vec![
            Domain {
                name: "CORP".into(),
                browse: vec!["CORP".into(), "LAB".into()],
                logon_servers: vec![
                    LogonServer {
                        server: "dc1".into(),
                        state: LogonState::PendingInstall,
                    },
                    LogonServer {
                        server: "dc2".into(),
                        state: LogonState::Active,
                    },
                    LogonServer {
                        server: "dc3".into(),
                        state: LogonState::PendingUninstall,
                    },
                ],
            },
            Domain {
                name: "EMPTY".into(),
                browse: vec![],
                logon_servers: vec![],
            },
        ],
        addresses: vec![
            Address {
                site_code: sc("PRI"),
                server: "pri:7000".into(),
                retry_count: 3,
                retry_delay_ms: 500,
                concurrent_sendings: 4,
                rate_limit_bytes_per_sec: 1 << 20,
                schedule: vec![
                    ScheduleRule {
                        start_hour: 8,
                        end_hour: 18,
                        lowest: Priority::High,
                    },
                    ScheduleRule {
                        start_hour: 22,
                        end_hour: 2,
                        lowest: Priority::Medium,
                    },
                    ScheduleRule {
                        start_hour: 0,
                        end_hour: 24,
                        lowest: Priority::Low,
                    },
                ],
                keepalive_secs: Some(30),
            },
            Address::new(sc("S02"), "s02:7000".into()),
        ],
        version: "0.1.0".into(),
        next_unique_id: 4_000,
        management_points: vec![sms_types::mp::ManagementPoint::new(
            "mp1:8500".into(),
            8080,
            true,
        )],
        status_rules: vec![sms_types::status_rules::StatusRule {
            name: "drop-5000".into(),
            ids: Some((5000, 5000)),
            severity: None,
            component: None,
            site_code: None,
            replicate: Some(sms_types::status_rules::Replicate::Never),
            keep_days: None,
            webhook: None,
            program: vec![],
            stop: true,
        }],
    }
}

fn ct2() -> Ct2 {
    Ct2 {
        signature: None,
        site_code: sc("S01"),
        parent_site_code: Some(sc("PRI")),
        serial: 12,
        control: control(),
        components: vec![
            ComponentState {
                name: "SMS_SENDER".into(),
                state: "running".into(),
            },
            ComponentState {
                name: "SMS_DESPOOLER".into(),
                state: "stopped".into(),
            },
        ],
        version: "0.1.0".into(),
        reported_unix_ms: 1_700_000_000_000,
        server: "s01:7000".into(),
        kind: SiteKind::Secondary,
    }
}

fn status(sev: Severity) -> StatusMessage {
    StatusMessage {
        uid: Uuid::now_v7(),
        id: 4_000,
        severity: sev,
        site_code: sc("S01"),
        component: "SMS_HIERARCHY_MANAGER".into(),
        machine: "s01".into(),
        time_unix_ms: 123,
        insertion_strings: vec!["a".into(), String::new(), "c".into()],
        text: "something happened".into(),
    }
}

fn bootstrap() -> BootstrapPackage {
    BootstrapPackage {
        site_code: sc("S02"),
        site_name: "two".into(),
        parent_site_code: sc("S01"),
        parent_address: "s01:7000".into(),
        init_control: SiteControl {
            parent_site_code: None,
            ..control()
        },
        link_secret: "sekret".into(),
        content: vec![0, 159, 146, 150],
        content_sha256: vec![7; 32],
        required_free_bytes: 1 << 30,
        version: "0.1.0".into(),
        server: "s02:7000".into(),
        ancestors: vec![sc("S01"), sc("PRI")],
    }
}

fn job(p: Priority, payload: Payload) -> Job {
    Job::new(sc("S01"), sc("PRI"), p, payload)
}

fn file_pkg() -> FilePackage {
    FilePackage {
        name: "big.bin".into(),
        total_size: 10,
        chunk_count: 3,
        chunk_size: 4,
        sha256: vec![5; 32],
    }
}

fn every_payload() -> Vec<Payload> {
    vec![
        Payload::Ct1(Ct1 {
            signature: None,
            base_serial: 11,
            proposed: control(),
            origin: "PRI".into(),
        }),
        Payload::Ct2(ct2()),
        Payload::Status(vec![
            status(Severity::Informational),
            status(Severity::Warning),
            status(Severity::Error),
        ]),
        Payload::Status(vec![]),
        Payload::Probe(vec![1, 2, 3]),
        Payload::Probe(vec![]),
        Payload::Bootstrap(Box::new(bootstrap())),
        Payload::Deinstall(sc("S02")),
        Payload::Revocations(vec![("0a1b".into(), "site S03 was deleted".into())]),
    ]
}

/// The domain job as the wire can carry it: retries and acks stay local.
fn wire_view(j: &Job) -> Job {
    Job {
        attempts: 0,
        acked_chunks: 0,
        ..j.clone()
    }
}

fn err<T: std::fmt::Debug>(r: Result<T, WireError>) -> String {
    r.unwrap_err().to_string()
}

// ---- jobs -------------------------------------------------------------------

#[test]
fn every_non_file_payload_round_trips_without_a_chunk() {
    for p in Priority::ALL {
        for payload in every_payload() {
            let mut j = job(p, payload);
            j.attempts = 4;
            j.acked_chunks = 1;
            let (back, chunk) = job_from(job_to(&j, None)).unwrap();
            assert_eq!(back, wire_view(&j), "{}", j.payload.kind());
            assert_eq!(chunk, None);
        }
    }
}

#[test]
fn a_chunk_given_with_a_non_file_payload_is_not_sent() {
    for payload in every_payload() {
        let j = job(Priority::Low, payload);
        let wire = job_to(&j, Some((2, vec![9; 4])));
        let (back, chunk) = job_from(wire).unwrap();
        assert_eq!(back, j);
        assert_eq!(chunk, None, "{}", j.payload.kind());
    }
}

#[test]
fn file_chunks_round_trip_with_their_index_and_data() {
    let j = job(Priority::Medium, Payload::File(file_pkg()));
    for i in 0..3u32 {
        let data = vec![i as u8; [4, 4, 2][i as usize]];
        let wire = job_to(&j, Some((i, data.clone())));
        let Some(pb::job_payload::Kind::FileChunk(f)) =
            wire.payload.as_ref().and_then(|p| p.kind.as_ref())
        else {
            panic!("not a file chunk: {wire:?}");
        };
        assert_eq!((f.chunk_index, f.chunk_count), (i, 3));
        let (back, chunk) = job_from(wire).unwrap();
        assert_eq!(back, j);
        assert_eq!(chunk, Some((i, data)));
    }
}

#[test]
fn a_file_chunk_must_fill_its_place_in_the_package_exactly() {
    let j = job(Priority::High, Payload::File(file_pkg()));
    let e = err(job_from(job_to(&j, None)));
    assert!(
        e.contains("chunk 0 of 3 holds 0 bytes; its place in the package holds 4"),
        "{e}"
    );
    let e = err(job_from(job_to(&j, Some((2, vec![0; 4])))));
    assert!(
        e.contains("holds 4 bytes; its place in the package holds 2"),
        "{e}"
    );
    let odd = job(
        Priority::High,
        Payload::File(FilePackage {
            chunk_size: 3,
            ..file_pkg()
        }),
    );
    let e = err(job_from(job_to(&odd, Some((0, vec![0; 3])))));
    assert!(e.contains("has 4 chunks, not 3"), "{e}");
}

#[test]
fn file_chunks_out_of_range_are_refused() {
    let j = job(Priority::High, Payload::File(file_pkg()));
    let e = err(job_from(job_to(&j, Some((3, vec![1])))));
    assert!(e.contains("file chunk 3 of 3 is out of range"), "{e}");
    let empty = job(
        Priority::High,
        Payload::File(FilePackage {
            chunk_count: 0,
            ..file_pkg()
        }),
    );
    let e = err(job_from(job_to(&empty, Some((0, vec![])))));
    assert!(e.contains("out of range"), "{e}");
}

#[test]
fn job_ids_and_sites_survive_the_wire_exactly() {
    let j = job(Priority::Low, Payload::Probe(vec![1]));
    let wire = job_to(&j, None);
    assert_eq!(wire.id, j.id.as_bytes().to_vec());
    assert_eq!(wire.source_site, "S01");
    assert_eq!(wire.dest_site, "PRI");
    assert_eq!(wire.priority, pb::Priority::Low as i32);
    assert_eq!(wire.created_unix_ms, j.created_unix_ms);
}

#[test]
fn job_refusals_name_the_field() {
    let good = job_to(&job(Priority::Low, Payload::Probe(vec![])), None);

    let mut w = good.clone();
    w.payload = None;
    assert_eq!(err(job_from(w)), "job.payload is missing");
    let mut w = good.clone();
    w.payload = Some(pb::JobPayload { kind: None });
    assert_eq!(err(job_from(w)), "job.payload is missing");

    let mut w = good.clone();
    w.id = vec![1; 15];
    assert_eq!(err(job_from(w)), "job.id: not a 16-byte UUID");
    let mut w = good.clone();
    w.id = vec![];
    assert!(err(job_from(w)).starts_with("job.id:"));

    let mut w = good.clone();
    w.source_site = "s01".into();
    let e = err(job_from(w));
    assert!(
        e.starts_with("job.source_site:") && e.contains("A-Z"),
        "{e}"
    );
    let mut w = good.clone();
    w.dest_site = "TOOLONG".into();
    let e = err(job_from(w));
    assert!(
        e.starts_with("job.dest_site:") && e.contains("3 characters"),
        "{e}"
    );

    let mut w = good.clone();
    w.priority = pb::Priority::Unspecified as i32;
    assert_eq!(err(job_from(w)), "priority: 0 is not high, medium or low");
    let mut w = good;
    w.priority = 42;
    assert!(err(job_from(w)).contains("42"));
}

#[test]
fn missing_proposed_control_is_refused() {
    let mut w = job_to(
        &job(
            Priority::High,
            Payload::Ct1(Ct1 {
                signature: None,
                base_serial: 1,
                proposed: control(),
                origin: "PRI".into(),
            }),
        ),
        None,
    );
    if let Some(pb::job_payload::Kind::Ct1(c)) = w.payload.as_mut().and_then(|p| p.kind.as_mut()) {
        c.proposed = None;
    } else {
        panic!("not a ct1");
    }
    assert_eq!(err(job_from(w)), "ct1.proposed is missing");
    assert_eq!(
        err(ct1_from(&pb::Ct1 {
            base_serial: 1,
            proposed: None,
            origin: String::new(),
            ..Default::default()
        })),
        "ct1.proposed is missing"
    );
}

#[test]
fn deinstall_with_a_bad_site_code_is_refused() {
    let mut w = job_to(&job(Priority::High, Payload::Deinstall(sc("S02"))), None);
    w.payload = Some(pb::JobPayload {
        kind: Some(pb::job_payload::Kind::Deinstall(pb::Deinstall {
            site_code: "NUL".into(),
        })),
    });
    let e = err(job_from(w));
    assert!(
        e.starts_with("deinstall.site_code:") && e.contains("reserved"),
        "{e}"
    );
}

// ---- site control, CT1, CT2 ----------------------------------------------------

#[test]
fn site_control_round_trips_with_schedules_and_logon_servers() {
    let c = control();
    let wire = control_to(&c);
    assert_eq!(wire.parent_site_code, "PRI");
    assert_eq!(wire.domains[0].logon_servers[0].state, "pending-install");
    assert_eq!(wire.addresses[0].schedule.len(), 3);
    assert_eq!(
        wire.addresses[0].schedule[1].lowest,
        pb::Priority::Medium as i32
    );
    assert_eq!(control_from(&wire).unwrap(), c);
}

#[test]
fn a_central_site_control_has_an_empty_parent_on_the_wire() {
    let c = SiteControl {
        parent_site_code: None,
        ..control()
    };
    let wire = control_to(&c);
    assert_eq!(wire.parent_site_code, "");
    assert_eq!(control_from(&wire).unwrap().parent_site_code, None);
}

#[test]
fn site_control_refusals_say_what_is_wrong() {
    let mut w = control_to(&control());
    w.site_code = "S0".into();
    let e = err(control_from(&w));
    assert!(e.starts_with("site_control.site_code:"), "{e}");

    let mut w = control_to(&control());
    w.parent_site_code = "con".into();
    assert!(err(control_from(&w)).starts_with("site_control.parent_site_code:"));

    let mut w = control_to(&control());
    w.addresses[1].site_code = "X".into();
    assert!(err(control_from(&w)).starts_with("address.site_code:"));

    let mut w = control_to(&control());
    w.addresses[0].schedule[0].start_hour = 24;
    let e = err(control_from(&w));
    assert!(e.contains("24") && e.contains("outside 0-24"), "{e}");

    let mut w = control_to(&control());
    w.addresses[0].schedule[0].end_hour = 25;
    assert!(err(control_from(&w)).contains("outside 0-24"));

    let mut w = control_to(&control());
    w.addresses[0].schedule[0].lowest = 0;
    assert!(err(control_from(&w)).starts_with("priority:"));

    let mut w = control_to(&control());
    w.domains[0].logon_servers[1].state = "installed".into();
    let e = err(control_from(&w));
    assert!(e.contains("installed"), "{e}");
}

#[test]
fn schedule_rules_accept_the_edge_hours() {
    for (s, e) in [(0, 0), (23, 24), (0, 24), (23, 0)] {
        let r = pb::ScheduleRule {
            start_hour: s,
            end_hour: e,
            lowest: pb::Priority::High as i32,
        };
        let back = rule_from(&r).unwrap();
        assert_eq!(rule_to(&back), r);
    }
}

#[test]
fn ct1_from_the_wire_defaults_its_origin() {
    let wire = pb::Ct1 {
        base_serial: 3,
        proposed: Some(control_to(&control())),
        origin: String::new(),
        ..Default::default()
    };
    let c = ct1_from(&wire).unwrap();
    assert_eq!(c.origin, "submit-ct1");
    assert_eq!(c.base_serial, 3);
    assert_eq!(c.proposed, control());
    let c = ct1_from(&pb::Ct1 {
        origin: "PRI".into(),
        ..wire
    })
    .unwrap();
    assert_eq!(c.origin, "PRI");
}

#[test]
fn ct2_round_trips_and_refuses_a_missing_control_or_kind() {
    for kind in [SiteKind::Primary, SiteKind::Secondary] {
        for parent in [None, Some(sc("PRI"))] {
            let c = Ct2 {
                signature: None,
                kind,
                parent_site_code: parent,
                ..ct2()
            };
            let wire = ct2_to(&c);
            assert_eq!(wire.kind, kind.as_str());
            assert_eq!(ct2_from(&wire).unwrap(), c);
        }
    }
    let mut w = ct2_to(&ct2());
    w.control = None;
    assert_eq!(err(ct2_from(&w)), "ct2.control is missing");
    let mut w = ct2_to(&ct2());
    w.kind = "tertiary".into();
    assert!(err(ct2_from(&w)).contains("tertiary"));
    let mut w = ct2_to(&ct2());
    w.site_code = String::new();
    assert!(err(ct2_from(&w)).starts_with("ct2.site_code:"));
}

// ---- status, bootstrap, priorities -----------------------------------------------

#[test]
fn status_messages_round_trip_at_every_severity() {
    for sev in [Severity::Informational, Severity::Warning, Severity::Error] {
        let m = status(sev);
        let wire = status_to(&m);
        assert_eq!(wire.uid.len(), 16);
        assert_eq!(status_from(&wire).unwrap(), m);
    }
}

#[test]
fn status_refusals_name_the_field() {
    let mut w = status_to(&status(Severity::Error));
    w.uid = vec![0; 8];
    assert_eq!(err(status_from(&w)), "status.uid: not a 16-byte UUID");
    let mut w = status_to(&status(Severity::Error));
    w.severity = pb::Severity::Unspecified as i32;
    assert!(err(status_from(&w)).starts_with("severity:"));
    let mut w = status_to(&status(Severity::Error));
    w.site_code = "AB".into();
    assert!(err(status_from(&w)).starts_with("status.site_code:"));
}

#[test]
fn bootstrap_package_round_trips_and_refuses_bad_fields() {
    let b = bootstrap();
    let wire = bootstrap_to(&b);
    assert_eq!(wire.ancestors, vec!["S01".to_string(), "PRI".to_string()]);
    assert_eq!(bootstrap_from(&wire).unwrap(), b);

    let mut w = bootstrap_to(&b);
    w.init_control = None;
    assert_eq!(err(bootstrap_from(&w)), "package.init_control is missing");
    let mut w = bootstrap_to(&b);
    w.ancestors.push("bad".into());
    assert!(err(bootstrap_from(&w)).starts_with("package.ancestors:"));
    let mut w = bootstrap_to(&b);
    w.parent_site_code = String::new();
    assert!(err(bootstrap_from(&w)).starts_with("package.parent_site_code:"));
    let mut w = bootstrap_to(&b);
    w.site_code = "PRN".into();
    assert!(err(bootstrap_from(&w)).starts_with("package.site_code:"));
}

#[test]
fn priorities_round_trip_and_unknowns_are_refused() {
    for p in Priority::ALL {
        assert_eq!(priority_from(priority_to(p)).unwrap(), p);
    }
    assert_eq!(priority_to(Priority::High), pb::Priority::High as i32);
    assert_eq!(priority_to(Priority::Medium), pb::Priority::Medium as i32);
    assert_eq!(priority_to(Priority::Low), pb::Priority::Low as i32);
    for bad in [0, 4, -1, i32::MAX] {
        let e = err(priority_from(bad));
        assert!(
            e.contains(&bad.to_string()) && e.contains("high, medium or low"),
            "{e}"
        );
    }
}

#[test]
fn codes_and_uuids_from_the_wire() {
    assert_eq!(code("S01", "f").unwrap(), sc("S01"));
    let e = err(code("s01", "hello.source_site"));
    assert!(
        e.starts_with("hello.source_site: ") && e.contains("s01"),
        "{e}"
    );
    assert_eq!(opt_code("", "f").unwrap(), None);
    assert_eq!(opt_code("PRI", "f").unwrap(), Some(sc("PRI")));
    assert!(err(opt_code("P", "parent")).starts_with("parent:"));
    let id = Uuid::now_v7();
    assert_eq!(uuid(id.as_bytes(), "x").unwrap(), id);
    assert_eq!(
        err(uuid(&[0; 17], "ack.job_id")),
        "ack.job_id: not a 16-byte UUID"
    );
    let status: tonic::Status = WireError("bad thing".into()).into();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "bad thing");
}

// ---- node and logon views ------------------------------------------------------

#[test]
fn probe_replies_round_trip_every_role() {
    for role in [NodeRole::Bare, NodeRole::SiteServer, NodeRole::LogonServer] {
        let p = NodeProbe {
            role,
            site_code: "S01".into(),
            bootstrap_state: "running".into(),
            bootstrap_detail: "phase 2".into(),
            node_id: "n".into(),
            domain: "CORP".into(),
        };
        let wire = probe_to(&p);
        assert_eq!(wire.role, role.as_str());
        assert_eq!(probe_from(wire).unwrap(), p);
    }
    let e = err(probe_from(pb::ProbeReply {
        role: "server".into(),
        ..Default::default()
    }));
    assert!(e.starts_with("role: ") && e.contains("server"), "{e}");
    assert!(probe_from(pb::ProbeReply::default()).is_err(), "empty role");
}

fn logon_view(role: NodeRole) -> LogonView {
    LogonView {
        role,
        domain: "CORP".into(),
        site_code: "S01".into(),
        site_address: "s01:7000".into(),
        script_version: 3,
        range_start: 100,
        range_end: 200,
        next_id: 150,
        remaining: 50,
        node_id: "node".into(),
    }
}

#[test]
fn logon_views_round_trip_every_role() {
    for role in [NodeRole::Bare, NodeRole::SiteServer, NodeRole::LogonServer] {
        let v = logon_view(role);
        assert_eq!(logon_view_from(logon_view_to(&v)).unwrap(), v);
    }
    // An older node sends only the string.
    let mut w = logon_view_to(&logon_view(NodeRole::LogonServer));
    w.role_kind = pb::NodeRole::Unspecified as i32;
    assert_eq!(
        logon_view_from(w.clone()).unwrap().role,
        NodeRole::LogonServer
    );
    w.role = "Logon-Server".into();
    let e = err(logon_view_from(w));
    assert!(e.starts_with("role:") && e.contains("Logon-Server"), "{e}");
}

#[test]
fn roles_on_the_wire_carry_the_enum_and_the_string() {
    for role in [NodeRole::Bare, NodeRole::SiteServer, NodeRole::LogonServer] {
        let k = role_kind(role);
        assert_ne!(k, pb::NodeRole::Unspecified as i32);
        // The enum wins over a string that disagrees...
        assert_eq!(role_from(k, "nonsense").unwrap(), role);
        // ...and the string is read when the enum is unset or unknown.
        assert_eq!(role_from(0, role.as_str()).unwrap(), role);
        assert_eq!(role_from(99, role.as_str()).unwrap(), role);
    }
    assert!(err(role_from(0, "")).starts_with("role:"));
}

#[test]
fn link_states_round_trip_through_the_enum_and_the_string() {
    for state in [
        LinkState::Idle,
        LinkState::Connecting,
        LinkState::Up,
        LinkState::Retrying,
        LinkState::Severed,
        LinkState::AwaitingChild,
    ] {
        let w = link_view_to(&link("S02", state));
        assert_eq!(w.state, state.as_str());
        assert_eq!(w.state_kind, link_state_kind(state));
        assert_eq!(link_state_from(w.state_kind, "").unwrap(), state);
        assert_eq!(link_state_from(0, &w.state).unwrap(), state);
    }
    let e = err(link_state_from(0, "down"));
    assert!(e.starts_with("link state:") && e.contains("down"), "{e}");
}

#[test]
fn site_statuses_round_trip_through_the_enum_and_the_string() {
    for status in [
        SiteStatus::Pending,
        SiteStatus::Phase(1),
        SiteStatus::Phase(4),
        SiteStatus::Active,
        SiteStatus::Failed,
        SiteStatus::Deleting,
        SiteStatus::Upgrading,
    ] {
        let w = site_to(&SiteRecord { status, ..record() });
        assert_eq!(w.status, status.to_string());
        let (kind, phase) = site_status_kind(status);
        assert_eq!((w.status_kind, w.status_phase), (kind, phase));
        assert_eq!(site_status_from(kind, phase, "").unwrap(), status);
        assert_eq!(site_status_from(0, 0, &w.status).unwrap(), status);
    }
    let phase = pb::SiteStatusKind::Phase as i32;
    for bad in [0, 5] {
        let e = err(site_status_from(phase, bad, "Active"));
        assert!(e.contains(&format!("phase {bad}")), "{e}");
    }
    for bad in [
        "Phase 5 Complete",
        "Phase 0 Complete",
        "active",
        "Phase x Complete",
        "",
    ] {
        let e = err(site_status_from(0, 0, bad));
        assert!(e.starts_with("site status:"), "{e}");
    }
}

#[test]
fn logon_install_and_script_round_trip() {
    let r = sms_types::link::LogonInstallRequest {
        site_code: "S01".into(),
        site_address: "s01:7000".into(),
        domain: "CORP".into(),
        script_version: 2,
        script: "net use".into(),
        range_start: 1,
        range_end: 1001,
    };
    assert_eq!(logon_install_from(logon_install_to(&r)), r);
    let s = sms_types::link::LogonScript {
        site_code: "S01".into(),
        version: 9,
        script: "x".into(),
    };
    assert_eq!(logon_script_from(logon_script_to(&s)), s);
}

fn link(to: &str, state: LinkState) -> LinkView {
    LinkView {
        to: sc(to),
        state,
        queued_jobs: 5,
        failed_jobs: 2,
        server: format!("{}:7000", to.to_lowercase()),
        detail: "retry in 2s".into(),
        refused_frames: 1,
        chunk_bytes_sent: 1 << 32,
        clock_skew_ms: Some(-2_592_000_000),
    }
}

#[test]
fn link_view_to_copies_every_field() {
    let l = link("S02", LinkState::AwaitingChild);
    let w = link_view_to(&l);
    assert_eq!(w.to, "S02");
    assert_eq!(w.state, "awaiting-child");
    assert_eq!((w.queued_jobs, w.failed_jobs), (5, 2));
    assert_eq!(w.server, "s02:7000");
    assert_eq!(w.detail, "retry in 2s");
    assert_eq!(w.refused_frames, 1);
    assert_eq!(w.chunk_bytes_sent, 1 << 32);
    assert_eq!(w.clock_skew_ms, Some(-2_592_000_000));
}

fn record() -> SiteRecord {
    SiteRecord {
        site_code: sc("S02"),
        parent_site_code: Some(sc("S01")),
        kind: SiteKind::Secondary,
        server: "s02:7000".into(),
        status: SiteStatus::Phase(2),
        status_changed_unix_ms: 77,
        serial: 4,
        link_secret: "never shown".into(),
        sever_link_mid_bootstrap: false,
    }
}

#[test]
fn site_row_to_fills_the_health_fields() {
    let row = SiteRow {
        record: record(),
        recent_errors: 3,
        recent_warnings: 8,
        link_state: Some(LinkState::Retrying),
        version: "0.1.0".into(),
        last_report_unix_ms: Some(1234),
        report_age_ms: Some(5),
        stale: true,
    };
    let w = site_row_to(&row);
    assert!(w.stale);
    assert_eq!(w.last_report_unix_ms, 1234);
    assert_eq!(w.site_code, "S02");
    assert_eq!(w.parent_site_code, "S01");
    assert_eq!(w.kind, "secondary");
    assert_eq!(w.status, "Phase 2 Complete");
    assert_eq!((w.serial, w.status_changed_unix_ms), (4, 77));
    assert_eq!((w.recent_errors, w.recent_warnings), (3, 8));
    assert_eq!(w.link_state, "retrying");
    assert_eq!(w.version, "0.1.0");

    // Not a direct neighbour: no link state; the bare record has no health.
    let w = site_row_to(&SiteRow {
        link_state: None,
        last_report_unix_ms: None,
        stale: false,
        ..row
    });
    assert_eq!(w.link_state, "");
    assert!(!w.stale);
    assert_eq!(w.last_report_unix_ms, 0, "never reported reads as 0");
    let bare = site_to(&SiteRecord {
        parent_site_code: None,
        ..record()
    });
    assert_eq!(bare.parent_site_code, "");
    assert_eq!((bare.recent_errors, bare.recent_warnings), (0, 0));
    assert!(bare.link_state.is_empty() && bare.version.is_empty());
}

fn node_view(role: NodeRole, identity: Option<Identity>) -> NodeView {
    NodeView {
        identity,
        logon: logon_view(role),
        components: vec![ComponentState {
            name: "SMS_SENDER".into(),
            state: "running".into(),
        }],
        links: vec![link("PRI", LinkState::Up), link("S02", LinkState::Severed)],
        address: "s01:7000".into(),
        node_id: "node-1".into(),
        serial: 12,
        bootstrap_state: "complete".into(),
        bootstrap_detail: String::new(),
        duplicates_dropped: 6,
        connections_refused: 2,
        calls_refused: 3,
    }
}

fn identity() -> Identity {
    Identity {
        site_code: sc("S01"),
        site_name: "Site one".into(),
        kind: SiteKind::Secondary,
        parent: Some(ParentLink {
            site_code: sc("PRI"),
            address: "pri:7000".into(),
            link_secret: "s".into(),
        }),
        installed_unix_ms: 1,
        version: "0.1.0".into(),
        ancestors: vec![sc("PRI")],
    }
}

#[test]
fn node_view_to_a_logon_server_fills_logon_site() {
    let w = node_view_to(&node_view(NodeRole::LogonServer, None));
    assert_eq!(w.role, "logon-server");
    assert_eq!(w.role_kind, pb::NodeRole::LogonServer as i32);
    assert_eq!(w.logon_site, "S01");
    assert_eq!(w.domain, "CORP");
    assert_eq!(
        (w.range_start, w.range_end, w.ids_remaining),
        (100, 200, 50)
    );
    // No identity: the site fields are empty.
    assert_eq!(w.site_code, "");
    assert_eq!(w.parent_site_code, "");
    assert_eq!(w.site_name, "");
    assert_eq!(w.kind, "");
}

#[test]
fn node_view_to_other_roles_leave_logon_site_empty() {
    for role in [NodeRole::Bare, NodeRole::SiteServer] {
        let w = node_view_to(&node_view(role, Some(identity())));
        assert_eq!(w.role, role.as_str());
        assert_eq!(w.logon_site, "", "{role}");
        assert_eq!(w.role_kind, role_kind(role));
    }
    let w = node_view_to(&node_view(NodeRole::SiteServer, Some(identity())));
    assert_eq!(w.site_code, "S01");
    assert_eq!(w.parent_site_code, "PRI");
    assert_eq!(w.site_name, "Site one");
    assert_eq!(w.kind, "secondary");
    assert_eq!(w.address, "s01:7000");
    assert_eq!(w.node_id, "node-1");
    assert_eq!(w.serial, 12);
    assert_eq!(w.bootstrap_state, "complete");
    assert_eq!(w.duplicates_dropped, 6);
    assert_eq!(w.connections_refused, 2);
    assert_eq!(w.calls_refused, 3);
    assert_eq!(w.version, SOFTWARE_VERSION);
    assert_eq!(w.components.len(), 1);
    let links: Vec<(&str, &str)> = w
        .links
        .iter()
        .map(|l| (l.to.as_str(), l.state.as_str()))
        .collect();
    assert_eq!(links, vec![("PRI", "up"), ("S02", "severed")]);
    // A central site has no parent.
    let central = Identity {
        parent: None,
        kind: SiteKind::Primary,
        ..identity()
    };
    let w = node_view_to(&node_view(NodeRole::SiteServer, Some(central)));
    assert_eq!(w.parent_site_code, "");
    assert_eq!(w.kind, "primary");
}

#[test]
fn faults_to_carries_names_and_phases() {
    let list = faults_to(&[Fault::Ct2JobFailure, Fault::BootstrapFailure { phase: 3 }]);
    let got: Vec<(String, u32)> = list.faults.into_iter().map(|f| (f.name, f.phase)).collect();
    assert_eq!(
        got,
        vec![
            ("ct2-job-failure".to_string(), 0),
            ("bootstrap-failure".to_string(), 3)
        ]
    );
    assert!(faults_to(&[]).faults.is_empty());
}

#[test]
fn failed_jobs_bad_ct1s_probes_and_packages_to_the_wire() {
    let mut j = job(Priority::Low, Payload::Deinstall(sc("S02")));
    j.attempts = 20;
    let f = failed_job_to(&FailedJob {
        job: j.clone(),
        reason: "gave up".into(),
        failed_unix_ms: 9,
    });
    assert_eq!(f.job_id, j.id.as_bytes().to_vec());
    assert_eq!(
        (f.kind.as_str(), f.dest_site.as_str()),
        ("deinstall", "PRI")
    );
    assert_eq!(
        (f.attempts, f.reason.as_str(), f.failed_unix_ms),
        (20, "gave up", 9)
    );

    let b = bad_ct1_to(&sms_types::records::BadCt1 {
        ct1: Ct1 {
            signature: None,
            base_serial: 4,
            proposed: control(),
            origin: "PRI".into(),
        },
        reason: "stale".into(),
        rejected_unix_ms: 5,
    });
    assert_eq!(
        (
            b.base_serial,
            b.site_code.as_str(),
            b.origin.as_str(),
            b.reason.as_str()
        ),
        (4, "S01", "PRI", "stale")
    );

    let p = probe_record_to(
        &sms_types::records::ReceivedProbe {
            job_id: j.id,
            source: sc("S02"),
            priority: Priority::Medium,
            arrival: 3,
            received_unix_us: 4,
        },
        1024,
    );
    assert_eq!(p.priority, pb::Priority::Medium as i32);
    assert_eq!(
        (p.source_site.as_str(), p.payload_bytes, p.arrival),
        ("S02", 1024, 3)
    );

    let v = sms_types::views::PackageView {
        package: sms_types::records::ReceivedPackage {
            job_id: j.id,
            package: file_pkg(),
            source: sc("S02"),
            dest: sc("S01"),
            priority: Priority::Low,
            created_unix_ms: 1,
            chunks_received: 2,
            complete: false,
        },
        sha256_hex: String::new(),
    };
    let w = package_to(&v);
    assert_eq!(w.name, "big.bin");
    assert_eq!((w.size_bytes, w.chunks_received, w.chunk_count), (10, 2, 3));
    assert!(!w.complete && w.sha256.is_empty());
}

#[test]
fn a_signed_ct1_keeps_its_signature_across_the_wire() {
    let ct1 = Ct1 {
        base_serial: 3,
        proposed: control(),
        origin: "x".into(),
        signature: Some(SignedBody {
            body: vec![1, 2, 3],
            signature: vec![4, 5],
            chain: vec![vec![6], vec![7]],
        }),
    };
    assert_eq!(ct1_from(&ct1_to(&ct1)).unwrap(), ct1);
    let unsigned = Ct1 {
        signature: None,
        ..ct1
    };
    assert_eq!(ct1_from(&ct1_to(&unsigned)).unwrap(), unsigned);
}

#[test]
fn a_revocation_list_is_checked_and_cleaned_on_arrival() {
    let j = job(
        Priority::High,
        Payload::Revocations(vec![("0A1B".into(), "bad\u{1b}[31m".into())]),
    );
    let (back, _) = job_from(job_to(&j, None)).unwrap();
    assert_eq!(
        back.payload,
        Payload::Revocations(vec![("0a1b".into(), "bad[31m".into())])
    );
    let bad = job(
        Priority::High,
        Payload::Revocations(vec![("not hex".into(), String::new())]),
    );
    let e = err(job_from(job_to(&bad, None)));
    assert!(e.contains("1 to 64 hex digits"), "{e}");
    let long = job(
        Priority::High,
        Payload::Revocations(vec![("ab".into(), String::new()); MAX_REVOCATIONS + 1]),
    );
    let e = err(job_from(job_to(&long, None)));
    assert!(e.contains("at most 10000"), "{e}");
}
