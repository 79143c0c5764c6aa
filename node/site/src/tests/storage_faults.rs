//! Storage faults that must leave no damage: a package is freed at a hop
//! exactly when the next hop has all of it, packages kept here go by the
//! retention policy, and a receiver that cannot store is waited out without
//! charging any job.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use sms_types::link::*;
use sms_types::*;

use super::support::*;
use crate::links::Link;
use crate::ports::{LinkStream, Peers};
use crate::retention::{to_expire, PackageRetention};
use crate::sender::Session;

fn address(retry_count: u32) -> Address {
    let mut a = Address::new(code("S01"), "127.0.0.1:7101".into());
    a.retry_count = retry_count;
    a.retry_delay_ms = 100;
    a
}

/// PRI with child S01 reached by `addr`, its remote calls going to `peers`.
fn central_with(peers: Arc<dyn Peers>, addr: Address) -> (Arc<crate::Ctx>, tempfile::TempDir) {
    let (ctx, dir) = central_with_peers("PRI", peers);
    let mut control = ctx.config().expect("PRI's site control");
    control.addresses = vec![addr];
    ctx.publish_config(control);
    put_site(&ctx, "S01", Some("PRI"), SiteKind::Secondary);
    (ctx, dir)
}

#[tokio::test]
async fn a_sent_package_is_freed_only_once_the_next_hop_has_its_last_chunk() {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    let link = Arc::new(Link::new(code("S01")));
    let pkg = job("PRI", "S01", Priority::Low, file_payload(3));
    let content = [[1u8; 4], [2u8; 4], [3u8; 4]].concat();
    node.ctx
        .store
        .enqueue_file(&code("S01"), &pkg, &content)
        .unwrap();
    node.ctx.store.durable().await.unwrap();
    assert_eq!(node.ctx.store.package_bytes(&pkg.id), 12);

    let mut s = Session::new(&address(5));
    let mut stream = FakeStream::default();
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    assert_eq!(stream.sent_ids().len(), 3, "all three chunks out");
    // Two acknowledged, then the stream breaks: nothing is freed, and the
    // next session resumes at the third chunk.
    s.acked(
        &node.ctx,
        &link,
        vec![(pkg.id, 0, false), (pkg.id, 1, false)],
    )
    .unwrap();
    assert_eq!(
        node.ctx.store.package_bytes(&pkg.id),
        12,
        "kept until all of it is there"
    );
    assert_eq!(node.ctx.store.outbox_len(&code("S01")), 1);

    let mut s = Session::new(&address(5));
    let mut stream = FakeStream::default();
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    let sent: Vec<u32> = stream
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(_, c)| c.as_ref().unwrap().0)
        .collect();
    assert_eq!(sent, vec![2], "resumes after the acknowledged chunks");
    s.acked(&node.ctx, &link, vec![(pkg.id, 2, false)]).unwrap();
    assert_eq!(node.ctx.store.outbox_len(&code("S01")), 0);
    // Not before the job's removal is durable: a crash in between would keep
    // a job whose chunks are gone, which could never be sent.
    assert_eq!(node.ctx.store.package_bytes(&pkg.id), 12);
    let flushes = node.ctx.store.flush_count();
    s.free_acked(&node.ctx).await.unwrap();
    assert!(node.ctx.store.flush_count() > flushes, "committed first");
    assert_eq!(
        node.ctx.store.package_bytes(&pkg.id),
        0,
        "freed at the last ack"
    );
    let Payload::File(described) = &pkg.payload else {
        unreachable!()
    };
    assert_eq!(node.ctx.store.chunk(&pkg.id, described, 0).unwrap(), None);
}

#[test]
fn retention_removes_old_packages_and_the_oldest_over_the_cap_but_never_a_fresh_one() {
    let day = 24 * 3600 * 1000;
    let now = 100 * day;
    let policy = PackageRetention {
        keep: Duration::from_secs(30 * 24 * 3600),
        max_bytes: 100,
        min_keep: Duration::from_secs(600),
    };
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    // Oldest first: 40 days old, 2 days, 1 day, one minute.
    let kept = vec![
        (ids[0], now - 40 * day, 10),
        (ids[1], now - 2 * day, 50),
        (ids[2], now - day, 40),
        (ids[3], now - 60_000, 60),
    ];
    // ids[0] is too old; then 150 bytes remain over the cap of 100, so the
    // oldest (ids[1]) goes; ids[3] is over the cap too but too fresh.
    assert_eq!(to_expire(&policy, &kept, now), vec![ids[0], ids[1]]);
    let roomy = PackageRetention {
        max_bytes: 1 << 40,
        ..policy
    };
    assert_eq!(to_expire(&roomy, &kept, now), vec![ids[0]]);
    assert!(
        to_expire(&roomy, &kept[1..], now).is_empty(),
        "kept until retention says otherwise"
    );
}

#[tokio::test]
async fn a_package_received_here_stays_until_the_retention_policy_removes_it() {
    let node = central("PRI");
    let pkg = job("S01", "PRI", Priority::Low, file_payload(1));
    let chunk = sms_store::Delivery::Chunk {
        index: 0,
        data: vec![7u8; 4],
        forward: None,
    };
    node.ctx.store.despool(&[(pkg.clone(), chunk)]).unwrap();
    node.ctx.store.durable().await.unwrap();
    assert!(crate::retention::apply(&node.ctx).unwrap().is_empty());
    assert_eq!(node.ctx.store.package_bytes(&pkg.id), 4);
    *node.ctx.package_retention.lock().unwrap() = PackageRetention {
        keep: Duration::ZERO,
        max_bytes: 0,
        min_keep: Duration::ZERO,
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(crate::retention::apply(&node.ctx).unwrap(), vec![pkg.id]);
    assert_eq!(node.ctx.store.package_bytes(&pkg.id), 0);
    assert_eq!(node.ctx.store.package(&pkg.id).unwrap(), None);
}

/// Opens links whose receiver takes the frames and then ends the stream
/// with `error`, acknowledging nothing.
struct Ending(LinkError);

#[async_trait]
impl LinkStream for Ending {
    async fn send(&self, _: &Job, _: Option<Chunk>) -> Result<(), LinkError> {
        Ok(())
    }
    async fn next(&mut self) -> Result<LinkEvent, LinkError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err(self.0.clone())
    }
}

