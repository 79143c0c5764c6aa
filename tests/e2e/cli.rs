//! The controller as a command line (issue 15, "a CLI that behaves"):
//! `version` with and without a node, completion scripts and man pages,
//! `--watch` bounded by `--count`, human durations and sizes, errors that
//! name the mistake once, and `controller up` stopping its nodes on
//! SIGTERM. Real processes on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{wait_for, NodeProc, CONTROLLER, SMS_NODE};

/// The controller with no node from the environment and plaintext.
fn ctl(args: &[&str]) -> Output {
    Command::new(CONTROLLER)
        .args(args)
        .env_remove("SMS_NODE")
        .env_remove("SMS_SITE")
        .env("SMS_INSECURE", "1")
        .output()
        .expect("run controller")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn version_names_the_commit_and_the_nodes_version_or_why_there_is_none() {
    // No node: still exit 0, and the JSON says why the node is null.
    let o = ctl(&["version", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["controller"]["commit"], sms_build_info::GIT_COMMIT, "{v}");
    assert_eq!(v["controller"]["version"], sms_build_info::VERSION, "{v}");
    assert!(v["node"].is_null(), "{v}");
    assert!(
        v["node_error"].as_str().unwrap().contains("no node given"),
        "{v}"
    );
    // An unreachable node: exit 0, one line saying so.
    let addr = format!("127.0.0.1:{}", closed_port());
    let o = ctl(&["--node", &addr, "version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with(&format!("controller {}", sms_build_info::LONG_VERSION)),
        "{text}"
    );
    assert!(
        text.contains("node: not reached (cannot reach node"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let pri = NodeProc::start(&dir.path().join("pri"), &["--install-primary", "PRI"]);
    let v = pri.json(&["version"]);
    assert_eq!(v["node"]["site_code"], "PRI", "{v}");
    assert_eq!(v["node"]["address"], pri.addr.as_str(), "{v}");
    assert!(v["node_error"].is_null(), "{v}");
    // The node's version is the one `sms-node --version` prints.
    let nv = Command::new(SMS_NODE).arg("--version").output().unwrap();
    let node_version = v["node"]["version"].as_str().unwrap();
    assert!(!node_version.is_empty());
    assert!(stdout(&nv).contains(node_version), "{}", stdout(&nv));
    let o = pri.ctl(&["version"]);
    assert!(
        stdout(&o).contains(&format!(
            "node {} (site PRI): sms-node {node_version}",
            pri.addr
        )),
        "{}",
        stdout(&o)
    );
}

#[test]
fn completions_and_man_pages_come_from_the_command_definition() {
    let o = ctl(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bash = stdout(&o);
    for word in [
        "sites",
        "status-messages",
        "set-site-control",
        "--polling-interval",
    ] {
        assert!(bash.contains(word), "{word} not in the bash completions");
    }
    let o = ctl(&["completions", "fish"]);
    assert!(
        stdout(&o).contains("complete -c controller"),
        "{}",
        stdout(&o)
    );
    let o = ctl(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("possible values: bash"),
        "{}",
        stderr(&o)
    );

    let o = ctl(&["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.contains(".TH controller 1"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let o = ctl(&["man", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "controller.1",
        "controller-sites.1",
        "controller-status-rules-add.1",
    ] {
        assert!(out.join(f).is_file(), "{f} not written: {}", stderr(&o));
    }
    // Rendered as a person reads it, where man is installed.
    let man = Command::new("man")
        .arg("-l")
        .arg(out.join("controller-sites.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output();
    match man {
        Ok(m) if m.status.success() => {
            let text = stdout(&m);
            assert!(text.contains("controller-sites"), "{text}");
            assert!(text.contains("--watch"), "{text}");
        }
        _ => {
            let roff = std::fs::read_to_string(out.join("controller-sites.1")).unwrap();
            assert!(roff.contains(".TH controller-sites 1"), "{roff}");
        }
    }
}

#[test]
fn watch_redraws_until_its_count_and_prints_a_json_line_per_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let pri = NodeProc::start(&dir.path().join("pri"), &["--install-primary", "PRI"]);
    let started = Instant::now();
    let o = pri.ctl(&["sites", "--watch", "500ms", "--count", "3", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["sites"][0]["site_code"], "PRI", "{v}");
    }
    // Three refreshes are two intervals apart at least.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let o = pri.ctl(&["status", "--watch", "1", "--count", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(
        text.matches("Every 1s: controller status").count(),
        2,
        "{text}"
    );
    assert_eq!(text.matches("is site PRI").count(), 2, "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "a pipe gets no screen clearing: {text:?}"
    );
    // The first refresh failing ends the watch with the reason.
    let addr = format!("127.0.0.1:{}", closed_port());
    let o = ctl(&["--node", &addr, "sites", "--watch", "1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot reach node"), "{}", stderr(&o));
}

#[test]
fn human_durations_and_sizes_work_and_a_bad_one_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let pri = NodeProc::start(&dir.path().join("pri"), &["--install-primary", "PRI"]);
    // A change is a CT1, applied by the site's next watchdog cycle: wait
    // for the site control to show it.
    let applied = |ms: u64| {
        wait_for(
            &format!("a polling interval of {ms} ms in the site control"),
            Duration::from_secs(30),
            || pri.json(&["site-control"])["polling_interval_ms"] == ms,
        )
    };
    pri.json(&["set-site-control", "--polling-interval", "7s"]);
    applied(7000);
    pri.json(&["set-site-control", "--polling-interval-ms", "6000"]);
    applied(6000);

    let o = pri.ctl(&["set-site-control", "--polling-interval", "7"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("\"7\" has no unit: write 7ms, 7s or 7m"),
        "{}",
        stderr(&o)
    );
    let o = pri.ctl(&["package", "send", "--to", "PRI", "--size", "10M"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown unit \"M\": use B, KiB, MiB, GiB, KB, MB or GB"),
        "{}",
        stderr(&o)
    );
    let o = pri.ctl(&[
        "set-site-control",
        "--polling-interval",
        "1s",
        "--polling-interval-ms",
        "1000",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

#[test]
fn errors_name_the_mistake_once_and_on_one_line() {
    let addr = format!("127.0.0.1:{}", closed_port());
    let o = ctl(&["--node", &addr, "sites"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("controller: cannot reach node {addr}")),
        "{err}"
    );
    assert_eq!(
        err.matches("Connection refused").count(),
        1,
        "said twice: {err}"
    );

    for (node, says) in [
        (
            "127.0.0.1",
            "has no port: give HOST:PORT, e.g. 127.0.0.1:8500",
        ),
        (
            "http://127.0.0.1:8500",
            "is a URL: give HOST:PORT without the http:// prefix (--node 127.0.0.1:8500)",
        ),
    ] {
        let o = ctl(&["--node", node, "status"]);
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{node}: {err}");
        // Refused before any connection was tried.
        assert!(!err.contains("cannot reach"), "{node}: {err}");
    }
    // The same address from the environment is checked the same way.
    let o = Command::new(CONTROLLER)
        .arg("status")
        .env("SMS_NODE", "localhost")
        .env("SMS_INSECURE", "1")
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("\"localhost\" has no port"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn up_stops_both_nodes_on_sigterm_and_hints_with_the_path_it_was_run_by() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Command::new(CONTROLLER)
        .args(["--insecure", "up", "--dir"])
        .arg(dir.path().join("up"))
        .arg("--sms-node")
        .arg(SMS_NODE)
        .env_remove("SMS_NODE")
        .env_remove("SMS_SITE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read its output until it waits for the signal (bounded).
    let (tx, rx) = std::sync::mpsc::channel();
    let out = up.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !lines.iter().any(|l: &String| l.starts_with("Press Ctrl-C")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let _ = up.kill();
                panic!("controller up did not get ready: {lines:?}");
            }
        }
    }
    let addr_of = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.rsplit(" on ").next())
            .unwrap_or_else(|| panic!("no {prefix:?} line in {lines:?}"))
            .to_string()
    };
    let primary = addr_of("central primary PRI");
    let secondary = addr_of("bare node for S01");
    // The hint runs this controller by the path it was started with.
    let hint = lines.iter().find(|l| l.contains(" sites; ")).unwrap();
    assert!(hint.trim_start().starts_with(CONTROLLER), "{hint}");
    assert!(crate::support::controller(&primary, &["status"])
        .status
        .success());

    let pid = up.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = up.kill();
            panic!("controller up did not stop within 40 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut up.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("SIGTERM: stopping both nodes"), "{err}");
    assert!(
        err.contains(&format!("stopped primary PRI ({primary})")),
        "{err}"
    );
    assert!(
        err.contains(&format!("stopped node for S01 ({secondary})")),
        "{err}"
    );
    for addr in [&primary, &secondary] {
        assert!(
            std::net::TcpStream::connect(addr.as_str()).is_err(),
            "{addr} still listens after SIGTERM"
        );
    }
}
