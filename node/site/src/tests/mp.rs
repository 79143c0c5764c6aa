//! The Site Component Manager's management point flow against a scripted
//! server: flagged (1013), installing (1014), installed (1015) or refused
//! with the check's own message, retried, verified, removed; and the site
//! database's side (access group, registration, client status).

use sms_types::mp::*;
use sms_types::*;

use super::support::*;
use crate::error::Refused;
use crate::mp_install;

const SERVER: &str = "10.0.0.5:8500";

fn target(volumes: Vec<MpVolume>) -> MpTarget {
    MpTarget {
        node_id: "node-5".into(),
        role: "bare".into(),
        site_code: String::new(),
        mp_site: String::new(),
        mp_port: 0,
        mp_version: String::new(),
        agent_running: false,
        install_dir: String::new(),
        policy_version: 0,
        volumes,
        later_version: None,
        host: "10.0.0.5".into(),
        database: None,
        cert_label: "mp5".into(),
    }
}

fn vol(path: &str, fs: &str, free_mb: u64, supported: bool) -> MpVolume {
    MpVolume {
        path: path.into(),
        fs_type: fs.into(),
        free_bytes: free_mb * 1_000_000,
        supported,
        why: if supported {
            String::new()
        } else {
            format!("{fs} does not honour fsync")
        },
    }
}

/// PRI with a management point assigned to SERVER in its CT0.
fn with_mp() -> Node {
    let node = central("PRI");
    let mut ctl = node.ctx.config().unwrap();
    ctl.management_points = vec![ManagementPoint::new(SERVER.into(), 8080, true)];
    node.ctx.publish_config(ctl);
    node
}

fn ids(node: &Node) -> Vec<u32> {
    let mut v: Vec<u32> = node
        .ctx
        .store
        .status_messages(None, None, 1000)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    v.sort();
    v.dedup();
    v
}

fn record(node: &Node) -> MpRecord {
    node.ctx.store.mp_record(SERVER).unwrap().expect("a record")
}

#[tokio::test]
async fn an_install_goes_to_the_supported_volume_with_most_space_and_reports_1013_1014_1015() {
    let node = with_mp();
    *node.peers.mp_target.lock().unwrap() = Some(Ok(target(vec![
        vol("/small", "ext4", 100, true),
        vol("/ram", "tmpfs", 9_000, false),
        vol("/big", "xfs", 5_000, true),
    ])));
    *node.peers.mp_setup_answer.lock().unwrap() = Some(MpSetupResult {
        lines: vec![],
        outcome: Ok(8080),
    });
    mp_install::reconcile(&node.ctx).await.unwrap();
    let r = record(&node);
    assert_eq!(r.state, MpState::Active, "{r:?}");
    assert_eq!(r.bound_port, 8080);
    assert_eq!(
        node.ctx.store.mp_access_label("node-5").unwrap().as_deref(),
        Some("mp5"),
        "granted access"
    );
    let calls = node.peers.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("mp_prepare 10.0.0.5:8500 /big mp.conf,PRI-MACHINE.")),
        "{calls:?}"
    );
    assert_eq!(ids(&node), [1013, 1014, 1015]);
    // The site control as shown carries the state.
    let shown = mp_install::control_view(&node.ctx, node.ctx.config().unwrap());
    assert_eq!(shown.management_points[0].state, MpState::Active);
    assert_eq!(shown.management_points[0].bound_port, 8080);

    // Verified: 200 with an empty body passes; a 503 raises 5436 once, and
    // the recovery 5437 once.
    *node.peers.mp_http.lock().unwrap() = Some(Ok((200, "OK".into(), vec![])));
    crate::mp_control::verify(&node.ctx).await.unwrap();
    assert!(record(&node)
        .verification
        .contains("succeeded with status code 200"));
    *node.peers.mp_http.lock().unwrap() = Some(Ok((503, "Service Unavailable".into(), vec![])));
    crate::mp_control::verify(&node.ctx).await.unwrap();
    crate::mp_control::verify(&node.ctx).await.unwrap();
    *node.peers.mp_http.lock().unwrap() = Some(Ok((200, "OK".into(), vec![])));
    crate::mp_control::verify(&node.ctx).await.unwrap();
    let all = node.ctx.store.status_messages(None, None, 1000).unwrap();
    assert_eq!(all.iter().filter(|m| m.id == 5436).count(), 1);
    assert_eq!(all.iter().filter(|m| m.id == 5437).count(), 1);

    // Removed from site control: uninstalled, access revoked, 1017.
    let mut ctl = node.ctx.config().unwrap();
    ctl.management_points.clear();
    node.ctx.publish_config(ctl);
    mp_install::reconcile(&node.ctx).await.unwrap();
    assert!(node.ctx.store.mp_record(SERVER).unwrap().is_none());
    assert!(!node.ctx.store.has_mp_access("node-5").unwrap());
    assert!(ids(&node).contains(&1017));
}