/// Runs the sender of PRI's link to S01 (retry count 1: a single charge
/// fails a job) against a receiver answering `error`, until it has opened
/// the link three times (or has nothing left to send); returns (jobs still queued, jobs failed).
async fn run_against(error: LinkError) -> (usize, usize) {
    let peers = Arc::new(LinkPeers::new(move || Box::new(Ending(error.clone()))));
    let (ctx, _dir) = central_with(peers.clone(), address(1));
    for _ in 0..4 {
        ctx.store
            .enqueue(&code("S01"), &probe("PRI", "S01", Priority::Medium))
            .unwrap();
    }
    let link = Arc::new(Link::new(code("S01")));
    let run = crate::sender::run(ctx.clone(), link);
    let watch = async {
        // Three sessions, or nothing left to send (every job failed).
        while peers.opened.load(Ordering::SeqCst) < 3 && ctx.store.outbox_len(&code("S01")) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        r = run => panic!("the sender ended: {r:?}"),
        _ = tokio::time::timeout(Duration::from_secs(20), watch) => {}
    }
    (
        ctx.store.outbox_len(&code("S01")),
        ctx.store.failed_len(&code("S01")),
    )
}

#[tokio::test]
async fn a_receiver_that_cannot_store_is_waited_out_and_no_job_is_charged() {
    let (queued, failed) = run_against(LinkError::ReceiverFull(
        "site S01 cannot store jobs now (No space left on device)".into(),
    ))
    .await;
    assert_eq!((queued, failed), (4, 0), "all still queued, none failed");
}

/// The same receiver answering a plain failure (as a full receiver did
/// before it said so): the jobs out are charged, and with a retry count of
/// one they fail. This is what the test above guards against.
#[tokio::test]
async fn a_receiver_failing_otherwise_still_charges_the_jobs_it_killed() {
    let (queued, failed) = run_against(LinkError::Failed("Internal: despool failed".into())).await;
    assert_eq!(queued + failed, 4);
    assert!(failed > 0, "charged and failed: {failed}");
}

/// A package whose chunks are gone (a data dir damaged by hand, say) fails
/// alone and visibly; the link goes on with the jobs behind it.
#[tokio::test]
async fn a_package_missing_its_chunks_fails_alone_and_the_link_goes_on() {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    let link = Arc::new(Link::new(code("S01")));
    let pkg = job("PRI", "S01", Priority::Low, file_payload(2));
    node.ctx
        .store
        .enqueue_file(&code("S01"), &pkg, &[1u8; 8])
        .unwrap();
    let after = probe("PRI", "S01", Priority::Low);
    node.ctx.store.enqueue(&code("S01"), &after).unwrap();
    node.ctx.store.drop_chunks(&pkg.id).unwrap();
    let mut s = Session::new(&address(5));
    let mut stream = FakeStream::default();
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    assert_eq!(stream.sent_ids(), vec![after.id], "the rest still goes");
    let failed = node.ctx.store.failed_jobs(&code("S01")).unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].job.id, pkg.id);
    assert!(failed[0].reason.contains("missing"), "{}", failed[0].reason);
}

/// A package completed here is checked against its sender's SHA-256: a
/// good one is reported received, a damaged one reported and removed (not
/// kept as if it were the package).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_package_is_verified_and_a_damaged_one_removed() {
    use sha2::{Digest, Sha256};
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    let content = [[1u8; 4], [2u8; 4]].concat();
    let package = |sha256: Vec<u8>| {
        let Payload::File(mut p) = file_payload(2) else {
            unreachable!()
        };
        p.sha256 = sha256;
        job("S01", "PRI", Priority::Low, Payload::File(p))
    };
    let good = package(Sha256::digest(&content).to_vec());
    let damaged = package(vec![7; 32]);
    for j in [&good, &damaged] {
        let frames = vec![
            (j.clone(), Some((0, content[..4].to_vec()))),
            (j.clone(), Some((1, content[4..].to_vec()))),
        ];
        let out = crate::despooler::despool(&node.ctx, &code("S01"), frames)
            .await
            .unwrap();
        assert!(out
            .iter()
            .all(|(_, _, o)| *o == sms_store::Despooled::Stored));
    }
    let of = |id: u32| node.ctx.store.status_messages(None, Some(id), 10).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while of(catalog::PACKAGE_RECEIVED.id).is_empty() || of(catalog::PACKAGE_DAMAGED.id).is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "no verdict");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = of(catalog::PACKAGE_RECEIVED.id);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].insertion_strings[0], good.id.to_string());
    let damaged_msg = of(catalog::PACKAGE_DAMAGED.id);
    assert_eq!(damaged_msg.len(), 1);
    assert_eq!(damaged_msg[0].insertion_strings[0], damaged.id.to_string());
    assert_eq!(damaged_msg[0].insertion_strings[4], hex::encode([7u8; 32]));
    assert_eq!(node.ctx.store.package_bytes(&good.id), 8, "kept");
    assert_eq!(node.ctx.store.package_bytes(&damaged.id), 0, "removed");
    assert!(node.ctx.store.package(&damaged.id).unwrap().is_none());
}
