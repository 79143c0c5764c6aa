//! The pieces every scenario shares: one `sms-node` process per [`Node`]
//! (killed on drop), the bench context, and percentile helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sms_proto::v1 as pb;
use tonic::transport::Channel;

pub type Admin = pb::admin_client::AdminClient<Channel>;

/// One sms-node process; killed on drop.
pub struct Node {
    child: Option<Child>,
    addr: String,
    dir: PathBuf,
    args: Vec<String>,
}

impl Node {
    pub fn start(bin: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<Node> {
        let mut n = Node {
            child: None,
            addr: String::new(),
            dir: dir.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        n.launch(bin, "127.0.0.1:0")?;
        Ok(n)
    }

    pub fn launch(&mut self, bin: &Path, listen: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let addr_file = self.dir.join("node.addr");
        let _ = std::fs::remove_file(&addr_file);
        let child = Command::new(bin)
            .arg("--data")
            .arg(&self.dir)
            .arg("--listen")
            .arg(listen)
            .args(&self.args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn sms-node")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = std::fs::read_to_string(&addr_file) {
                if s.ends_with('\n') {
                    self.addr = s.trim().to_string();
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("sms-node in {} did not start", self.dir.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self, bin: &Path) -> anyhow::Result<()> {
        let listen = self.addr.clone();
        for _ in 0..200 {
            if std::net::TcpListener::bind(&listen).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.launch(bin, &listen)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub async fn admin(&self) -> anyhow::Result<Admin> {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))?
            .connect()
            .await?;
        Ok(Admin::new(ch).max_decoding_message_size(256 * 1024 * 1024))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

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
    /// The release `sms-node` binary.
    pub bin: PathBuf,
    /// Scratch directory for every node's data dir; removed at the end.
    pub work: PathBuf,
    pub seq: std::sync::atomic::AtomicU32,
}

impl Ctx {
    pub fn dir(&self, name: &str) -> PathBuf {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.work.join(format!("{name}-{n}"))
    }

    /// A central primary PRI and an Active secondary S01.
    pub async fn pair(&self) -> anyhow::Result<(Node, Node)> {
        let p = Node::start(&self.bin, &self.dir("pri"), &["--install-primary", "PRI"])?;
        let c = Node::start(&self.bin, &self.dir("s01"), &[])?;
        create(&p, &c, "S01").await?;
        Ok((p, c))
    }
}

/// create-secondary, then wait for Active; returns the time it took.
pub async fn create(parent: &Node, child: &Node, code: &str) -> anyhow::Result<Duration> {
    let mut a = parent.admin().await?;
    let t0 = Instant::now();
    a.create_secondary(pb::CreateSecondaryRequest {
        site_code: code.into(),
        server: child.addr.clone(),
        sever_link_mid_bootstrap: false,
        site_name: String::new(),
    })
    .await?;
    loop {
        let sites = a
            .list_sites(pb::ListSitesRequest {})
            .await?
            .into_inner()
            .sites;
        if sites
            .iter()
            .any(|s| s.site_code == code && s.status == "Active")
        {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("{code} did not become Active");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
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
/// process is gone.
fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Resident memory of a process, in KiB.
pub fn rss_kb(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

impl Node {
    /// The address the node listens on (`HOST:PORT`).
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

/// Polls `parent`'s site list (every `poll`) until every site in `codes` is
/// Active there; returns how long that took.
pub async fn wait_active(
    parent: &Node,
    codes: &[String],
    poll: Duration,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let mut a = parent.admin().await?;
    let t0 = Instant::now();
    loop {
        let sites = a
            .list_sites(pb::ListSitesRequest {})
            .await?
            .into_inner()
            .sites;
        let missing: Vec<&String> = codes
            .iter()
            .filter(|c| {
                !sites
                    .iter()
                    .any(|s| &s.site_code == *c && s.status == "Active")
            })
            .collect();
        if missing.is_empty() {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            bail!(
                "{} sites not Active after {timeout:?}: {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// CPU time a process has used, user plus system, in clock ticks
/// (`/proc/PID/stat` fields 14 and 15); 0 if it is gone.
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
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
pub fn thread_count(pid: u32) -> u64 {
    proc_status(pid, "Threads:")
}

/// Rounds to one decimal place (for figures in the JSON).
pub fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
