//! create-secondary end to end across real processes.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;
use serde_json::Value;

#[test]
fn secondary_goes_active_and_reports_every_phase() {
    let p = Pair::start();
    assert_eq!(p.child.json(&["status"])["role"], "bare");
    p.create_s01();

    let st = p.child.json(&["status"]);
    assert_eq!(st["role"], "site-server");
    assert_eq!(st["site_code"], "S01");
    assert_eq!(st["parent_site_code"], "PRI");
    let parent_link = st["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["to"] == "PRI")
        .expect("link to PRI");
    assert_eq!(parent_link["failed_jobs"], 0);
    let names: BTreeSet<&str> = st["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for c in [
        "SMS_SCHEDULER",
        "SMS_SENDER",
        "SMS_DESPOOLER",
        "SMS_SITE_CONFIG_MANAGER",
        "SMS_STATUS_MANAGER",
    ] {
        assert!(names.contains(c), "{c} missing from {names:?}");
    }
    assert!(
        !names.contains("SMS_BOOTSTRAP"),
        "the bootstrap should have removed itself"
    );

    let sc = p.child.json(&["site-control"]);
    assert_eq!(sc["site_code"], "S01");
    assert_eq!(sc["parent_site_code"], "PRI");
    assert!(sc["serial"].as_u64().unwrap() >= 1);

    // The parent's copy of S01's control, from S01's CT2.
    let copy = p.parent.json(&["site-control", "--site", "S01"]);
    assert_eq!(copy["site_code"], "S01");
    assert_eq!(copy["serial"], sc["serial"]);

    // All four phase reports reached the parent.
    p.parent.assert_phase_reports("S01");
    // The parent recorded each step of the status, in order.
    let changes = p
        .parent
        .json(&["status-messages", "--id", &id(&catalog::HM_SITE_STATUS)]);
    let seq: Vec<String> = changes["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seq.len(), 5, "{seq:?}");
    assert!(
        seq[0].contains("from Pending to Phase 1 Complete"),
        "{seq:?}"
    );
    assert!(
        seq[4].contains("from Phase 4 Complete to Active"),
        "{seq:?}"
    );

    // The child's bootstrap log tells the story, and the controller reads it over gRPC.
    let lines = p.child.bootstrap_log();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("package integrity verified")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("bootstrap removed itself")),
        "{lines:?}"
    );
    // One log file per component.
    for f in [
        "sitectrl",
        "hman",
        "sched",
        "sender",
        "despool",
        "statmgr",
        "bootstrap",
    ] {
        assert!(
            p.parent.data.join("logs").join(format!("{f}.log")).exists(),
            "{f}.log missing"
        );
    }
    assert!(p.parent.log("sitectrl").contains("stage 4 begins"));
}

