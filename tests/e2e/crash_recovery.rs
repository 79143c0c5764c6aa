//! `kill -9` at several points of a create: every case converges to Active
//! after a restart, with no manual help and nothing half-written visible.

use std::time::Duration;

use crate::support::*;

fn start_create(p: &Pair) {
    let v = p.parent.json(&[
        "create-secondary",
        "--site-code",
        "S01",
        "--server",
        &p.child.addr,
    ]);
    assert_eq!(v["status"], "Pending");
}

fn assert_converged(p: &Pair) {
    p.wait_active("S01", Duration::from_secs(60));
    let st = p.child.json(&["status"]);
    assert_eq!(st["site_code"], "S01");
    assert_eq!(st["parent_site_code"], "PRI");
    assert_eq!(st["bootstrap"]["state"], "complete");
    let sc = p.child.json(&["site-control"]);
    assert_eq!(sc["serial"], 1, "exactly one CT1 applied: {sc}");
    let sites = p.parent.json(&["sites"]);
    let s01: Vec<_> = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["site_code"] == "S01")
        .collect();
    assert_eq!(s01.len(), 1);
    // Every phase report made it, whatever the crash point.
    p.parent.assert_phase_reports("S01");
}

#[test]
fn child_killed_during_bootstrap_converges_after_restart() {
    for delay_ms in [0u64, 2, 5, 10, 20, 40] {
        let mut p = Pair::start();
        start_create(&p);
        std::thread::sleep(Duration::from_millis(delay_ms));
        p.child.kill9();
        // While the child is down the parent cannot have seen it finish.
        p.child.restart();
        assert_converged(&p);
    }
}

#[test]
fn parent_killed_during_create_converges_after_restart() {
    for delay_ms in [0u64, 2, 5, 10, 20, 40] {
        let mut p = Pair::start();
        start_create(&p);
        std::thread::sleep(Duration::from_millis(delay_ms));
        p.parent.kill9();
        // The create was acknowledged, so the site must survive the crash.
        p.parent.restart();
        assert!(
            p.parent.site_status("S01").is_some(),
            "acknowledged create lost"
        );
        assert_converged(&p);
    }
}

#[test]
fn both_killed_mid_install_converge() {
    let mut p = Pair::start();
    start_create(&p);
    std::thread::sleep(Duration::from_millis(8));
    p.child.kill9();
    p.parent.kill9();
    p.parent.restart();
    p.child.restart();
    assert_converged(&p);
}
