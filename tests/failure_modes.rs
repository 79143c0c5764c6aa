//! The SMS failure modes the controller reproduces on demand (articles 002
//! and 003), and how the product behaves better than SMS once they are lifted.

mod support;

use std::time::Duration;

use support::*;

fn messages_from(n: &NodeProc, site: &str) -> usize {
    n.json(&["status-messages", "--site", site])["messages"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn link_severed_mid_bootstrap_leaves_pending_until_restored_then_active() {
    let p = Pair::start();
    let v = p.parent.json(&[
        "create-secondary",
        "--site-code",
        "S01",
        "--server",
        &p.child.addr,
        "--sever-link-mid-bootstrap",
    ]);
    assert_eq!(v["status"], "Pending");
    // The child installs itself and queues its reports, but none get through.
    wait_for(
        "the child to finish its install",
        Duration::from_secs(30),
        || p.child.json(&["status"])["bootstrap"]["state"] == "complete",
    );
    wait_for(
        "the child's sender to be turned away",
        Duration::from_secs(30),
        || p.child.log("sender").contains("severed"),
    );
    assert_eq!(p.parent.site_status("S01").as_deref(), Some("Pending"));
    assert_eq!(
        messages_from(&p.parent, "S01"),
        0,
        "a status message crossed a severed link"
    );
    let link = p.parent.json(&["status"])["links"][0].clone();
    assert_eq!(link["to"], "S01");
    assert_eq!(link["state"], "severed");
    // Nothing was lost: the child still holds its reports.
    let queued = p.child.json(&["status"])["links"][0]["queued_jobs"]
        .as_u64()
        .unwrap();
    assert!(
        queued >= 4,
        "the child should hold its phase reports and CT2, has {queued}"
    );

    let restored = p.parent.json(&["restore-link", "--to", "S01"]);
    assert_ne!(restored["state"], "severed");
    p.wait_active("S01", Duration::from_secs(30));
    p.parent.assert_phase_reports("S01");
}

#[test]
fn bootstrap_failure_is_logged_on_the_child_and_parent_stays_pending() {
    let p = Pair::start();
    let f = p
        .child
        .json(&["inject-fault", "bootstrap-failure", "--phase", "1"]);
    assert_eq!(f["faults"][0]["name"], "bootstrap-failure");
    p.parent.json(&[
        "create-secondary",
        "--site-code",
        "S01",
        "--server",
        &p.child.addr,
    ]);
    wait_for("the bootstrap to fail", Duration::from_secs(30), || {
        p.child.json(&["status"])["bootstrap"]["state"] == "failed"
    });
    let text = p.child.bootstrap_log();
    assert!(
        text.iter()
            .any(|l| l.contains("bootstrap failed in phase 1") && l.contains("injected fault")),
        "{text:?}"
    );
    assert_eq!(p.parent.site_status("S01").as_deref(), Some("Pending"));
    assert_eq!(messages_from(&p.parent, "S01"), 0);
    assert_eq!(p.child.json(&["status"])["role"], "bare");
    // Bad fault names and phases are refused.
    assert!(p
        .child
        .fails(&["inject-fault", "disk-full"])
        .contains("unknown fault"));
    assert!(p
        .child
        .fails(&["inject-fault", "bootstrap-failure", "--phase", "9"])
        .contains("phase from 1 to 4"));
    let cleared = p.child.json(&["clear-fault", "bootstrap-failure"]);
    assert_eq!(cleared["faults"].as_array().unwrap().len(), 0);
}

#[test]
fn sever_and_restore_refuse_non_neighbours_and_survive_restarts() {
    let mut p = Pair::start();
    p.create_s01();
    assert!(p
        .parent
        .fails(&["sever-link", "--to", "S09"])
        .contains("not a neighbour"));
    assert!(p
        .parent
        .fails(&["sever-link", "--to", "bad"])
        .contains("site code"));
    p.parent.json(&["sever-link", "--to", "S01"]);
    p.parent.stop();
    p.parent.restart();
    // Still severed after the restart: jobs wait at the child.
    p.child
        .json(&["probe", "send", "--to", "PRI", "--count", "5"]);
    let link = p.parent.json(&["status"])["links"][0].clone();
    assert_eq!(link["state"], "severed");
    wait_for(
        "the child to be turned away",
        Duration::from_secs(30),
        || {
            let st = p.child.json(&["status"]);
            st["links"][0]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("severed")
        },
    );
    assert_eq!(
        p.parent.json(&["probe", "received", "--summary"])["count"],
        0
    );
    p.parent.json(&["restore-link", "--to", "S01"]);
    wait_for("probes after restore", Duration::from_secs(30), || {
        p.parent.json(&["probe", "received", "--summary"])["count"] == 5
    });
}

#[test]
fn ct2_job_failure_leaves_phase_4_complete_and_the_failed_job_is_retryable() {
    let p = Pair::start();
    p.child.json(&["inject-fault", "ct2-job-failure"]);
    p.parent.json(&[
        "create-secondary",
        "--site-code",
        "S01",
        "--server",
        &p.child.addr,
    ]);
    wait_for(
        "Phase 4 Complete at the parent",
        Duration::from_secs(30),
        || p.parent.site_status("S01").as_deref() == Some("Phase 4 Complete"),
    );
    // The CT2 job exhausts its retries (default address: 20 attempts, at most 2 s apart).
    wait_for("the CT2 job to fail", Duration::from_secs(120), || {
        p.child.json(&["status"])["links"][0]["failed_jobs"]
            .as_u64()
            .unwrap()
            >= 1
    });
    assert_eq!(
        p.parent.site_status("S01").as_deref(),
        Some("Phase 4 Complete")
    );
    let failed = p.child.json(&["status-messages", "--id", "4400"]);
    let text = failed["messages"][0]["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("(ct2)") && text.contains("injected fault"),
        "{text}"
    );
    // The failure report itself reached the parent: the link works, only the CT2 failed.
    wait_for(
        "the failure report at the parent",
        Duration::from_secs(30),
        || {
            !p.parent
                .json(&["status-messages", "--site", "S01", "--id", "4400"])["messages"]
                .as_array()
                .unwrap()
                .is_empty()
        },
    );

    // Unlike SMS, the job was kept: clear the fault, retry it, and the site goes Active.
    p.child.json(&["clear-fault", "ct2-job-failure"]);
    let link = p.child.json(&["retry-jobs", "--to", "PRI"]);
    assert_eq!(link["failed_jobs"], 0);
    p.wait_active("S01", Duration::from_secs(30));
}