#[test]
fn restart_keeps_sites_serials_and_messages() {
    let mut p = Pair::start();
    p.create_s01();
    let sites = p.parent.json(&["sites"]);
    let child_ctl = p.child.json(&["site-control"]);
    let parent_ctl = p.parent.json(&["site-control"]);
    let msgs = p.parent.json(&["status-messages"]);
    let child_msgs = p.child.json(&["status-messages"]);

    p.child.stop();
    p.parent.stop();
    p.parent.restart();
    p.child.restart();

    let strip = |v: &Value| -> Vec<(String, String, String, u64)> {
        v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["site_code"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                    s["server"].as_str().unwrap().to_string(),
                    s["serial"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&p.parent.json(&["sites"])), strip(&sites));
    assert_eq!(p.child.json(&["site-control"]), child_ctl);
    assert_eq!(p.parent.json(&["site-control"]), parent_ctl);
    // Every message from before the restart is still there, unchanged; a
    // restarted site may add new ones (its status summary, id 1003).
    for (node, before) in [(&p.parent, &msgs), (&p.child, &child_msgs)] {
        let after = node.json(&["status-messages"]);
        let a = after["messages"].as_array().unwrap();
        let b = before["messages"].as_array().unwrap();
        for m in b {
            assert!(a.contains(m), "lost or changed across the restart: {m}");
        }
        let extra: Vec<&Value> = a.iter().filter(|m| !b.contains(m)).collect();
        assert!(
            extra.iter().all(|m| m["id"] == 1003),
            "unexpected new messages: {extra:?}"
        );
    }
    assert_eq!(p.child.json(&["status"])["site_code"], "S01");

    // And the restarted pair still works: traffic flows both ways.
    p.child
        .json(&["probe", "send", "--to", "PRI", "--count", "3"]);
    p.parent
        .json(&["probe", "send", "--to", "S01", "--count", "2"]);
    wait_for("probes to arrive", Duration::from_secs(30), || {
        p.parent.json(&["probe", "received", "--summary"])["count"] == 3
            && p.child.json(&["probe", "received", "--summary"])["count"] == 2
    });
}

#[test]
fn bad_create_requests_are_refused_and_change_nothing() {
    let p = Pair::start();
    let before_sites = p.parent.json(&["sites"]);
    // Status messages other than the periodic site status summary (1003).
    let events = |n: &NodeProc| -> Vec<Value> {
        let v = n.json(&["status-messages"]);
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["id"] != 1003)
            .cloned()
            .collect()
    };
    let before_msgs = events(&p.parent);
    let create = |code: &str, server: &str| {
        p.parent
            .fails(&["create-secondary", "--site-code", code, "--server", server])
    };
    assert!(create("s01", &p.child.addr).contains("may only contain A-Z and 0-9"));
    assert!(create("S0", &p.child.addr).contains("exactly 3 characters"));
    assert!(create("S001", &p.child.addr).contains("exactly 3 characters"));
    assert!(create("CON", &p.child.addr).contains("reserved device name"));
    assert!(create("PRI", &p.child.addr).contains("own code"));
    assert!(create("S01", "not-an-address").contains("not a HOST:PORT address"));
    // Nothing listens on port 1.
    assert!(create("S01", "127.0.0.1:1").contains("cannot reach 127.0.0.1:1"));
    // A bare node cannot create sites.
    assert!(p
        .child
        .fails(&[
            "create-secondary",
            "--site-code",
            "S02",
            "--server",
            &p.parent.addr
        ])
        .contains("bare"));
    assert_eq!(settled(p.parent.json(&["sites"])), settled(before_sites));
    assert_eq!(events(&p.parent), before_msgs);
    assert_eq!(p.child.json(&["status"])["role"], "bare");

    p.create_s01();
    let sites = p.parent.json(&["sites"]);
    // Duplicate code, and a server that already is a site.
    assert!(create("S01", "127.0.0.1:1").contains("already exists"));
    let spare = NodeProc::start(&p.dir.path().join("spare"), &[]);
    assert!(create("S01", &spare.addr).contains("site S01 already exists"));
    assert!(create("S02", &p.child.addr).contains("already installed as site S01"));
    assert_eq!(settled(p.parent.json(&["sites"])), settled(sites));
    assert_eq!(spare.json(&["status"])["role"], "bare");
    // Installing the central site over an installed data dir is refused.
    let mut p = p;
    p.child.stop();
    let out = std::process::Command::new(SMS_NODE)
        .env("SMS_INSECURE", "1")
        .args([
            "--data",
            p.child.data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--install-primary",
            "PRX",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds site S01"), "{err}");
}

/// A site list without the fields that move on their own (when each site
/// last reported): what a refused request must leave unchanged.
fn settled(mut v: serde_json::Value) -> serde_json::Value {
    for s in v["sites"].as_array_mut().into_iter().flatten() {
        if let Some(o) = s.as_object_mut() {
            o.remove("last_report_age_ms");
            o.remove("last_report_unix_ms");
        }
    }
    v
}
