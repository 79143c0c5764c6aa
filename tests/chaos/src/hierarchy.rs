//! The hierarchy under test: six real `sms-node` processes started through
//! the cluster runner, and what the chaos does to them (kill -9, restart,
//! SIGSTOP/SIGCONT). Process control is blocking, so it runs in
//! `block_in_place` to leave the runtime's other tasks (gRPC connections)
//! running.

use std::path::Path;
use std::time::Duration;

use sms_cluster::{Admin, Cluster, Node, StartError, Stopped};
use sms_proto::v1 as pb;
use tonic::transport::Endpoint;

/// Every node: the five sites, then the member server.
pub const NAMES: [&str; 6] = ["PRI", "P01", "S01", "S11", "S12", "M1"];
pub const PRI: usize = 0;
pub const P01: usize = 1;
/// The site nodes are `0..SITES`.
pub const SITES: usize = 5;
/// A member server of domain CORP, the logon server of S12.
pub const M1: usize = 5;
/// The site whose logon server M1 is.
pub const LOGON_SITE: usize = 4;
/// Parent -> child, one entry per link.
pub const LINKS: [(usize, usize); 4] = [(0, 1), (0, 2), (1, 3), (1, 4)];

/// Every admin call gives up after this: a frozen or dying node must not
/// hang the test, and a call that times out simply counts as not
/// acknowledged.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// The parent site of site `i` (None for PRI and M1).
pub fn parent(i: usize) -> Option<usize> {
    match i {
        1 | 2 => Some(PRI),
        3 | 4 => Some(P01),
        _ => None,
    }
}

