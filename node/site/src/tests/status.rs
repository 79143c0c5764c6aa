//! `status::emit`: stored, queued for the parent, and heard by watchers.

use sms_types::catalog;

use super::support::*;
use crate::status;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn an_installed_site_stores_the_message_and_tells_watchers() {
    let node = central("PRI");
    let ctx = &node.ctx;
    let mut watcher = status::watch(ctx);
    status::emit(ctx, &catalog::LINK_SEVERED, &args(&["S01"])).unwrap();

    let stored = ctx.store.status_messages(None, None, 10).unwrap();
    assert_eq!(stored.len(), 1);
    let m = &stored[0];
    assert_eq!(m.id, catalog::LINK_SEVERED.id);
    assert_eq!(m.severity, catalog::LINK_SEVERED.severity);
    assert_eq!(m.site_code, code("PRI"));
    assert_eq!(m.component, catalog::LINK_SEVERED.component);
    assert_eq!(m.machine, "127.0.0.1:7001");
    assert_eq!(m.insertion_strings, args(&["S01"]));
    assert_eq!(
        m.text,
        catalog::render(&catalog::LINK_SEVERED, &args(&["S01"]))
    );
    assert!(
        !ctx.store.status_queued().unwrap(),
        "a central site has no parent to replicate to"
    );

    let batch = watcher.try_recv().expect("the watcher hears of it");
    assert_eq!(batch.messages.len(), 1);
    assert_eq!(&batch.messages[0], m);
}

#[tokio::test]
async fn a_site_with_a_parent_queues_the_message_for_it() {
    let node = secondary("S01", "PRI");
    status::emit(&node.ctx, &catalog::LINK_RESTORED, &args(&["PRI"])).unwrap();
    let queued = node.ctx.store.status_outq(10).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, catalog::LINK_RESTORED.id);
    assert_eq!(queued[0].site_code, code("S01"));
}

#[tokio::test]
async fn a_bare_node_only_logs() {
    let node = bare();
    let mut watcher = status::watch(&node.ctx);
    status::emit(&node.ctx, &catalog::LINK_SEVERED, &args(&["S01"])).unwrap();
    assert!(node
        .ctx
        .store
        .status_messages(None, None, 10)
        .unwrap()
        .is_empty());
    assert!(!node.ctx.store.status_queued().unwrap());
    assert!(matches!(
        watcher.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));
}
