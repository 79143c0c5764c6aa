use super::*;
use crate::prelude::*;

fn code(s: &str) -> SiteCode {
    s.parse().unwrap()
}

fn probe_job(p: Priority) -> Job {
    Job::new(code("S01"), code("PRI"), p, Payload::Probe(vec![1, 2, 3]))
}

#[tokio::test]
async fn outbox_orders_by_priority_then_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let hop = code("PRI");
    let low = probe_job(Priority::Low);
    let high = probe_job(Priority::High);
    let med = probe_job(Priority::Medium);
    store.enqueue(&hop, &low).unwrap();
    store.enqueue(&hop, &high).unwrap();
    store.enqueue(&hop, &med).unwrap();
    store.durable().await.unwrap();
    let mut order = vec![];
    for p in Priority::ALL {
        for (_, j) in store.outbox_scan(&hop, p, None, 10).unwrap() {
            order.push(j.id);
        }
    }
    assert_eq!(order, vec![high.id, med.id, low.id]);
    assert_eq!(store.outbox_hops().unwrap(), vec![hop.clone()]);
    assert_eq!(store.outbox_len(&hop), 3);
}

#[tokio::test]
async fn despool_deduplicates_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let job = probe_job(Priority::Medium);
    {
        let store = Store::open(dir.path()).unwrap();
        let out = store.despool(&[(job.clone(), Delivery::Probe)]).unwrap();
        assert_eq!(out, vec![Despooled::Stored]);
        let out = store.despool(&[(job.clone(), Delivery::Probe)]).unwrap();
        assert_eq!(out, vec![Despooled::Duplicate]);
        store.durable().await.unwrap();
    }
    let store = reopen(dir.path());
    let out = store.despool(&[(job.clone(), Delivery::Probe)]).unwrap();
    assert_eq!(out, vec![Despooled::Duplicate]);
    assert_eq!(store.probes().unwrap().len(), 1);
}

#[tokio::test]
async fn many_waiters_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut tasks = vec![];
    for _ in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.enqueue(&code("PRI"), &probe_job(Priority::Low)).unwrap();
            s.durable().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(store.flush_count() >= 1);
    assert!(store.flush_count() <= 200);
    assert_eq!(store.outbox_len(&code("PRI")), 200);
}

#[tokio::test]
async fn old_status_messages_and_job_ids_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let msg = |t: u64| StatusMessage {
        uid: uuid::Builder::from_unix_timestamp_millis(t, &[7; 10]).into_uuid(),
        id: 1,
        severity: Severity::Informational,
        site_code: code("PRI"),
        component: "c".into(),
        machine: "m".into(),
        time_unix_ms: t,
        insertion_strings: vec![],
        text: "t".into(),
    };
    for t in [1_000, 2_000, 3_000] {
        store.store_status_at(&[msg(t)], false, t).unwrap();
    }
    assert_eq!(store.prune_status(2_500).unwrap(), 2);
    let left = store.status_messages(None, None, 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].time_unix_ms, 3_000);
    store
        .despool(&[(probe_job(Priority::Low), Delivery::Probe)])
        .unwrap();
    assert_eq!(store.prune_seen(now_ms() - 60_000).unwrap(), 0);
    assert_eq!(store.prune_seen(now_ms() + 1).unwrap(), 1);
    assert_eq!(store.seen_len(), 0);
}

#[tokio::test]
async fn chunks_must_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let pkg = FilePackage {
        name: "p".into(),
        total_size: 2,
        chunk_count: 2,
        chunk_size: 1,
        sha256: vec![],
    };
    let job = Job::new(code("S01"), code("PRI"), Priority::Low, Payload::File(pkg));
    let chunk = |i: u32| Delivery::Chunk {
        index: i,
        data: vec![i as u8],
        forward: None,
    };
    let r = store.despool(&[(job.clone(), chunk(1))]).unwrap();
    assert!(matches!(r[0], Despooled::Refused(_)));
    let r = store
        .despool(&[
            (job.clone(), chunk(0)),
            (job.clone(), chunk(0)),
            (job.clone(), chunk(1)),
        ])
        .unwrap();
    assert_eq!(
        r,
        vec![Despooled::Stored, Despooled::Duplicate, Despooled::Stored]
    );
    assert!(store.package(&job.id).unwrap().unwrap().complete);
}

// ---- helpers ------------------------------------------------------------------

/// Retries while another handle of the same data dir is still going away:
/// sled's own background threads may hold its file lock for a moment after
/// the last `Store` (or `sled::Db`) of a dir is dropped.
fn until_unlocked<T, E: std::fmt::Display>(
    mut f: impl FnMut() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f() {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            r => return r,
        }
    }
}

/// Opens a data dir a dropped store used.
fn reopen(dir: &std::path::Path) -> Store {
    until_unlocked(|| Store::open(dir)).unwrap()
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn control(site: &str, serial: u64) -> SiteControl {
    SiteControl {
        site_code: code(site),
        site_name: format!("site {site}"),
        serial,
        parent_site_code: None,
        polling_interval_ms: DEFAULT_POLLING_INTERVAL_MS,
        domains: vec![],
        addresses: vec![Address::new(code("S02"), "s02:7000".into())],
        version: SOFTWARE_VERSION.into(),
        next_unique_id: 1,
        management_points: vec![],
        status_rules: vec![],
    }
}

fn identity(site: &str) -> Identity {
    Identity {
        site_code: code(site),
        site_name: format!("site {site}"),
        kind: SiteKind::Primary,
        parent: None,
        installed_unix_ms: now_ms(),
        version: SOFTWARE_VERSION.into(),
        ancestors: vec![],
    }
}

fn job_to(dest: &str, p: Priority, payload: Payload) -> Job {
    Job::new(code("PRI"), code(dest), p, payload)
}

fn ct1_job(serial: u64) -> Job {
    job_to(
        "PRI",
        Priority::High,
        Payload::Ct1(Ct1 {
            signature: None,
            base_serial: serial - 1,
            proposed: control("PRI", serial),
            origin: "test".into(),
        }),
    )
}

fn ct2_of(site: &str, serial: u64) -> Ct2 {
    Ct2 {
        signature: None,
        site_code: code(site),
        parent_site_code: Some(code("PRI")),
        serial,
        control: control(site, serial),
        components: vec![],
        version: SOFTWARE_VERSION.into(),
        reported_unix_ms: now_ms(),
        server: format!("{}:7000", site.to_lowercase()),
        kind: SiteKind::Secondary,
    }
}

fn package(site: &str) -> BootstrapPackage {
    BootstrapPackage {
        site_code: code(site),
        site_name: site.into(),
        parent_site_code: code("PRI"),
        parent_address: "pri:7000".into(),
        init_control: control(site, 1),
        link_secret: "secret".into(),
        content: vec![1, 2, 3],
        content_sha256: vec![0; 32],
        required_free_bytes: 0,
        version: SOFTWARE_VERSION.into(),
        server: format!("{}:7000", site.to_lowercase()),
        ancestors: vec![code("PRI")],
    }
}

fn received(site: &str) -> ReceivedBootstrap {
    ReceivedBootstrap {
        job_id: Uuid::now_v7(),
        package: package(site),
        received_unix_ms: now_ms(),
    }
}

fn record(site: &str) -> SiteRecord {
    SiteRecord {
        site_code: code(site),
        parent_site_code: Some(code("PRI")),
        kind: SiteKind::Secondary,
        server: format!("{}:7000", site.to_lowercase()),
        status: SiteStatus::Pending,
        status_changed_unix_ms: now_ms(),
        serial: 0,
        link_secret: "secret".into(),
        sever_link_mid_bootstrap: false,
    }
}

/// A package of `chunks` one-byte chunks.
fn file_pkg(chunks: u32) -> FilePackage {
    file_pkg_of(chunks, 1)
}

fn file_pkg_of(chunks: u32, chunk_size: u32) -> FilePackage {
    FilePackage {
        name: "pkg".into(),
        total_size: u64::from(chunks) * u64::from(chunk_size),
        chunk_count: chunks,
        chunk_size,
        sha256: vec![],
    }
}

/// Chunk `i` of a file job, as the package store holds it.
fn chunk_of(store: &Store, job: &Job, i: u32) -> Option<Vec<u8>> {
    let Payload::File(pkg) = &job.payload else {
        panic!("not a file job")
    };
    store.chunk(&job.id, pkg, i).unwrap()
}

/// A status message whose uid orders with its time (as UUID v7s do).
fn msg(t: u64, n: u8, site: &str, severity: Severity, id: u32) -> StatusMessage {
    StatusMessage {
        uid: uuid::Builder::from_unix_timestamp_millis(t, &[n; 10]).into_uuid(),
        id,
        severity,
        site_code: code(site),
        component: "c".into(),
        machine: "m".into(),
        time_unix_ms: t,
        insertion_strings: vec![],
        text: "t".into(),
    }
}

fn info(t: u64) -> StatusMessage {
    msg(t, 0, "PRI", Severity::Informational, 1)
}

fn keys_of(v: &[(OutboxKey, Job)]) -> Vec<OutboxKey> {
    v.iter().map(|(k, _)| *k).collect()
}

fn ids_of(v: &[(OutboxKey, Job)]) -> Vec<Uuid> {
    v.iter().map(|(_, j)| j.id).collect()
}

// ---- meta -----------------------------------------------------------------------

#[tokio::test]
async fn node_id_is_created_once_and_stable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::open(dir.path()).unwrap();
        let id = store.node_id().unwrap();
        assert_eq!(store.node_id().unwrap(), id);
        store.durable().await.unwrap();
        id
    };
    let store = reopen(dir.path());
    assert_eq!(store.node_id().unwrap(), id);
    let (_d2, other) = open();
    assert_ne!(other.node_id().unwrap(), id, "each data dir has its own id");
}

