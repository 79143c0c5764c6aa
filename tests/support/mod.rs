//! A local cluster runner for end-to-end tests: spawns the real `sms-node`
//! and `controller` binaries on loopback, each node with its own temp data
//! dir and an OS-chosen port. Nodes are killed when dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const SMS_NODE: &str = env!("CARGO_BIN_EXE_sms-node");
pub const CONTROLLER: &str = env!("CARGO_BIN_EXE_controller");

/// One `sms-node` process.
pub struct NodeProc {
    child: Option<Child>,
    pub addr: String,
    pub data: PathBuf,
    args: Vec<String>,
}

impl NodeProc {
    /// Starts a node on `127.0.0.1:0` with `extra` arguments and waits for
    /// the address it reports in its data dir.
    pub fn start(data: &Path, extra: &[&str]) -> NodeProc {
        let mut n = NodeProc {
            child: None,
            addr: String::new(),
            data: data.to_path_buf(),
            args: extra.iter().map(|s| s.to_string()).collect(),
        };
        n.launch("127.0.0.1:0");
        n
    }

    fn launch(&mut self, listen: &str) {
        std::fs::create_dir_all(&self.data).unwrap();
        let addr_file = self.data.join("node.addr");
        let _ = std::fs::remove_file(&addr_file);
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join("stderr.log"))
            .unwrap();
        let child = Command::new(SMS_NODE)
            .arg("--data")
            .arg(&self.data)
            .arg("--listen")
            .arg(listen)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn sms-node");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = std::fs::read_to_string(&addr_file) {
                if s.ends_with('\n') {
                    self.addr = s.trim().to_string();
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.data.join("stderr.log")).unwrap_or_default();
                panic!("sms-node exited with {status} at start:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "sms-node did not report its address"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Some(status) = c.try_wait().unwrap() {
                    assert!(status.success(), "sms-node exited with {status} on SIGTERM");
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    panic!("sms-node did not stop within 15 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Starts the node again on the same port with the same arguments.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the node first");
        let listen = format!("127.0.0.1:{}", self.port());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The port may take a moment to be free after a kill.
            let free = std::net::TcpListener::bind(&listen).is_ok();
            if free || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.launch(&listen);
    }

    /// Runs a controller command against this node; returns the output.
    pub fn ctl(&self, args: &[&str]) -> Output {
        controller(&self.addr, args)
    }

    /// Runs a controller command with `--json`; panics unless it succeeds.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ctl(&[args, &["--json"]].concat());
        assert!(
            out.status.success(),
            "controller {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "controller {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs a controller command that must fail; returns its one-line reason.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            !out.status.success(),
            "controller {args:?} should have failed but printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(err.starts_with("controller: "), "no clear reason: {err}");
        assert_eq!(err.lines().count(), 1, "reason is not one line: {err}");
        err
    }

    /// Status of `site` in this primary's site list, if listed.
    pub fn site_status(&self, site: &str) -> Option<String> {
        let v = self.json(&["sites"]);
        v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["site_code"] == site)
            .map(|s| s["status"].as_str().unwrap().to_string())
    }

    /// Queues `count` probe jobs for site `to` at `priority`; returns their ids.
    pub fn send_probes(&self, to: &str, count: u32, priority: &str) -> Vec<String> {
        let v = self.json(&[
            "probe",
            "send",
            "--to",
            to,
            "--count",
            &count.to_string(),
            "--bytes",
            "64",
            "--priority",
            priority,
        ]);
        v["job_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    }

    /// The node's bootstrap log, read over gRPC.
    pub fn bootstrap_log(&self) -> Vec<String> {
        let v = self.json(&["bootstrap-log"]);
        v["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    }

    /// Ids of the status messages `args` selects (e.g. `["--site", "S01"]`).
    pub fn message_ids(&self, args: &[&str]) -> Vec<u64> {
        let v = self.json(&[&["status-messages"], args].concat());
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    }

    /// Panics unless all four install phase reports of `site` are stored here.
    pub fn assert_phase_reports(&self, site: &str) {
        let ids = self.message_ids(&["--site", site]);
        for id in [3300, 3301, 3302, 3303] {
            assert!(
                ids.contains(&id),
                "phase report {id} of {site} missing: {ids:?}"
            );
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn controller(node: &str, args: &[&str]) -> Output {
    Command::new(CONTROLLER)
        .arg("--node")
        .arg(node)
        .args(args)
        .env_remove("SMS_NODE")
        .output()
        .expect("run controller")
}

/// Polls `cond` until it holds; panics with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A central primary PRI and one bare node, each in its own temp dir.
pub struct Pair {
    pub dir: tempfile::TempDir,
    pub parent: NodeProc,
    pub child: NodeProc,
}

impl Pair {
    pub fn start() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let parent = NodeProc::start(&dir.path().join("pri"), &["--install-primary", "PRI"]);
        let child = NodeProc::start(&dir.path().join("s01"), &[]);
        Pair { dir, parent, child }
    }

    /// Creates S01 on the bare node and waits until the parent shows it Active.
    pub fn create_s01(&self) {
        let v = self.parent.json(&[
            "create-secondary",
            "--site-code",
            "S01",
            "--server",
            &self.child.addr,
            "--wait",
        ]);
        assert_eq!(v["site_code"], "S01");
        assert_eq!(v["status"], "Active");
    }

    /// Waits for `site` to be Active at the parent; on timeout, prints
    /// both nodes' state and log tails before failing.
    pub fn wait_active(&self, site: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.parent.site_status(site).as_deref() != Some("Active") {
            if Instant::now() > deadline {
                self.dump();
                panic!("timed out after {timeout:?} waiting for {site} to be Active");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Everything an engineer wants to see when a test times out.
    pub fn dump(&self) {
        for (who, n) in [("parent", &self.parent), ("child", &self.child)] {
            eprintln!(
                "===== {who} {} status:\n{}",
                n.addr,
                String::from_utf8_lossy(&n.ctl(&["status", "--json"]).stdout)
            );
            for log in [
                "sender",
                "despool",
                "hman",
                "bootstrap",
                "sitectrl",
                "statmgr",
            ] {
                let text = n.log(log);
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(15)..];
                eprintln!(
                    "----- {who} {log}.log (last {} lines)\n{}",
                    tail.len(),
                    tail.join("\n")
                );
            }
        }
        eprintln!(
            "===== parent sites:\n{}",
            String::from_utf8_lossy(&self.parent.ctl(&["sites"]).stdout)
        );
    }
}

/// PRI, P01 attached below it, S01 created below P01; S01 Active at PRI.
pub fn three_tiers(dir: &Path) -> (NodeProc, NodeProc, NodeProc) {
    let pri = NodeProc::start(&dir.join("pri"), &["--install-primary", "PRI"]);
    let p01 = NodeProc::start(
        &dir.join("p01"),
        &[
            "--install-primary",
            "P01",
            "--parent-site",
            "PRI",
            "--parent",
            &pri.addr,
        ],
    );
    let s01 = NodeProc::start(&dir.join("s01"), &[]);
    let v = p01.json(&[
        "create-secondary",
        "--site-code",
        "S01",
        "--server",
        &s01.addr,
        "--wait",
    ]);
    assert_eq!(v["status"], "Active");
    wait_for("S01 Active at PRI", Duration::from_secs(30), || {
        pri.site_status("S01").as_deref() == Some("Active")
    });
    (pri, p01, s01)
}
