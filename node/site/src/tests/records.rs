//! The Hierarchy Manager's site records under concurrent writers.

use std::time::Duration;

use sms_types::*;

use super::support::*;

/// Phase reports (forward only, as `advance` does) and server moves of one
/// child, from many tasks at once. Every writer also counts itself in the
/// record (a read-modify-write): a lost update shows as a short count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn phase_reports_and_moves_on_one_record_lose_nothing() {
    let node = central("PRI");
    let mut rec = record("S01", Some("PRI"), SiteKind::Secondary);
    rec.status = SiteStatus::Pending;
    rec.serial = 0;
    node.ctx.store.put_site(&rec).unwrap();
    let s01 = code("S01");
    const ROUNDS: u64 = 100;
    let mut tasks = vec![];
    for t in 0..4u64 {
        let (ctx, s01) = (node.ctx.clone(), s01.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..ROUNDS {
                ctx.sites
                    .update(&ctx.store, &s01, |r| {
                        if t < 2 {
                            // A phase report: phases arrive out of order.
                            let phase = ((n + t) % 4 + 1) as u8;
                            if r.status.progress() < Some(phase) {
                                r.status = SiteStatus::Phase(phase);
                            }
                        } else {
                            r.server = format!("127.0.0.{t}:{n}");
                        }
                        r.serial += 1;
                        true
                    })
                    .await
                    .unwrap()
                    .unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = node.ctx.store.site(&s01).unwrap().unwrap();
    assert_eq!(r.serial, 4 * ROUNDS, "every write counted");
    assert_eq!(r.status, SiteStatus::Phase(4), "never moved backwards");
    assert!(
        r.server == format!("127.0.0.2:{}", ROUNDS - 1)
            || r.server == format!("127.0.0.3:{}", ROUNDS - 1),
        "the last move wins: {}",
        r.server
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holding_the_records_lock_holds_back_an_update() {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    let guard = node.ctx.sites.lock().await;
    let ctx = node.ctx.clone();
    let update = tokio::spawn(async move {
        ctx.sites
            .update(&ctx.store, &code("S01"), |r| {
                r.server = "10.9.9.9:1".into();
                true
            })
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!update.is_finished(), "the update waits for the lock");
    let now = node.ctx.store.site(&code("S01")).unwrap().unwrap();
    assert_ne!(now.server, "10.9.9.9:1", "nothing written while held");
    drop(guard);
    let after = tokio::time::timeout(Duration::from_secs(5), update)
        .await
        .expect("the update runs once the lock is released")
        .unwrap()
        .unwrap();
    assert_eq!(after.server, "10.9.9.9:1");
    assert_eq!(
        node.ctx.store.site(&code("S01")).unwrap().unwrap().server,
        "10.9.9.9:1"
    );
}

fn bare_probe() -> sms_types::link::NodeProbe {
    sms_types::link::NodeProbe {
        role: sms_types::link::NodeRole::Bare,
        site_code: String::new(),
        bootstrap_state: "none".into(),
        bootstrap_detail: String::new(),
        node_id: "n".into(),
        domain: String::new(),
    }
}

/// A child whose server answers bare never got going: it leaves the list
/// at once, and the server is asked nothing more.
#[tokio::test]
async fn deleting_a_child_on_a_bare_server_removes_it_at_once() {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    *node.peers.probe_answer.lock().unwrap() = Some(Ok(bare_probe()));
    let rec = crate::hierarchy::delete_site(&node.ctx, "S01")
        .await
        .unwrap();
    assert_eq!(rec.status, SiteStatus::Deleting);
    assert!(node.ctx.store.site(&code("S01")).unwrap().is_none());
    let gone = node.ctx.store.deleted_site(&code("S01")).unwrap().unwrap();
    assert!(!gone.orphaned);
    assert_eq!(node.peers.calls(), vec!["probe 127.0.0.1:7101".to_string()]);
    assert_eq!(
        node.ctx.store.outbox_len(&code("S01")),
        0,
        "no deinstall job"
    );
}

/// An installed child is marked Deleting under the records lock, its
/// final ID counter is kept and a deinstall job is queued for it.
#[tokio::test]
async fn deleting_an_installed_child_keeps_its_counter_and_queues_a_deinstall() {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    *node.peers.prepare_delete_answer.lock().unwrap() = Some(Ok(42));
    let rec = crate::hierarchy::delete_site(&node.ctx, "S01")
        .await
        .unwrap();
    assert_eq!(rec.status, SiteStatus::Deleting);
    let stored = node.ctx.store.site(&code("S01")).unwrap().unwrap();
    assert_eq!(stored.status, SiteStatus::Deleting);
    assert_eq!(
        node.ctx
            .store
            .deleted_site(&code("S01"))
            .unwrap()
            .unwrap()
            .next_unique_id,
        42
    );
    assert!(node
        .ctx
        .store
        .deinstall_queued(&code("S01"), false)
        .unwrap());
    let calls = node.peers.calls();
    assert_eq!(
        calls[..2],
        [
            "probe 127.0.0.1:7101".to_string(),
            "prepare_delete 127.0.0.1:7101 S01".to_string()
        ]
    );
}
