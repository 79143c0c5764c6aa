//! Sites in namespaces: a central primary PRI in namespace `a`, secondary
//! S01 created on a bare node in namespace `b`, the admin calls that drive
//! and check them, and measuring probe traffic across the faulty link.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sms_cluster::{Admin, Cluster, Node, Source, StartError};
use sms_proto::v1 as pb;

use crate::net::{Link, Ns, NsRuntime};
use crate::relay::Relay;
use crate::tcp::TcpWorst;

/// One test at a time, whatever `--test-threads` says: the figures are
/// throughput on a 2-core machine, and two tests would skew each other.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `sms-node` of this build (`SMS_NODE_BIN`, next to the test, or the
/// workspace target dir); panics with the command that builds it.
pub fn node_binary() -> PathBuf {
    let b = sms_cluster::find_node_binary(None);
    if b.source == Source::Path {
        panic!("no sms-node binary found: run `cargo build --bin sms-node` first (or set SMS_NODE_BIN)");
    }
    b.path
}

/// A cluster whose nodes run inside `ns`, listening on `ip` (port 0).
/// `sms-cluster` starts `BIN --data DIR --listen 127.0.0.1:PORT ARGS...`;
/// the wrapper script replaces the listen address and enters the
/// namespace, and `ip netns exec` execs, so the pid sms-cluster holds (and
/// kills on drop) is the node itself.
fn cluster_in(ns: &Ns, ip: IpAddr, dir: &Path) -> Cluster {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join(format!("node-in-{}", ns.name()));
    let body = format!(
        "#!/bin/sh\n# sms-cluster passes: --data DIR --listen 127.0.0.1:PORT ARGS...\n\
         data=\"$2\"; shift 4\n\
         exec ip netns exec '{}' '{}' --data \"$data\" --listen '{ip}:0' \"$@\"\n",
        ns.name(),
        node_binary().display()
    );
    std::fs::write(&script, body).expect("write the wrapper script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("make the wrapper executable");
    Cluster::new(script)
        .env("RUST_LOG", "warn")
        .env("SMS_INSECURE", "1")
}

/// Starts a node, retrying ETXTBSY (the wrapper script was just written).
fn start(c: &Cluster, data: &Path, args: &[&str]) -> Node {
    for _ in 0..100 {
        match c.start(data, args) {
            Err(StartError::Spawn { source, .. })
                if source.raw_os_error() == Some(libc::ETXTBSY) =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(StartError::Exited { stderr, .. }) => panic!("sms-node exited at start:\n{stderr}"),
            Err(e) => panic!("{e}"),
            Ok(n) => return n,
        }
    }
    panic!("the wrapper script stayed busy");
}

/// One site: its node, an admin client, and the runtime (in the site's
/// namespace) that the client's connection lives on.
pub struct Site {
    pub code: &'static str,
    /// The network namespace it runs in.
    pub ns: String,
    /// Dropped first: the node is killed before its namespace goes.
    pub node: Node,
    client: Admin,
    pub rt: NsRuntime,
}

impl Site {
    fn new(code: &'static str, ns: &Ns, node: Node, rt: NsRuntime) -> Site {
        let addr = node.addr().to_string();
        let client = rt
            .run(async move { sms_cluster::admin(&addr).await })
            .unwrap_or_else(|e| panic!("admin client for {code}: {e:#}"));
        Site {
            code,
            ns: ns.name().to_string(),
            node,
            client,
            rt,
        }
    }

    /// Runs one admin call on the site's runtime.
    fn call<T, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce(Admin) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let fut = f(self.client.clone());
        let code = self.code;
        self.rt
            .run(async move { tokio::time::timeout(Duration::from_secs(30), fut).await })
            .unwrap_or_else(|_| panic!("admin call at {code} took over 30 s"))
            .unwrap_or_else(|s| panic!("admin call at {code} failed: {s}"))
            .into_inner()
    }

    pub fn status(&self) -> pb::NodeStatus {
        self.call(|mut c| async move { c.get_status(pb::GetStatusRequest {}).await })
    }

    /// This site's link to `to`.
    pub fn link(&self, to: &str) -> pb::LinkState {
        self.status()
            .links
            .into_iter()
            .find(|l| l.to == to)
            .unwrap_or_else(|| pb::LinkState {
                to: to.into(),
                state: "absent".into(),
                ..Default::default()
            })
    }

    /// Queues `count` 64-byte low-priority probes for `to`; their job ids.
    pub fn send_probes(&self, to: &str, count: u32) -> Vec<Vec<u8>> {
        let req = pb::SendProbesRequest {
            to: to.into(),
            count,
            bytes: 64,
            priority: pb::Priority::Low as i32,
        };
        self.call(|mut c| async move { c.send_probes(req).await })
            .job_ids
    }

    /// Every probe received here.
    pub fn probes(&self) -> Vec<pb::ReceivedProbe> {
        self.call(|mut c| async move {
            c.list_probes(pb::ListProbesRequest { count_only: false })
                .await
        })
        .probes
    }

    pub fn probe_count(&self) -> u64 {
        self.call(|mut c| async move {
            c.list_probes(pb::ListProbesRequest { count_only: true })
                .await
        })
        .count
    }

    pub fn failed_jobs(&self, to: &str) -> Vec<pb::FailedJob> {
        let req = pb::LinkRequest { to: to.into() };
        self.call(|mut c| async move { c.list_failed_jobs(req).await })
            .jobs
    }

    pub fn retry_failed(&self, to: &str) -> pb::LinkState {
        let req = pb::LinkRequest { to: to.into() };
        self.call(|mut c| async move { c.retry_failed_jobs(req).await })
    }

    /// Status of `code` in this primary's site list, if listed.
    pub fn site_status(&self, code: &str) -> Option<String> {
        self.call(|mut c| async move { c.list_sites(pb::ListSitesRequest {}).await })
            .sites
            .into_iter()
            .find(|s| s.site_code == code)
            .map(|s| s.status)
    }

    /// The node's `<data>/logs/<name>.log`.
    pub fn log(&self, name: &str) -> String {
        self.node.log(name)
    }
}

