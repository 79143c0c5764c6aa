
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
    let store = Store::open(dir.path()).unwrap();
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
    store
        .store_status(&[msg(1_000), msg(2_000), msg(3_000)], false)
        .unwrap();
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
