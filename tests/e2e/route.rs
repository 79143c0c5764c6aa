//! Reaching any site by its code (`controller --site CODE`), with TLS: three
//! tiers (PRI, child primary P01, its secondary S11), the controller
//! talking only to PRI, every call relayed hop by hop between neighbouring
//! site servers; roles checked at the target and named in its audit trail;
//! a severed link named as the reason there is no route; relay headers from
//! anyone but a neighbouring site server refused.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sms_proto::v1 as pb;

use crate::support::CONTROLLER;
use crate::trust::{issue_admin, ok, p01_and_s11, refused, start};

/// `controller --node NODE --tls-dir TLS [--site SITE] args...`
fn ctl(node: &str, tls: &Path, site: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(CONTROLLER);
    c.arg("--node")
        .arg(node)
        .arg("--tls-dir")
        .arg(tls)
        .env_remove("SMS_NODE")
        .env_remove("SMS_INSECURE")
        .env_remove("SMS_SITE");
    if let Some(s) = site {
        c.arg("--site").arg(s);
    }
    c.args(args).output().expect("run controller")
}

fn json(node: &str, tls: &Path, site: Option<&str>, args: &[&str]) -> Value {
    let out = ok(
        ctl(node, tls, site, &[args, &["--json"]].concat()),
        &format!("--site {site:?} {}", args.join(" ")),
    );
    serde_json::from_str(&out).unwrap()
}

/// Issues an administrator certificate with `role` at `node`, into
/// `dir/name`; that directory.
fn issue(node: &str, admin: &Path, dir: &Path, name: &str, role: &str) -> PathBuf {
    let out = dir.join(name);
    issue_admin(node, admin, name, role, &out);
    out
}

