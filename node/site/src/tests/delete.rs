//! `delete-site` of any direct child: an installed primary is detached with
//! its subtree (told over the deinstall job, and it carries on as a central
//! site); non-children are refused with the mistake and the fix.

use crate::site_component::DESPOOLER;
use sms_store::Inbox;
use sms_types::link::{LinkHello, Refusal};
use sms_types::*;

use super::support::*;
use crate::hierarchy::{delete_site, finish_delete};

/// PRI with a child primary P01 (which has S11 and P02 below it, and S21
/// below P02) and a child secondary S01.
fn tree() -> Node {
    let node = central("PRI");
    put_site(&node.ctx, "PRI", None, SiteKind::Primary);
    put_site(&node.ctx, "P01", Some("PRI"), SiteKind::Primary);
    put_site(&node.ctx, "S11", Some("P01"), SiteKind::Secondary);
    put_site(&node.ctx, "P02", Some("P01"), SiteKind::Primary);
    put_site(&node.ctx, "S21", Some("P02"), SiteKind::Secondary);
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    node
}

fn codes(node: &Node) -> Vec<String> {
    let mut v: Vec<String> = node
        .ctx
        .store
        .sites()
        .unwrap()
        .into_iter()
        .map(|r| r.site_code.to_string())
        .collect();
    v.sort();
    v
}

/// An Active child primary is marked Deleting and a deinstall job is queued
/// for it; it is neither probed nor asked to freeze its ID counter (it goes
/// on handing out IDs as a central site).
#[tokio::test]
async fn deleting_an_installed_child_primary_marks_it_deleting_and_tells_it() {
    let node = tree();
    let rec = delete_site(&node.ctx, "P01").await.unwrap();
    assert_eq!(
        (rec.status, rec.kind),
        (SiteStatus::Deleting, SiteKind::Primary)
    );
    let stored = node.ctx.store.site(&code("P01")).unwrap().unwrap();
    assert_eq!(stored.status, SiteStatus::Deleting);
    assert!(node
        .ctx
        .store
        .deinstall_queued(&code("P01"), false)
        .unwrap());
    assert_eq!(
        node.peers.calls(),
        Vec::<String>::new(),
        "no probe, no prepare_delete"
    );
    node.ctx
        .tasks
        .shutdown(std::time::Duration::from_secs(2))
        .await;
}

/// Once the child has the deinstall job, it leaves the list with everything
/// below it; the queued jobs follow the leftover rule and its link secret
/// is gone, so its link is refused as not a neighbour.
#[tokio::test]
async fn an_acknowledged_detach_removes_the_subtree_and_refuses_the_link() {
    let node = tree();
    let (p01, s11) = (code("P01"), code("S11"));
    let to_s11 = probe("PRI", "S11", Priority::Medium);
    node.ctx.store.enqueue(&p01, &to_s11).unwrap();
    delete_site(&node.ctx, "P01").await.unwrap();
    // What the sender does when the deinstall job is acknowledged.
    finish_delete(&node.ctx, &p01, false).await.unwrap();

    assert_eq!(codes(&node), ["PRI", "S01"]);
    for gone in ["P01", "S11", "P02", "S21"] {
        let d = node.ctx.store.deleted_site(&code(gone)).unwrap();
        assert!(d.is_some_and(|d| !d.orphaned), "{gone} kept as deleted");
    }
    assert_eq!(node.ctx.store.outbox_len(&p01), 0, "the deinstall job went");
    let failed = node.ctx.store.failed_jobs(&p01).unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].job.id, to_s11.id);
    assert_eq!(failed[0].reason, format!("site {s11} was deleted"));

    node.ctx.components.set(DESPOOLER, "running");
    let hello = LinkHello {
        source_site: p01.clone(),
        dest_site: code("PRI"),
        source_address: "127.0.0.1:7101".into(),
        link_secret: "P01-secret".into(),
        sent_unix_ms: 0,
    };
    match crate::despooler::accept_link(&node.ctx, &hello).await {
        Err(Refusal::NotNeighbour(m)) => assert!(m.contains("not a neighbour"), "{m}"),
        other => panic!("the detached child's link was not refused: {other:?}"),
    }
    let msgs = node.ctx.store.status_messages(None, None, 100).unwrap();
    let detached = msgs
        .iter()
        .find(|m| m.id == catalog::HM_PRIMARY_DETACHED.id)
        .expect("a detached report");
    assert_eq!(detached.insertion_strings[0], "P01");
    assert_eq!(detached.insertion_strings[3], "3", "three sites below it");
    node.ctx
        .tasks
        .shutdown(std::time::Duration::from_secs(2))
        .await;
}

/// An ancestor hears of the detach (3109 from the child primary that did
/// it) and forgets the site and its subtree too.
#[tokio::test]
async fn an_ancestor_forgets_a_detached_primary_with_its_subtree() {
    let node = tree();
    let report = StatusMessage {
        uid: uuid::Uuid::now_v7(),
        id: catalog::HM_PRIMARY_DETACHED.id,
        severity: Severity::Informational,
        site_code: code("P01"),
        component: "SMS_HIERARCHY_MANAGER".into(),
        machine: "p01".into(),
        time_unix_ms: now_ms(),
        insertion_strings: vec![
            "P02".into(),
            "127.0.0.1:7102".into(),
            "7".into(),
            "1".into(),
        ],
        text: String::new(),
    };
    crate::hierarchy::on_status(&node.ctx, &[report])
        .await
        .unwrap();
    assert_eq!(codes(&node), ["P01", "PRI", "S01", "S11"]);
    node.ctx
        .tasks
        .shutdown(std::time::Duration::from_secs(2))
        .await;
}

