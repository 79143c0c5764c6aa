//! The status load generator and the stored-message watch, across real
//! processes: a secondary two hops below the central site reports test
//! messages at a set rate, and a watcher at the central site sees every one
//! as it is stored there, including messages that arrive late with older
//! uids than ones it already saw; and a middle tier killed mid-load loses
//! none of them.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::support::*;
use sms_proto::v1 as pb;
use tokio::sync::mpsc;

type Admin = pb::admin_client::AdminClient<tonic::transport::Channel>;

async fn admin(node: &NodeProc) -> Admin {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Admin::new(ch)
}

/// One stored test message as the watcher saw it.
#[derive(Debug, Clone)]
struct Seen {
    site: String,
    tag: String,
    index: u32,
    time_unix_ms: u64,
    stored_unix_us: u64,
}

/// Watches `node` for load test messages and forwards each one.
async fn watch(node: &NodeProc, site: &str) -> mpsc::UnboundedReceiver<(Seen, u64)> {
    let mut a = admin(node).await;
    let mut stream = a
        .watch_status_messages(pb::WatchStatusMessagesRequest {
            site: site.into(),
            id: catalog::STATUS_LOAD_TEST.id,
        })
        .await
        .unwrap()
        .into_inner();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(b)) = stream.message().await {
            for m in b.messages {
                assert_eq!(
                    m.id,
                    catalog::STATUS_LOAD_TEST.id,
                    "the watch let another id through"
                );
                let seen = Seen {
                    site: m.site_code,
                    tag: m.insertion_strings[0].clone(),
                    index: m.insertion_strings[1].parse().unwrap(),
                    time_unix_ms: m.time_unix_ms,
                    stored_unix_us: b.stored_unix_us,
                };
                if tx.send((seen, b.missed_batches)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Collects watched messages of `tag` until `n` distinct indexes arrived.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(Seen, u64)>,
    tag: &str,
    n: usize,
) -> HashMap<u32, Seen> {
    let mut got = HashMap::new();
    while got.len() < n {
        let (s, missed) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} messages of {tag} arrived", got.len()))
            .expect("the watch ended");
        assert_eq!(missed, 0, "the watcher missed batches");
        if s.tag == tag {
            got.entry(s.index).or_insert(s);
        }
    }
    got
}

async fn load(node: &NodeProc, count: u32, per_second: u32, tag: &str) -> pb::StatusLoadReply {
    admin(node)
        .await
        .generate_status_load(pb::StatusLoadRequest {
            count,
            per_second,
            tag: tag.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_from_two_hops_down_is_seen_at_the_central_site_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, p01, s01) = three_tiers(dir.path());

    // Bad requests change nothing.
    let mut a = admin(&s01).await;
    for (count, per_second, tag) in [
        (0, 100, String::new()),
        (10, 0, String::new()),
        (4_000, 1, String::new()),
        (10, 10, "x".repeat(65)),
    ] {
        let e = a
            .generate_status_load(pb::StatusLoadRequest {
                count,
                per_second,
                tag,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    }
    let bare = NodeProc::start(&dir.path().join("bare"), &[]);
    let e = admin(&bare)
        .await
        .generate_status_load(pb::StatusLoadRequest {
            count: 1,
            per_second: 1,
            tag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");

    // 300 messages at 1000/s from S01: paced, and every one stored at PRI.
    let mut all = watch(&pri, "").await;
    let mut only_p01 = watch(&pri, "P01").await;
    let r = load(&s01, 300, 1000, "paced").await;
    assert_eq!(r.emitted, 300);
    assert_eq!(r.tag, "paced");
    // 300 at 1000/s take 0.3 s from the first tick to the last message.
    assert!(
        r.finished_unix_ms - r.started_unix_ms >= 290,
        "not paced: {} ms",
        r.finished_unix_ms - r.started_unix_ms
    );
    let got = collect(&mut all, "paced", 300).await;
    let idx: BTreeSet<u32> = got.keys().copied().collect();
    assert_eq!(idx, (1..=300).collect::<BTreeSet<u32>>());
    for s in got.values() {
        assert_eq!(s.site, "S01");
        assert!(
            s.time_unix_ms >= r.started_unix_ms && s.time_unix_ms <= r.finished_unix_ms,
            "origin time outside the run"
        );
        assert!(
            s.stored_unix_us / 1000 >= s.time_unix_ms,
            "stored at PRI before it was reported"
        );
    }
    // The stored messages are listed like any other.
    let listed = a_list(&pri, "S01").await;
    assert_eq!(
        listed
            .iter()
            .filter(|m| m.insertion_strings[0] == "paced")
            .count(),
        300
    );

    // Late arrivals with older uids are not skipped: S01's messages wait
    // behind a severed link while P01 reports newer ones, then flow.
    s01.json(&["sever-link", "--to", "P01"]);
    let early = load(&s01, 50, 1000, "early").await;
    assert_eq!(early.emitted, 50);
    let late = load(&p01, 50, 1000, "late").await;
    assert_eq!(late.emitted, 50);
    let from_p01 = collect(&mut all, "late", 50).await;
    assert!(from_p01.values().all(|s| s.site == "P01"));
    s01.json(&["restore-link", "--to", "P01"]);
    let from_s01 = collect(&mut all, "early", 50).await;
    assert!(from_s01.values().all(|s| s.site == "S01"));
    let newest_early = from_s01.values().map(|s| s.time_unix_ms).max().unwrap();
    let oldest_late = from_p01.values().map(|s| s.time_unix_ms).min().unwrap();
    assert!(
        newest_early <= oldest_late,
        "S01's messages were reported first"
    );
    let first_early = from_s01.values().map(|s| s.stored_unix_us).min().unwrap();
    let last_late = from_p01.values().map(|s| s.stored_unix_us).max().unwrap();
    assert!(
        first_early >= last_late,
        "S01's messages were stored at PRI last"
    );

    // The site filter: the P01 watcher saw P01's messages only.
    let p01_only = collect(&mut only_p01, "late", 50).await;
    assert_eq!(p01_only.len(), 50);
    assert!(
        only_p01.try_recv().is_err(),
        "S01's messages passed the filter"
    );
}

async fn a_list(node: &NodeProc, site: &str) -> Vec<pb::StatusMessage> {
    admin(node)
        .await
        .list_status_messages(pb::ListStatusMessagesRequest {
            site: site.into(),
            id: catalog::STATUS_LOAD_TEST.id,
            limit: 10_000,
            after_uid: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_middle_tier_killed_mid_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, mut p01, s01) = three_tiers(dir.path());
    let s01_addr = s01.addr.clone();
    let loading = tokio::spawn(async move {
        let mut a = Admin::new(
            tonic::transport::Endpoint::from_shared(format!("http://{s01_addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
        a.generate_status_load(pb::StatusLoadRequest {
            count: 3_000,
            per_second: 1_000,
            tag: "crash".into(),
        })
        .await
        .unwrap()
        .into_inner()
    });
    // P01 dies with batches in its inbox and in its outbox to PRI.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    p01.kill9();
    p01.restart();
    let r = loading.await.unwrap();
    assert_eq!(r.emitted, 3_000);
    let mut idx = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while idx.len() < 3_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 3000 messages reached PRI",
            idx.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let listed = a_list(&pri, "S01").await;
        let tagged: Vec<u32> = listed
            .iter()
            .filter(|m| m.insertion_strings[0] == "crash")
            .map(|m| m.insertion_strings[1].parse().unwrap())
            .collect();
        idx = tagged.iter().copied().collect();
        // Stored once each, whatever was sent twice.
        assert_eq!(tagged.len(), idx.len(), "a message is stored twice at PRI");
    }
    assert_eq!(idx, (1..=3_000).collect::<BTreeSet<u32>>());
}