/// Audit messages (4800) stored at site `site`, read through PRI.
fn audit_at(pri: &str, admin: &Path, site: &str) -> Vec<String> {
    json(pri, admin, Some(site), &["status-messages", "--id", "4800"])["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["site_code"] == site)
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect()
}

/// One Admin call with hand-made metadata, as a client that forges the
/// relay headers would send it.
fn forged_status(node: &str, tls: &Path, headers: &[(&'static str, &str)]) -> tonic::Status {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let creds = sms_connect::load_admin(tls).unwrap();
        let cfg = sms_connect::admin_tls(&creds).unwrap();
        let ep = tonic::transport::Endpoint::from_shared(format!("http://{node}")).unwrap();
        let ch = sms_connect::channel(ep, node, Some(cfg), Duration::from_secs(10))
            .await
            .unwrap();
        let mut c = pb::admin_client::AdminClient::new(ch);
        let mut req = tonic::Request::new(pb::GetStatusRequest {});
        for (k, v) in headers {
            req.metadata_mut().insert(*k, v.parse().unwrap());
        }
        match c.get_status(req).await {
            Ok(r) => panic!("the forged call was answered: {:?}", r.into_inner()),
            Err(s) => s,
        }
    })
}

#[test]
fn any_site_is_reached_by_its_code_through_the_hierarchy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pri = start(&d.join("pri"), &["--install-primary", "PRI"]);
    let admin = d.join("pri").join("admin");
    let p = pri.addr().to_string();
    let (p01, s11) = p01_and_s11(d, &p, &admin);
    let m = p01.addr().to_string();
    let s = s11.addr().to_string();

    // Reads, two hops down from PRI, and one hop up from S11.
    let st = json(&p, &admin, Some("S11"), &["status"]);
    assert_eq!(st["site_code"], "S11", "{st}");
    assert_eq!(st["parent_site_code"], "P01", "{st}");
    let st = json(&s, &admin, Some("PRI"), &["status"]);
    assert_eq!(st["site_code"], "PRI", "{st}");
    let sites = json(&p, &admin, Some("P01"), &["sites"]);
    assert!(
        sites["sites"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["site_code"] == "S11" && x["parent_site_code"] == "P01"),
        "{sites}"
    );
    // PRI keeps no link to its grandchild S11: its `sites` asks P01, by its
    // code, for P01's link to S11, and says where the state was seen.
    let row = |v: &Value, code: &str| -> Value {
        v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["site_code"] == code)
            .cloned()
            .unwrap_or_else(|| panic!("no {code} in {v}"))
    };
    let v = json(&p, &admin, None, &["sites"]);
    let far = row(&v, "S11");
    assert_eq!(far["link_seen_at"], "P01", "{far}");
    let state = far["link_state"].as_str().unwrap();
    assert!(!state.is_empty() && state != "severed", "{far}");
    assert!(
        row(&v, "P01")["link_seen_at"].is_null(),
        "PRI's own link: {v}"
    );
    ok(
        ctl(&m, &admin, None, &["sever-link", "--to", "S11"]),
        "sever at P01",
    );
    let v = json(&p, &admin, None, &["sites"]);
    assert_eq!(row(&v, "S11")["link_state"], "severed", "{v}");
    let table = ok(ctl(&p, &admin, None, &["sites"]), "sites table");
    assert!(table.contains("severed (at P01)"), "{table}");
    ok(
        ctl(&m, &admin, None, &["restore-link", "--to", "S11"]),
        "restore at P01",
    );

    let msgs = json(
        &p,
        &admin,
        Some("S11"),
        &["status-messages", "--limit", "5"],
    );
    assert!(
        msgs["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x["site_code"] == "S11")),
        "{msgs}"
    );
    // diagnose at P01 (relayed) of its child S11, and at PRI of its
    // grandchild: the child's own view comes through the relay.
    for (site, args) in [
        (Some("P01"), ["diagnose", "--site", "S11"]),
        (None, ["diagnose", "--site", "S11"]),
    ] {
        let v = json(&p, &admin, site, &args);
        assert_eq!(v["child"]["reachable"], true, "{v}");
        assert_eq!(v["child"]["site_code"], "S11", "{v}");
        // Through the relay, not by dialling S11's server.
        let via = v["child"]["reached_with"].as_str().unwrap();
        assert_eq!(via, format!("--node {p} --site S11"), "{v}");
        assert!(
            v["cause"].as_str().unwrap().starts_with("S11 is Active"),
            "{v}"
        );
    }

    // State changes: the role is checked at S11, and its audit trail
    // names the administrator and the sites that relayed the call.
    let rita = issue(&p, &admin, d, "rita", "read-only");
    let otto = issue(&p, &admin, d, "otto", "operator");
    ok(ctl(&p, &rita, Some("S11"), &["status"]), "read-only status");
    let err = refused(
        ctl(&p, &rita, Some("S11"), &["sever-link", "--to", "P01"]),
        "read-only sever at S11",
    );
    assert!(err.contains("needs operator"), "{err}");
    let v = json(&p, &otto, Some("S11"), &["sever-link", "--to", "P01"]);
    assert_eq!(v["state"], "severed", "{v}");
    // Severed at S11, not at P01: P01 still relays to S11.
    let v = json(&p, &otto, Some("S11"), &["restore-link", "--to", "P01"]);
    assert_ne!(v["state"], "severed", "{v}");
    let audit = audit_at(&p, &admin, "S11");
    for action in ["sever-link", "restore-link"] {
        assert!(
            audit.iter().any(|t| t.contains(&format!(
                "otto (admin-operator) via PRI > P01 ran {action} on site S11"
            ))),
            "{audit:#?}"
        );
    }
    assert!(!audit.iter().any(|t| t.contains("rita")), "{audit:#?}");

    // A stream through two hops: S11's audit trail followed live from PRI
    // shows a force-ct2 made after the watch opened.
    let mut follow = Command::new(CONTROLLER)
        .args(["--node", &p, "--tls-dir"])
        .arg(&admin)
        .args(["--site", "S11", "status-messages", "--follow", "--json"])
        .args(["--id", "4800", "--limit", "1"])
        .env_remove("SMS_SITE")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run controller");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The listing printed first says the watch is open.
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the follow printed nothing");
    assert!(first.contains("4800"), "{first}");
    ok(
        ctl(&p, &otto, Some("S11"), &["force-ct2"]),
        "force-ct2 at S11",
    );
    let t0 = Instant::now();
    loop {
        let left = Duration::from_secs(30).saturating_sub(t0.elapsed());
        let line = rx
            .recv_timeout(left)
            .expect("the followed stream never showed the force-ct2");
        if line.contains("via PRI > P01 ran force-ct2 on site S11") {
            break;
        }
    }
    follow.kill().unwrap();
    follow.wait().unwrap();

    // A severed link on the way: a clear error naming it.
    ok(
        ctl(&p, &admin, None, &["sever-link", "--to", "P01"]),
        "sever at PRI",
    );
    let err = refused(ctl(&p, &admin, Some("S11"), &["status"]), "through a cut");
    assert!(
        err.contains("no route to site S11: the link from PRI to P01 is severed"),
        "{err}"
    );
    ok(
        ctl(&p, &admin, None, &["restore-link", "--to", "P01"]),
        "restore at PRI",
    );
    ok(ctl(&p, &admin, Some("S11"), &["status"]), "after restore");

    // A site nobody knows.
    let err = refused(ctl(&m, &admin, Some("S99"), &["status"]), "unknown site");
    assert!(
        err.contains("site S99 is not below or above site PRI"),
        "{err}"
    );

    // Relay headers straight from an administrator are refused, at a relay
    // and at the target alike; a bad site code is named.
    for (node, site) in [(&p, "S11"), (&m, "S11"), (&m, "P01")] {
        let s = forged_status(
            node,
            &rita,
            &[
                ("sms-site", site),
                ("sms-relay-path", "PRI"),
                (
                    "sms-relay-caller",
                    "name=root; role=admin-full; scope=PRI; serials=01",
                ),
            ],
        );
        assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
        assert!(
            s.message()
                .contains("only a neighbouring site server may relay"),
            "{s:?}"
        );
    }
    let s = forged_status(&p, &rita, &[("sms-site", "s 11")]);
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
}

/// Plaintext nodes (`--insecure`) relay the same way, with nobody to name;
/// the controller refuses a malformed code and commands it cannot relay.
#[test]
fn on_insecure_nodes_calls_are_relayed_without_identities() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, p01, _s01) = crate::support::three_tiers(dir.path());
    let st = pri.json(&["--site", "S01", "status"]);
    assert_eq!(st["site_code"], "S01", "{st}");
    assert_eq!(st["parent_site_code"], "P01", "{st}");
    pri.json(&["--site", "S01", "force-ct2"]);
    let d = pri.json(&["--site", "P01", "diagnose", "--site", "S01"]);
    assert_eq!(d["child"]["site_code"], "S01", "{d}");
    let via = d["child"]["reached_with"].as_str().unwrap();
    assert_eq!(via, format!("--node {} --site S01", pri.addr), "{d}");
    let err = p01.fails(&["--site", "S-1", "status"]);
    assert!(err.contains("--site \"S-1\" is not a site code"), "{err}");
    let err = pri.fails(&["--site", "S01", "up"]);
    assert!(err.contains("--site cannot be used with `up`"), "{err}");
}