#[tokio::test]
async fn identity_and_member_domain_are_set_and_read() {
    let (_d, store) = open();
    assert_eq!(store.identity().unwrap(), None);
    assert_eq!(store.member_domain().unwrap(), None);
    let mut id = identity("S01");
    store.set_identity(&id).unwrap();
    assert_eq!(store.identity().unwrap(), Some(id.clone()));
    id.site_name = "renamed".into();
    store.set_identity(&id).unwrap();
    assert_eq!(store.identity().unwrap().unwrap().site_name, "renamed");
    store.set_member_domain("CORP").unwrap();
    assert_eq!(store.member_domain().unwrap().as_deref(), Some("CORP"));
    store.set_member_domain("LAB").unwrap();
    assert_eq!(store.member_domain().unwrap().as_deref(), Some("LAB"));
}

#[tokio::test]
async fn install_site_twice_is_refused_and_changes_nothing() {
    let (_d, store) = open();
    let id = identity("PRI");
    store.install_site(&id, &control("PRI", 1)).unwrap();
    assert_eq!(store.identity().unwrap(), Some(id.clone()));
    assert_eq!(store.ct0().unwrap(), Some(control("PRI", 1)));
    let r = store.install_site(&identity("XYZ"), &control("XYZ", 5));
    assert!(matches!(r, Err(StoreError::AlreadyInstalled)), "{r:?}");
    assert_eq!(store.identity().unwrap(), Some(id));
    assert_eq!(store.ct0_serials().unwrap(), vec![1]);
}

#[tokio::test]
async fn install_site_is_refused_once_an_identity_is_set() {
    let (_d, store) = open();
    store.set_identity(&identity("S01")).unwrap();
    let r = store.install_site(&identity("PRI"), &control("PRI", 1));
    assert!(matches!(r, Err(StoreError::AlreadyInstalled)), "{r:?}");
    assert_eq!(store.ct0().unwrap(), None, "no CT0 without the identity");
}

// ---- bootstrap slot -----------------------------------------------------------------

#[tokio::test]
async fn accept_bootstrap_records_the_package_and_starts_running() {
    let (_d, store) = open();
    let pkg = received("S02");
    let seen = std::cell::RefCell::new(None);
    let taken = store
        .accept_bootstrap(&pkg, |slot| {
            *seen.borrow_mut() = Some(slot.clone());
            Ok(())
        })
        .unwrap();
    assert!(taken);
    assert_eq!(
        seen.into_inner(),
        Some(BootstrapSlot {
            installed: false,
            existing: None,
            state: None,
        })
    );
    assert_eq!(store.bootstrap_package().unwrap(), Some(pkg));
    assert_eq!(
        store.bootstrap_state().unwrap(),
        Some(BootstrapState::Running { completed_phase: 0 })
    );
}

#[tokio::test]
async fn a_resent_bootstrap_job_is_not_taken_again_and_not_decided() {
    let (_d, store) = open();
    let pkg = received("S02");
    assert!(store.accept_bootstrap(&pkg, |_| Ok(())).unwrap());
    store
        .set_bootstrap_state(&BootstrapState::Running { completed_phase: 3 })
        .unwrap();
    let calls = std::cell::Cell::new(0);
    let again = store
        .accept_bootstrap(&pkg, |_| {
            calls.set(calls.get() + 1);
            Err(BootstrapRefusal::AlreadyInstalled)
        })
        .unwrap();
    assert!(!again);
    assert_eq!(calls.get(), 0, "a resend is answered without the rule");
    // The running install is not restarted.
    assert_eq!(
        store.bootstrap_state().unwrap(),
        Some(BootstrapState::Running { completed_phase: 3 })
    );
}