/// PRI in namespace `a`, S01 in namespace `b`, the veth link between them,
/// and (with a delay) a relay on each side. Dropped in field order: nodes
/// and runtimes first, then the namespaces, then the data dirs.
pub struct Rig {
    pub pri: Site,
    pub s01: Site,
    /// Relays carrying the links, when the rig has a delay: (the one PRI
    /// advertises, in `b`; the one S01 advertises, in `a`).
    pub relays: Option<(Relay, Relay)>,
    pub link: Link,
    pub dir: tempfile::TempDir,
}

impl Rig {
    /// Builds the rig and waits until S01 is Active at PRI. `None` after
    /// printing one `SKIPPED: ...` line when this machine cannot make
    /// namespaces (not root, no `ip netns`, no veth, no iptables).
    ///
    /// With `delay`, each node advertises a relay in the other namespace
    /// that holds bytes that long each way, so both links (PRI's to S01 and
    /// S01's to PRI) cross the veth through a relay; admin calls do not.
    pub fn start(tag: &str, delay: Option<Duration>) -> Option<Rig> {
        let link = match Link::new(tag) {
            Ok(l) => l,
            Err(why) => {
                println!("SKIPPED: network-fault tests need network namespaces: {why}");
                return None;
            }
        };
        let mut dir = tempfile::tempdir().expect("temp dir");
        if std::env::var_os("NETFAULT_KEEP").is_some() {
            // For reading the nodes' logs after a run.
            dir.disable_cleanup(true);
            println!(
                "netfault: NETFAULT_KEEP: data dirs kept in {}",
                dir.path().display()
            );
        }
        let rt_a = link.a.runtime().unwrap_or_else(|e| panic!("{e}"));
        let rt_b = link.b.runtime().unwrap_or_else(|e| panic!("{e}"));
        let (a_ip, b_ip) = (IpAddr::V4(link.a_ip), IpAddr::V4(link.b_ip));
        let relays = delay.map(|d| {
            (
                Relay::start(&rt_b, SocketAddr::new(b_ip, 0), d),
                Relay::start(&rt_a, SocketAddr::new(a_ip, 0), d),
            )
        });
        let advertise = |r: Option<&Relay>| -> Vec<String> {
            r.map(|r| vec!["--advertise".into(), r.addr.to_string()])
                .unwrap_or_default()
        };
        let mut pri_args = vec!["--install-primary".to_string(), "PRI".into()];
        pri_args.extend(advertise(relays.as_ref().map(|r| &r.0)));
        let s01_args = advertise(relays.as_ref().map(|r| &r.1));
        let pri = start(
            &cluster_in(&link.a, a_ip, dir.path()),
            &dir.path().join("pri"),
            &as_str(&pri_args),
        );
        let s01 = start(
            &cluster_in(&link.b, b_ip, dir.path()),
            &dir.path().join("s01"),
            &as_str(&s01_args),
        );
        let parse = |n: &Node| n.addr().parse::<SocketAddr>().expect("node address");
        let s01_server = match &relays {
            Some((to_pri, to_s01)) => {
                to_pri.forward_to(parse(&pri));
                to_s01.forward_to(parse(&s01));
                to_s01.addr.to_string()
            }
            None => s01.addr().to_string(),
        };
        let pri_addr = pri.addr().to_string();
        let took = rt_a
            .run(async move {
                sms_cluster::create_secondary(
                    &pri_addr,
                    "S01",
                    &s01_server,
                    Duration::from_millis(50),
                    Duration::from_secs(60),
                )
                .await
            })
            .unwrap_or_else(|e| panic!("creating S01 across the veth: {e:#}"));
        println!(
            "netfault: rig {tag}: PRI {} in {}, S01 {} in {}{}; S01 Active after {} ms",
            pri.addr(),
            link.a.name(),
            s01.addr(),
            link.b.name(),
            relays
                .as_ref()
                .map(|r| format!(
                    ", links through relays {} / {} ({} ms each way)",
                    r.0.addr,
                    r.1.addr,
                    delay.unwrap_or_default().as_millis()
                ))
                .unwrap_or_default(),
            took.as_millis()
        );
        Some(Rig {
            pri: Site::new("PRI", &link.a, pri, rt_a),
            s01: Site::new("S01", &link.b, s01, rt_b),
            relays,
            link,
            dir,
        })
    }
}

