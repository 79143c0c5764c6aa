//! The administrator's operations and read models: refusals change nothing.

use sms_types::link::LinkState;
use sms_types::records::LinkFault;
use sms_types::*;

use super::support::*;
use crate::error::Refused;
use crate::ops::{self, MAX_PROBES, MAX_PROBE_BYTES};
use crate::queries;

/// PRI with child S01 (its hop for S01).
fn with_child() -> Node {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    node
}

fn invalid(r: Result<impl Sized, Refused>) -> String {
    match r {
        Err(Refused::Invalid(m)) => m,
        Err(other) => panic!("expected Invalid, got {other:?}"),
        Ok(_) => panic!("expected Invalid, got Ok"),
    }
}

#[tokio::test]
async fn send_probes_refuses_bad_counts_and_sizes_and_queues_nothing() {
    let node = with_child();
    let (ctx, s01) = (&node.ctx, code("S01"));
    for (count, bytes) in [(0, 10), (MAX_PROBES + 1, 10), (1, MAX_PROBE_BYTES + 1)] {
        let m = invalid(ops::send_probes(ctx, &s01, count, bytes, Priority::Low).await);
        assert!(
            m.contains("count must be between 1 and") || m.contains("at most 1 MiB"),
            "{m}"
        );
    }
    assert_eq!(ctx.store.outbox_len(&s01), 0);
    assert!(ctx.links.link(&s01).is_none(), "no sender started");
}

#[tokio::test]
async fn send_probes_refuses_this_site_itself_and_queues_within_bounds() {
    let node = with_child();
    let (ctx, s01) = (&node.ctx, code("S01"));
    let m = invalid(ops::send_probes(ctx, &code("PRI"), 1, 1, Priority::High).await);
    assert_eq!(m, "jobs cannot be sent to this site itself");
    let unknown = ops::send_probes(ctx, &code("XYZ"), 1, 1, Priority::High).await;
    assert!(matches!(unknown, Err(Refused::NotFound(_))), "{unknown:?}");
    assert_eq!(ctx.store.outbox_hops().unwrap(), Vec::<SiteCode>::new());

    let ids = ops::send_probes(ctx, &s01, 3, MAX_PROBE_BYTES, Priority::Medium)
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    let queued = ctx
        .store
        .outbox_scan(&s01, Priority::Medium, None, 10)
        .unwrap();
    assert_eq!(queued.iter().map(|(_, j)| j.id).collect::<Vec<_>>(), ids);
    assert!(
        matches!(&queued[0].1.payload, Payload::Probe(d) if d.len() == MAX_PROBE_BYTES as usize)
    );
}

#[tokio::test]
async fn faults_are_checked_by_name_and_phase() {
    let node = central("PRI");
    let ctx = &node.ctx;
    let m = invalid(ops::inject_fault(ctx, "disk-full", 0).await);
    assert!(m.contains("unknown fault \"disk-full\""), "{m}");
    for phase in [0, 5] {
        let m = invalid(ops::inject_fault(ctx, "bootstrap-failure", phase).await);
        assert!(m.contains(&format!("not {phase}")), "{m}");
    }
    assert!(
        ctx.store.faults().unwrap().is_empty(),
        "a refusal injects nothing"
    );

    let after = ops::inject_fault(ctx, "bootstrap-failure", 2)
        .await
        .unwrap();
    assert_eq!(after, vec![Fault::BootstrapFailure { phase: 2 }]);
    let after = ops::inject_fault(ctx, "bootstrap-failure", 4)
        .await
        .unwrap();
    assert_eq!(
        after,
        vec![Fault::BootstrapFailure { phase: 4 }],
        "one per name"
    );
    let after = ops::inject_fault(ctx, "ct2-job-failure", 0).await.unwrap();
    assert_eq!(after.len(), 2);
    assert!(after.contains(&Fault::Ct2JobFailure));
}

#[tokio::test]
async fn clearing_faults_checks_the_name_and_keeps_the_others() {
    let node = central("PRI");
    let ctx = &node.ctx;
    ops::inject_fault(ctx, "ct2-job-failure", 0).await.unwrap();
    ops::inject_fault(ctx, "bootstrap-failure", 1)
        .await
        .unwrap();
    let m = invalid(ops::clear_fault(ctx, "CT2-JOB-FAILURE").await);
    assert!(m.contains("unknown fault"), "{m}");
    assert_eq!(
        ctx.store.faults().unwrap().len(),
        2,
        "a refusal clears nothing"
    );
    let left = ops::clear_fault(ctx, "ct2-job-failure").await.unwrap();
    assert_eq!(left, vec![Fault::BootstrapFailure { phase: 1 }]);
    let again = ops::clear_fault(ctx, "ct2-job-failure").await.unwrap();
    assert_eq!(again, left, "clearing a fault not in force is harmless");
}

