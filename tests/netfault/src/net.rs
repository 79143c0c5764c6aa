//! Two network namespaces joined by one veth pair, and faults on that pair
//! from iptables (this kernel has no netem).
//!
//! Everything lives inside namespaces this process creates: the veth ends
//! are created directly in them (never in the root namespace) and carry
//! addresses of one /30, so no route to any other address exists. Faults
//! are `INPUT` rules on the veth on both sides: a packet dropped on input
//! has left its sender and vanishes on the wire, the way a dead router or
//! a lossy line behaves (an `OUTPUT` drop is reported to the sending
//! socket instead). Traffic on each namespace's loopback (the test's admin
//! calls, the delay relay's local leg) is never touched.

use std::fs::File;
use std::future::Future;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

/// The veth end's name inside each namespace.
pub const IFACE: &str = "nf0";
/// Names of the namespaces this crate creates start with this, then the
/// creating process's pid: a run can sweep what a killed run left behind.
const PREFIX: &str = "smsnf-";

/// Runs `ip ARGS`; the error carries ip's stderr.
fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

fn run(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{prog} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One network namespace, deleted when dropped (its veth end with it).
#[derive(Debug)]
pub struct Ns {
    name: String,
}

impl Ns {
    fn add(name: String) -> Result<Ns, String> {
        ip(&["netns", "add", &name])?;
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        ip(&[&["-n", &self.name], args].concat())
    }

    /// `ip netns exec NAME ARGS`.
    pub fn exec(&self, args: &[&str]) -> Result<String, String> {
        ip(&[&["netns", "exec", &self.name], args].concat())
    }

    /// A Tokio runtime whose threads all live in this namespace, so every
    /// socket its tasks open (admin clients, the delay relay) is in here.
    pub fn runtime(&self) -> Result<NsRuntime, String> {
        let path = format!("/run/netns/{}", self.name);
        let p = path.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .on_thread_start(move || {
                if let Err(e) = enter(&p) {
                    // A thread left in the root namespace would reach
                    // nothing, or worse the host: stop right here.
                    eprintln!("cannot enter network namespace {p}: {e}");
                    std::process::abort();
                }
            })
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        let rt = NsRuntime { rt: Some(rt) };
        let want = std::fs::metadata(&path).map_err(|e| e.to_string())?.ino();
        let got = rt.run(async { std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino()) });
        if got.map_err(|e| e.to_string())? != want {
            return Err(format!("runtime threads are not in {}", self.name));
        }
        Ok(rt)
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &str) -> std::io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: setns(2) on an fd we own; it only changes this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Ns {
    fn drop(&mut self) {
        // Processes still inside keep the namespace alive until they exit;
        // the nodes are killed before this runs.
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("netfault: {e}");
        }
    }
}

/// A runtime in one namespace; see [`Ns::runtime`].
pub struct NsRuntime {
    /// Taken only by `drop`.
    rt: Option<tokio::runtime::Runtime>,
}

impl NsRuntime {
    /// Runs `fut` on the namespace's threads and waits for it.
    pub fn run<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let rt = self.rt.as_ref().expect("runtime");
        match rt.block_on(rt.spawn(fut)) {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("task cancelled: {e}"),
        }
    }

    /// Starts `fut` in the background on the namespace's threads; it ends
    /// with the runtime at the latest.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.rt.as_ref().expect("runtime").spawn(fut);
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        // Bounded: relay tasks blocked on a socket are dropped, not awaited.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// Namespaces `a` and `b` joined by a veth pair: `a_ip` in `a`, `b_ip` in
/// `b`, one /30, nothing else routed.
pub struct Link {
    pub a: Ns,
    pub b: Ns,
    pub a_ip: Ipv4Addr,
    pub b_ip: Ipv4Addr,
    iptables: &'static str,
}

/// The iptables front-ends tried, in order: whichever can add a
/// `statistic` rule inside a fresh namespace is used.
const IPTABLES: [&str; 3] = ["iptables", "iptables-legacy", "iptables-nft"];

