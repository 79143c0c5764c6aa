//! The hierarchy with TLS on, as an operator runs it: real `sms-node` and
//! `controller` processes, certificates bought with join tokens, and every
//! refusal an attacker on the network meets, each with a clear error and
//! nothing changed.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sms_cluster::{Cluster, Node, StartError};

use crate::support::{CONTROLLER, SMS_NODE};

/// Nodes with TLS: no SMS_INSECURE anywhere.
fn cluster() -> Cluster {
    Cluster::new(SMS_NODE).env("RUST_LOG", "warn")
}

pub(crate) fn start(data: &Path, args: &[&str]) -> Node {
    cluster()
        .start(data, args)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `controller --node NODE --tls-dir TLS args...` (TLS: the
/// certificate directory; `None` for --insecure).
pub(crate) fn ctl(node: &str, tls: Option<&Path>, args: &[&str]) -> Output {
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

pub(crate) fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn refused(out: Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} should have been refused");
    String::from_utf8(out.stderr).unwrap()
}

pub(crate) fn json(node: &str, tls: &Path, args: &[&str]) -> Value {
    let out = ok(
        ctl(node, Some(tls), &[args, &["--json"]].concat()),
        &args.join(" "),
    );
    serde_json::from_str(&out).unwrap()
}

pub(crate) fn wait_active(node: &str, tls: &Path, code: &str) {
    let t0 = Instant::now();
    loop {
        let v = json(node, tls, &["sites"]);
        let active = v["sites"].as_array().is_some_and(|s| {
            s.iter()
                .any(|x| x["site_code"] == code && x["status"] == "Active")
        });
        if active {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{code} not Active: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_err(data: &Path, args: &[&str]) -> String {
    match cluster().start(data, args) {
        Err(StartError::Exited { stderr, .. }) => stderr,
        Err(e) => panic!("expected the node to exit with an error, got {e}"),
        Ok(_) => panic!("the node started, but it should have refused"),
    }
}

#[test]
fn a_secure_hierarchy_joins_with_tokens_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pri = start(&d.join("pri"), &["--install-primary", "PRI"]);
    let admin = d.join("pri").join("admin");
    let p = pri.addr();

    // A bare node with no token is refused at start, with the fix.
    let err = start_err(&d.join("lost"), &[]);
    assert!(err.contains("--join-token"), "{err}");

    // A token for S01; the node joins with it; PRI installs S01 over TLS.
    let token = ok(
        ctl(p, Some(&admin), &["token", "create", "--site", "S01"]),
        "token create",
    );
    let token = token.trim().to_string();
    let s01 = start(&d.join("s01"), &["--join-token", &token]);
    ok(
        ctl(
            p,
            Some(&admin),
            &[
                "create-secondary",
                "--site-code",
                "S01",
                "--server",
                s01.addr(),
            ],
        ),
        "create-secondary",
    );
    wait_active(p, &admin, "S01");
    ok(
        ctl(
            p,
            Some(&admin),
            &["probe", "send", "--to", "S01", "--count", "20"],
        ),
        "probes",
    );

    // The same token again: used.
    let err = start_err(&d.join("again"), &["--join-token", &token]);
    assert!(err.contains("already used"), "{err}");

    // A token whose CA fingerprint is not PRI's root: the node refuses PRI.
    let other = ok(
        ctl(p, Some(&admin), &["token", "create", "--site", "S02"]),
        "token",
    );
    let mut forged = sms_trust::JoinToken::decode(other.trim()).unwrap();
    forged.ca_fingerprint = [7; 32];
    let err = start_err(&d.join("fooled"), &["--join-token", &forged.encode()]);
    assert!(err.contains("does not end in the hierarchy root"), "{err}");

    // Plaintext is refused, and says why.
    let err = refused(ctl(p, None, &["sites"]), "plaintext sites");
    assert!(err.contains("uses TLS"), "{err}");

    // Another hierarchy's administrator is refused.
    let _oth = start(&d.join("oth"), &["--install-primary", "PRI"]);
    refused(
        ctl(p, Some(&d.join("oth").join("admin")), &["sites"]),
        "foreign admin",
    );

    // Roles: read-only reads, cannot delete; operator severs, cannot delete.
    let ro = d.join("ro");
    issue_admin(p, &admin, "rita", "read-only", &ro);
    ok(ctl(p, Some(&ro), &["sites"]), "read-only sites");
    let err = refused(
        ctl(p, Some(&ro), &["delete-site", "--site", "S01"]),
        "read-only delete",
    );
    assert!(err.contains("needs full"), "{err}");
    let op = d.join("op");
    issue_admin(p, &admin, "otto", "operator", &op);
    ok(
        ctl(p, Some(&op), &["sever-link", "--to", "S01"]),
        "operator sever",
    );
    ok(
        ctl(p, Some(&op), &["restore-link", "--to", "S01"]),
        "operator restore",
    );
    let err = refused(
        ctl(
            p,
            Some(&op),
            &["set-site-control", "--polling-interval-ms", "5000"],
        ),
        "operator site control",
    );
    assert!(err.contains("needs full"), "{err}");
    wait_active(p, &admin, "S01");

    // What the node holds, and the audit trail naming who did what.
    let certs = json(p, &admin, &["certs"]);
    assert_eq!(certs["tls"], true);
    assert!(
        certs["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["use"] == "node" && c["role"] == "primary"),
        "{certs}"
    );
    assert!(
        certs["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["label"] == "S01" && !t["used_unix"].is_null()),
        "{certs}"
    );
    let msgs = json(p, &admin, &["status-messages", "--id", "4800"]);
    let texts: Vec<String> = msgs["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("otto (admin-operator) ran sever-link")),
        "{texts:#?}"
    );
    drop(s01);
}

/// PRI issuing certificates that last `lifetime`, with its admin dir.
fn pri_lasting(d: &Path, lifetime: &str) -> (Node, std::path::PathBuf) {
    let pri = start(
        &d.join("pri"),
        &["--install-primary", "PRI", "--cert-lifetime", lifetime],
    );
    (pri, d.join("pri").join("admin"))
}

/// Below the central site PRI at `pri`: child primary P01 (its data in
/// `d/p01`) and its secondary S11 (`d/s11`), both Active, joined with
/// tokens made with the administrator certificate in `admin`.
pub(crate) fn p01_and_s11(d: &Path, pri: &str, admin: &Path) -> (Node, Node) {
    let token = token_at(pri, admin, &["--site", "P01", "--role", "primary"]);
    let p01 = start(
        &d.join("p01"),
        &[
            "--install-primary",
            "P01",
            "--parent-site",
            "PRI",
            "--parent",
            pri,
            "--join-token",
            &token,
        ],
    );
    wait_active(pri, admin, "P01");
    let token = token_at(p01.addr(), admin, &["--site", "S11"]);
    let s11 = start(&d.join("s11"), &["--join-token", &token]);
    create_secondary(p01.addr(), admin, "S11", s11.addr());
    wait_active(p01.addr(), admin, "S11");
    (p01, s11)
}

/// Issues an administrator certificate named `name` with `role` at
/// `node` into directory `out`; what `admin issue --json` printed.
pub(crate) fn issue_admin(node: &str, admin: &Path, name: &str, role: &str, out: &Path) -> Value {
    json(
        node,
        admin,
        &[
            "admin",
            "issue",
            "--name",
            name,
            "--role",
            role,
            "--out",
            out.to_str().unwrap(),
        ],
    )
}

/// A join token made at `node` for `args` (`--site C [--role R]`).
pub(crate) fn token_at(node: &str, admin: &Path, args: &[&str]) -> String {
    ok(
        ctl(node, Some(admin), &[&["token", "create"], args].concat()),
        "token create",
    )
    .trim()
    .to_string()
}

/// `create-secondary` of `code` on `server`, run at `parent`.
pub(crate) fn create_secondary(parent: &str, admin: &Path, code: &str, server: &str) {
    ok(
        ctl(
            parent,
            Some(admin),
            &["create-secondary", "--site-code", code, "--server", server],
        ),
        "create-secondary",
    );
}

/// Sends `n` probes from `node` to site `to`.
fn send_probes(node: &str, admin: &Path, to: &str, n: u32) {
    ok(
        ctl(
            node,
            Some(admin),
            &["probe", "send", "--to", to, "--count", &n.to_string()],
        ),
        "probe send",
    );
}

/// Probes `node` has received.
fn probes_at(node: &str, admin: &Path) -> u64 {
    json(node, admin, &["probe", "received", "--summary"])["count"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until each (node, probes it must hold) holds them, then checks
/// none holds more (nothing delivered twice).
fn wait_probes_exactly(admin: &Path, want: &[(&str, u64)]) {
    let t0 = Instant::now();
    while want.iter().any(|(n, w)| probes_at(n, admin) < *w) {
        let have: Vec<u64> = want.iter().map(|(n, _)| probes_at(n, admin)).collect();
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "probes missing: have {have:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (n, w) in want {
        assert_eq!(probes_at(n, admin), *w, "{n}: each probe once");
    }
}

/// The serial of the certificate a node uses now (`controller certs`).
fn node_serial(node: &str, tls: &Path) -> String {
    let v = json(node, tls, &["certs"]);
    v["certificates"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["use"] == "node"))
        .and_then(|c| c["serial"].as_str())
        .unwrap_or_else(|| panic!("no node certificate in {v}"))
        .to_string()
}

/// Waits for `node`'s own certificate to differ from `was`.
fn wait_renewed(node: &str, tls: &Path, was: &str, within: Duration) -> String {
    let t0 = Instant::now();
    loop {
        if let Ok(v) = std::panic::catch_unwind(|| node_serial(node, tls)) {
            if v != was {
                return v;
            }
        }
        assert!(t0.elapsed() < within, "{node} kept certificate {was}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Renewal across processes, and a node stopped in the middle of one: PRI
/// issues certificates that last 40 s; S01 is told to crash between its
/// parent's answer and storing it (`inject-fault renewal-crash`), is
/// restarted, and renews again; probes sent both ways throughout all
/// arrive once.
#[test]
fn a_node_stopped_in_the_middle_of_a_renewal_renews_again_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pri, admin) = pri_lasting(d, "40s");
    let p = pri.addr().to_string();
    let token = token_at(&p, &admin, &["--site", "S01"]);
    let mut s01 = start(&d.join("s01"), &["--join-token", &token]);
    let s = s01.addr().to_string();
    create_secondary(&p, &admin, "S01", &s);
    wait_active(&p, &admin, "S01");
    let first = node_serial(&s, &admin);
    ok(
        ctl(&s, Some(&admin), &["inject-fault", "renewal-crash"]),
        "inject-fault",
    );
    let probes = |node: &str, to: &str| send_probes(node, &admin, to, 10);
    // Traffic until S01 stops itself at its renewal (about 27 s in).
    let (mut down, mut up) = (0u64, 0u64);
    let t0 = Instant::now();
    // The send at S01 that fails when it stops is unacknowledged: S01 may
    // have queued those probes durably just before it stopped, or not.
    let unacknowledged = 10u64;
    loop {
        assert!(t0.elapsed() < Duration::from_secs(90), "S01 never renewed");
        probes(&p, "S01");
        down += 10;
        let sent = ctl(
            &s,
            Some(&admin),
            &["probe", "send", "--to", "PRI", "--count", "10"],
        );
        if !sent.status.success() {
            break;
        }
        up += 10;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        s01.stderr_log().contains("renewal-crash") || s01.log("node").contains("renewal-crash"),
        "S01 stopped, but not at the injected renewal crash"
    );
    s01.kill9();
    s01.restart().unwrap_or_else(|e| panic!("{e}"));
    // The fault cleared itself, and the node renews again (at once: its
    // certificate is due).
    let renewed = wait_renewed(&s, &admin, &first, Duration::from_secs(60));
    // PRI issued twice for the same old certificate: the first answer was
    // lost in the crash and never used; the node runs on the second.
    let issued: Vec<String> = pri
        .log("node")
        .lines()
        .filter(|l| l.contains(&format!("renewal of certificate {first}")))
        .filter_map(|l| l.split("serial=").nth(1))
        .map(|x| x.split_whitespace().next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(issued.len(), 2, "PRI's renewals of {first}: {issued:?}");
    assert_eq!(
        renewed, issued[1],
        "the node uses the certificate it stored"
    );
    assert_ne!(
        renewed, issued[0],
        "the answer lost in the crash is never used"
    );
    probes(&p, "S01");
    probes(&s, "PRI");
    (down, up) = (down + 10, up + 10);
    // Every probe once: counted at each end.
    wait_probes_exactly(&admin, &[(&s, down)]);
    let t0 = Instant::now();
    while probes_at(&p, &admin) < up {
        assert!(t0.elapsed() < Duration::from_secs(60), "PRI misses probes");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every acknowledged probe once; the unacknowledged batch all or not.
    let at_pri = probes_at(&p, &admin);
    assert!(
        at_pri == up || at_pri == up + unacknowledged,
        "PRI holds {at_pri} probes; {up} acknowledged, {unacknowledged} unacknowledged"
    );
}

/// The serial of one of a node's certificates by its use (`node`, `ca`).
fn serial_of(node: &str, tls: &Path, use_: &str) -> Option<String> {
    let v = json(node, tls, &["certs"]);
    v["certificates"]
        .as_array()?
        .iter()
        .find(|c| c["use"] == use_)?["serial"]
        .as_str()
        .map(String::from)
}

/// Three tiers under a root that issues 40 s certificates: the child
/// primary renews its authority from PRI (same key, so what it issued
/// stays valid) and its own certificate from that authority; the secondary
/// below it renews from it; probes from PRI to the grandchild keep arriving
/// throughout, each once.
#[test]
fn a_child_primary_renews_its_authority_and_the_tier_below_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pri, admin) = pri_lasting(d, "40s");
    let p = pri.addr().to_string();
    let (p01, s11) = p01_and_s11(d, &p, &admin);
    let m = p01.addr().to_string();
    let s = s11.addr().to_string();
    let ca_was = serial_of(&m, &admin, "ca").expect("P01 holds an authority");
    let s11_was = serial_of(&s, &admin, "node").unwrap();
    let mut sent = 0u64;
    let t0 = Instant::now();
    loop {
        let ca_now = serial_of(&m, &admin, "ca");
        let s11_now = serial_of(&s, &admin, "node");
        if ca_now.is_some_and(|c| c != ca_was) && s11_now.is_some_and(|c| c != s11_was) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "P01's authority or S11's certificate was not renewed"
        );
        send_probes(&p, &admin, "S11", 10);
        sent += 10;
        std::thread::sleep(Duration::from_millis(500));
    }
    // New connections after the renewals: sever and restore both links.
    for (node, to) in [(&p, "P01"), (&m, "S11")] {
        ok(
            ctl(node, Some(&admin), &["sever-link", "--to", to]),
            "sever",
        );
        ok(
            ctl(node, Some(&admin), &["restore-link", "--to", to]),
            "restore",
        );
    }
    send_probes(&p, &admin, "S11", 10);
    sent += 10;
    wait_probes_exactly(&admin, &[(&s, sent)]);
}

/// SMS 2003's missing public key, on demand: a secondary whose certificate
/// exchange fails installs but stays Pending (its reports are refused at
/// its parent, and its sender keeps retrying); `diagnose` names the cause
/// and the fix; once the fault is cleared the site reports and is Active.
#[test]
fn a_secondary_whose_certificate_exchange_fails_stays_pending_and_is_diagnosed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pri, admin) = pri_lasting(d, "397d");
    let p = pri.addr().to_string();
    let token = token_at(&p, &admin, &["--site", "S02"]);
    let s02 = start(&d.join("s02"), &["--join-token", &token]);
    let s = s02.addr().to_string();
    ok(
        ctl(&s, Some(&admin), &["inject-fault", "cert-exchange-failure"]),
        "inject-fault",
    );
    create_secondary(&p, &admin, "S02", &s);
    // Installed on its server, but its reports never reach PRI.
    let t0 = Instant::now();
    loop {
        let st = json(&s, &admin, &["status"]);
        if st["site_code"] == "S02" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "S02 never installed: {st}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its reports are refused at the handshake: wait until its link to PRI
    // says so, then PRI must still have it Pending.
    let t0 = Instant::now();
    loop {
        let st = json(&s, &admin, &["status"]);
        let refused = st["links"].as_array().is_some_and(|l| {
            l.iter().any(|x| {
                x["to"] == "PRI"
                    && x["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("cert-exchange-failure"))
            })
        });
        if refused {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no refused link: {st}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = |v: Value| {
        v["sites"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["site_code"] == "S02").cloned())
            .map(|x| x["status"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(
        status(json(&p, &admin, &["sites"])).as_deref(),
        Some("Pending")
    );
    let v = json(&p, &admin, &["diagnose", "--site", "S02"]);
    let cause = v["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("certificate exchange failed"), "{v}");
    assert!(
        v["fix"]
            .to_string()
            .contains("clear-fault cert-exchange-failure"),
        "{v}"
    );
    ok(
        ctl(&s, Some(&admin), &["clear-fault", "cert-exchange-failure"]),
        "clear-fault",
    );
    wait_active(&p, &admin, "S02");
}

/// A member server (no parent link of its own) renews where its join token
/// came from: the address it joined through.
#[test]
fn a_member_server_renews_its_certificate_at_the_site_that_issued_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pri, admin) = pri_lasting(d, "40s");
    let p = pri.addr().to_string();
    let token = token_at(&p, &admin, &["--member", "m1"]);
    let m1 = start(&d.join("m1"), &["--join-token", &token, "--domain", "CORP"]);
    let m = m1.addr().to_string();
    let first = node_serial(&m, &admin);
    let renewed = wait_renewed(&m, &admin, &first, Duration::from_secs(60));
    assert_ne!(renewed, first);
    // Renewed as what it was: a member server.
    let v = json(&m, &admin, &["certs"]);
    let node = v["certificates"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["use"] == "node").cloned())
        .unwrap();
    assert_eq!(node["role"], "member", "{v}");
}