#[tokio::test]
async fn only_the_parent_and_direct_children_are_neighbours() {
    let node = primary_below("P02", "PRI");
    let ctx = &node.ctx;
    put_site(ctx, "S03", Some("P02"), SiteKind::Secondary);
    put_site(ctx, "S04", Some("S03"), SiteKind::Secondary);
    assert_eq!(ops::neighbour(ctx, &code("PRI")), Ok(code("PRI")));
    assert_eq!(ops::neighbour(ctx, &code("S03")), Ok(code("S03")));
    for stranger in ["S04", "XYZ", "P02"] {
        match ops::neighbour(ctx, &code(stranger)) {
            Err(Refused::NotFound(m)) => assert!(
                m.starts_with(&format!("site {stranger} is not a neighbour of site P02")),
                "{m}"
            ),
            other => panic!("{stranger}: {other:?}"),
        }
    }
    let bare = bare();
    assert!(matches!(
        ops::neighbour(&bare.ctx, &code("PRI")),
        Err(Refused::Precondition(_))
    ));
}

#[tokio::test]
async fn prepare_delete_for_another_site_freezes_nothing() {
    let node = secondary("S01", "PRI");
    let ctx = &node.ctx;
    assert_eq!(
        invalid(ops::prepare_delete(ctx, "S02").await),
        "this is site S01"
    );
    assert!(!ctx.store.ids_frozen().unwrap());
    let next = ops::prepare_delete(ctx, "S01").await.unwrap();
    assert_eq!(next, 1);
    assert!(ctx.store.ids_frozen().unwrap());
}

#[tokio::test]
async fn status_load_requests_are_bounded() {
    let node = central("PRI");
    let ctx = &node.ctx;
    let long_tag = "t".repeat(65);
    let cases: [(u32, u32, &str, &str); 6] = [
        (0, 10, "", "count must be between 1 and 10000000"),
        (
            10_000_001,
            1_000_000,
            "",
            "count must be between 1 and 10000000",
        ),
        (10, 0, "", "per_second must be between 1 and 1000000"),
        (
            10,
            1_000_001,
            "",
            "per_second must be between 1 and 1000000",
        ),
        (
            3601,
            1,
            "",
            "a load test lasts at most one hour (count / per_second <= 3600)",
        ),
        (1, 1, &long_tag, "the tag is at most 64 characters"),
    ];
    for (count, rate, tag, want) in cases {
        let m = invalid(ops::generate_status_load(ctx, count, rate, tag).await);
        assert_eq!(m, want, "{count} at {rate}/s");
    }
    assert!(ctx
        .store
        .status_messages(None, None, 10)
        .unwrap()
        .is_empty());
    let run = ops::generate_status_load(ctx, 2, 1000, "ok").await.unwrap();
    assert_eq!((run.tag.as_str(), run.emitted), ("ok", 2));
    let stored = ctx
        .store
        .status_messages(None, Some(catalog::STATUS_LOAD_TEST.id), 10)
        .unwrap();
    assert_eq!(stored.len(), 2);
}

#[tokio::test]
async fn a_bare_node_runs_no_load() {
    let node = bare();
    let r = ops::generate_status_load(&node.ctx, 1, 1, "").await;
    assert!(matches!(r, Err(Refused::Precondition(_))));
}

#[tokio::test]
async fn a_secondary_keeps_no_site_list_and_names_its_parent() {
    let node = secondary("S01", "PRI");
    match queries::sites(&node.ctx) {
        Err(Refused::Precondition(m)) => assert_eq!(
            m,
            "site S01 is a secondary site and keeps no site list; ask its parent PRI at 127.0.0.1:7000"
        ),
        other => panic!("{other:?}"),
    }
    let central = with_child();
    let rows = queries::sites(&central.ctx).unwrap();
    let codes: Vec<_> = rows
        .iter()
        .map(|r| r.record.site_code.to_string())
        .collect();
    assert_eq!(codes, ["PRI", "S01"], "its own row first");
}