#[tokio::test]
async fn a_refused_bootstrap_writes_nothing() {
    let (_d, store) = open();
    let first = received("S02");
    assert!(store.accept_bootstrap(&first, |_| Ok(())).unwrap());
    store
        .set_bootstrap_state(&BootstrapState::Failed {
            phase: 2,
            reason: "disk".into(),
        })
        .unwrap();
    let second = received("S03");
    let seen = std::cell::RefCell::new(None);
    let r = store.accept_bootstrap(&second, |slot| {
        *seen.borrow_mut() = Some(slot.clone());
        Err(BootstrapRefusal::Installing(code("S02")))
    });
    match r {
        Err(StoreError::BootstrapRefused(BootstrapRefusal::Installing(c))) => {
            assert_eq!(c, code("S02"))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let slot = seen.into_inner().unwrap();
    assert_eq!(slot.existing, Some(first.clone()));
    assert!(matches!(
        slot.state,
        Some(BootstrapState::Failed { phase: 2, .. })
    ));
    assert_eq!(store.bootstrap_package().unwrap(), Some(first));
    assert!(matches!(
        store.bootstrap_state().unwrap(),
        Some(BootstrapState::Failed { phase: 2, .. })
    ));
}

#[tokio::test]
async fn the_bootstrap_rule_sees_an_installed_node() {
    let (_d, store) = open();
    store
        .install_site(&identity("PRI"), &control("PRI", 1))
        .unwrap();
    let r = store.accept_bootstrap(&received("S02"), |slot| {
        if slot.installed {
            Err(BootstrapRefusal::AlreadyInstalled)
        } else {
            Ok(())
        }
    });
    assert!(
        matches!(
            r,
            Err(StoreError::BootstrapRefused(
                BootstrapRefusal::AlreadyInstalled
            ))
        ),
        "{r:?}"
    );
    assert_eq!(store.bootstrap_package().unwrap(), None);
    assert_eq!(store.bootstrap_state().unwrap(), None);
}

// ---- site control ----------------------------------------------------------------

#[tokio::test]
async fn apply_ct1_refuses_a_serial_gap_and_leaves_the_inbox() {
    let (_d, store) = open();
    store
        .install_site(&identity("PRI"), &control("PRI", 1))
        .unwrap();
    let key = store.put_inbox(Inbox::SiteControl, &ct1_job(3)).unwrap();
    for bad in [3, 1, 0] {
        let r = store.apply_ct1(key, &control("PRI", bad));
        match r {
            Err(StoreError::SerialGap { current, proposed }) => {
                assert_eq!((current, proposed), (1, bad))
            }
            other => panic!("expected a serial gap, got {other:?}"),
        }
    }
    assert_eq!(store.inbox_len(Inbox::SiteControl), 1);
    assert_eq!(store.ct0_serials().unwrap(), vec![1]);
}

#[tokio::test]
async fn apply_ct1_takes_the_item_out_and_becomes_ct0() {
    let (_d, store) = open();
    // On a bare store the first serial is 1.
    let k1 = store.put_inbox(Inbox::SiteControl, &ct1_job(1)).unwrap();
    store.apply_ct1(k1, &control("PRI", 1)).unwrap();
    let k2 = store.put_inbox(Inbox::SiteControl, &ct1_job(2)).unwrap();
    let k3 = store.put_inbox(Inbox::SiteControl, &ct1_job(3)).unwrap();
    let mut two = control("PRI", 2);
    two.site_name = "second".into();
    store.apply_ct1(k2, &two).unwrap();
    assert_eq!(store.ct0().unwrap(), Some(two.clone()));
    assert_eq!(store.ct0_at(1).unwrap(), Some(control("PRI", 1)));
    assert_eq!(store.ct0_at(9).unwrap(), None);
    let left = store.inbox_items(Inbox::SiteControl, 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, k3);
    store.apply_ct1(k3, &control("PRI", 3)).unwrap();
    assert_eq!(store.ct0_serials().unwrap(), vec![1, 2, 3]);
    assert_eq!(store.ct0().unwrap().unwrap().serial, 3);
    assert_eq!(store.inbox_len(Inbox::SiteControl), 0);
}

#[tokio::test]
async fn ct0_serials_sort_numerically_past_one_byte() {
    let (_d, store) = open();
    store
        .install_site(&identity("PRI"), &control("PRI", 255))
        .unwrap();
    let k = store.put_inbox(Inbox::SiteControl, &ct1_job(256)).unwrap();
    store.apply_ct1(k, &control("PRI", 256)).unwrap();
    assert_eq!(store.ct0_serials().unwrap(), vec![255, 256]);
    assert_eq!(store.ct0().unwrap().unwrap().serial, 256);
}

#[tokio::test]
async fn reject_ct1_moves_it_to_the_bad_box() {
    let (_d, store) = open();
    let job = ct1_job(5);
    let k = store.put_inbox(Inbox::SiteControl, &job).unwrap();
    let Payload::Ct1(ct1) = job.payload else {
        unreachable!()
    };
    let bad = BadCt1 {
        ct1,
        reason: "stale".into(),
        rejected_unix_ms: 42,
    };
    assert!(store.bad_ct1s().unwrap().is_empty());
    store.reject_ct1(k, &bad).unwrap();
    assert_eq!(store.inbox_len(Inbox::SiteControl), 0);
    assert_eq!(store.bad_ct1s().unwrap(), vec![bad]);
    assert_eq!(store.ct0().unwrap(), None);
}

// ---- queues ---------------------------------------------------------------------------

#[tokio::test]
async fn inboxes_keep_arrival_order_and_are_separate() {
    let (_d, store) = open();
    let jobs: Vec<Job> = (0..5).map(|_| probe_job(Priority::Low)).collect();
    let mut keys = vec![];
    for j in &jobs {
        keys.push(store.put_inbox(Inbox::Status, j).unwrap());
    }
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    store
        .put_inbox(Inbox::Hierarchy, &probe_job(Priority::High))
        .unwrap();
    let items = store.inbox_items(Inbox::Status, 10).unwrap();
    assert_eq!(
        items.iter().map(|(_, j)| j.id).collect::<Vec<_>>(),
        jobs.iter().map(|j| j.id).collect::<Vec<_>>()
    );
    assert_eq!(items.iter().map(|(k, _)| *k).collect::<Vec<_>>(), keys);
    assert_eq!(store.inbox_items(Inbox::Status, 2).unwrap().len(), 2);
    assert_eq!(store.inbox_len(Inbox::Hierarchy), 1);
    assert_eq!(store.inbox_len(Inbox::SiteControl), 0);
    store.inbox_remove(Inbox::Status, keys[0]).unwrap();
    let first = store.inbox_items(Inbox::Status, 1).unwrap();
    assert_eq!(first[0].1.id, jobs[1].id);
}

#[tokio::test]
async fn outbox_scan_resumes_after_the_cursor_and_stays_in_its_lane() {
    let (_d, store) = open();
    let hop = code("S01");
    let jobs: Vec<Job> = (0..5).map(|_| probe_job(Priority::Medium)).collect();
    let keys: Vec<OutboxKey> = jobs
        .iter()
        .map(|j| store.enqueue(&hop, j).unwrap())
        .collect();
    // Other hops and priorities do not show up.
    store
        .enqueue(&code("S02"), &probe_job(Priority::Medium))
        .unwrap();
    store
        .enqueue(&code("S00"), &probe_job(Priority::Medium))
        .unwrap();
    store.enqueue(&hop, &probe_job(Priority::Low)).unwrap();
    store.enqueue(&hop, &probe_job(Priority::High)).unwrap();

    let all = store
        .outbox_scan(&hop, Priority::Medium, None, 100)
        .unwrap();
    assert_eq!(keys_of(&all), keys);
    assert_eq!(ids_of(&all), jobs.iter().map(|j| j.id).collect::<Vec<_>>());
    let page = store.outbox_scan(&hop, Priority::Medium, None, 2).unwrap();
    assert_eq!(keys_of(&page), keys[..2].to_vec());
    let rest = store
        .outbox_scan(&hop, Priority::Medium, Some(page[1].0.seq), 100)
        .unwrap();
    assert_eq!(keys_of(&rest), keys[2..].to_vec());
    let none = store
        .outbox_scan(&hop, Priority::Medium, Some(keys[4].seq), 100)
        .unwrap();
    assert!(none.is_empty());
    assert!(store
        .outbox_scan(&hop, Priority::Medium, Some(u64::MAX), 10)
        .unwrap()
        .is_empty());
    assert_eq!(store.outbox_len(&hop), 7);
}

#[tokio::test]
async fn outbox_get_update_remove_and_has() {
    let (_d, store) = open();
    let hop = code("S01");
    assert!(!store.outbox_has(&hop));
    let mut job = probe_job(Priority::Low);
    let k = store.enqueue(&hop, &job).unwrap();
    assert!(store.outbox_has(&hop));
    assert!(!store.outbox_has(&code("S02")));
    job.attempts = 3;
    job.acked_chunks = 1;
    store.outbox_update(k, &job).unwrap();
    assert_eq!(store.outbox_get(k).unwrap(), Some(job));
    store.outbox_remove(&[k]).unwrap();
    assert_eq!(store.outbox_get(k).unwrap(), None);
    assert!(!store.outbox_has(&hop));
    // Removing again is harmless (a lost ack resends).
    store.outbox_remove(&[k]).unwrap();
}

#[tokio::test]
async fn failed_jobs_are_kept_and_retried_in_their_old_order() {
    let (_d, store) = open();
    let hop = code("S01");
    let jobs: Vec<Job> = (0..4).map(|_| probe_job(Priority::Low)).collect();
    let keys: Vec<OutboxKey> = jobs
        .iter()
        .map(|j| store.enqueue(&hop, j).unwrap())
        .collect();
    for i in [0, 2] {
        let mut j = jobs[i].clone();
        j.attempts = 20;
        store
            .outbox_fail(
                keys[i],
                &FailedJob {
                    job: j,
                    reason: format!("gave up on {i}"),
                    failed_unix_ms: i as u64,
                },
            )
            .unwrap();
    }
    assert_eq!(store.outbox_len(&hop), 2);
    assert_eq!(store.failed_len(&hop), 2);
    assert_eq!(store.failed_len(&code("S02")), 0);
    let failed = store.failed_jobs(&hop).unwrap();
    assert_eq!(
        failed
            .iter()
            .map(|f| (f.job.id, f.reason.as_str()))
            .collect::<Vec<_>>(),
        vec![(jobs[0].id, "gave up on 0"), (jobs[2].id, "gave up on 2")]
    );
    assert!(failed.iter().all(|f| f.job.attempts == 20));

    assert_eq!(store.retry_failed(&code("S02")).unwrap(), 0);
    assert_eq!(store.retry_failed(&hop).unwrap(), 2);
    assert_eq!(store.failed_len(&hop), 0);
    let back = store.outbox_scan(&hop, Priority::Low, None, 10).unwrap();
    assert_eq!(keys_of(&back), keys, "retried jobs keep their place");
    assert_eq!(ids_of(&back), jobs.iter().map(|j| j.id).collect::<Vec<_>>());
    assert!(back.iter().all(|(_, j)| j.attempts == 0));
}

#[tokio::test]
async fn outbox_hops_include_failed_only_hops() {
    let (_d, store) = open();
    assert!(store.outbox_hops().unwrap().is_empty());
    for p in Priority::ALL {
        store.enqueue(&code("S03"), &probe_job(p)).unwrap();
        store.enqueue(&code("S01"), &probe_job(p)).unwrap();
    }
    let k = store
        .enqueue(&code("S02"), &probe_job(Priority::Low))
        .unwrap();
    store
        .outbox_fail(
            k,
            &FailedJob {
                job: probe_job(Priority::Low),
                reason: "r".into(),
                failed_unix_ms: 0,
            },
        )
        .unwrap();
    assert_eq!(store.outbox_len(&code("S02")), 0);
    assert_eq!(
        store.outbox_hops().unwrap(),
        vec![code("S01"), code("S02"), code("S03")]
    );
}

#[tokio::test]
async fn ct2_queued_finds_only_that_sites_report_for_that_hop() {
    let (_d, store) = open();
    let parent = code("PRI");
    assert!(!store.ct2_queued(&parent, &code("S01")).unwrap());
    store.enqueue(&parent, &probe_job(Priority::High)).unwrap();
    let ct2 = job_to("PRI", Priority::High, Payload::Ct2(ct2_of("S01", 3)));
    let k = store.enqueue(&parent, &ct2).unwrap();
    assert!(store.ct2_queued(&parent, &code("S01")).unwrap());
    assert!(!store.ct2_queued(&parent, &code("S02")).unwrap());
    assert!(!store.ct2_queued(&code("S09"), &code("S01")).unwrap());
    store.outbox_remove(&[k]).unwrap();
    assert!(!store.ct2_queued(&parent, &code("S01")).unwrap());
}

#[tokio::test]
async fn deinstall_queued_looks_in_the_outbox_or_the_failed_box() {
    let (_d, store) = open();
    let hop = code("S02");
    store.enqueue(&hop, &probe_job(Priority::High)).unwrap();
    assert!(!store.deinstall_queued(&hop, false).unwrap());
    let deinstall = job_to("S02", Priority::High, Payload::Deinstall(hop.clone()));
    let k = store.enqueue(&hop, &deinstall).unwrap();
    assert!(store.deinstall_queued(&hop, false).unwrap());
    assert!(!store.deinstall_queued(&hop, true).unwrap());
    assert!(!store.deinstall_queued(&code("S03"), false).unwrap());
    store
        .outbox_fail(
            k,
            &FailedJob {
                job: deinstall,
                reason: "unreachable".into(),
                failed_unix_ms: 0,
            },
        )
        .unwrap();
    assert!(!store.deinstall_queued(&hop, false).unwrap());
    assert!(store.deinstall_queued(&hop, true).unwrap());
}

#[test]
fn outbox_key_bytes_order_like_the_keys() {
    let hops = [*b"PRI", *b"S01", *b"S02"];
    let mut keys = vec![];
    for hop in hops {
        for priority in 0..3u8 {
            for seq in [0, 1, 255, 256, u64::MAX] {
                keys.push(OutboxKey { hop, priority, seq });
            }
        }
    }
    for k in &keys {
        assert_eq!(OutboxKey::from_bytes(&k.to_bytes()), *k);
    }
    let mut by_bytes = keys.clone();
    by_bytes.sort_by_key(|k| k.to_bytes());
    let mut by_ord = keys;
    by_ord.sort();
    assert_eq!(by_bytes, by_ord);
    assert_eq!(hop_bytes(&code("S01")), *b"S01");
}

// ---- packages -----------------------------------------------------------------------

#[tokio::test]
async fn enqueue_file_stores_chunks_and_job_and_drop_chunks_frees_them() {
    let (_d, store) = open();
    let hop = code("S01");
    let pkg = FilePackage {
        total_size: 23,
        ..file_pkg_of(3, 10)
    };
    let job = job_to("S01", Priority::Low, Payload::File(pkg));
    let chunks = [vec![0u8; 10], vec![1u8; 10], vec![2u8; 3]];
    store.enqueue_file(&hop, &job, &chunks.concat()).unwrap();
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(chunk_of(&store, &job, i as u32).as_ref(), Some(c));
    }
    assert_eq!(chunk_of(&store, &job, 3), None);
    // Bytes that do not match the description are refused, and nothing is
    // queued.
    let short = job_to("S01", Priority::Low, Payload::File(file_pkg_of(3, 10)));
    let e = store.enqueue_file(&hop, &short, &[0u8; 29]).unwrap_err();
    assert!(e.to_string().contains("holds 29 bytes, not the 30"), "{e}");
    let queued = store.outbox_scan(&hop, Priority::Low, None, 10).unwrap();
    assert_eq!(ids_of(&queued), vec![job.id]);
    store.drop_chunks(&job.id).unwrap();
    for i in 0..3 {
        assert_eq!(chunk_of(&store, &job, i), None);
    }
    // The job itself stays queued: only its chunks went.
    assert_eq!(store.outbox_len(&hop), 1);
}

#[tokio::test]
async fn drop_orphan_chunks_frees_only_unowned_chunks() {
    let (_d, store) = open();
    let hop = code("S01");
    let file = |n| job_to("S01", Priority::Low, Payload::File(file_pkg(n)));
    // Queued.
    let queued = file(2);
    store.enqueue_file(&hop, &queued, &[1, 2]).unwrap();
    // Failed.
    let failed = file(1);
    store.enqueue_file(&hop, &failed, &[3]).unwrap();
    let k = keys_of(&store.outbox_scan(&hop, Priority::Low, None, 10).unwrap())[1];
    store
        .outbox_fail(
            k,
            &FailedJob {
                job: failed.clone(),
                reason: "r".into(),
                failed_unix_ms: 0,
            },
        )
        .unwrap();
    // Being received here.
    let incoming = Job::new(
        code("S02"),
        code("PRI"),
        Priority::Low,
        Payload::File(file_pkg(2)),
    );
    let r = store
        .despool(&[(
            incoming.clone(),
            Delivery::Chunk {
                index: 0,
                data: vec![4],
                forward: None,
            },
        )])
        .unwrap();
    assert_eq!(r, vec![Despooled::Stored]);
    // Orphaned: its job left the outbox without its chunks.
    let orphan = file(2);
    store.enqueue_file(&hop, &orphan, &[5, 6]).unwrap();
    let orphan_key = store
        .outbox_scan(&hop, Priority::Low, None, 10)
        .unwrap()
        .into_iter()
        .find(|(_, j)| j.id == orphan.id)
        .unwrap()
        .0;
    store.outbox_remove(&[orphan_key]).unwrap();

    assert_eq!(store.drop_orphan_chunks().unwrap(), 1);
    assert_eq!(chunk_of(&store, &orphan, 0), None);
    assert_eq!(chunk_of(&store, &orphan, 1), None);
    assert_eq!(chunk_of(&store, &queued, 1), Some(vec![2]));
    assert_eq!(chunk_of(&store, &failed, 0), Some(vec![3]));
    assert_eq!(chunk_of(&store, &incoming, 0), Some(vec![4]));
    assert_eq!(store.drop_orphan_chunks().unwrap(), 0);
}

// ---- received -----------------------------------------------------------------------

#[tokio::test]
async fn despool_delivers_each_job_to_its_inbox_once() {
    let (_d, store) = open();
    let ct1 = ct1_job(2);
    let ct2 = job_to("PRI", Priority::High, Payload::Ct2(ct2_of("S01", 1)));
    let st = job_to("PRI", Priority::Medium, Payload::Status(vec![info(1_000)]));
    let out = store
        .despool(&[
            (ct1.clone(), Delivery::Inbox(Inbox::SiteControl)),
            (ct2.clone(), Delivery::Inbox(Inbox::Hierarchy)),
            (st.clone(), Delivery::Inbox(Inbox::Status)),
            (st.clone(), Delivery::Inbox(Inbox::Status)),
        ])
        .unwrap();
    assert_eq!(
        out,
        vec![
            Despooled::Stored,
            Despooled::Stored,
            Despooled::Stored,
            Despooled::Duplicate
        ]
    );
    let only = |inbox| {
        let items = store.inbox_items(inbox, 10).unwrap();
        assert_eq!(items.len(), 1, "{inbox:?}");
        items.into_iter().next().unwrap().1
    };
    assert_eq!(only(Inbox::SiteControl), ct1);
    assert_eq!(only(Inbox::Hierarchy), ct2);
    assert_eq!(only(Inbox::Status), st);
    assert_eq!(store.seen_len(), 3);
}

#[tokio::test]
async fn despool_forward_queues_the_job_for_the_next_hop_with_its_id() {
    let (_d, store) = open();
    let job = Job::new(
        code("S01"),
        code("S05"),
        Priority::Medium,
        Payload::Probe(vec![9]),
    );
    let out = store
        .despool(&[(job.clone(), Delivery::Forward(code("S02")))])
        .unwrap();
    assert_eq!(out, vec![Despooled::Stored]);
    let q = store
        .outbox_scan(&code("S02"), Priority::Medium, None, 10)
        .unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].1, job);
    assert_eq!(q[0].0.hop, *b"S02");
    let again = store
        .despool(&[(job.clone(), Delivery::Forward(code("S02")))])
        .unwrap();
    assert_eq!(again, vec![Despooled::Duplicate]);
    assert_eq!(store.outbox_len(&code("S02")), 1);
    assert!(store.probes().unwrap().is_empty());
}

