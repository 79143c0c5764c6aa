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

fn start(data: &Path, args: &[&str]) -> Node {
    cluster()
        .start(data, args)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `controller --node NODE --tls-dir TLS args...` (TLS: the
/// certificate directory; `None` for --insecure).
fn ctl(node: &str, tls: Option<&Path>, args: &[&str]) -> Output {
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

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(out: Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} should have been refused");
    String::from_utf8(out.stderr).unwrap()
}

fn json(node: &str, tls: &Path, args: &[&str]) -> Value {
    let out = ok(
        ctl(node, Some(tls), &[args, &["--json"]].concat()),
        &args.join(" "),
    );
    serde_json::from_str(&out).unwrap()
}

fn wait_active(node: &str, tls: &Path, code: &str) {
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
    ok(
        ctl(
            p,
            Some(&admin),
            &[
                "admin",
                "issue",
                "--name",
                "rita",
                "--role",
                "read-only",
                "--out",
                ro.to_str().unwrap(),
            ],
        ),
        "admin issue",
    );
    ok(ctl(p, Some(&ro), &["sites"]), "read-only sites");
    let err = refused(
        ctl(p, Some(&ro), &["delete-site", "--site", "S01"]),
        "read-only delete",
    );
    assert!(err.contains("needs full"), "{err}");
    let op = d.join("op");
    ok(
        ctl(
            p,
            Some(&admin),
            &[
                "admin",
                "issue",
                "--name",
                "otto",
                "--role",
                "operator",
                "--out",
                op.to_str().unwrap(),
            ],
        ),
        "admin issue",
    );
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
