//! Management points across real processes (seed 001): installed on a site
//! server and on a separate site system node, serving clients; every
//! failure the seed troubleshoots reproduced for real (a port held by a
//! listener, a tmpfs, a too-small filesystem, the site database refusing,
//! a later version left behind, the agent stopped), each reported with its
//! message and log line and no 1015, then cleared, retried and installed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sms_cluster::{Cluster, Node};

use crate::support::*;

fn wait(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// `controller --json ARGS` against `node`, with TLS from `tls` (None: plaintext).
fn ctl_json(node: &str, tls: Option<&Path>, args: &[&str]) -> Value {
    let out = ctl(node, tls, &[args, &["--json"]].concat());
    assert!(
        out.status.success(),
        "controller {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: no JSON ({e})"))
}

fn ctl(node: &str, tls: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(CONTROLLER);
    c.arg("--node")
        .arg(node)
        .env_remove("SMS_NODE")
        .env_remove("SMS_INSECURE");
    match tls {
        Some(d) => c.arg("--tls-dir").arg(d),
        None => c.arg("--insecure"),
    };
    c.args(args).output().expect("run controller")
}

/// The management points of `site` as `node` lists them.
fn mps(node: &str, tls: Option<&Path>, site: Option<&str>) -> Vec<Value> {
    let mut args = vec!["mp", "list"];
    if let Some(s) = site {
        args.extend(["--site", s]);
    }
    ctl_json(node, tls, &args)["management_points"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn mp_of(node: &str, tls: Option<&Path>, site: Option<&str>, server: &str) -> Option<Value> {
    mps(node, tls, site)
        .into_iter()
        .find(|m| m["server"] == server)
}

fn state(node: &str, tls: Option<&Path>, site: Option<&str>, server: &str) -> String {
    mp_of(node, tls, site, server)
        .map(|m| m["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Status messages at `node` about `server` with one of `ids`, in the
/// order they were stored: (id, text).
fn messages_about(node: &str, tls: Option<&Path>, server: &str, ids: &[u64]) -> Vec<(u64, String)> {
    ctl_json(node, tls, &["status-messages"])["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            ids.contains(&m["id"].as_u64().unwrap()) && m["text"].as_str().unwrap().contains(server)
        })
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn http(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let a = rt
        .block_on(sms_connect::http::get(addr, path, Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"));
    (a.status, a.body)
}

fn http_addr(m: &Value, server: &str) -> String {
    let host = server.rsplit_once(':').unwrap().0;
    format!("{host}:{}", m["bound_port"].as_u64().unwrap())
}

fn log(data: &Path, name: &str) -> String {
    std::fs::read_to_string(data.join("logs").join(format!("{name}.log"))).unwrap_or_default()
}

#[test]
fn management_points_install_on_a_site_server_and_a_site_system_and_serve_clients() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tls_cluster = Cluster::new(SMS_NODE).env("RUST_LOG", "warn");
    let start = |name: &str, args: &[&str]| -> Node {
        tls_cluster
            .start(&d.join(name), args)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let pri = start("pri", &["--install-primary", "PRI"]);
    let admin = d.join("pri").join("admin");
    let tls = Some(admin.as_path());
    let p = pri.addr().to_string();
    let token = |args: &[&str]| -> String {
        let out = ctl(&p, tls, &[&["token", "create"], args].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    // A secondary S01, and a site system node m1 (a member server).
    let s01_token = token(&["--site", "S01"]);
    let s01_node = start("s01", &["--join-token", &s01_token]);
    let s = s01_node.addr().to_string();
    let out = ctl(
        &p,
        tls,
        &[
            "create-secondary",
            "--site-code",
            "S01",
            "--server",
            &s,
            "--wait",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m1_token = token(&["--member", "m1"]);
    let mut m1 = start("m1", &["--join-token", &m1_token]);
    let m = m1.addr().to_string();
    ctl_json(
        &p,
        tls,
        &[
            "set-site-control",
            "--site",
            "S01",
            "--polling-interval-ms",
            "300",
        ],
    );

    // The site server itself, then the site system (both changes from PRI).
    ctl_json(
        &p,
        tls,
        &["mp", "add", "--site", "S01", "--server", &s, "--port", "0"],
    );
    ctl_json(
        &p,
        tls,
        &["mp", "add", "--site", "S01", "--server", &m, "--port", "0"],
    );
    // Generous: on a loaded 2-core machine each install step may wait for
    // the disk; a timeout shows what the site saw.
    let active = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait("both management points active", 180, || {
            [&s, &m]
                .iter()
                .all(|srv| state(&s, tls, None, srv) == "active")
        })
    }));
    if let Err(e) = active {
        eprintln!("mp list at S01: {:?}", mps(&s, tls, None));
        let sitecomp = log(&d.join("s01"), "sitecomp");
        let tail: Vec<&str> = sitecomp.lines().rev().take(40).collect();
        eprintln!(
            "sitecomp.log (last lines, newest first):\n{}",
            tail.join("\n")
        );
        std::panic::resume_unwind(e);
    }
    let list = mps(&s, tls, None);
    assert_eq!(
        list.iter().filter(|x| x["default"] == true).count(),
        1,
        "one default: {list:?}"
    );
    assert_eq!(
        mp_of(&s, tls, None, &s).unwrap()["default"],
        true,
        "the first one is the default"
    );
    for srv in [&s, &m] {
        // 1013, 1014 and 1015 in that order at the site.
        let ids: Vec<u64> = messages_about(&s, tls, srv, &[1013, 1014, 1015])
            .iter()
            .map(|x| x.0)
            .collect();
        let pos = |id| {
            ids.iter()
                .position(|x| *x == id)
                .unwrap_or_else(|| panic!("{id} missing for {srv}: {ids:?}"))
        };
        assert!(
            pos(1013) < pos(1014) && pos(1014) < pos(1015),
            "{srv}: {ids:?}"
        );
        let mp = mp_of(&s, tls, None, srv).unwrap();
        let at = http_addr(&mp, srv);
        assert_eq!(
            http(&at, "/sms_mp/.sms_aut?mplist"),
            (200, vec![]),
            "mplist at {at}"
        );
        // The same port answers HTTPS with a certificate of the hierarchy.
        let creds = sms_connect::load_admin(&admin).unwrap();
        let tls_cfg = sms_connect::admin_tls(&creds).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let a = rt
            .block_on(sms_connect::http::get_tls(
                &at,
                "/sms_mp/.sms_aut?mplist",
                Duration::from_secs(10),
                tls_cfg,
            ))
            .unwrap_or_else(|e| panic!("HTTPS mplist at {at}: {e}"));
        assert_eq!((a.status, a.body.len()), (200, 0), "HTTPS mplist at {at}");
        let (code, hex) = http(&at, "/sms_mp/.sms_aut?mpcert");
        assert_eq!(code, 200);
        let der = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(std::str::from_utf8(&hex[i..i + 2]).unwrap(), 16).unwrap())
            .collect::<Vec<u8>>();
        let cert = sms_trust::Identity::from_der(&der).expect("mpcert is a certificate");
        let site_serial = ctl_json(&s, tls, &["certs"])["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["use"] == "node")
            .unwrap()["serial"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            cert.serial, site_serial,
            "mpcert is the site server's certificate"
        );
        // The troubleshooter passes every check; the policy is retrieved.
        let check = ctl_json(&s, tls, &["mp", "check", "--server", srv]);
        assert_eq!(check["failed"].as_array().unwrap().len(), 0, "{check}");
        let pol = ctl_json(&s, tls, &["mp", "get-policy", "--mp", &at]);
        assert!(
            pol["policies"][0]["body"]
                .as_str()
                .unwrap()
                .contains("<SiteAssignment site=\"S01\"/>"),
            "{pol}"
        );
    }
    // The setup log on the site system, the install log at the site server.
    let setup = log(&d.join("m1"), "mpsetup");
    assert!(setup.contains("Installation was successful."), "{setup}");
    let sitecomp = log(&d.join("s01"), "sitecomp");
    for l in [
        "flagged for installation",
        "is the best volume",
        "bytes are required for this component's files",
        "All files installed.",
        "access group",
        "Installation successful.",
    ] {
        assert!(sitecomp.contains(l), "sitecomp.log lacks {l:?}");
    }
    wait("a verification logged", 30, || {
        log(&d.join("s01"), "mpcontrol")
            .contains("Http verification .sms_aut succeeded with status code 200, OK")
    });
    // PRI's copy of S01's control (from its CT2) lists them too.
    wait("PRI's copy", 30, || {
        mps(&p, tls, Some("S01"))
            .iter()
            .filter(|x| x["state"] == "active")
            .count()
            == 2
    });

    // A client's status message through m1 reaches the central site.
    let m1_http = http_addr(&mp_of(&s, tls, None, &m).unwrap(), &m);
    ctl_json(
        &p,
        tls,
        &[
            "mp",
            "post-status",
            "--mp",
            &m1_http,
            "--client",
            "PC0001",
            "--id",
            "10005",
            "--text",
            "client agent installed",
        ],
    );
    wait("the client message at PRI", 30, || {
        ctl_json(&p, tls, &["status-messages", "--id", "10005"])["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["machine"] == "PC0001" && x["site_code"] == "S01")
    });

    // 1 000 clients register across both management points, with m1
    // restarted in the middle: 1 000 distinct SMS IDs; registering again
    // gives the same ID.
    let s_http = http_addr(&mp_of(&s, tls, None, &s).unwrap(), &s);
    let ids: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let register = |mp: String, from: usize, to: usize, ids: Arc<Mutex<Vec<(String, u64)>>>| {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for i in from..to {
                let hw = format!("HW-{i:05}");
                let body = serde_json::json!({"name": format!("PC{i:05}"), "hardware_id": hw})
                    .to_string()
                    .into_bytes();
                // A restarting management point refuses or drops: retry.
                let t0 = Instant::now();
                let id = loop {
                    match rt.block_on(sms_connect::http::post_json(
                        &mp,
                        "/ccm_system/request/register",
                        body.clone(),
                        Duration::from_secs(10),
                    )) {
                        Ok(a) if a.status == 200 => {
                            break serde_json::from_slice::<Value>(&a.body).unwrap()["sms_id"]
                                .as_u64()
                                .unwrap()
                        }
                        other => {
                            assert!(
                                t0.elapsed() < Duration::from_secs(60),
                                "{hw} never registered: {other:?}"
                            );
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                };
                ids.lock().unwrap().push((hw, id));
            }
        })
    };
    let a = register(s_http.clone(), 0, 500, ids.clone());
    let b = register(m1_http.clone(), 500, 750, ids.clone());
    b.join().unwrap();
    m1.kill9();
    m1.restart().expect("m1 restarts");
    let c = register(m1_http.clone(), 750, 1000, ids.clone());
    a.join().unwrap();
    c.join().unwrap();
    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids.len(), 1000);
    let distinct: HashSet<u64> = ids.iter().map(|x| x.1).collect();
    assert_eq!(distinct.len(), 1000, "an SMS ID was given twice");
    let again = ctl_json(
        &p,
        tls,
        &[
            "mp",
            "register",
            "--mp",
            &m1_http,
            "--name",
            "PC00007",
            "--hardware-id",
            "HW-00007",
        ],
    );
    assert_eq!(again["new"], false);
    assert_eq!(
        again["sms_id"].as_u64(),
        ids.iter().find(|x| x.0 == "HW-00007").map(|x| x.1)
    );

    // Removed: uninstalled, and its port is free again.
    let port = m1_http.rsplit_once(':').unwrap().1.parse::<u16>().unwrap();
    ctl_json(&p, tls, &["mp", "remove", "--site", "S01", "--server", &m]);
    wait("m1 uninstalled", 60, || mp_of(&s, tls, None, &m).is_none());
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} still held"
    );
    assert!(!messages_about(&s, tls, &m, &[1017]).is_empty(), "no 1017");
    let list = mps(&s, tls, None);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["default"], true);
}

/// A filesystem mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// A small tmpfs (root only).
    fn tmpfs(at: &Path) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=200m", "tmpfs"])
            .arg(at)
            .status()
            .ok()?
            .success();
        ok.then(|| Mount(at.to_path_buf()))
    }

    /// A 64 MB ext4 image mounted through a loop device (root only): a real
    /// filesystem that honours fsync, with about 51 MB free.
    fn small_ext4(at: &Path, image: &Path) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let run = |c: &mut Command| c.status().ok().is_some_and(|s| s.success());
        let ok = run(Command::new("truncate").args(["-s", "64M"]).arg(image))
            && run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image))
            && run(Command::new("mount")
                .args(["-o", "loop"])
                .arg(image)
                .arg(at));
        ok.then(|| Mount(at.to_path_buf()))
    }

    fn unmount(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = Command::new("umount").arg(&self.0).status();
            self.0 = PathBuf::new();
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.unmount();
    }
}

