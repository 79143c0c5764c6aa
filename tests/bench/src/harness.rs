//! The pieces every scenario shares: the bench context (nodes come from the
//! cluster runner, `sms-cluster`), a timed create-secondary, and
//! percentile helpers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use sms_proto::v1 as pb;

pub use sms_cluster::{wait_active, Admin, Cluster, Node};

pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

pub struct Ctx {
    /// Runs the release `sms-node` binary, logging errors only.
    pub cluster: Cluster,
    /// Scratch directory for every node's data dir; removed at the end.
    pub work: PathBuf,
    pub seq: std::sync::atomic::AtomicU32,
    /// Nodes run with TLS (bare nodes join with a token from their parent).
    pub secure: bool,
}

impl Ctx {
    pub fn dir(&self, name: &str) -> PathBuf {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.work.join(format!("{name}-{n}"))
    }

    /// Starts a node with data dir `dir(name)`.
    pub fn start(&self, name: &str, args: &[&str]) -> anyhow::Result<Node> {
        Ok(self.cluster.start(&self.dir(name), args)?)
    }

    /// A bare node that `parent` will install as site `code`: with TLS it
    /// joins with a token from `parent` first.
    pub async fn bare(&self, name: &str, parent: &Node, code: &str) -> anyhow::Result<Node> {
        if self.secure {
            let token = sms_cluster::join_token(parent.addr(), code).await?;
            self.start(name, &["--join-token", &token])
        } else {
            self.start(name, &[])
        }
    }

    /// A central primary PRI and an Active secondary S01.
    pub async fn pair(&self) -> anyhow::Result<(Node, Node)> {
        let p = self.start("pri", &["--install-primary", "PRI"])?;
        let c = self.bare("s01", &p, "S01").await?;
        create(&p, &c, "S01").await?;
        Ok((p, c))
    }
}

/// create-secondary, then wait for Active; returns the time it took.
pub async fn create(parent: &Node, child: &Node, code: &str) -> anyhow::Result<Duration> {
    let (poll, timeout) = (Duration::from_millis(1), Duration::from_secs(60));
    sms_cluster::create_secondary(parent.addr(), code, child.addr(), poll, timeout).await
}

pub async fn probe_count(a: &mut Admin) -> anyhow::Result<u64> {
    Ok(a.list_probes(pb::ListProbesRequest { count_only: true })
        .await?
        .into_inner()
        .count)
}

/// Sets S01's address to PRI: frames in flight.
pub async fn set_window(child: &Node, window: u32) -> anyhow::Result<()> {
    let mut a = child.admin().await?;
    let r = a
        .change_site_control(pb::ChangeSiteControlRequest {
            address: Some(pb::AddressChange {
                to: "PRI".into(),
                concurrent_sendings: Some(window),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    while a
        .get_site_control(pb::GetSiteControlRequest::default())
        .await?
        .into_inner()
        .serial
        < r.serial
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Queues `n` probes of `bytes` behind a severed link, restores it, and
/// times the drain. Returns (seconds, delivered, distinct).
pub async fn drain(
    parent: &Node,
    child: &Node,
    n: u32,
    bytes: u32,
) -> anyhow::Result<(f64, u64, u64)> {
    let mut c = child.admin().await?;
    let mut p = parent.admin().await?;
    let before = probe_count(&mut p).await?;
    c.sever_link(pb::LinkRequest { to: "PRI".into() }).await?;
    let mut left = n;
    while left > 0 {
        let k = left.min(50_000);
        c.send_probes(pb::SendProbesRequest {
            to: "PRI".into(),
            count: k,
            bytes,
            priority: pb::Priority::Medium as i32,
        })
        .await?;
        left -= k;
    }
    let t0 = Instant::now();
    c.restore_link(pb::LinkRequest { to: "PRI".into() }).await?;
    loop {
        if probe_count(&mut p).await? >= before + n as u64 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(600) {
            bail!("drain did not finish");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let all = p
        .list_probes(pb::ListProbesRequest { count_only: false })
        .await?
        .into_inner()
        .probes;
    let distinct: std::collections::HashSet<Vec<u8>> =
        all.iter().map(|x| x.job_id.clone()).collect();
    // Each job's payload is stored with it, not only its receipt.
    let short = all
        .iter()
        .skip(before as usize)
        .filter(|x| x.payload_bytes != bytes as u64)
        .count();
    anyhow::ensure!(
        short == 0,
        "{short} probes were stored without their payload"
    );
    Ok((
        secs,
        all.len() as u64 - before,
        distinct.len() as u64 - before,
    ))
}

/// A numeric field of `/proc/PID/status` (`VmRSS:`, `Threads:`); 0 if the
/// process is gone (or was never running: `pid` is [`Node::pid`]).
fn proc_status(pid: Option<u32>, field: &str) -> u64 {
    pid.and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Resident memory of a process, in KiB.
pub fn rss_kb(pid: Option<u32>) -> u64 {
    proc_status(pid, "VmRSS:")
}

/// CPU time a process has used, user plus system, in clock ticks
/// (`/proc/PID/stat` fields 14 and 15); 0 if it is gone.
pub fn cpu_ticks(pid: Option<u32>) -> u64 {
    let Some(Ok(s)) = pid.map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat"))) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces), from field 3 on.
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// Clock ticks per second, the unit of [`cpu_ticks`].
pub fn clock_ticks_per_sec() -> anyhow::Result<f64> {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    anyhow::ensure!(t > 0, "sysconf(_SC_CLK_TCK) failed");
    Ok(t as f64)
}

/// Threads of a process; 0 if it is gone.
pub fn thread_count(pid: Option<u32>) -> u64 {
    proc_status(pid, "Threads:")
}

/// Rounds to one decimal place (for figures in the JSON).
pub fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