#[tokio::test]
async fn probes_keep_their_payload_size_and_count_once_durable() {
    let (_d, store) = open();
    let sizes = [0usize, 1, 1000];
    let jobs: Vec<Job> = sizes
        .iter()
        .map(|n| {
            Job::new(
                code("S01"),
                code("PRI"),
                Priority::Low,
                Payload::Probe(vec![7; *n]),
            )
        })
        .collect();
    let batch: Vec<(Job, Delivery)> = jobs.iter().map(|j| (j.clone(), Delivery::Probe)).collect();
    store.despool(&batch).unwrap();
    let got = store.probes().unwrap();
    assert_eq!(
        got.iter().map(|(p, n)| (p.job_id, *n)).collect::<Vec<_>>(),
        jobs.iter()
            .zip(sizes)
            .map(|(j, n)| (j.id, n))
            .collect::<Vec<_>>()
    );
    assert!(got.windows(2).all(|w| w[0].0.arrival < w[1].0.arrival));
    assert!(got.iter().all(|(p, _)| p.source == code("S01")));
    assert_eq!(store.probe_count(), 0, "counted only once durable");
    store.durable().await.unwrap();
    store.probes_durable(3);
    assert_eq!(store.probe_count(), 3);
}

#[tokio::test]
async fn a_refused_non_probe_is_not_remembered_so_its_resend_is_stored() {
    let (_d, store) = open();
    let mut job = Job::new(
        code("S01"),
        code("PRI"),
        Priority::Low,
        Payload::Deinstall(code("PRI")),
    );
    let out = store.despool(&[(job.clone(), Delivery::Probe)]).unwrap();
    assert_eq!(out, vec![Despooled::Refused(DespoolRefusal::NotAProbe)]);
    assert_eq!(store.seen_len(), 0);
    assert!(store.probes().unwrap().is_empty());
    job.payload = Payload::Probe(vec![1, 2]);
    let out = store.despool(&[(job.clone(), Delivery::Probe)]).unwrap();
    assert_eq!(out, vec![Despooled::Stored]);
    assert_eq!(store.probes().unwrap()[0].1, 2);
}

#[tokio::test]
async fn a_forwarded_package_is_queued_once_its_last_chunk_lands() {
    let (_d, store) = open();
    let job = Job::new(
        code("S01"),
        code("S05"),
        Priority::High,
        Payload::File(file_pkg_of(3, 4)),
    );
    let chunk = |i: u32| {
        (
            job.clone(),
            Delivery::Chunk {
                index: i,
                data: vec![i as u8; 4],
                forward: Some(code("S02")),
            },
        )
    };
    assert_eq!(store.despool(&[chunk(0), chunk(1)]).unwrap().len(), 2);
    assert_eq!(store.outbox_len(&code("S02")), 0);
    let rec = store.package(&job.id).unwrap().unwrap();
    assert_eq!((rec.chunks_received, rec.complete), (2, false));
    assert_eq!(store.despool(&[chunk(2)]).unwrap(), vec![Despooled::Stored]);
    let q = store
        .outbox_scan(&code("S02"), Priority::High, None, 10)
        .unwrap();
    assert_eq!(ids_of(&q), vec![job.id]);
    let rec = store.package(&job.id).unwrap().unwrap();
    assert!(rec.complete);
    assert_eq!(rec.source, code("S01"));
    assert_eq!(rec.dest, code("S05"));
    // A resent last chunk is a duplicate and queues nothing more.
    assert_eq!(
        store.despool(&[chunk(2)]).unwrap(),
        vec![Despooled::Duplicate]
    );
    assert_eq!(store.outbox_len(&code("S02")), 1);
    assert_eq!(chunk_of(&store, &job, 2), Some(vec![2; 4]));
    assert_eq!(store.packages().unwrap().len(), 1);
}