#[tokio::test]
async fn each_refused_check_reports_its_own_message_and_the_install_is_retried() {
    for (check, id) in [
        (MpCheck::Filesystem, 4950),
        (MpCheck::Space, 4951),
        (MpCheck::Port, 4952),
        (MpCheck::Version, 4953),
        (MpCheck::Database, 5414),
        (MpCheck::Other, 1016),
    ] {
        let node = with_mp();
        *node.peers.mp_target.lock().unwrap() =
            Some(Ok(target(vec![vol("/v", "ext4", 100, true)])));
        *node.peers.mp_setup_answer.lock().unwrap() = Some(MpSetupResult {
            lines: vec![],
            outcome: Err((check, format!("{} refused", check.as_str()))),
        });
        mp_install::reconcile(&node.ctx).await.unwrap();
        let r = record(&node);
        assert_eq!(r.state, MpState::Failed);
        assert!(
            r.detail.starts_with(&format!("{} check", check.as_str())),
            "{}",
            r.detail
        );
        assert!(ids(&node).contains(&id), "{check:?}: {:?}", ids(&node));
        assert!(!ids(&node).contains(&1015));
        // Fixed on the server: the next pass installs.
        *node.peers.mp_setup_answer.lock().unwrap() = Some(MpSetupResult {
            lines: vec![],
            outcome: Ok(8080),
        });
        mp_install::reconcile(&node.ctx).await.unwrap();
        assert_eq!(record(&node).state, MpState::Active);
        assert_eq!(record(&node).attempts, 2);
        assert!(ids(&node).contains(&1015));
    }
}

#[tokio::test]
async fn no_usable_volume_and_an_unreachable_server_fail_before_any_copy() {
    let node = with_mp();
    *node.peers.mp_target.lock().unwrap() =
        Some(Ok(target(vec![vol("/ram", "tmpfs", 9_000, false)])));
    mp_install::reconcile(&node.ctx).await.unwrap();
    assert_eq!(record(&node).state, MpState::Failed);
    assert!(ids(&node).contains(&4950));
    *node.peers.mp_target.lock().unwrap() = Some(Err("connection refused".into()));
    mp_install::reconcile(&node.ctx).await.unwrap();
    assert!(ids(&node).contains(&4954));
    assert!(
        !node
            .peers
            .calls()
            .iter()
            .any(|c| c.starts_with("mp_prepare")),
        "nothing copied"
    );
}

#[tokio::test]
async fn the_site_database_registers_each_client_once_and_refuses_strangers() {
    let node = central("PRI");
    let ctx = &node.ctx;
    let refused = crate::mp_db::register_client(ctx, "stranger", None, "pc", "hw").await;
    assert!(refused.is_err(), "not in the access group");
    ctx.store.grant_mp_access("mp-1", "mp1").unwrap();
    // Another node of the hierarchy naming mp-1's id is refused.
    let forged = crate::mp_db::register_client(ctx, "mp-1", Some("m9"), "pc", "hw").await;
    assert!(
        matches!(&forged, Err(Refused::Denied(m)) if m.contains("m9")),
        "{forged:?}"
    );
    let mp1 = Some("mp1");
    let (_, a, new_a) = crate::mp_db::register_client(ctx, "mp-1", mp1, "pc1", "hw1")
        .await
        .unwrap();
    let (_, b, _) = crate::mp_db::register_client(ctx, "mp-1", mp1, "pc2", "hw2")
        .await
        .unwrap();
    let (_, again, new_again) = crate::mp_db::register_client(ctx, "mp-1", mp1, "pc1", "hw1")
        .await
        .unwrap();
    assert!(new_a && !new_again);
    assert_eq!(a, again);
    assert_ne!(a, b);
    // A logon server's range comes from the same counter: never the same IDs.
    let range = ctx.store.allocate_range(10, 1).unwrap();
    assert!(range.0 > a.max(b));
    ctx.store.set_fault(&Fault::MpDbAccessRefused).unwrap();
    assert!(crate::mp_db::check_access(ctx, "mp-1", mp1).is_err());
    ctx.store.clear_fault("mp-db-access-refused").unwrap();
    // Client status: stored as this site's, from the client's machine.
    let msg = ClientMessage {
        id: 10002,
        severity: "warning".into(),
        component: "CCMEXEC".into(),
        text: "policy applied late".into(),
    };
    assert_eq!(
        crate::mp_db::client_status(ctx, "mp-1", mp1, "PC1", std::slice::from_ref(&msg))
            .await
            .unwrap(),
        1
    );
    let stored = ctx.store.status_messages(None, Some(10002), 10).unwrap();
    assert_eq!(stored[0].machine, "PC1");
    assert_eq!(stored[0].severity, Severity::Warning);
    let bad = ClientMessage { id: 4, ..msg };
    assert!(
        crate::mp_db::client_status(ctx, "mp-1", mp1, "PC1", &[bad])
            .await
            .is_err(),
        "ids below 10000 are the site's own"
    );
}