/// Site `i` and its ancestors, nearest first.
pub fn tiers(i: usize) -> Vec<usize> {
    let mut out = vec![i];
    while let Some(p) = parent(*out.last().expect("not empty")) {
        out.push(p);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Up,
    /// Killed with `kill -9`, not restarted yet.
    Down,
    /// SIGSTOP, no SIGCONT yet.
    Frozen,
}

pub struct Member {
    pub name: &'static str,
    pub node: Node,
    pub admin: Admin,
    pub run: Run,
}

pub struct Hierarchy {
    pub nodes: Vec<Member>,
}

/// An admin client that connects on first use and reconnects after the
/// node restarts (same port), so one client serves a node for the whole run.
fn lazy_admin(addr: &str) -> Admin {
    let ch = Endpoint::from_shared(format!("http://{addr}"))
        .expect("a loopback address")
        .connect_timeout(Duration::from_secs(1))
        .timeout(RPC_TIMEOUT)
        .connect_lazy();
    Admin::new(ch).max_decoding_message_size(256 * 1024 * 1024)
}

fn started(r: Result<Node, StartError>) -> Result<Node, String> {
    r.map_err(|e| match &e {
        StartError::Exited { stderr, .. } => format!("{e}:\n{stderr}"),
        _ => e.to_string(),
    })
}

impl Hierarchy {
    /// PRI; P01 attached below it; S01 under PRI, S11 and S12 under P01; M1
    /// a member server of CORP that becomes S12's logon server. Returns once
    /// PRI sees every site Active and M1 is installed.
    pub async fn build(cluster: &Cluster, dir: &Path) -> Result<Hierarchy, String> {
        let start = |name: &str, args: &[&str]| started(cluster.start(&dir.join(name), args));
        let pri = start("pri", &["--install-primary", "PRI"])?;
        let p01 = start(
            "p01",
            &[
                "--install-primary",
                "P01",
                "--parent-site",
                "PRI",
                "--parent",
                pri.addr(),
            ],
        )?;
        let s01 = start("s01", &[])?;
        let s11 = start("s11", &[])?;
        let s12 = start("s12", &[])?;
        let m1 = start("m1", &["--domain", "CORP"])?;
        let poll = Duration::from_millis(50);
        let limit = Duration::from_secs(120);
        for (parent, code, child) in [
            (&pri, "S01", &s01),
            (&p01, "S11", &s11),
            (&p01, "S12", &s12),
        ] {
            sms_cluster::create_secondary(parent.addr(), code, child.addr(), poll, limit)
                .await
                .map_err(|e| format!("creating {code}: {e:#}"))?;
        }
        sms_cluster::wait_active(pri.addr(), &["P01", "S01", "S11", "S12"], poll, limit)
            .await
            .map_err(|e| format!("the tree at PRI: {e:#}"))?;
        let nodes: Vec<Member> = [pri, p01, s01, s11, s12, m1]
            .into_iter()
            .zip(NAMES)
            .map(|(node, name)| Member {
                name,
                admin: lazy_admin(node.addr()),
                node,
                run: Run::Up,
            })
            .collect();
        let mut h = Hierarchy { nodes };
        h.install_logon_server().await?;
        Ok(h)
    }

    /// Adds domain CORP (browse: M1) to S12 with a short watchdog cycle, and
    /// waits until M1 is S12's logon server.
    async fn install_logon_server(&mut self) -> Result<(), String> {
        let m1 = self.nodes[M1].node.addr().to_string();
        let site = NAMES[LOGON_SITE].to_string();
        self.nodes[P01]
            .admin
            .clone()
            .change_site_control(pb::ChangeSiteControlRequest {
                site,
                polling_interval_ms: Some(1_000),
                add_domain: Some(pb::Domain {
                    name: "CORP".into(),
                    browse: vec![m1],
                    logon_servers: vec![],
                }),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("adding domain CORP to S12: {e}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let st = self.nodes[M1]
                .admin
                .clone()
                .get_status(pb::GetStatusRequest {})
                .await;
            if let Ok(st) = st {
                if st.get_ref().role == "logon-server" {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err("M1 did not become S12's logon server within 90 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn admin(&self, i: usize) -> Admin {
        self.nodes[i].admin.clone()
    }

    pub fn up(&self, i: usize) -> bool {
        self.nodes[i].run == Run::Up
    }

    /// `kill -9`. A frozen node dies too (SIGKILL needs no SIGCONT).
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.nodes[i];
        tokio::task::block_in_place(|| m.node.kill9());
        m.run = Run::Down;
    }

    /// Starts a killed node again on its port, data dir and arguments.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        let m = &mut self.nodes[i];
        tokio::task::block_in_place(|| m.node.restart())
            .map_err(|e| format!("restarting {}: {e}", m.name))?;
        m.run = Run::Up;
        Ok(())
    }

    /// A clean restart: SIGTERM, wait for the exit, start again. Err when
    /// the node did not stop within 10 s (its grace is 5 s) or did not
    /// start again.
    pub fn stop_and_restart(&mut self, i: usize) -> Result<(), String> {
        let m = &mut self.nodes[i];
        let stopped = tokio::task::block_in_place(|| m.node.stop(Duration::from_secs(10)));
        m.run = Run::Down;
        let res = match stopped {
            Stopped::Exited(status) if status.success() => Ok(()),
            Stopped::Exited(status) => Err(format!("{} exited with {status} on SIGTERM", m.name)),
            Stopped::Killed => Err(format!(
                "{} did not stop within 10 s of SIGTERM and was killed",
                m.name
            )),
            Stopped::NotRunning => Err(format!("{} was not running", m.name)),
        };
        self.restart(i)?;
        res
    }

    pub fn freeze(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.nodes[i].run = Run::Frozen;
    }

    pub fn thaw(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.nodes[i].run = Run::Up;
    }

    fn signal(&self, i: usize, sig: libc::c_int) {
        if let Some(pid) = self.nodes[i].node.pid() {
            // SAFETY: kill(2) on the pid of our own child, not yet reaped
            // (the runner reaps only in kill9/stop), so it cannot be reused.
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
    }

    /// Whether a node we believe running has exited on its own (a crash):
    /// our unreaped child shows as a zombie.
    pub fn died_on_its_own(&self, i: usize) -> bool {
        let m = &self.nodes[i];
        if m.run == Run::Down {
            return false;
        }
        let Some(pid) = m.node.pid() else {
            return true;
        };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // "pid (comm) S ...": the state follows the last ')'.
            Ok(s) => s
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        }
    }

    /// Takes a node that died on its own back to Down so it can be restarted
    /// (reaps the zombie).
    pub fn reap(&mut self, i: usize) {
        self.kill(i);
    }

    /// The last `n` lines of each log that tells what a node's transport and
    /// site control were doing, and of its stderr.
    pub fn log_tails(&self, i: usize, n: usize) -> String {
        let m = &self.nodes[i];
        let mut out = String::new();
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        for log in ["sender", "despool", "sitectrl", "hman", "statmgr"] {
            let t = tail(m.node.log(log));
            if !t.is_empty() {
                out.push_str(&format!("----- {} {log}.log\n{t}\n", m.name));
            }
        }
        let t = tail(m.node.stderr_log());
        if !t.is_empty() {
            out.push_str(&format!("----- {} stderr\n{t}\n", m.name));
        }
        out
    }
}