#[tokio::test]
async fn a_chunk_without_a_file_package_is_refused() {
    let (_d, store) = open();
    let job = probe_job(Priority::Low);
    let out = store
        .despool(&[(
            job.clone(),
            Delivery::Chunk {
                index: 0,
                data: vec![1],
                forward: None,
            },
        )])
        .unwrap();
    assert_eq!(
        out,
        vec![Despooled::Refused(DespoolRefusal::ChunkWithoutPackage)]
    );
    assert_eq!(store.package_bytes(&job.id), 0);
    assert!(store.packages().unwrap().is_empty());
}

// ---- status ------------------------------------------------------------------------

#[tokio::test]
async fn replicated_status_waits_in_the_outq_once() {
    let (_d, store) = open();
    let a = info(1_000);
    let b = info(2_000);
    let local = info(3_000);
    store.store_status(&[a.clone(), b.clone()], true).unwrap();
    store
        .store_status(std::slice::from_ref(&local), false)
        .unwrap();
    // A repeat is harmless: stored once, queued once.
    store.store_status(std::slice::from_ref(&a), true).unwrap();
    assert!(store.status_queued().unwrap());
    assert_eq!(store.status_outq(10).unwrap(), vec![a.clone(), b.clone()]);
    assert_eq!(store.status_outq(1).unwrap(), vec![a.clone()]);
    assert_eq!(
        store.status_messages(None, None, 10).unwrap(),
        vec![a, b, local]
    );
}

#[tokio::test]
async fn replicate_status_moves_the_queue_into_one_outbox_job() {
    let (_d, store) = open();
    let msgs = vec![info(1_000), info(2_000), info(3_000)];
    store.store_status(&msgs, true).unwrap();
    let take = store.status_outq(2).unwrap();
    let job = Job::new(
        code("S01"),
        code("PRI"),
        Priority::Medium,
        Payload::Status(take.clone()),
    );
    store.replicate_status(&code("PRI"), &job, &take).unwrap();
    let q = store
        .outbox_scan(&code("PRI"), Priority::Medium, None, 10)
        .unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].1, job);
    assert_eq!(store.status_outq(10).unwrap(), vec![msgs[2].clone()]);
    // The messages themselves stay at this site.
    assert_eq!(store.status_messages(None, None, 10).unwrap().len(), 3);
    let rest = store.status_outq(10).unwrap();
    let job2 = Job::new(
        code("S01"),
        code("PRI"),
        Priority::Medium,
        Payload::Status(rest.clone()),
    );
    store.replicate_status(&code("PRI"), &job2, &rest).unwrap();
    assert!(!store.status_queued().unwrap());
    assert_eq!(store.outbox_len(&code("PRI")), 2);
}

#[tokio::test]
async fn status_after_is_strictly_after_and_filtered() {
    let (_d, store) = open();
    let m = [
        msg(1_000, 1, "S01", Severity::Error, 10),
        msg(2_000, 2, "S02", Severity::Error, 10),
        msg(3_000, 3, "S01", Severity::Warning, 11),
        msg(4_000, 4, "S01", Severity::Error, 10),
    ];
    store.store_status(&m, false).unwrap();
    let uids = |v: Vec<StatusMessage>| v.into_iter().map(|m| m.uid).collect::<Vec<_>>();
    assert_eq!(
        uids(store.status_after(&Uuid::nil(), None, None, 10).unwrap()),
        m.iter().map(|m| m.uid).collect::<Vec<_>>()
    );
    assert_eq!(
        uids(store.status_after(&m[0].uid, None, None, 10).unwrap()),
        vec![m[1].uid, m[2].uid, m[3].uid]
    );
    assert_eq!(
        uids(
            store
                .status_after(&m[0].uid, Some(&code("S01")), None, 10)
                .unwrap()
        ),
        vec![m[2].uid, m[3].uid]
    );
    assert_eq!(
        uids(
            store
                .status_after(&m[0].uid, Some(&code("S01")), Some(10), 10)
                .unwrap()
        ),
        vec![m[3].uid]
    );
    assert_eq!(
        uids(store.status_after(&m[0].uid, None, None, 1).unwrap()),
        vec![m[1].uid]
    );
    assert!(store
        .status_after(&m[3].uid, None, None, 10)
        .unwrap()
        .is_empty());
    // status_messages keeps the newest, oldest first.
    assert_eq!(
        uids(store.status_messages(Some(&code("S01")), None, 2).unwrap()),
        vec![m[2].uid, m[3].uid]
    );
}

#[tokio::test]
async fn recent_severity_counts_errors_and_warnings_per_site() {
    let (_d, store) = open();
    store
        .store_status(
            &[
                msg(1_000, 1, "S01", Severity::Error, 1),
                msg(5_000, 2, "S01", Severity::Error, 1),
                msg(6_000, 3, "S01", Severity::Warning, 1),
                msg(6_500, 4, "S01", Severity::Warning, 1),
                msg(7_000, 5, "S02", Severity::Error, 1),
                msg(8_000, 6, "S03", Severity::Informational, 1),
            ],
            false,
        )
        .unwrap();
    let c = store.recent_severity_counts(5_000).unwrap();
    assert_eq!(c.get(&code("S01")), Some(&(1, 2)));
    assert_eq!(c.get(&code("S02")), Some(&(1, 0)));
    assert_eq!(c.get(&code("S03")).copied().unwrap_or_default(), (0, 0));
    let all = store.recent_severity_counts(0).unwrap();
    assert_eq!(all.get(&code("S01")), Some(&(2, 2)));
    assert!(store.recent_severity_counts(9_000).unwrap().is_empty());
}

#[tokio::test]
async fn pruned_messages_leave_the_replication_queue() {
    let (_d, store) = open();
    let msgs = [info(1_000), info(2_000), info(3_000)];
    for m in &msgs {
        store
            .store_status_at(std::slice::from_ref(m), true, m.time_unix_ms)
            .unwrap();
    }
    assert_eq!(store.prune_status(2_500).unwrap(), 2);
    assert_eq!(store.status_outq(10).unwrap(), vec![msgs[2].clone()]);
    assert_eq!(store.prune_status(10_000).unwrap(), 1);
    assert!(store.status_outq(10).unwrap().is_empty());
    assert!(
        !store.status_queued().unwrap(),
        "the queue forgets what cannot be sent"
    );
}