#[tokio::test]
async fn site_control_names_the_serials_it_keeps() {
    let node = central("PRI");
    let ctx = &node.ctx;
    assert_eq!(queries::site_control(ctx, None, 1).unwrap().serial, 1);
    assert_eq!(queries::site_control(ctx, None, 0).unwrap().serial, 1);
    match queries::site_control(ctx, None, 7) {
        Err(Refused::NotFound(m)) => {
            assert_eq!(
                m,
                "site PRI has no site control serial 7; it keeps serials 1..1"
            )
        }
        other => panic!("{other:?}"),
    }
    match queries::site_control(ctx, Some(code("S01")), 0) {
        Err(Refused::NotFound(m)) => {
            assert_eq!(
                m,
                "site PRI holds no site control report (CT2) from site S01"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_child_control_is_shown_only_at_its_last_reported_serial() {
    let node = with_child();
    let ctx = &node.ctx;
    let mut control = ct0("S01", Some("PRI"));
    control.serial = 3;
    let ct2 = Ct2 {
        signature: None,
        site_code: code("S01"),
        parent_site_code: Some(code("PRI")),
        serial: 3,
        control: control.clone(),
        components: vec![],
        version: SOFTWARE_VERSION.into(),
        reported_unix_ms: 0,
        server: "127.0.0.1:7101".into(),
        kind: SiteKind::Secondary,
    };
    let j = job("S01", "PRI", Priority::High, Payload::Ct2(ct2.clone()));
    let key = ctx
        .store
        .put_inbox(sms_store::Inbox::Hierarchy, &j)
        .unwrap();
    let rec = ctx.store.site(&code("S01")).unwrap().unwrap();
    ctx.store.accept_ct2(key, &rec, &ct2).unwrap();
    assert_eq!(
        queries::site_control(ctx, Some(code("S01")), 3).unwrap(),
        control
    );
    match queries::site_control(ctx, Some(code("S01")), 2) {
        Err(Refused::NotFound(m)) => assert_eq!(
            m,
            "site PRI holds only serial 3 of site S01's control (its last CT2)"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_link_severed_in_the_store_shows_severed() {
    let node = with_child();
    let (ctx, s01) = (&node.ctx, code("S01"));
    let before = queries::link_view(ctx, &s01);
    assert_eq!(before.state, LinkState::Idle);
    assert_eq!(before.server, "127.0.0.1:7101");
    // A sender reporting Up has not noticed the cut yet.
    let link = std::sync::Arc::new(crate::links::Link::new(s01.clone()));
    link.set_state(LinkState::Up, "up");
    ctx.links.links.lock().unwrap().insert(s01.clone(), link);
    assert_eq!(queries::link_view(ctx, &s01).state, LinkState::Up);
    ctx.store
        .set_link_fault(&s01, Some(&LinkFault { severed_unix_ms: 1 }))
        .unwrap();
    let view = queries::link_view(ctx, &s01);
    assert_eq!(view.state, LinkState::Severed);
    assert_eq!(view.detail, "up", "the sender's own detail is kept");
}

/// A link whose sender last said "nothing queued" never shows that while
/// jobs wait (work queued since, or stuck behind a silent connection).
#[tokio::test]
async fn a_link_with_queued_jobs_never_reads_nothing_queued() {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    let link = crate::scheduler::ensure_link(&node.ctx, &code("S01"));
    link.set_state(
        crate::links::LinkStatus::Up,
        "127.0.0.1:7101; nothing queued",
    );
    let idle = crate::queries::link_view(&node.ctx, &code("S01"));
    assert_eq!(idle.detail, "127.0.0.1:7101; nothing queued");
    node.ctx
        .store
        .enqueue(&code("S01"), &probe("PRI", "S01", Priority::Low))
        .unwrap();
    let busy = crate::queries::link_view(&node.ctx, &code("S01"));
    assert_eq!(busy.queued_jobs, 1);
    assert_eq!(busy.detail, "127.0.0.1:7101");
}

#[test]
fn package_sources_stay_inside_their_directory() {
    use crate::ops::{package_source, PACKAGE_SOURCE_DIR};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join(PACKAGE_SOURCE_DIR);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("app.bin"), b"x").unwrap();
    assert_eq!(
        package_source(dir.path(), "app.bin").unwrap(),
        src.join("app.bin")
    );
    for bad in ["/etc/passwd", "../db/conf", "a/../../x", "", "missing.bin"] {
        let e = package_source(dir.path(), bad).unwrap_err();
        assert!(
            matches!(e, crate::error::Refused::Invalid(_)),
            "{bad:?}: {e:?}"
        );
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/hostname", src.join("link")).unwrap();
        let e = package_source(dir.path(), "link").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
