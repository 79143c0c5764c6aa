//! The keepalive of an address: set, reset and refused at the change, and
//! what the sender hands the `Peers` port when it opens that link.

use std::time::Duration;

use sms_types::*;

use super::support::*;
use crate::hierarchy::{AddressChange, ControlChange};

fn keepalive_change(to: &str, k: Option<Option<u32>>) -> ControlChange {
    ControlChange {
        address: Some(AddressChange {
            to: to.into(),
            keepalive_secs: k,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_change_sets_keeps_and_resets_the_keepalive() {
    let mut c = ct0("PRI", None);
    keepalive_change("S01", Some(Some(45)))
        .apply(&mut c)
        .unwrap();
    assert_eq!(c.addresses[0].keepalive_secs, Some(45));
    // Another setting changed: the keepalive stays.
    ControlChange {
        address: Some(AddressChange {
            to: "S01".into(),
            retry_count: Some(7),
            ..Default::default()
        }),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(
        (c.addresses[0].retry_count, c.addresses[0].keepalive_secs),
        (7, Some(45))
    );
    keepalive_change("S01", Some(None)).apply(&mut c).unwrap();
    assert_eq!(c.addresses[0].keepalive_secs, None, "back to the node's");
}

#[test]
fn a_keepalive_out_of_bounds_is_refused_naming_it_and_changes_nothing() {
    for bad in [0, 3_601, u32::MAX] {
        let mut c = ct0("PRI", None);
        let before = c.clone();
        let e = keepalive_change("S01", Some(Some(bad)))
            .apply(&mut c)
            .unwrap_err();
        assert_eq!(
            e,
            format!(
                "the address of site S01: keepalive {bad} s is outside 1..=3600 s; give a \
                 value in that range, or `default` for the node's --keepalive-secs"
            )
        );
        assert_eq!(c, before, "{bad}: nothing changed");
    }
}

/// A change through the Hierarchy Manager is refused at the call, before
/// any CT1 is made.
#[tokio::test]
async fn a_site_control_change_with_a_bad_keepalive_is_refused_at_the_call() {
    let node = central("PRI");
    let e = crate::hierarchy::change_site_control(
        &node.ctx,
        None,
        &keepalive_change("S01", Some(Some(0))),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("keepalive 0 s is outside"), "{e}");
    assert!(node.ctx.store.pending_ct1(&code("PRI")).unwrap().is_none());
}

/// Starts the sender of PRI's link to its child S01 with one job queued,
/// and returns the first `open_link` call it made.
async fn first_open_link(address: Option<Address>) -> String {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    let mut c = ct0("PRI", None);
    c.addresses.extend(address);
    node.ctx.publish_config(c);
    node.ctx
        .store
        .enqueue(&code("S01"), &probe("PRI", "S01", Priority::Medium))
        .unwrap();
    crate::scheduler::ensure_link(&node.ctx, &code("S01"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let call = loop {
        let opened = node
            .peers
            .calls()
            .into_iter()
            .find(|c| c.starts_with("open_link"));
        if let Some(c) = opened {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sender never opened the link: {:?}",
            node.peers.calls()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    node.ctx.tasks.shutdown(Duration::from_secs(2)).await;
    call
}

#[tokio::test]
async fn the_sender_opens_a_link_with_its_address_keepalive() {
    let mut a = Address::new(code("S01"), String::new());
    a.keepalive_secs = Some(45);
    let call = first_open_link(Some(a)).await;
    assert!(call.ends_with("keepalive=45s"), "{call}");
}

#[tokio::test]
async fn without_one_the_sender_leaves_the_keepalive_to_the_node() {
    let call = first_open_link(None).await;
    assert!(call.ends_with("keepalive=default"), "{call}");
    let call = first_open_link(Some(Address::new(code("S01"), String::new()))).await;
    assert!(call.ends_with("keepalive=default"), "{call}");
}

/// A secondary created below an address with a keepalive gets the same one
/// on its own address up: both ends of a link probe alike.
#[tokio::test]
async fn a_new_secondary_inherits_the_keepalive_of_the_address_to_it() {
    let node = central("PRI");
    let mut c = ct0("PRI", None);
    let mut a = Address::new(code("S01"), String::new());
    a.keepalive_secs = Some(120);
    c.addresses.push(a);
    node.ctx.publish_config(c);
    *node.peers.probe_answer.lock().unwrap() = Some(Ok(link::NodeProbe {
        role: link::NodeRole::Bare,
        site_code: String::new(),
        bootstrap_state: "none".into(),
        bootstrap_detail: String::new(),
        node_id: String::new(),
        domain: String::new(),
    }));
    crate::hierarchy::create_secondary(
        &node.ctx,
        crate::hierarchy::CreateSecondary {
            site_code: "S01".into(),
            server: "127.0.0.1:7101".into(),
            site_name: None,
            sever_link_mid_bootstrap: false,
        },
    )
    .await
    .unwrap();
    let queued = node
        .ctx
        .store
        .outbox_scan(&code("S01"), Priority::High, None, 8)
        .unwrap();
    let Payload::Bootstrap(pkg) = &queued[0].1.payload else {
        panic!("not a bootstrap: {:?}", queued[0].1.payload.kind());
    };
    let up = &pkg.init_control.addresses[0];
    assert_eq!(
        (&up.site_code, up.keepalive_secs),
        (&code("PRI"), Some(120))
    );
    node.ctx.tasks.shutdown(Duration::from_secs(2)).await;
}