#[tokio::test]
async fn sites_that_are_not_direct_children_are_refused_with_the_fix() {
    let node = tree();
    let e = delete_site(&node.ctx, "S11").await.unwrap_err().to_string();
    assert!(
        e.contains("not directly below PRI (its parent is P01); run delete-site at P01"),
        "{e}"
    );
    let e = delete_site(&node.ctx, "S99").await.unwrap_err().to_string();
    assert!(e.contains("not in the site list of PRI"), "{e}");
    let e = delete_site(&node.ctx, "PRI").await.unwrap_err().to_string();
    assert!(
        e.contains("is this site; run delete-site at its parent"),
        "{e}"
    );
    assert_eq!(codes(&node).len(), 6, "nothing changed");
    let e = crate::hierarchy::upgrade_site(&node.ctx, "P01")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a primary site; upgrade-site re-runs"), "{e}");
}

/// The child primary's side: the deinstall job from its parent detaches it.
/// It forgets its parent, its control moves on one serial without one,
/// reports queued for the parent are dropped and other jobs set aside; its
/// own sites stay.
#[tokio::test]
async fn a_primary_told_by_its_parent_detaches_and_keeps_its_sites() {
    let node = primary_below("P01", "PRI");
    put_site(&node.ctx, "P01", Some("PRI"), SiteKind::Primary);
    put_site(&node.ctx, "S11", Some("P01"), SiteKind::Secondary);
    let pri = code("PRI");
    let report = job("P01", "PRI", Priority::High, Payload::Status(vec![]));
    let to_pri = probe("P01", "PRI", Priority::Low);
    node.ctx.store.enqueue(&pri, &report).unwrap();
    node.ctx.store.enqueue(&pri, &to_pri).unwrap();
    let deinstall = job(
        "PRI",
        "P01",
        Priority::High,
        Payload::Deinstall(code("P01")),
    );
    node.ctx
        .store
        .put_inbox(Inbox::SiteControl, &deinstall)
        .unwrap();

    crate::site_config::stage1_site_control(&node.ctx)
        .await
        .unwrap();

    assert!(!node.ctx.restart_pending(), "a primary is not deinstalled");
    let id = node.ctx.identity().unwrap();
    assert_eq!((id.parent, id.ancestors), (None, vec![]));
    assert_eq!(node.ctx.store.identity().unwrap().unwrap().parent, None);
    let ct0 = node.ctx.store.ct0().unwrap().unwrap();
    assert_eq!((ct0.serial, ct0.parent_site_code), (2, None));
    assert_eq!(node.ctx.config().unwrap().serial, 2);
    assert_eq!(node.ctx.store.inbox_len(Inbox::SiteControl), 0);
    assert_eq!(node.ctx.store.outbox_len(&pri), 0);
    let failed = node.ctx.store.failed_jobs(&pri).unwrap();
    assert_eq!(failed.len(), 1, "the report was dropped, the probe kept");
    assert_eq!(failed[0].job.id, to_pri.id);
    assert!(failed[0].reason.contains("left the hierarchy of site PRI"));
    let own = node.ctx.store.site(&code("P01")).unwrap().unwrap();
    assert_eq!(own.parent_site_code, None);
    assert!(node.ctx.store.site(&code("S11")).unwrap().is_some());
    assert_eq!(
        crate::witness::read(&node.ctx.data_dir)
            .unwrap()
            .unwrap()
            .ct0_serial,
        2
    );
    node.ctx
        .tasks
        .shutdown(std::time::Duration::from_secs(2))
        .await;
}

/// A detach cut short after the parent was forgotten (the site control
/// still names it, the job is still in the inbox) completes on the next
/// cycle, instead of the job being ignored as not from the parent.
#[tokio::test]
async fn a_detach_cut_short_completes_on_the_next_cycle() {
    let node = primary_below("P01", "PRI");
    let mut id = node.ctx.identity().unwrap();
    id.parent = None;
    id.ancestors.clear();
    node.ctx.set_identity(id).unwrap();
    let deinstall = job(
        "PRI",
        "P01",
        Priority::High,
        Payload::Deinstall(code("P01")),
    );
    node.ctx
        .store
        .put_inbox(Inbox::SiteControl, &deinstall)
        .unwrap();
    crate::site_config::stage1_site_control(&node.ctx)
        .await
        .unwrap();
    let ct0 = node.ctx.store.ct0().unwrap().unwrap();
    assert_eq!((ct0.serial, ct0.parent_site_code), (2, None));
    assert_eq!(node.ctx.store.inbox_len(Inbox::SiteControl), 0);
    // A second copy of the job (a resend) changes nothing more.
    node.ctx
        .store
        .put_inbox(Inbox::SiteControl, &deinstall)
        .unwrap();
    crate::site_config::stage1_site_control(&node.ctx)
        .await
        .unwrap();
    assert_eq!(node.ctx.store.ct0().unwrap().unwrap().serial, 2);
    assert_eq!(node.ctx.store.inbox_len(Inbox::SiteControl), 0);
    node.ctx
        .tasks
        .shutdown(std::time::Duration::from_secs(2))
        .await;
}

/// A secondary told the same thing still removes its install.
#[tokio::test]
async fn a_secondary_told_by_its_parent_still_deinstalls() {
    let node = secondary("S01", "PRI");
    let deinstall = job(
        "PRI",
        "S01",
        Priority::High,
        Payload::Deinstall(code("S01")),
    );
    node.ctx
        .store
        .put_inbox(Inbox::SiteControl, &deinstall)
        .unwrap();
    crate::site_config::stage1_site_control(&node.ctx)
        .await
        .unwrap();
    assert!(node.ctx.restart_pending());
    assert!(node.ctx.identity().unwrap().parent.is_some());
}