fn as_str(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Polls `cond` every `poll` until it holds or `limit` passes; how long
/// it took, or `None` on timeout.
pub fn wait_until(
    limit: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> bool,
) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if cond() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(poll);
    }
}

/// What arrived of the probes one site sent another.
#[derive(Debug)]
pub struct Delivery {
    pub sent: usize,
    /// Distinct sent probes that arrived.
    pub arrived: usize,
    /// Sent probes not (yet) arrived.
    pub missing: usize,
    /// Extra copies of a probe (must be 0).
    pub duplicates: usize,
    /// Probes from the sender that it never sent (must be 0).
    pub unknown: usize,
}

impl Delivery {
    pub fn exactly_once(&self) -> bool {
        self.missing == 0 && self.duplicates == 0 && self.unknown == 0
    }
}

/// Compares what `to` received from `from` with `sent` (every probe
/// `from` sent `to` in the test).
pub fn delivery(to: &Site, from: &str, sent: &[Vec<u8>]) -> Delivery {
    let sent_set: HashSet<&[u8]> = sent.iter().map(Vec::as_slice).collect();
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for p in to.probes().into_iter().filter(|p| p.source_site == from) {
        *seen.entry(p.job_id).or_default() += 1;
    }
    let arrived = seen
        .keys()
        .filter(|k| sent_set.contains(k.as_slice()))
        .count();
    Delivery {
        sent: sent_set.len(),
        arrived,
        missing: sent_set.len() - arrived,
        duplicates: seen.values().map(|n| n - 1).sum(),
        unknown: seen
            .keys()
            .filter(|k| !sent_set.contains(k.as_slice()))
            .count(),
    }
}

/// One direction's run: `n` probes queued at once, watched for `limit`.
#[derive(Debug)]
pub struct Flow {
    pub from: &'static str,
    pub to: &'static str,
    pub ids: Vec<Vec<u8>>,
    /// Probes arrived within the limit.
    pub arrived: u64,
    /// From queueing to the last arrival (the limit when not all arrived).
    pub elapsed: Duration,
    pub complete: bool,
    /// Times the sender's link was seen leaving `up` while watched.
    pub drops_seen: u32,
    /// Link states seen, with how many polls each.
    pub states: HashMap<String, u32>,
    /// Sessions the sender opened (its `link up` log lines) meanwhile.
    pub sessions: usize,
    /// Link failures the sender logged meanwhile, with one sample reason.
    pub failures: usize,
    pub sample_failure: Option<String>,
    /// The link's TCP connection: the socket carrying the jobs (at the
    /// sender, or its relay) and the one carrying the acknowledgements.
    pub tcp_jobs: TcpWorst,
    pub tcp_acks: TcpWorst,
}

