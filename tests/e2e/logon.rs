//! Domains and logon servers across real processes: discovery, install,
//! verification and reinstall, removal, and SMS unique IDs that are never
//! issued twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use serde_json::Value;

/// IDs handed out, with the index of the logon server that gave them.
type Issued = Arc<Mutex<Vec<(usize, Vec<u64>)>>>;

fn logon_servers(n: &NodeProc, args: &[&str]) -> Vec<(String, String, String)> {
    let v = n.json(&[&["site-control"], args].concat());
    let mut out = vec![];
    for d in v["domains"].as_array().unwrap() {
        for l in d["logon_servers"].as_array().unwrap() {
            out.push((
                d["name"].as_str().unwrap().to_string(),
                l["server"].as_str().unwrap().to_string(),
                l["state"].as_str().unwrap().to_string(),
            ));
        }
    }
    out.sort();
    out
}

fn active(n: &NodeProc) -> usize {
    logon_servers(n, &[])
        .iter()
        .filter(|l| l.2 == "active")
        .count()
}

fn role(n: &NodeProc) -> String {
    n.json(&["status"])["role"].as_str().unwrap().to_string()
}

#[test]
fn member_servers_become_logon_servers_hand_out_unique_ids_and_leave_with_their_domain() {
    let p = Pair::start();
    p.create_s01();
    let m1 = NodeProc::start(&p.dir.path().join("m1"), &["--domain", "CORP"]);
    let mut m2 = NodeProc::start(&p.dir.path().join("m2"), &["--domain", "CORP"]);
    let m3 = NodeProc::start(&p.dir.path().join("m3"), &["--domain", "SALES"]);
    let stranger = NodeProc::start(&p.dir.path().join("m4"), &[]);
    // All changes from PRI (they queue in order); a short watchdog interval.
    p.parent.json(&[
        "set-site-control",
        "--site",
        "S01",
        "--polling-interval-ms",
        "300",
    ]);
    let browse = format!(
        "{},{},{},nowhere.invalid:9",
        m1.addr, m2.addr, stranger.addr
    );
    p.parent.json(&[
        "add-domain",
        "--site",
        "S01",
        "--name",
        "CORP",
        "--browse",
        &browse,
    ]);
    p.parent.json(&[
        "add-domain",
        "--site",
        "S01",
        "--name",
        "SALES",
        "--browse",
        &m3.addr,
    ]);
    wait_for(
        "three active logon servers",
        Duration::from_secs(60),
        || active(&p.child) == 3,
    );
    let l = logon_servers(&p.child, &[]);
    assert_eq!(l.iter().filter(|x| x.0 == "CORP").count(), 2, "{l:?}");
    assert_eq!(role(&stranger), "bare", "a non-member got installed");
    for m in [&m1, &m2, &m3] {
        let st = m.json(&["status"]);
        assert_eq!(st["role"], "logon-server");
        assert_eq!(st["logon_site"], "S01");
        assert_eq!(st["ids_remaining"], 1000);
    }
    // The problems in the browse list are reported, and travel up.
    wait_for(
        "the browse list reports at PRI",
        Duration::from_secs(30),
        || {
            let ids = p.parent.message_ids(&["--site", "S01"]);
            ids.contains(&2815) && ids.contains(&2816)
        },
    );
    // The CT2 carries the logon servers up to the parent's copy.
    wait_for("PRI's copy to list them", Duration::from_secs(30), || {
        logon_servers(&p.parent, &["--site", "S01"])
            .iter()
            .filter(|x| x.2 == "active")
            .count()
            == 3
    });

    // 20 000 IDs from two logon servers at once, with a clean restart of one
    // and a kill -9 of the other in the middle: none is issued twice.
    let issued: Issued = Arc::default();
    let addrs = [m1.addr.clone(), m2.addr.clone()];
    let mut workers = vec![];
    for (server, addr) in addrs.iter().enumerate() {
        for _ in 0..2 {
            let (addr, issued) = (addr.clone(), issued.clone());
            workers.push(std::thread::spawn(move || {
                let mut got = 0;
                while got < 5_000 {
                    let out = controller(&addr, &["allocate-id", "--count", "250", "--json"]);
                    if !out.status.success() {
                        // The server is restarting: try again.
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                    let ids: Vec<u64> = v["ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap())
                        .collect();
                    got += ids.len();
                    issued.lock().unwrap().push((server, ids));
                }
            }));
        }
    }
    let count =
        |issued: &Issued| -> usize { issued.lock().unwrap().iter().map(|(_, v)| v.len()).sum() };
    wait_for("IDs to flow", Duration::from_secs(60), || {
        count(&issued) >= 4_000
    });
    m2.kill9();
    m2.restart();
    wait_for("more IDs", Duration::from_secs(60), || {
        count(&issued) >= 10_000
    });
    let mut m1 = m1;
    m1.stop();
    m1.restart();
    for w in workers {
        w.join().unwrap();
    }
    let issued = issued.lock().unwrap().clone();
    let all: Vec<u64> = issued.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    assert_eq!(all.len(), 20_000);
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), 20_000, "an SMS unique ID was issued twice");
    // Below the site's counter, and each server's IDs only ever go up.
    let counter = p.child.json(&["site-control"])["next_unique_id"]
        .as_u64()
        .unwrap();
    assert!(
        all.iter().all(|&id| id >= 1 && id < counter),
        "an ID beyond the site's counter {counter}"
    );
    for server in 0..2 {
        let mut seen: Vec<u64> = issued
            .iter()
            .filter(|(s, _)| *s == server)
            .flat_map(|(_, v)| v.clone())
            .collect();
        let n = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), n);
    }
    // No gaps beyond the unused parts of abandoned ranges: the site handed
    // out few more ranges than the IDs needed.
    let ranges_used = (counter - 1) / 1000;
    assert!(
        ranges_used <= 20 + 3 + 3,
        "{ranges_used} ranges for 20 000 IDs"
    );

    // A member server that loses its install (data dir wiped) is reinstalled.
    let data = m2.data.clone();
    m2.kill9();
    std::fs::remove_dir_all(&data).unwrap();
    m2.restart();
    wait_for("m2 reinstalled", Duration::from_secs(30), || {
        role(&m2) == "logon-server"
    });
    assert!(!p
        .child
        .message_ids(&["--id", &id(&catalog::LOGON_REINSTALL)])
        .is_empty());
    // Its new range is fresh: nothing it hands out was issued before.
    let fresh = m2.json(&["allocate-id", "--count", "10"]);
    for id in fresh["ids"].as_array().unwrap() {
        assert!(
            !unique.contains(&id.as_u64().unwrap()),
            "a reinstalled server reissued {id}"
        );
    }

    // A server already installed by another site is reported and left alone.
    let s02 = NodeProc::start(&p.dir.path().join("s02"), &[]);
    p.parent.json(&[
        "create-secondary",
        "--site-code",
        "S02",
        "--server",
        &s02.addr,
        "--wait",
    ]);
    p.parent.json(&[
        "add-domain",
        "--site",
        "S02",
        "--name",
        "SALES",
        "--browse",
        &m3.addr,
    ]);
    wait_for("S02 to report m3 as taken", Duration::from_secs(60), || {
        !s02.message_ids(&["--id", &id(&catalog::LOGON_OTHER_SITE)])
            .is_empty()
    });
    assert_eq!(m3.json(&["status"])["logon_site"], "S01");
    assert!(logon_servers(&s02, &[]).is_empty());
    assert!(p.child.log("sitectrl").contains("logon server installed"));

    // Removing a domain uninstalls its logon servers.
    p.parent
        .json(&["remove-domain", "--site", "S01", "--name", "CORP"]);
    wait_for("CORP's logon servers gone", Duration::from_secs(30), || {
        logon_servers(&p.child, &[]).iter().all(|l| l.0 != "CORP")
    });
    assert_eq!(role(&m1), "bare");
    assert_eq!(role(&m2), "bare");
    assert_eq!(role(&m3), "logon-server");
    wait_for("both uninstall reports", Duration::from_secs(30), || {
        p.child
            .message_ids(&["--id", &id(&catalog::LOGON_UNINSTALLED)])
            .len()
            == 2
    });
    assert!(m1
        .fails(&["allocate-id", "--count", "1"])
        .contains("not a logon server"));
    assert!(p
        .parent
        .fails(&["remove-domain", "--site", "S01", "--name", "CORP"])
        .contains("no domain CORP"));
}
