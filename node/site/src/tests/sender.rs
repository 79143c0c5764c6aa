//! The sender's session: its window, its byte bound, and what `fill` hands
//! to the stream.

use std::sync::Arc;

use uuid::Uuid;

use sms_store::OutboxKey;
use sms_types::*;

use super::support::*;
use crate::links::Link;
use crate::sender::{Session, MAX_INFLIGHT_BYTES};

fn address(concurrent_sendings: u32) -> Address {
    let mut a = Address::new(code("S01"), "127.0.0.1:7101".into());
    a.concurrent_sendings = concurrent_sendings;
    a
}

fn key(seq: u64) -> OutboxKey {
    OutboxKey {
        hop: *b"S01",
        priority: Priority::High as u8,
        seq,
    }
}

/// Tracks `n` distinct frames of no size.
fn track_frames(s: &mut Session, n: usize) {
    for i in 0..n {
        s.track(Uuid::now_v7(), 0, key(i as u64), 0, false);
    }
}

#[test]
fn the_window_is_the_concurrent_sendings_clamped_to_1_and_4096() {
    for (sendings, window) in [
        (0, 1),
        (1, 1),
        (3, 3),
        (4096, 4096),
        (10_000, 4096),
        (u32::MAX, 4096),
    ] {
        let mut s = Session::new(&address(sendings));
        assert!(s.room(), "an empty session has room ({sendings})");
        track_frames(&mut s, window - 1);
        assert!(s.room(), "{sendings}: {} of {window} in flight", window - 1);
        track_frames(&mut s, 1);
        assert!(!s.room(), "{sendings}: the window of {window} is full");
    }
}

#[test]
fn untracking_a_frame_frees_its_place_once() {
    let mut s = Session::new(&address(2));
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    s.track(a, 0, key(1), 0, false);
    s.track(b, 0, key(2), 0, true);
    assert!(!s.room());
    assert!(s.untrack(a, 0).is_some());
    assert!(s.room());
    assert!(s.untrack(a, 0).is_none(), "already untracked");
    assert!(s.untrack(b, 1).is_none(), "no such chunk in flight");
    assert!(s.room());
}

#[test]
fn in_flight_bytes_are_bounded_whatever_the_window() {
    let mut s = Session::new(&address(4096));
    let id = Uuid::now_v7();
    s.track(id, 0, key(1), MAX_INFLIGHT_BYTES - 1, false);
    assert!(s.room(), "one byte below the bound");
    s.track(id, 1, key(1), 1, false);
    assert!(
        !s.room(),
        "the 8 MiB bound is reached with 2 frames of 4096"
    );
    assert!(s.untrack(id, 1).is_some());
    assert!(s.room());
    assert_eq!(MAX_INFLIGHT_BYTES, 8 * 1024 * 1024);
}

/// A central site PRI with child S01, whose address in CT0 is `addr`.
fn sender_node(addr: Address) -> (Node, Arc<Link>) {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    let mut c = node.ctx.config().unwrap();
    c.addresses = vec![addr];
    node.ctx.publish_config(c);
    (node, Arc::new(Link::new(code("S01"))))
}

fn enqueue(node: &Node, job: &Job) {
    node.ctx.store.enqueue(&code("S01"), job).unwrap();
}

fn probes(node: &Node, priorities: &[Priority]) -> Vec<Job> {
    priorities
        .iter()
        .map(|p| {
            let j = probe("PRI", "S01", *p);
            enqueue(node, &j);
            j
        })
        .collect()
}

#[tokio::test]
async fn fill_sends_high_before_medium_before_low_oldest_first() {
    use Priority::*;
    let (node, link) = sender_node(address(256));
    let jobs = probes(&node, &[Low, Medium, High, Low, High, Medium]);
    let mut s = Session::new(&address(256));
    let mut stream = FakeStream::default();
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    let ids = |idx: &[usize]| idx.iter().map(|i| jobs[*i].id).collect::<Vec<_>>();
    assert_eq!(stream.sent_ids(), ids(&[2, 4, 1, 5, 0, 3]));
    assert!(stream.sent.lock().unwrap().iter().all(|(_, c)| c.is_none()));
    assert_eq!(
        node.ctx.store.outbox_len(&code("S01")),
        6,
        "nothing leaves before its ack"
    );
}

#[tokio::test]
async fn fill_keeps_no_more_than_the_window_in_flight() {
    use Priority::*;
    let (node, link) = sender_node(address(3));
    let jobs = probes(&node, &[Low, High, Low, High]);
    // The session follows the working configuration, not what it began with.
    let mut s = Session::new(&address(256));
    let mut stream = FakeStream::default();
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    assert_eq!(stream.sent_ids(), vec![jobs[1].id, jobs[3].id, jobs[0].id]);
    assert!(!s.room());
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    assert_eq!(
        stream.sent_ids().len(),
        3,
        "a full window sends nothing more"
    );
    assert!(s.untrack(jobs[1].id, 0).is_some());
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    assert_eq!(stream.sent_ids().len(), 4);
    assert_eq!(
        stream.sent_ids()[3],
        jobs[2].id,
        "the next one, not a resend"
    );
}

#[tokio::test]
async fn fill_skips_jobs_already_in_flight() {
    let (node, link) = sender_node(address(256));
    let first = probe("PRI", "S01", Priority::High);
    let busy = node.ctx.store.enqueue(&code("S01"), &first).unwrap();
    let jobs = probes(&node, &[Priority::High]);
    let mut s = Session::new(&address(256));
    s.track(first.id, 0, busy, 0, false);
    let mut stream = FakeStream::default();
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    assert_eq!(stream.sent_ids(), vec![jobs[0].id]);
}

#[tokio::test]
async fn bootstrap_jobs_never_go_on_the_stream() {
    let (node, link) = sender_node(address(256));
    let boot = job(
        "PRI",
        "S01",
        Priority::High,
        bootstrap_payload("S01", "PRI"),
    );
    enqueue(&node, &boot);
    let jobs = probes(&node, &[Priority::High, Priority::Low]);
    let mut s = Session::new(&address(256));
    let mut stream = FakeStream::default();
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    assert_eq!(stream.sent_ids(), vec![jobs[0].id, jobs[1].id]);
    assert_eq!(
        node.ctx.store.outbox_len(&code("S01")),
        3,
        "the bootstrap stays queued"
    );
    assert!(s.room(), "a skipped bootstrap takes no place in the window");
}

#[tokio::test]
async fn an_address_schedule_holds_low_priority_back() {
    use Priority::*;
    let mut addr = address(256);
    // Every hour of the day: only medium and high pass.
    addr.schedule = vec![ScheduleRule {
        start_hour: 0,
        end_hour: 24,
        lowest: Medium,
    }];
    let (node, link) = sender_node(addr);
    let jobs = probes(&node, &[Low, Medium, High, Low]);
    let mut s = Session::new(&address(256));
    let mut stream = FakeStream::default();
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    assert_eq!(stream.sent_ids(), vec![jobs[2].id, jobs[1].id]);
    assert_eq!(node.ctx.store.outbox_len(&code("S01")), 4);
    let low = node
        .ctx
        .store
        .outbox_scan(&code("S01"), Low, None, 10)
        .unwrap();
    assert_eq!(
        low.iter().map(|(_, j)| j.id).collect::<Vec<_>>(),
        vec![jobs[0].id, jobs[3].id],
        "held back, still queued"
    );
}
