//! The end-to-end tests' view of the cluster runner (`sms-cluster`): nodes
//! run the real `sms-node` binary Cargo built for this test, and each node
//! can drive the real `controller` binary against itself.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sms_cluster::{Cluster, Node, StartError, Stopped};
pub use sms_types::catalog;

/// A message id as `--id` takes it, from the one catalogue the node uses.
pub fn id(def: &catalog::MessageDef) -> String {
    def.id.to_string()
}

pub const SMS_NODE: &str = env!("CARGO_BIN_EXE_sms-node");
pub const CONTROLLER: &str = env!("CARGO_BIN_EXE_controller");

/// Every test node: this build's `sms-node`, logging warnings and up.
fn cluster() -> Cluster {
    // These tests exercise the hierarchy's behaviour, not its trust, on
    // plaintext; the trust tests (trust.rs) run the nodes with TLS.
    Cluster::new(SMS_NODE)
        .env("RUST_LOG", "warn")
        .env("SMS_INSECURE", "1")
}

/// One `sms-node` process; panics on what a test cannot go on from.
/// `addr` and `data` are plain fields because the tests read them a lot.
pub struct NodeProc {
    node: Node,
    pub addr: String,
    pub data: PathBuf,
}

impl Deref for NodeProc {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl From<Node> for NodeProc {
    fn from(node: Node) -> NodeProc {
        NodeProc {
            addr: node.addr().to_string(),
            data: node.data().to_path_buf(),
            node,
        }
    }
}

/// Panics with the node's stderr when it could not start.
fn started<T>(r: Result<T, StartError>) -> T {
    r.unwrap_or_else(|e| match &e {
        StartError::Exited { stderr, .. } => panic!("{e}:\n{stderr}"),
        _ => panic!("{e}"),
    })
}

impl NodeProc {
    /// Starts a node on `127.0.0.1:0` with `extra` arguments and waits for
    /// the address it reports in its data dir.
    pub fn start(data: &Path, extra: &[&str]) -> NodeProc {
        started(cluster().start(data, extra)).into()
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        self.node.kill9();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        match self.node.stop(Duration::from_secs(15)) {
            Stopped::Exited(status) => {
                assert!(status.success(), "sms-node exited with {status} on SIGTERM")
            }
            Stopped::Killed => panic!("sms-node did not stop within 15 s of SIGTERM"),
            Stopped::NotRunning => {}
        }
    }

    /// Starts the node again on the same port with the same arguments.
    pub fn restart(&mut self) {
        started(self.node.restart());
        self.addr = self.node.addr().to_string();
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

    /// Panics unless all four install phase reports of `site` are stored
    /// here within 30 s. Reports travel up on their own (the Status
    /// Manager's batches), independently of the CT2 that makes the site
    /// Active, so they may arrive a moment after it.
    pub fn assert_phase_reports(&self, site: &str) {
        let t0 = Instant::now();
        loop {
            let ids = self.message_ids(&["--site", site]);
            let missing: Vec<u64> = [3300, 3301, 3302, 3303]
                .into_iter()
                .filter(|id| !ids.contains(id))
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "phase reports {missing:?} of {site} missing after 30 s: {ids:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn controller(node: &str, args: &[&str]) -> Output {
    Command::new(CONTROLLER)
        .arg("--node")
        .arg(node)
        .args(args)
        .env_remove("SMS_NODE")
        .env("SMS_INSECURE", "1")
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
        let poll = Duration::from_millis(25);
        let codes = [site];
        let waited = sms_cluster::wait_active(&self.parent.addr, &codes, poll, timeout);
        if let Err(e) = sms_cluster::block_on(waited) {
            self.dump();
            panic!("waiting for {site} to be Active at the parent: {e:#}");
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
    let t = sms_cluster::block_on(cluster().three_tiers(dir)).unwrap_or_else(|e| panic!("{e:#}"));
    (t.pri.into(), t.p01.into(), t.s01.into())
}