/// A status filter rule's decision is stored with the message: no queue
/// entry for one kept here, its priority for one sent at a chosen one, and
/// a keep period that moves when retention drops it.
#[tokio::test]
async fn rule_dispositions_choose_the_queue_entry_and_the_retention() {
    use sms_types::status_rules::{Disposition, Replicate, DAY_MS, DEFAULT_RETENTION_MS};
    let (_d, store) = open();
    let msgs = [info(1_000), info(2_000), info(3_000), info(4_000)];
    let disp = [
        Disposition::default(),
        Disposition {
            replicate: Some(Replicate::Never),
            keep_days: None,
        },
        Disposition {
            replicate: Some(Replicate::At(Priority::Low)),
            keep_days: Some(30),
        },
        Disposition {
            replicate: None,
            keep_days: Some(1),
        },
    ];
    let arrival = 100 * DAY_MS;
    store.store_ruled_at(&msgs, true, &disp, arrival).unwrap();
    let queued = store.status_outq_prio(10).unwrap();
    assert_eq!(
        queued,
        vec![
            (msgs[0].clone(), None),
            (msgs[2].clone(), Some(Priority::Low)),
            (msgs[3].clone(), None),
        ]
    );
    // Two days on: only the message kept one day is gone.
    assert_eq!(
        store
            .prune_status(arrival + 2 * DAY_MS - DEFAULT_RETENTION_MS)
            .unwrap(),
        1
    );
    // A week on: the defaults go; the one kept 30 days stays.
    assert_eq!(store.prune_status(arrival + DAY_MS).unwrap(), 2);
    assert_eq!(
        store.status_messages(None, None, 10).unwrap(),
        vec![msgs[2].clone()]
    );
    assert_eq!(
        store
            .prune_status(arrival + 30 * DAY_MS + 1 - DEFAULT_RETENTION_MS)
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn despool_status_takes_the_batch_out_of_the_inbox() {
    let (_d, store) = open();
    let msgs = vec![info(1_000), info(2_000)];
    let k1 = store
        .put_inbox(
            Inbox::Status,
            &job_to("PRI", Priority::Low, Payload::Status(msgs.clone())),
        )
        .unwrap();
    let k2 = store
        .put_inbox(
            Inbox::Status,
            &job_to("PRI", Priority::Low, Payload::Status(vec![])),
        )
        .unwrap();
    let new = store.despool_status(&[k1, k2], &msgs, true, &[]).unwrap();
    assert_eq!(new, [true, true]);
    assert_eq!(store.inbox_len(Inbox::Status), 0);
    assert_eq!(store.status_outq(10).unwrap(), msgs);
    // The same messages again (a resent batch) are not queued twice, and
    // the answer says neither is new.
    let again = vec![msgs[1].clone(), info(3_000), msgs[0].clone()];
    let new = store.despool_status(&[], &again, true, &[]).unwrap();
    assert_eq!(new, [false, true, false]);
    assert_eq!(store.status_outq(10).unwrap().len(), 3);
}

// ---- sites -------------------------------------------------------------------------

fn bootstrap_job(site: &str) -> Job {
    job_to(
        site,
        Priority::High,
        Payload::Bootstrap(Box::new(package(site))),
    )
}

#[tokio::test]
async fn create_child_twice_is_refused_and_queues_one_bootstrap() {
    let (_d, store) = open();
    let rec = record("S02");
    store.create_child(&rec, &bootstrap_job("S02")).unwrap();
    assert_eq!(store.site(&code("S02")).unwrap(), Some(rec.clone()));
    let mut again = rec.clone();
    again.server = "elsewhere:7000".into();
    let r = store.create_child(&again, &bootstrap_job("S02"));
    match r {
        Err(StoreError::SiteExists(c)) => assert_eq!(c, code("S02")),
        other => panic!("expected SiteExists, got {other:?}"),
    }
    assert_eq!(store.site(&code("S02")).unwrap(), Some(rec));
    assert_eq!(store.outbox_len(&code("S02")), 1);
    store
        .create_child(&record("S03"), &bootstrap_job("S03"))
        .unwrap();
    assert_eq!(
        store
            .sites()
            .unwrap()
            .iter()
            .map(|r| r.site_code.clone())
            .collect::<Vec<_>>(),
        vec![code("S02"), code("S03")]
    );
}

#[tokio::test]
async fn accept_ct2_updates_the_record_and_the_copy_and_the_inbox() {
    let (_d, store) = open();
    store.put_site(&record("S02")).unwrap();
    let ct2 = ct2_of("S02", 4);
    let k = store
        .put_inbox(
            Inbox::Hierarchy,
            &Job::new(
                code("S02"),
                code("PRI"),
                Priority::High,
                Payload::Ct2(ct2.clone()),
            ),
        )
        .unwrap();
    let mut rec = record("S02");
    rec.status = SiteStatus::Active;
    rec.serial = 4;
    store.accept_ct2(k, &rec, &ct2).unwrap();
    assert_eq!(store.site(&code("S02")).unwrap(), Some(rec));
    assert_eq!(store.child_ct2(&code("S02")).unwrap(), Some(ct2));
    assert_eq!(store.inbox_len(Inbox::Hierarchy), 0);
    assert_eq!(store.child_ct2(&code("S03")).unwrap(), None);
}

#[tokio::test]
async fn pending_ct1_is_set_and_cleared() {
    let (_d, store) = open();
    let ct1 = Ct1 {
        signature: None,
        base_serial: 1,
        proposed: control("S02", 2),
        origin: "PRI".into(),
    };
    assert_eq!(store.pending_ct1(&code("S02")).unwrap(), None);
    store.set_pending_ct1(&code("S02"), Some(&ct1)).unwrap();
    assert_eq!(store.pending_ct1(&code("S02")).unwrap(), Some(ct1));
    store.set_pending_ct1(&code("S02"), None).unwrap();
    assert_eq!(store.pending_ct1(&code("S02")).unwrap(), None);
}

#[tokio::test]
async fn remove_site_fails_its_jobs_drops_deinstall_and_bootstrap_and_keeps_a_record() {
    let (_d, store) = open();
    let site = code("S02");
    store
        .create_child(&record("S02"), &bootstrap_job("S02"))
        .unwrap();
    let probe = job_to("S02", Priority::Low, Payload::Probe(vec![1]));
    store.enqueue(&site, &probe).unwrap();
    let deinstall = job_to("S02", Priority::High, Payload::Deinstall(site.clone()));
    store.enqueue(&site, &deinstall).unwrap();
    // Already failed: a deinstall (dropped) and a probe (kept).
    let old_probe = job_to("S02", Priority::Low, Payload::Probe(vec![2]));
    let old_deinstall = job_to("S02", Priority::High, Payload::Deinstall(site.clone()));
    for j in [&old_probe, &old_deinstall] {
        let k = store.enqueue(&site, j).unwrap();
        store
            .outbox_fail(
                k,
                &FailedJob {
                    job: j.clone(),
                    reason: "earlier".into(),
                    failed_unix_ms: 1,
                },
            )
            .unwrap();
    }
    // Another site's queue is not touched.
    let other = job_to("S03", Priority::Low, Payload::Probe(vec![3]));
    store.enqueue(&code("S03"), &other).unwrap();
    store
        .accept_ct2(0, &record("S02"), &ct2_of("S02", 1))
        .unwrap();
    store
        .set_pending_ct1(
            &site,
            Some(&Ct1 {
                signature: None,
                base_serial: 1,
                proposed: control("S02", 2),
                origin: "PRI".into(),
            }),
        )
        .unwrap();
    store
        .set_link_fault(&site, Some(&LinkFault { severed_unix_ms: 5 }))
        .unwrap();

    let gone = DeletedSite {
        site_code: site.clone(),
        next_unique_id: 500,
        deleted_unix_ms: 9,
        orphaned: true,
        server: "s02:7000".into(),
    };
    assert_eq!(store.remove_site(&gone, sms_site_leftover).unwrap(), 3);

    assert_eq!(store.outbox_len(&site), 0);
    let mut failed: Vec<(Uuid, String)> = store
        .failed_jobs(&site)
        .unwrap()
        .into_iter()
        .map(|f| (f.job.id, f.reason))
        .collect();
    failed.sort();
    let mut want = vec![
        (old_probe.id, "earlier".to_string()),
        (probe.id, "site S02 was deleted".to_string()),
    ];
    want.sort();
    assert_eq!(failed, want);
    assert!(!store.deinstall_queued(&site, false).unwrap());
    assert!(!store.deinstall_queued(&site, true).unwrap());
    assert_eq!(store.site(&site).unwrap(), None);
    assert_eq!(store.child_ct2(&site).unwrap(), None);
    assert_eq!(store.pending_ct1(&site).unwrap(), None);
    assert_eq!(store.link_fault(&site).unwrap(), None);
    assert_eq!(store.deleted_site(&site).unwrap(), Some(gone));
    assert_eq!(store.outbox_len(&code("S03")), 1);
}

#[tokio::test]
async fn keep_deleted_never_lowers_the_counter() {
    let (_d, store) = open();
    let kept = |n: u64| DeletedSite {
        site_code: code("S02"),
        next_unique_id: n,
        deleted_unix_ms: n,
        orphaned: false,
        server: "s02".into(),
    };
    assert_eq!(store.deleted_site(&code("S02")).unwrap(), None);
    assert_eq!(store.keep_deleted(&kept(100)).unwrap().next_unique_id, 100);
    let lower = store.keep_deleted(&kept(50)).unwrap();
    assert_eq!(lower.next_unique_id, 100);
    // The rest of the record is the newer one.
    assert_eq!(lower.deleted_unix_ms, 50);
    assert_eq!(store.deleted_site(&code("S02")).unwrap(), Some(lower));
    assert_eq!(store.keep_deleted(&kept(200)).unwrap().next_unique_id, 200);
    assert_eq!(
        store
            .deleted_site(&code("S02"))
            .unwrap()
            .unwrap()
            .next_unique_id,
        200
    );
}

/// A lower counter given to `remove_site` must not overwrite a higher one
/// `keep_deleted` kept (a re-created site would reissue IDs).
#[tokio::test]
async fn remove_site_never_lowers_a_kept_counter() {
    let (_d, store) = open();
    let gone = |n: u64| DeletedSite {
        site_code: code("S02"),
        next_unique_id: n,
        deleted_unix_ms: 0,
        orphaned: false,
        server: "s02".into(),
    };
    store.put_site(&record("S02")).unwrap();
    store.keep_deleted(&gone(1_000)).unwrap();
    store.remove_site(&gone(10), sms_site_leftover).unwrap();
    assert_eq!(
        store
            .deleted_site(&code("S02"))
            .unwrap()
            .unwrap()
            .next_unique_id,
        1_000
    );
}

// ---- logon ---------------------------------------------------------------------------

#[tokio::test]
async fn allocate_range_is_consecutive_and_respects_the_floor() {
    let (_d, store) = open();
    assert_eq!(store.next_unique_id(0).unwrap(), 1);
    assert_eq!(store.allocate_range(10, 0).unwrap(), (1, 11));
    assert_eq!(store.allocate_range(5, 0).unwrap(), (11, 16));
    assert_eq!(store.next_unique_id(0).unwrap(), 16);
    // A floor above the counter moves it up...
    assert_eq!(store.next_unique_id(100).unwrap(), 100);
    assert_eq!(store.allocate_range(10, 100).unwrap(), (100, 110));
    // ...one below it is ignored.
    assert_eq!(store.allocate_range(1, 50).unwrap(), (110, 111));
    assert_eq!(store.next_unique_id(50).unwrap(), 111);
}

#[tokio::test]
async fn concurrent_allocations_never_overlap() {
    let (_d, store) = open();
    const THREADS: u64 = 8;
    const EACH: u64 = 50;
    const SIZE: u64 = 7;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let s = store.clone();
            std::thread::spawn(move || {
                (0..EACH)
                    .map(|_| s.allocate_range(SIZE, 0).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<(u64, u64)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all.len() as u64, THREADS * EACH);
    assert!(all.iter().all(|(s, e)| e - s == SIZE));
    assert_eq!(all[0].0, 1);
    // Sorted ranges touch end to start: consecutive, no overlap, no hole.
    assert!(all.windows(2).all(|w| w[0].1 == w[1].0), "{all:?}");
    assert_eq!(store.next_unique_id(0).unwrap(), 1 + THREADS * EACH * SIZE);
}

#[tokio::test]
async fn freeze_ids_and_logon_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let install = LogonInstall {
        site_code: code("S01"),
        site_address: "s01:7000".into(),
        domain: "CORP".into(),
        script_version: 2,
        script: "x".into(),
        ranges: vec![(1, 10)],
        next_id: 3,
    };
    {
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.ids_frozen().unwrap());
        store.freeze_ids().unwrap();
        assert!(store.ids_frozen().unwrap());
        store.freeze_ids().unwrap();
        assert_eq!(store.logon_install().unwrap(), None);
        store.set_logon_install(Some(&install)).unwrap();
        store.allocate_range(10, 0).unwrap();
        store.durable().await.unwrap();
    }
    let store = reopen(dir.path());
    assert!(store.ids_frozen().unwrap());
    assert_eq!(store.logon_install().unwrap(), Some(install));
    assert_eq!(store.allocate_range(1, 0).unwrap(), (11, 12));
    store.set_logon_install(None).unwrap();
    assert_eq!(store.logon_install().unwrap(), None);
}

#[tokio::test]
async fn logon_records_are_keyed_by_domain_case_insensitively() {
    let (_d, store) = open();
    let rec = |domain: &str, server: &str, state| LogonRecord {
        domain: domain.into(),
        server: server.into(),
        state,
        node_id: "n".into(),
        range: (1, 2),
        changed_unix_ms: 0,
    };
    store
        .put_logon_record(&rec("CORP", "dc1", LogonState::PendingInstall))
        .unwrap();
    store
        .put_logon_record(&rec("corp", "dc1", LogonState::Active))
        .unwrap();
    store
        .put_logon_record(&rec("LAB", "dc1", LogonState::Active))
        .unwrap();
    let all = store.logon_records().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all
        .iter()
        .any(|r| r.domain == "corp" && r.state == LogonState::Active));
    store.remove_logon_record("Corp", "dc1").unwrap();
    let left = store.logon_records().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].domain, "LAB");
}