#[test]
fn each_failure_of_the_seed_is_reported_diagnosed_and_retried_until_it_installs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pri = NodeProc::start(&d.join("pri"), &["--install-primary", "PRI"]);
    let p = pri.addr.clone();
    pri.json(&[
        "set-site-control",
        "--site",
        "PRI",
        "--polling-interval-ms",
        "300",
    ]);
    let root = unsafe { libc::geteuid() } == 0;

    // A port held by another process (this test).
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let port_node = NodeProc::start(&d.join("port"), &[]);
    // The site database refuses management points (at the site server).
    pri.json(&["inject-fault", "mp-db-access-refused"]);
    let db_node = NodeProc::start(&d.join("db"), &[]);
    // A later version left on the server.
    let ver_node = NodeProc::start(&d.join("ver"), &[]);
    ver_node.json(&["inject-fault", "mp-later-version"]);
    // A tmpfs and a filesystem too small (both real mounts; root only).
    let mut tmpfs = if root {
        Mount::tmpfs(&d.join("tmpfs"))
    } else {
        None
    };
    let mut small = if root {
        Mount::small_ext4(&d.join("small"), &d.join("small.img"))
    } else {
        None
    };
    if !root || tmpfs.is_none() || small.is_none() {
        println!("SKIPPED: the tmpfs and small-filesystem cases need root and loop devices");
    }
    let fs_node = tmpfs
        .as_ref()
        .map(|m| NodeProc::start(&d.join("fsnode"), &["--mp-volumes", m.0.to_str().unwrap()]));
    let small_node = small.as_ref().map(|m| {
        NodeProc::start(
            &d.join("smallnode"),
            &["--mp-volumes", m.0.to_str().unwrap()],
        )
    });

    let held_s = held.to_string();
    pri.json(&[
        "mp",
        "add",
        "--site",
        "PRI",
        "--server",
        &port_node.addr,
        "--port",
        &held_s,
    ]);
    for n in [&db_node, &ver_node] {
        pri.json(&[
            "mp", "add", "--site", "PRI", "--server", &n.addr, "--port", "0",
        ]);
    }
    for n in [&fs_node, &small_node].into_iter().flatten() {
        pri.json(&[
            "mp", "add", "--site", "PRI", "--server", &n.addr, "--port", "0",
        ]);
    }
    // (server, message id, what the setup log or the site says, the node's data dir)
    let mut cases: Vec<(&NodeProc, u64, String)> = vec![
        (&port_node, 4952, format!("pid {}", std::process::id())),
        (&db_node, 5414, "refuses management points".into()),
        (&ver_node, 4953, "version 1.0.0 is already installed".into()),
    ];
    if let Some(n) = &fs_node {
        cases.push((n, 4950, "tmpfs".into()));
    }
    if let Some(n) = &small_node {
        cases.push((n, 4951, "a management point needs at least 70 MB".into()));
    }
    for (n, id, seen) in &cases {
        wait(&format!("message {id} for {}", n.addr), 60, || {
            messages_about(&p, None, &n.addr, &[*id])
                .iter()
                .any(|m| m.1.contains(seen.as_str()))
        });
        // Failed, or already retrying (every 300 ms here): never active.
        let st = state(&p, None, None, &n.addr);
        assert!(st == "failed" || st == "installing", "{}: {st}", n.addr);
        assert!(
            messages_about(&p, None, &n.addr, &[1015]).is_empty(),
            "{} installed anyway",
            n.addr
        );
        // diagnose names it with a fix.
        let diag = pri.json(&["diagnose", "--site", "PRI"]);
        let f = diag["management_points"].as_array().unwrap();
        assert!(
            f.iter()
                .any(|x| x["server"] == n.addr.as_str() && !x["fix"].as_str().unwrap().is_empty()),
            "{diag}"
        );
    }
    // The seed's symptoms in the logs: the setup log on the server names the check.
    assert!(log(&port_node.data, "mpsetup").contains("Error (port check)"));
    assert!(log(&ver_node.data, "mpsetup").contains("Error (version check)"));
    assert!(log(&db_node.data, "mpsetup").contains("Error (database check)"));
    assert!(
        !messages_about(&p, None, &db_node.addr, &[4908]).is_empty(),
        "no 4908 for {}",
        db_node.addr
    );
    // The troubleshooter sees the same before the install.
    let out = ctl(
        &p,
        None,
        &["mp", "check", "--server", &ver_node.addr, "--json"],
    );
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["failed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "version"),
        "{v}"
    );

    // Each cause cleared: the next retry installs.
    drop(holder);
    pri.json(&["clear-fault", "mp-db-access-refused"]);
    ver_node.json(&["clear-fault", "mp-later-version"]);
    if let Some(m) = tmpfs.as_mut() {
        m.unmount();
    }
    if let Some(m) = small.as_mut() {
        m.unmount();
    }
    for (n, _, _) in &cases {
        wait(&format!("{} installed after the fix", n.addr), 60, || {
            state(&p, None, None, &n.addr) == "active"
        });
        assert!(!messages_about(&p, None, &n.addr, &[1015]).is_empty());
    }
    let m = mp_of(&p, None, None, &port_node.addr).unwrap();
    assert_eq!(
        m["bound_port"].as_u64(),
        Some(held as u64),
        "installed on the port asked for"
    );

    // The agent stops: verification fails (5436, logged), then recovers (5437).
    port_node.json(&["inject-fault", "mp-agent-stopped"]);
    wait("the verification failure", 30, || {
        !messages_about(&p, None, &port_node.addr, &[5436]).is_empty()
    });
    assert!(log(&pri.data, "mpcontrol")
        .contains("Http verification .sms_aut failed with status code 503"));
    let diag = pri.json(&["diagnose", "--site", "PRI"]);
    assert!(
        diag["management_points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["fix"]
                .as_str()
                .unwrap()
                .contains("clear-fault mp-agent-stopped")),
        "{diag}"
    );
    port_node.json(&["clear-fault", "mp-agent-stopped"]);
    wait("the verification recovered", 30, || {
        !messages_about(&p, None, &port_node.addr, &[5437]).is_empty()
    });
}
