//! Site lifecycle across real processes: multi-tier hierarchies, site
//! control changes from above, the bad box, and the recoveries.

use std::time::Duration;

use crate::support::*;
use serde_json::{json, Value};

fn statuses(n: &NodeProc) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = n.json(&["sites"])["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["site_code"].as_str().unwrap().to_string(),
                s["parent_site_code"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn three_tier_hierarchy_changes_flow_down_and_reports_flow_up() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, p01, s01) = three_tiers(dir.path());
    // The central site sees the whole tree.
    let want = vec![
        ("P01".to_string(), "PRI".to_string(), "Active".to_string()),
        ("PRI".to_string(), String::new(), "Active".to_string()),
        ("S01".to_string(), "P01".to_string(), "Active".to_string()),
    ];
    wait_for(
        "the whole tree Active at PRI",
        Duration::from_secs(30),
        || statuses(&pri) == want,
    );
    pri.assert_phase_reports("S01");

    // A change made at PRI for S01 travels two hops down as a CT1...
    let r = pri.json(&[
        "set-site-control",
        "--site",
        "S01",
        "--polling-interval-ms",
        "5000",
        "--site-name",
        "Branch one",
    ]);
    assert_eq!(
        (r["site_code"].clone(), r["serial"].clone()),
        (json!("S01"), json!(2))
    );
    // ...and a second one right behind it builds on the first, not on stale state.
    pri.json(&[
        "add-domain",
        "--site",
        "S01",
        "--name",
        "CORP",
        "--browse",
        "corp.example,127.0.0.1:9",
    ]);
    wait_for("S01 to apply both changes", Duration::from_secs(30), || {
        s01.json(&["site-control"])["serial"] == 3
    });
    let sc = s01.json(&["site-control"]);
    assert_eq!(
        (sc["polling_interval_ms"].clone(), sc["site_name"].clone()),
        (json!(5000), json!("Branch one"))
    );
    assert_eq!(sc["domains"][0]["name"], "CORP");
    // ...and S01's CT2 brings both ancestors' copies up to date.
    wait_for(
        "PRI's copy of S01 at serial 3",
        Duration::from_secs(30),
        || pri.json(&["site-control", "--site", "S01"])["serial"] == 3,
    );
    assert_eq!(p01.json(&["site-control", "--site", "S01"])["serial"], 3);
    let diff = s01.json(&["site-control", "--diff", "1", "3"]);
    let fields: Vec<&str> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"polling_interval_ms") && fields.contains(&"site_name"),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("domains[CORP]")),
        "{fields:?}"
    );
    assert_eq!(
        s01.json(&["site-control", "--serial", "1"])["polling_interval_ms"],
        60_000
    );

    // Jobs between non-adjacent sites travel hop by hop.
    pri.send_probes("S01", 20, "medium");
    s01.send_probes("PRI", 30, "low");
    wait_for("probes across two hops", Duration::from_secs(30), || {
        s01.json(&["probe", "received", "--summary"])["count"] == 20
            && pri.json(&["probe", "received", "--summary"])["count"] == 30
    });

    // A change for a site that is not below this one is refused.
    assert!(p01
        .fails(&["set-site-control", "--site", "PRI", "--site-name", "x"])
        .contains("not below site P01"));
    assert!(pri
        .fails(&[
            "set-site-control",
            "--site",
            "S01",
            "--polling-interval-ms",
            "5"
        ])
        .contains("below the minimum"));
    assert!(pri
        .fails(&["remove-domain", "--site", "S01", "--name", "NOPE"])
        .contains("no domain NOPE"));
}