// ---- faults ---------------------------------------------------------------------------

#[tokio::test]
async fn faults_are_set_replaced_listed_and_cleared_by_name() {
    let (_d, store) = open();
    assert!(store.faults().unwrap().is_empty());
    store.set_fault(&Fault::Ct2JobFailure).unwrap();
    store
        .set_fault(&Fault::BootstrapFailure { phase: 2 })
        .unwrap();
    store
        .set_fault(&Fault::BootstrapFailure { phase: 3 })
        .unwrap();
    let mut f = store.faults().unwrap();
    f.sort_by_key(|f| f.name());
    assert_eq!(
        f,
        vec![Fault::BootstrapFailure { phase: 3 }, Fault::Ct2JobFailure]
    );
    assert!(store.clear_fault("bootstrap-failure").unwrap());
    assert!(!store.clear_fault("bootstrap-failure").unwrap());
    assert!(!store.clear_fault("no-such-fault").unwrap());
    assert_eq!(store.faults().unwrap(), vec![Fault::Ct2JobFailure]);
}

#[tokio::test]
async fn link_faults_are_set_and_restored_per_site() {
    let (_d, store) = open();
    let f = LinkFault {
        severed_unix_ms: 77,
    };
    store.set_link_fault(&code("S01"), Some(&f)).unwrap();
    assert_eq!(store.link_fault(&code("S01")).unwrap(), Some(f));
    assert_eq!(store.link_fault(&code("S02")).unwrap(), None);
    store.set_link_fault(&code("S01"), None).unwrap();
    assert_eq!(store.link_fault(&code("S01")).unwrap(), None);
    // Restoring a link that was never cut is harmless.
    store.set_link_fault(&code("S03"), None).unwrap();
}

// ---- durability and format --------------------------------------------------------

#[tokio::test]
async fn everything_made_durable_is_there_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let queued = probe_job(Priority::High);
    let failed = probe_job(Priority::Low);
    let msg = info(1_000);
    let probe = Job::new(
        code("S05"),
        code("PRI"),
        Priority::Low,
        Payload::Probe(vec![0; 64]),
    );
    let site = record("S01");
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .install_site(&identity("PRI"), &control("PRI", 1))
            .unwrap();
        store.set_member_domain("CORP").unwrap();
        store.enqueue(&code("S01"), &queued).unwrap();
        let k = store.enqueue(&code("S02"), &failed).unwrap();
        store
            .outbox_fail(
                k,
                &FailedJob {
                    job: failed.clone(),
                    reason: "r".into(),
                    failed_unix_ms: 0,
                },
            )
            .unwrap();
        store.put_site(&site).unwrap();
        store
            .store_status(std::slice::from_ref(&msg), true)
            .unwrap();
        store.set_fault(&Fault::Ct2JobFailure).unwrap();
        store
            .set_link_fault(&code("S01"), Some(&LinkFault { severed_unix_ms: 1 }))
            .unwrap();
        store.despool(&[(probe.clone(), Delivery::Probe)]).unwrap();
        store.durable().await.unwrap();
        assert!(store.flush_count() >= 1);
    }
    let store = reopen(dir.path());
    assert_eq!(store.flush_count(), 0, "a counter of this process only");
    assert_eq!(store.identity().unwrap().unwrap().site_code, code("PRI"));
    assert_eq!(store.ct0().unwrap(), Some(control("PRI", 1)));
    assert_eq!(store.member_domain().unwrap().as_deref(), Some("CORP"));
    let q = store
        .outbox_scan(&code("S01"), Priority::High, None, 10)
        .unwrap();
    assert_eq!(ids_of(&q), vec![queued.id]);
    assert_eq!(store.failed_jobs(&code("S02")).unwrap()[0].job, failed);
    assert_eq!(store.site(&code("S01")).unwrap(), Some(site));
    assert_eq!(store.status_outq(10).unwrap(), vec![msg]);
    assert_eq!(store.faults().unwrap(), vec![Fault::Ct2JobFailure]);
    assert!(store.link_fault(&code("S01")).unwrap().is_some());
    // Probes received before the restart are counted from the store.
    assert_eq!(store.probe_count(), 1);
    assert_eq!(
        store.despool(&[(probe, Delivery::Probe)]).unwrap(),
        vec![Despooled::Duplicate]
    );
}

#[tokio::test]
async fn flush_now_and_durable_both_succeed_and_count() {
    let (_d, store) = open();
    store
        .enqueue(&code("S01"), &probe_job(Priority::Low))
        .unwrap();
    store.flush_now().unwrap();
    let before = store.flush_count();
    store.durable().await.unwrap();
    store.durable().await.unwrap();
    assert_eq!(store.flush_count(), before + 2);
}

#[tokio::test]
async fn a_data_dir_of_another_store_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.insert(META_FORMAT, enc(&(STORE_FORMAT + 1))).unwrap();
        db.flush().unwrap();
    }
    match until_unlocked(|| Store::open(dir.path())) {
        Err(StoreError::Format { found, expected }) => {
            assert_eq!((found, expected), (STORE_FORMAT + 1, STORE_FORMAT));
        }
        Err(e) => panic!("expected a format refusal, got {e}"),
        Ok(_) => panic!("expected a format refusal, the store opened"),
    }
    let e = StoreError::Format {
        found: 9,
        expected: 1,
    }
    .to_string();
    assert!(e.contains('9') && e.contains('1'), "{e}");
}

#[tokio::test]
async fn a_new_data_dir_is_stamped_with_this_format() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.durable().await.unwrap();
    }
    let db = until_unlocked(|| sled::Config::new().path(dir.path()).open()).unwrap();
    let v = db.get(META_FORMAT).unwrap().expect("format stamped");
    assert_eq!(dec::<u32>(&v).unwrap(), STORE_FORMAT);
}

/// The Hierarchy Manager's rule for a deleted site's jobs, as the site crate
/// passes it: deinstall and bootstrap jobs are dropped, others fail.
fn sms_site_leftover(job: &Job) -> Option<String> {
    match job.payload {
        Payload::Deinstall(_) | Payload::Bootstrap(_) => None,
        _ => Some(format!("site {} was deleted", job.dest)),
    }
}