impl Flow {
    pub fn jobs_per_sec(&self) -> f64 {
        self.arrived as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

fn count_lines(log: &str, skip: usize, pat: &str) -> (usize, Option<String>) {
    let mut n = 0;
    let mut first = None;
    for l in log.lines().skip(skip).filter(|l| l.contains(pat)) {
        n += 1;
        first.get_or_insert_with(|| l.to_string());
    }
    (n, first)
}

/// Queues `n` probes at `from` for its peer `to` and watches them for at
/// most `limit`: arrivals, the sender's link state, sessions and failures.
pub fn flow(from: &Site, to: &Site, n: u32, limit: Duration) -> Flow {
    let before = to.probe_count();
    let log_skip = from.log("sender").lines().count();
    let t0 = SystemTime::now();
    let start = Instant::now();
    let ids = from.send_probes(to.code, n);
    let mut states: HashMap<String, u32> = HashMap::new();
    let mut drops_seen = 0;
    let mut was_up = true;
    let mut arrived = 0;
    let (mut tcp_jobs, mut tcp_acks) = (TcpWorst::default(), TcpWorst::default());
    let to_addr = to.node.addr().to_string();
    let from_ip = from
        .node
        .addr()
        .rsplit_once(':')
        .map_or("", |(ip, _)| ip)
        .to_string();
    let mut polls = 0u32;
    while start.elapsed() < limit {
        if polls.is_multiple_of(10) {
            tcp_jobs.sample(&from.ns, &["dst", &to_addr]);
            tcp_acks.sample(&to.ns, &["src", &to_addr, "dst", &from_ip]);
        }
        polls += 1;
        arrived = to.probe_count() - before;
        if arrived >= u64::from(n) {
            break;
        }
        let st = from.link(to.code).state;
        if was_up && st != "up" {
            drops_seen += 1;
        }
        was_up = st == "up";
        *states.entry(st).or_default() += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let complete = arrived >= u64::from(n);
    let elapsed = if complete {
        // The receiver's own durable timestamps, not the poll's granularity.
        let ours: HashSet<&[u8]> = ids.iter().map(Vec::as_slice).collect();
        let last = to
            .probes()
            .iter()
            .filter(|p| ours.contains(p.job_id.as_slice()))
            .map(|p| p.received_unix_us)
            .max()
            .unwrap_or(0);
        Duration::from_micros(last.saturating_sub(unix_us(t0)))
    } else {
        start.elapsed()
    };
    let log = from.log("sender");
    let (sessions, _) = count_lines(&log, log_skip, "link up");
    let (failures, sample_failure) = count_lines(&log, log_skip, "link failed");
    Flow {
        from: from.code,
        to: to.code,
        ids,
        arrived,
        elapsed,
        complete,
        drops_seen,
        states,
        sessions,
        failures,
        sample_failure,
        tcp_jobs,
        tcp_acks,
    }
}

impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut states: Vec<_> = self.states.iter().collect();
        states.sort();
        write!(
            f,
            "{} -> {}: {}/{} probes in {:.1} s = {:.1} jobs/s{}; sender sessions opened {}, link failures {}, left up {} times, states polled {:?}",
            self.from,
            self.to,
            self.arrived,
            self.ids.len(),
            self.elapsed.as_secs_f64(),
            self.jobs_per_sec(),
            if self.complete { "" } else { " (limit reached)" },
            self.sessions,
            self.failures,
            self.drops_seen,
            states
        )?;
        write!(
            f,
            "\n    tcp carrying jobs: {}; tcp carrying acks: {}",
            self.tcp_jobs, self.tcp_acks
        )?;
        if let Some(s) = &self.sample_failure {
            write!(f, "\n    first failure: {}", s.trim())?;
        }
        Ok(())
    }
}