#[test]
fn a_site_cannot_be_its_own_ancestor_or_take_a_used_code() {
    let dir = tempfile::tempdir().unwrap();
    let pri = NodeProc::start(&dir.path().join("pri"), &["--install-primary", "PRI"]);
    let p01 = NodeProc::start(
        &dir.path().join("p01"),
        &[
            "--install-primary",
            "P01",
            "--parent-site",
            "PRI",
            "--parent",
            &pri.addr,
        ],
    );
    let attach = |code: &str, parent_site: &str, parent: &str, name: &str| {
        let data = dir.path().join(name);
        let out = std::process::Command::new(SMS_NODE)
            .env("SMS_INSECURE", "1")
            .args(["--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args([
                "--install-primary",
                code,
                "--parent-site",
                parent_site,
                "--parent",
                parent,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        // Nothing was installed.
        assert!(
            !data.join("db").exists()
                || NodeProc::start(&data, &[]).json(&["status"])["role"] == "bare"
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(attach("PRI", "P01", &p01.addr, "x1").contains("ancestor"));
    // Deeper: PRI -> P01 -> P02; PRI is refused below P02 too.
    let p02 = NodeProc::start(
        &dir.path().join("p02"),
        &[
            "--install-primary",
            "P02",
            "--parent-site",
            "P01",
            "--parent",
            &p01.addr,
        ],
    );
    assert!(attach("PRI", "P02", &p02.addr, "x5").contains("ancestor"));
    let bare = NodeProc::start(&dir.path().join("x6"), &[]);
    assert!(p02
        .fails(&[
            "create-secondary",
            "--site-code",
            "PRI",
            "--server",
            &bare.addr
        ])
        .contains("ancestor"));
    assert!(attach("P01", "PRI", &pri.addr, "x2").contains("already exists"));
    assert!(attach("P01", "PRI", &pri.addr, "x2").contains("already exists"));
    assert!(attach("P07", "P09", &pri.addr, "x3").contains("not P09"));
    assert!(attach("P03", "PRI", "127.0.0.1:1", "x4").contains("cannot attach"));
}

fn write_ct1(dir: &std::path::Path, name: &str, ct1: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, ct1.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn stale_and_malformed_ct1s_land_in_the_bad_box_and_change_nothing() {
    let p = Pair::start();
    p.create_s01();
    let current = p.child.json(&["site-control"]);
    let serial = current["serial"].as_u64().unwrap();
    let stale = json!({"base_serial": serial - 1, "proposed": current.clone()});
    let mut bad_interval = current.clone();
    bad_interval["polling_interval_ms"] = json!(0);
    let malformed = json!({"base_serial": serial, "proposed": bad_interval});
    let mut other = current.clone();
    other["site_code"] = json!("S77");
    let wrong_site = json!({"base_serial": serial, "proposed": other});
    let mut back = current.clone();
    back["next_unique_id"] = json!(0);
    let ids_back = json!({"base_serial": serial, "proposed": back});
    for (i, ct1) in [&stale, &malformed, &wrong_site, &ids_back]
        .iter()
        .enumerate()
    {
        let f = write_ct1(p.dir.path(), &format!("ct1-{i}.json"), ct1);
        p.child.json(&["submit-ct1", "--file", &f]);
    }
    wait_for("four CT1s in the bad box", Duration::from_secs(30), || {
        p.child.json(&["bad-box"])["entries"]
            .as_array()
            .unwrap()
            .len()
            == 4
    });
    let reasons: Vec<String> = p.child.json(&["bad-box"])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(reasons[0].contains("stale"), "{reasons:?}");
    assert!(reasons[1].contains("polling interval"), "{reasons:?}");
    assert!(reasons[2].contains("for site S77"), "{reasons:?}");
    assert!(reasons[3].contains("never be issued twice"), "{reasons:?}");
    assert_eq!(
        p.child.json(&["site-control"]),
        current,
        "a refused CT1 changed the site"
    );
    // Each refusal is an error status message, replicated to the parent.
    wait_for(
        "the refusals at the parent",
        Duration::from_secs(30),
        || {
            p.parent
                .message_ids(&["--site", "S01", "--id", &id(&catalog::CT1_REJECTED)])
                .len()
                == 4
        },
    );
    let sites = p.parent.json(&["sites"]);
    let s01 = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site_code"] == "S01")
        .unwrap()
        .clone();
    assert!(s01["recent_errors"].as_u64().unwrap() >= 4, "{s01}");
    // A file that is not a CT1 is refused by the controller, naming the problem.
    let f = write_ct1(p.dir.path(), "not.json", &json!({"proposed": {}}));
    assert!(p
        .child
        .fails(&["submit-ct1", "--file", &f])
        .contains("base_serial"));
}

#[test]
fn upgrade_site_repairs_a_failed_bootstrap_and_reinstalls_an_active_site() {
    let p = Pair::start();
    p.child
        .json(&["inject-fault", "bootstrap-failure", "--phase", "2"]);
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
    wait_for("Phase 1 Complete", Duration::from_secs(30), || {
        p.parent.site_status("S01").as_deref() == Some("Phase 1 Complete")
    });
    p.child.json(&["clear-fault", "bootstrap-failure"]);
    let v = p.parent.json(&["upgrade-site", "--site", "S01", "--wait"]);
    assert_eq!(v["status"], "Active");
    assert_eq!(p.child.json(&["status"])["bootstrap"]["state"], "complete");

    // Run the install of an Active site again: it goes Upgrading, then Active,
    // keeping its site control.
    let before = p.child.json(&["site-control"]);
    let v = p.parent.json(&["upgrade-site", "--site", "S01", "--wait"]);
    assert_eq!(v["status"], "Active");
    assert_eq!(
        p.child.json(&["site-control"])["site_code"],
        before["site_code"]
    );
    let changes = p
        .parent
        .message_ids(&["--id", &id(&catalog::HM_SITE_UPGRADE)]);
    assert_eq!(changes.len(), 2);
    let sites = p.parent.json(&["sites"]);
    let s01 = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site_code"] == "S01")
        .unwrap()
        .clone();
    assert_eq!(s01["version"], p.parent.json(&["status"])["version"]);
    assert!(p
        .parent
        .fails(&["upgrade-site", "--site", "S09"])
        .contains("not in the site list"));
}

#[test]
fn delete_site_returns_the_node_to_bare_and_a_rebuild_keeps_the_unique_id_counter() {
    let p = Pair::start();
    p.create_s01();
    // Move S01's SMS unique ID counter on (what its logon servers would do).
    let mut ctl = p.child.json(&["site-control"]);
    let serial = ctl["serial"].as_u64().unwrap();
    ctl["next_unique_id"] = json!(5000);
    let f = write_ct1(
        p.dir.path(),
        "ids.json",
        &json!({"base_serial": serial, "proposed": ctl}),
    );
    p.child.json(&["submit-ct1", "--file", &f]);
    wait_for(
        "the parent's copy to show the counter",
        Duration::from_secs(30),
        || p.parent.json(&["site-control", "--site", "S01"])["next_unique_id"] == 5000,
    );

    let v = p.parent.json(&["delete-site", "--site", "S01", "--wait"]);
    assert_eq!(v["status"], "Deleted");
    wait_for("the child to restart bare", Duration::from_secs(30), || {
        p.child.ctl(&["status", "--json"]).status.success()
            && p.child.json(&["status"])["role"] == "bare"
    });
    assert!(p.parent.site_status("S01").is_none());
    assert_eq!(
        p.parent
            .message_ids(&["--id", &id(&catalog::HM_SITE_DELETED)])
            .len(),
        1
    );

    // Rebuild with the same code on the same server: the counter survives.
    p.create_s01();
    assert_eq!(p.child.json(&["site-control"])["next_unique_id"], 5000);
}

#[test]
fn delete_site_of_an_unreachable_server_records_it_orphaned() {
    let mut p = Pair::start();
    p.parent.json(&[
        "set-address",
        "--to",
        "S01",
        "--retry-count",
        "2",
        "--retry-delay-ms",
        "200",
    ]);
    wait_for(
        "the parent to apply its address change",
        Duration::from_secs(30),
        || p.parent.json(&["site-control"])["serial"] == 2,
    );
    p.create_s01();
    p.child.kill9();
    let d = p.parent.json(&["diagnose", "--site", "S01"]);
    assert!(d["cause"].as_str().unwrap().contains("cannot reach"), "{d}");
    p.parent
        .json(&["delete-site", "--site", "S01", "--wait", "--timeout", "60"]);
    assert!(p.parent.site_status("S01").is_none());
    wait_for("the orphan report", Duration::from_secs(30), || {
        !p.parent
            .message_ids(&["--id", &id(&catalog::HM_SITE_ORPHANED)])
            .is_empty()
    });
    let orphaned = p
        .parent
        .json(&["status-messages", "--id", &id(&catalog::HM_SITE_ORPHANED)]);
    assert!(orphaned["messages"][0]["text"]
        .as_str()
        .unwrap()
        .contains("orphaned"));
}

#[test]
fn status_messages_follow_streams_new_messages() {
    use std::io::{BufRead, BufReader};
    let p = Pair::start();
    p.create_s01();
    let mut child = std::process::Command::new(CONTROLLER)
        .env("SMS_INSECURE", "1")
        .args([
            "--node",
            &p.parent.addr,
            "status-messages",
            "--follow",
            "--json",
            "--id",
            &id(&catalog::LINK_SEVERED),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    p.parent.json(&["sever-link", "--to", "S01"]);
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("no followed message");
    let _ = child.kill();
    let _ = child.wait();
    let m: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(m["id"], 4401);
    assert!(m["text"].as_str().unwrap().contains("S01"));
}

#[test]
fn address_schedule_and_rate_limit_govern_the_sender() {
    let p = Pair::start();
    p.create_s01();
    // All day, only high priority may pass from S01 to PRI.
    p.child
        .json(&["set-address", "--to", "PRI", "--schedule", "0-24:high"]);
    wait_for("S01 to apply the schedule", Duration::from_secs(30), || {
        p.child.json(&["site-control"])["addresses"][0]["schedule"][0]["lowest"] == "high"
    });
    let before = p.parent.json(&["probe", "received", "--summary"])["count"]
        .as_u64()
        .unwrap();
    p.child.send_probes("PRI", 5, "low");
    p.child.send_probes("PRI", 5, "high");
    wait_for("the high jobs", Duration::from_secs(30), || {
        p.parent.json(&["probe", "received", "--summary"])["count"]
            .as_u64()
            .unwrap()
            == before + 5
    });
    let got = p.parent.json(&["probe", "received"]);
    assert!(got["probes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["priority"] == "high"));
    // Opening the schedule lets the low ones through.
    p.child
        .json(&["set-address", "--to", "PRI", "--schedule", "always"]);
    wait_for("the low jobs", Duration::from_secs(60), || {
        p.parent.json(&["probe", "received", "--summary"])["count"]
            .as_u64()
            .unwrap()
            == before + 10
    });
    assert!(p
        .child
        .fails(&["set-address", "--to", "PRI", "--schedule", "9-9:high"])
        .contains("START-END:PRIORITY"));

    // 40 KiB of probes through a 16 KiB/s limit cannot all arrive within a second.
    p.child.json(&[
        "set-address",
        "--to",
        "PRI",
        "--rate-limit-bytes-per-sec",
        "16384",
    ]);
    wait_for(
        "S01 to apply the rate limit",
        Duration::from_secs(30),
        || p.child.json(&["site-control"])["addresses"][0]["rate_limit_bytes_per_sec"] == 16384,
    );
    let start = std::time::Instant::now();
    p.child.json(&[
        "probe", "send", "--to", "PRI", "--count", "40", "--bytes", "1024",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let early = p.parent.json(&["probe", "received", "--summary"])["count"]
        .as_u64()
        .unwrap()
        - before
        - 10;
    assert!(
        early < 40,
        "all 40 probes arrived within {:?} despite the rate limit",
        start.elapsed()
    );
    wait_for("the rate-limited probes", Duration::from_secs(60), || {
        p.parent.json(&["probe", "received", "--summary"])["count"]
            .as_u64()
            .unwrap()
            == before + 50
    });
}