/// Retention goes by when a message arrived here, not by the time its site
/// wrote on it: a site whose clock is 30 days behind does not have its
/// messages deleted on arrival.
#[tokio::test]
async fn retention_goes_by_this_sites_clock_not_the_senders() {
    let (_d, store) = open();
    let thirty_days = 30 * 24 * 3_600_000;
    let skewed = StatusMessage {
        uid: uuid::Builder::from_unix_timestamp_millis(now_ms() - thirty_days, &[9; 10])
            .into_uuid(),
        id: 1,
        severity: Severity::Informational,
        site_code: code("S01"),
        component: "c".into(),
        machine: "m".into(),
        time_unix_ms: now_ms() - thirty_days,
        insertion_strings: vec![],
        text: "from a slow clock".into(),
    };
    store
        .store_status(std::slice::from_ref(&skewed), false)
        .unwrap();
    let week = 7 * 24 * 3_600_000;
    assert_eq!(store.prune_status(now_ms() - week).unwrap(), 0);
    assert_eq!(store.status_messages(None, None, 10).unwrap(), vec![skewed]);
    assert_eq!(store.prune_status(now_ms() + 1).unwrap(), 1);
    assert!(store.status_messages(None, None, 10).unwrap().is_empty());
}

/// A store written before arrivals were recorded gets them at open, dated
/// then: its messages are kept a full period from the upgrade.
#[tokio::test]
async fn messages_from_before_the_arrival_index_are_kept_from_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.store_status(&[info(1_000)], false).unwrap();
        store.inner().unwrap().status_arrival.clear().unwrap();
        store.durable().await.unwrap();
    }
    let store = reopen(dir.path());
    assert_eq!(store.prune_status(now_ms() - 60_000).unwrap(), 0);
    assert_eq!(store.prune_status(now_ms() + 1).unwrap(), 1);
}

// ---- freeing packages, and a store that failed to write ---------------------

/// Bytes the files under `p` take on disk.
fn disk_usage(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            n += disk_usage(&e.path());
        } else {
            n += std::os::unix::fs::MetadataExt::blocks(&m) * 512;
        }
    }
    n
}

const MIB: u64 = 1024 * 1024;

fn mib_chunks(n: u32) -> Vec<u8> {
    (0..n).flat_map(|i| vec![i as u8; MIB as usize]).collect()
}

/// Fails with chunks kept in sled (as before): sled defers removing their
/// blob files until its log segment fills and forgets them at a restart,
/// so 20 MiB freed left the data dir larger than before.
#[tokio::test]
async fn freed_packages_give_their_space_back_and_stay_freed_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let hop = code("S01");
    let mut ids = vec![];
    let full;
    {
        let store = Store::open(dir.path()).unwrap();
        let empty = disk_usage(dir.path());
        for _ in 0..5 {
            let job = job_to(
                "S01",
                Priority::Low,
                Payload::File(file_pkg_of(4, MIB as u32)),
            );
            store.enqueue_file(&hop, &job, &mib_chunks(4)).unwrap();
            ids.push((
                store
                    .outbox_scan(&hop, Priority::Low, None, 100)
                    .unwrap()
                    .last()
                    .unwrap()
                    .0,
                job.id,
            ));
        }
        store.durable().await.unwrap();
        full = disk_usage(dir.path());
        assert!(full >= empty + 20 * MIB, "20 MiB stored: {empty} -> {full}");
        // What the sender does once the next hop acknowledged each package.
        for (key, id) in &ids {
            store.outbox_remove(&[*key]).unwrap();
            store.drop_chunks(id).unwrap();
        }
        store.durable().await.unwrap();
        let freed = disk_usage(dir.path());
        assert!(
            freed + 19 * MIB <= full,
            "freeing gave space back: {full} -> {freed}"
        );
    }
    let store = reopen(dir.path());
    let after = disk_usage(dir.path());
    assert!(
        after + 19 * MIB <= full,
        "still free after a reopen: {full} -> {after}"
    );
    for (_, id) in &ids {
        assert_eq!(store.package_bytes(id), 0);
    }
    assert_eq!(store.drop_orphan_chunks().unwrap(), 0, "nothing dangling");
    assert_eq!(store.outbox_len(&hop), 0);
}

fn chunk_delivery(i: u32, forward: Option<&str>) -> Delivery {
    Delivery::Chunk {
        index: i,
        data: vec![i as u8; 1000],
        forward: forward.map(code),
    }
}

#[tokio::test]
async fn a_package_received_here_is_kept_until_expired_and_then_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let job = Job::new(
        code("S01"),
        code("PRI"),
        Priority::Low,
        Payload::File(file_pkg_of(2, 1000)),
    );
    {
        let store = Store::open(dir.path()).unwrap();
        let before = now_ms();
        store
            .despool(&[
                (job.clone(), chunk_delivery(0, None)),
                (job.clone(), chunk_delivery(1, None)),
            ])
            .unwrap();
        store.durable().await.unwrap();
        let done = store.completed_packages().unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, job.id);
        assert!(done[0].1 >= before, "completed by this site's clock");
        assert_eq!(store.package_bytes(&job.id), 2000);
    }
    let store = reopen(dir.path());
    // Kept across a restart, and not taken for an orphan.
    assert_eq!(store.drop_orphan_chunks().unwrap(), 0);
    assert_eq!(chunk_of(&store, &job, 1), Some(vec![1u8; 1000]));
    store.expire_package(&job.id).unwrap();
    store.durable().await.unwrap();
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(chunk_of(&store, &job, 0), None);
    assert_eq!(store.package(&job.id).unwrap(), None);
    assert!(store.completed_packages().unwrap().is_empty());
    assert_eq!(store.package_bytes(&job.id), 0);
}

#[tokio::test]
async fn a_forwarded_package_is_not_kept_here_once_passed_on() {
    let (_d, store) = open();
    let job = Job::new(
        code("S11"),
        code("PRI"),
        Priority::Low,
        Payload::File(file_pkg_of(2, 1000)),
    );
    store
        .despool(&[
            (job.clone(), chunk_delivery(0, Some("S01"))),
            (job.clone(), chunk_delivery(1, Some("S01"))),
        ])
        .unwrap();
    store.durable().await.unwrap();
    assert!(
        store.completed_packages().unwrap().is_empty(),
        "not kept: its destination is elsewhere"
    );
    let queued = store
        .outbox_scan(&code("S01"), Priority::Low, None, 10)
        .unwrap();
    assert_eq!(ids_of(&queued), vec![job.id]);
    // Still queued: its chunks are owned.
    assert_eq!(store.drop_orphan_chunks().unwrap(), 0);
    // Acknowledged by the next hop, and a crash came before it was freed:
    // the start-up sweep frees it; the record stays (for duplicate chunks).
    store.outbox_remove(&keys_of(&queued)).unwrap();
    assert_eq!(store.drop_orphan_chunks().unwrap(), 1);
    assert_eq!(chunk_of(&store, &job, 0), None);
    assert!(store.package(&job.id).unwrap().is_some());
    // A late resend of its last chunk is still a duplicate, not out of order.
    let r = store
        .despool(&[(job.clone(), chunk_delivery(1, Some("S01")))])
        .unwrap();
    assert_eq!(
        r,
        vec![Despooled::Stored],
        "the chunk is refilled, not refused"
    );
}

/// sled keeps its first write error and returns it from every later write
/// until reopened; the store marks itself failed, tells every waiter,
/// reopens after a quiet moment and clears the failure once it can write.
#[tokio::test]
async fn a_failed_store_refuses_commits_then_reopens_and_keeps_what_was_durable() {
    let (_d, store) = open();
    let hop = code("S01");
    let kept = probe_job(Priority::Low);
    store.enqueue(&hop, &kept).unwrap();
    store.durable().await.unwrap();
    store.cell.fail("test: the disk is full");
    store
        .cell
        .test_poisoned
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        store.write_failure().as_deref(),
        Some("test: the disk is full")
    );
    let lost = probe_job(Priority::Low);
    store.enqueue(&hop, &lost).unwrap();
    let e = store.durable().await.unwrap_err();
    assert!(e.is_storage_fault());
    assert!(e.to_string().contains("disk is full"), "{e}");
    // The commit thread reopens a second or so after the failure.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.write_failure().is_some() {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        store.reopen_count(),
        1,
        "the poisoned database was replaced"
    );
    let queued = ids_of(&store.outbox_scan(&hop, Priority::Low, None, 10).unwrap());
    assert!(queued.contains(&kept.id), "what was durable is there");
    let again = probe_job(Priority::Low);
    store.enqueue(&hop, &again).unwrap();
    store.durable().await.unwrap();
}

/// A chunk file that could not be written leaves sled writing: the store
/// recovers without closing the database.
#[tokio::test]
async fn a_store_whose_sled_still_writes_recovers_without_a_reopen() {
    let (_d, store) = open();
    store
        .cell
        .fail("test: writing a package chunk: No space left on device");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Nobody asks for a commit: the failure itself starts the recovery.
    while store.write_failure().is_some() {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(store.reopen_count(), 0);
    store.durable().await.unwrap();
}

/// A package received for this site before completed packages were listed
/// (an older data dir) is still this site's, not an orphan.
#[tokio::test]
async fn a_package_received_here_before_the_retention_list_is_not_an_orphan() {
    let (_d, store) = open();
    store
        .install_site(&identity("PRI"), &control("PRI", 1))
        .unwrap();
    let job = Job::new(
        code("S01"),
        code("PRI"),
        Priority::Low,
        Payload::File(file_pkg_of(1, 1000)),
    );
    store
        .despool(&[(job.clone(), chunk_delivery(0, None))])
        .unwrap();
    store
        .inner()
        .unwrap()
        .packages_completed
        .remove(job.id.as_bytes())
        .unwrap();
    assert_eq!(store.drop_orphan_chunks().unwrap(), 0);
    assert!(chunk_of(&store, &job, 0).is_some());
}