impl Link {
    /// Creates the pair for one test (`tag` keeps two tests of one run
    /// apart), or says why this machine cannot: not root, no `ip netns`,
    /// no veth, no usable iptables. Namespaces a killed earlier run left
    /// behind are removed first.
    pub fn new(tag: &str) -> Result<Link, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("network namespaces need root".into());
        }
        sweep_stale();
        let pid = std::process::id();
        let a = Ns::add(format!("{PREFIX}{pid}-{tag}-a"))?;
        let b = Ns::add(format!("{PREFIX}{pid}-{tag}-b"))?;
        ip(&[
            "link", "add", "name", IFACE, "netns", &a.name, "type", "veth", "peer", "name", IFACE,
            "netns", &b.name,
        ])?;
        let (a_ip, b_ip) = (Ipv4Addr::new(10, 250, 0, 1), Ipv4Addr::new(10, 250, 0, 2));
        for (ns, addr) in [(&a, a_ip), (&b, b_ip)] {
            ns.ip(&["addr", "add", &format!("{addr}/30"), "dev", IFACE])?;
            ns.ip(&["link", "set", IFACE, "up"])?;
        }
        let iptables = IPTABLES
            .into_iter()
            .find(|prog| {
                let rule = [
                    "-w", "-A", "INPUT", "-i", IFACE, "-m", "statistic", "--mode", "random",
                    "--probability", "0.5", "-j", "DROP",
                ];
                a.exec(&[&[*prog], &rule[..]].concat()).is_ok()
                    && a.exec(&[*prog, "-w", "-F", "INPUT"]).is_ok()
            })
            .ok_or_else(|| {
                format!(
                    "no iptables front-end ({}) can add a `statistic` DROP rule in a network namespace (apt-get install -y iptables)",
                    IPTABLES.join(", ")
                )
            })?;
        let link = Link {
            a,
            b,
            a_ip,
            b_ip,
            iptables,
        };
        // The veth needs a moment to come up (IPv6 DAD does not matter here).
        link.wait_carrier()?;
        Ok(link)
    }

    fn wait_carrier(&self) -> Result<(), String> {
        for _ in 0..100 {
            let up = [&self.a, &self.b].iter().all(|ns| {
                ns.ip(&["-o", "link", "show", IFACE])
                    .is_ok_and(|s| s.contains("state UP") || s.contains("LOWER_UP"))
            });
            if up {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("veth {IFACE} did not come up"))
    }

    /// Runs the chosen iptables with `args` in both namespaces.
    fn both(&self, args: &[&str]) {
        for ns in [&self.a, &self.b] {
            ns.exec(&[&[self.iptables, "-w"], args].concat())
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Every packet on the link vanishes, both ways: no reset, no ICMP.
    pub fn blackhole(&self) {
        self.both(&["-A", "INPUT", "-i", IFACE, "-j", "DROP"]);
    }

    /// Each packet on the link is dropped with probability `p`, each way
    /// independently (the `statistic` match in random mode).
    pub fn loss(&self, p: f64) {
        let p = format!("{p}");
        self.both(&[
            "-A",
            "INPUT",
            "-i",
            IFACE,
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &p,
            "-j",
            "DROP",
        ]);
    }

    /// Removes every fault: the link works again.
    pub fn heal(&self) {
        self.both(&["-F", "INPUT"]);
    }

    /// Packets the fault rules dropped so far, (into a, into b): evidence
    /// that a fault was really in force.
    pub fn dropped(&self) -> (u64, u64) {
        let count = |ns: &Ns| -> u64 {
            ns.exec(&[self.iptables, "-w", "-L", "INPUT", "-n", "-v", "-x"])
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("DROP"))
                .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        };
        (count(&self.a), count(&self.b))
    }
}

/// Deletes namespaces named by this crate whose creating process is gone
/// (a run killed before its guards ran), after killing the nodes that run
/// left inside them. Never touches any other name.
fn sweep_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let pids = ip(&["netns", "pids", name]).unwrap_or_default();
            for p in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                // SAFETY: kill(2) of a process inside a namespace only this
                // crate creates: a node the killed run started.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
            let _ = ip(&["netns", "del", name]);
        }
    }
}
