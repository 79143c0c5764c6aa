//! Scenario 8: simulated clients polling policy from one management point
//! on loopback, side by side with nginx serving the same documents as
//! static files, in the same run.
//!
//! The management point is the site server's own (`--install-primary PRI`,
//! then `mp add` of itself with port 0, waited for until `active`). nginx
//! (Debian's package) is started by the harness with its own config in the
//! work dir, serving the two bodies the management point answered first
//! under the same URLs (query string included: `location =` ignores it).
//!
//! The request mix, the same against both: each of the 1 000 clients holds
//! its own keep-alive HTTP/1.1 connection and polls as a client does:
//! `GET /ccm_system/request/machinepolicy` (its assignments), then
//! `GET /sms_mp/.sms_pol?<id>.<version>`, the one policy it names. Every
//! answer must be 200 with the bytes the management point served first.
//!
//! Two loads per server and run:
//! - **saturated**: every client sends its next GET as soon as the last one
//!   is answered, for a fixed time (or a request cap): requests/s, and
//!   ours / nginx as the median of the runs' ratios (the two back to back). With
//!   1 000 requests always outstanding, latency here is queueing
//!   (Little's law: mean ≈ 1 000 / rate), reported for context only.
//! - **paced**: each client sends its GETs on a fixed schedule, open loop,
//!   so that all of them together offer half of nginx's saturated rate of
//!   the same run: the rate the target requires us to sustain. Latency runs
//!   from the scheduled send to the last body byte, so a server that falls
//!   behind pays for the wait (no coordinated omission). This gives p50/p99
//!   (the median of the runs' figures; the p99 of all runs pooled is beside).
//!
//! The load generator is this process, on the same cores as the server; its
//! CPU and the server's are reported for each load.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sms_proto::v1 as pb;

use crate::harness::{clock_ticks_per_sec, cpu_ticks, pct, r1, sorted, Ctx, Node};

/// Concurrent clients, each with its own connection.
pub const CLIENTS: usize = 1000;
/// Not counted: connections and caches settle.
const WARMUP: Duration = Duration::from_secs(1);
/// The measured window of each load.
const MEASURE: Duration = Duration::from_secs(5);
/// The saturated load stops early at this many counted requests.
const MAX_REQUESTS: u64 = 2_000_000;
/// Paced load: the share of nginx's saturated rate offered.
const PACED_SHARE: f64 = 0.5;
/// How long the management point may take to become active.
const INSTALL_LIMIT: Duration = Duration::from_secs(120);
/// The site's polling interval: the Site Component Manager's pass that
/// brings the management point's policy up to date once it is active.
const POLLING_INTERVAL: Duration = Duration::from_secs(1);
/// How long nginx may take to answer its first request.
const START_LIMIT: Duration = Duration::from_secs(20);
/// No single GET may take longer (counted as an error).
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// Connections opened at once while the clients connect (untimed).
const CONNECTING: usize = 64;
const ASSIGNMENTS: &str = "/ccm_system/request/machinepolicy";
const NGINX_INSTALL: &str = "apt-get install -y nginx";
pub const TARGET_RATIO: f64 = 0.5;
pub const TARGET_P99_MS: f64 = 20.0;

/// What every client asks and the bytes each answer must carry.
#[derive(Clone)]
struct Mix {
    /// (path and query, expected body), in the order a client sends them.
    gets: Arc<[(String, Bytes)]>,
}

/// A server under test: where it listens and the processes whose CPU counts.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    pids: Vec<u32>,
}

/// One load's figures.
struct Load {
    requests: u64,
    secs: f64,
    /// Latencies of the counted requests, µs, sorted.
    lat_us: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
    reconnects: u64,
    server_cpu_pct: f64,
    generator_cpu_pct: f64,
    offered_per_sec: Option<f64>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }

    fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "secs": (self.secs * 1000.0).round() / 1000.0,
            "requests_per_sec": self.rate().round(),
            "offered_per_sec": self.offered_per_sec.map(f64::round),
            "p50_ms": pct(&self.lat_us, 0.5) / 1000.0,
            "p99_ms": pct(&self.lat_us, 0.99) / 1000.0,
            "max_ms": self.lat_us.last().copied().unwrap_or(f64::NAN) / 1000.0,
            "errors": self.errors,
            "first_error": self.first_error,
            "reconnects": self.reconnects,
            "server_cpu_pct_of_one_core": r1(self.server_cpu_pct),
            "generator_cpu_pct_of_one_core": r1(self.generator_cpu_pct),
        })
    }
}

/// A keep-alive HTTP/1.1 connection (hyper's client connection; its driver
/// runs as its own task and ends when the sender is dropped).
struct Conn {
    addr: SocketAddr,
    tx: SendRequest<Empty<Bytes>>,
    reconnects: u64,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        Ok(Conn {
            addr,
            tx: handshake(addr).await?,
            reconnects: 0,
        })
    }

    /// GET `path`; the body if it is 200 and equals `expect`. A connection
    /// the server closed is opened again (and counted) before the request.
    async fn get(&mut self, path: &str, expect: &Bytes) -> anyhow::Result<()> {
        if self.tx.ready().await.is_err() {
            self.tx = handshake(self.addr).await?;
            self.reconnects += 1;
        }
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, self.addr.to_string())
            .body(Empty::<Bytes>::new())?;
        let answer = async {
            let res = self.tx.send_request(req).await?;
            let status = res.status();
            let body = res.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_LIMIT, answer)
            .await
            .with_context(|| format!("GET {path}: no answer within {REQUEST_LIMIT:?}"))??;
        ensure!(status == 200, "GET {path}: status {status}");
        ensure!(
            body == *expect,
            "GET {path}: {} bytes that differ from the {} the management point served",
            body.len(),
            expect.len()
        );
        Ok(())
    }
}

async fn handshake(addr: SocketAddr) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    s.set_nodelay(true)?;
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(tx)
}

/// `CLIENTS` connections to `addr`, opened `CONNECTING` at a time.
async fn connect_all(addr: SocketAddr) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(CLIENTS);
    while conns.len() < CLIENTS {
        let n = CONNECTING.min(CLIENTS - conns.len());
        let batch = futures::future::try_join_all((0..n).map(|_| Conn::open(addr))).await?;
        conns.extend(batch);
    }
    Ok(conns)
}

/// CPU of `pids` and of this process between two instants, % of one core.
struct Cpu {
    server: u64,
    me: u64,
    at: Instant,
}

impl Cpu {
    fn now(pids: &[u32]) -> Cpu {
        Cpu {
            server: pids.iter().map(|p| cpu_ticks(Some(*p))).sum(),
            me: cpu_ticks(Some(std::process::id())),
            at: Instant::now(),
        }
    }

    fn since(&self, pids: &[u32], hz: f64) -> (f64, f64) {
        let end = Cpu::now(pids);
        let secs = end.at.duration_since(self.at).as_secs_f64();
        let pc = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / hz / secs * 100.0;
        (pc(self.server, end.server), pc(self.me, end.me))
    }
}

/// What the clients share during one load.
struct Shared {
    counted: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// When the request cap was reached, if it was.
    capped: OnceLock<Instant>,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            counted: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            capped: OnceLock::new(),
        })
    }

    fn error(&self, e: anyhow::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_error.lock().expect("first error");
        if f.is_none() {
            *f = Some(format!("{e:#}"));
        }
    }
}

/// One load on `target`: `offered` None is saturated (closed loop), Some(r)
/// paced at r requests/s over all clients (open loop).
async fn load(target: &Target, mix: &Mix, offered: Option<f64>, hz: f64) -> anyhow::Result<Load> {
    let conns = connect_all(target.addr).await?;
    let shared = Shared::new();
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let (counted_from, end) = (start + WARMUP, start + WARMUP + MEASURE);
    let mut clients = tokio::task::JoinSet::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let (mix, shared) = (mix.clone(), shared.clone());
        // Paced: this client's GETs are `every` apart, the clients' phases
        // spread evenly over one interval.
        let every = offered.map(|r| Duration::from_secs_f64(CLIENTS as f64 / r));
        clients.spawn(async move {
            let mut lat = Vec::new();
            let mut k = 0u64;
            tokio::time::sleep_until(start).await;
            'poll: loop {
                for (path, body) in mix.gets.iter() {
                    let sent = match every {
                        Some(every) => {
                            let at = start + every.mul_f64(i as f64 / CLIENTS as f64 + k as f64);
                            tokio::time::sleep_until(at).await;
                            at
                        }
                        None => tokio::time::Instant::now(),
                    };
                    k += 1;
                    if sent >= end || shared.capped.get().is_some() {
                        break 'poll;
                    }
                    let r = conn.get(path, body).await;
                    let done = tokio::time::Instant::now();
                    // Paced, a GET counts by when it was due (a late answer
                    // is the tail we measure); saturated, by when it ended.
                    let counted = match every {
                        Some(_) => sent >= counted_from,
                        None => sent >= counted_from && done <= end,
                    };
                    if !counted || shared.capped.get().is_some() {
                        continue;
                    }
                    match r {
                        Ok(()) => {
                            lat.push(done.duration_since(sent).as_micros() as u32);
                            let n = shared.counted.fetch_add(1, Ordering::Relaxed) + 1;
                            if n == MAX_REQUESTS {
                                let _ = shared.capped.set(done.into_std());
                            }
                        }
                        Err(e) => shared.error(e),
                    }
                }
            }
            (lat, conn.reconnects)
        });
    }
    tokio::time::sleep_until(counted_from).await;
    let cpu = Cpu::now(&target.pids);
    tokio::time::sleep_until(end).await;
    let (server_cpu, gen_cpu) = cpu.since(&target.pids, hz);
    let (mut lat, mut reconnects) = (Vec::new(), 0);
    while let Some(r) = clients.join_next().await {
        let (l, rc) = r?;
        lat.extend(l.into_iter().map(f64::from));
        reconnects += rc;
    }
    let window_end = shared.capped.get().copied().unwrap_or(end.into_std());
    let secs = window_end
        .duration_since(counted_from.into_std())
        .as_secs_f64();
    let first_error = shared.first_error.lock().expect("first error").clone();
    Ok(Load {
        requests: shared.counted.load(Ordering::Relaxed),
        secs,
        lat_us: sorted(lat),
        errors: shared.errors.load(Ordering::Relaxed),
        first_error,
        reconnects,
        server_cpu_pct: server_cpu,
        generator_cpu_pct: gen_cpu,
        offered_per_sec: offered,
    })
}

/// PRI with a management point of its own, active; its HTTP address.
/// Installed with the policy of a site without active management points,
/// it gets the one that lists itself on the next pass (the version moves):
/// that is the one the clients poll, so `settled_mix` waits for it.
async fn management_point(ctx: &Ctx) -> anyhow::Result<(Node, SocketAddr)> {
    let node = ctx.start("mp", &["--install-primary", "PRI"])?;
    let server = node.addr().to_string();
    let mut a = node.admin().await?;
    a.change_site_control(pb::ChangeSiteControlRequest {
        site: "PRI".into(),
        polling_interval_ms: Some(POLLING_INTERVAL.as_millis() as u64),
        add_management_point: Some(pb::ManagementPoint {
            server: server.clone(),
            port: 0,
            is_default: true,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .context("mp add")?;
    let t0 = Instant::now();
    loop {
        let ct = a
            .get_site_control(pb::GetSiteControlRequest::default())
            .await?
            .into_inner();
        let mp = ct.management_points.iter().find(|m| m.server == server);
        if let Some(m) = mp.filter(|m| m.state == "active" && m.bound_port != 0) {
            let host = server.rsplit_once(':').map_or("127.0.0.1", |h| h.0);
            let addr: SocketAddr = format!("{host}:{}", m.bound_port).parse()?;
            eprintln!(
                "mp: management point of PRI active on {addr} in {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            return Ok((node, addr));
        }
        if t0.elapsed() > INSTALL_LIMIT {
            bail!(
                "the management point was not active within {INSTALL_LIMIT:?}: {:?}",
                mp.map(|m| (&m.state, &m.detail))
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The mix once the management point's policy lists the management point
/// itself (and so no longer changes while the site control stays as it is).
async fn settled_mix(addr: SocketAddr) -> anyhow::Result<Mix> {
    let t0 = Instant::now();
    let me = format!(":{}", addr.port());
    loop {
        let mix = fetch_mix(addr).await?;
        if std::str::from_utf8(&mix.gets[1].1).is_ok_and(|p| p.contains(&me)) {
            return Ok(mix);
        }
        if t0.elapsed() > INSTALL_LIMIT {
            bail!(
                "the management point's policy did not list it within {INSTALL_LIMIT:?}: {}",
                String::from_utf8_lossy(&mix.gets[1].1)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The mix, from the management point itself: its assignments, and the one
/// policy they name.
async fn fetch_mix(addr: SocketAddr) -> anyhow::Result<Mix> {
    let mut c = Conn::open(addr).await?;
    let assignments = first_get(&mut c, ASSIGNMENTS).await?;
    let v: Value = serde_json::from_slice(&assignments).context("machinepolicy is not JSON")?;
    let url = v["policies"][0]["url"]
        .as_str()
        .with_context(|| format!("machinepolicy names no policy: {v}"))?
        .to_string();
    ensure!(
        url.starts_with("/sms_mp/.sms_pol?"),
        "unexpected policy url {url:?}"
    );
    let policy = first_get(&mut c, &url).await?;
    Ok(Mix {
        gets: vec![(ASSIGNMENTS.to_string(), assignments), (url, policy)].into(),
    })
}

/// GET `path`, which must answer 200; its body.
async fn first_get(c: &mut Conn, path: &str) -> anyhow::Result<Bytes> {
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, c.addr.to_string())
        .body(Empty::<Bytes>::new())?;
    c.tx.ready()
        .await
        .with_context(|| format!("GET {path}: the connection to {} closed", c.addr))?;
    let res =
        c.tx.send_request(req)
            .await
            .with_context(|| format!("GET {path} from {}", c.addr))?;
    ensure!(res.status() == 200, "GET {path}: status {}", res.status());
    Ok(res.into_body().collect().await?.to_bytes())
}

/// The nginx binary: `$NGINX_BIN`, else `nginx` on `PATH` or in /usr/sbin.
pub fn find_nginx() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NGINX_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// An nginx master and its workers, in a process group of their own;
/// killed on drop.
struct Nginx {
    master: Child,
    addr: SocketAddr,
    dir: PathBuf,
    version: String,
}

impl Nginx {
    /// Serves `mix`'s bodies from `dir/www` at the same URLs, on a free
    /// loopback port (nginx cannot listen on port 0: one is bound here and
    /// released; should another process take it first, nginx says so).
    async fn start(bin: &Path, dir: &Path, mix: &Mix, workers: usize) -> anyhow::Result<Nginx> {
        use std::os::unix::process::CommandExt;
        let www = dir.join("www");
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&www)?;
        std::fs::create_dir_all(&tmp)?;
        let mut locations = String::new();
        for (i, (url, body)) in mix.gets.iter().enumerate() {
            let path = url.split('?').next().unwrap_or(url);
            let (file, ty) = if path == ASSIGNMENTS {
                (www.join(format!("{i}.json")), "application/json")
            } else {
                (www.join(format!("{i}.xml")), "text/xml; charset=utf-8")
            };
            std::fs::write(&file, body)?;
            locations.push_str(&format!(
                "        location = {path} {{ default_type \"{ty}\"; alias {}; }}\n",
                file.display()
            ));
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let p = |x: &str| dir.join(x).display().to_string();
        // As root, the workers would switch to `nobody`; keep the harness's
        // user so they read the work dir whatever its mode.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;\n"
        } else {
            ""
        };
        let conf = format!(
            "# sms-bench scenario 8: static copies of the management point's answers.\n\
             {user}daemon off;\nworker_processes {workers};\npid {pid};\n\
             error_log {err} warn;\nworker_rlimit_nofile 8192;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n    types {{ }}\n    access_log off;\n    sendfile on;\n    tcp_nopush on;\n    tcp_nodelay on;\n\
             \x20   keepalive_timeout 75s;\n    # Every connection stays open for the whole run, as with ours.\n\
             \x20   keepalive_requests 100000000;\n\
             \x20   client_body_temp_path {t}/body;\n    proxy_temp_path {t}/proxy;\n    fastcgi_temp_path {t}/fastcgi;\n\
             \x20   uwsgi_temp_path {t}/uwsgi;\n    scgi_temp_path {t}/scgi;\n\
             \x20   server {{\n        listen 127.0.0.1:{port} backlog=4096;\n{locations}\
             \x20       location / {{ return 404; }}\n    }}\n}}\n",
            pid = p("nginx.pid"),
            err = p("error.log"),
            t = tmp.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let version = Command::new(bin)
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_default();
        let out = std::fs::File::create(dir.join("stderr.log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe. Should the harness die without
        // dropping this (a signal), the master still stops (SIGTERM: a fast
        // shutdown that takes its workers down).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let master = cmd
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let mut n = Nginx {
            master,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_path_buf(),
            version,
        };
        let t0 = Instant::now();
        loop {
            if let Ok(mut c) = Conn::open(n.addr).await {
                let (url, body) = &mix.gets[1];
                c.get(url, body)
                    .await
                    .context("nginx answered the policy url wrongly")?;
                let (url, body) = &mix.gets[0];
                c.get(url, body)
                    .await
                    .context("nginx answered the assignments url wrongly")?;
                eprintln!("nginx: {} up on {} ({workers} workers)", n.version, n.addr);
                return Ok(n);
            }
            if let Some(status) = n.master.try_wait()? {
                bail!("nginx exited ({status}):\n{}", n.logs());
            }
            if t0.elapsed() > START_LIMIT {
                bail!(
                    "nginx did not answer on {} within {START_LIMIT:?}:\n{}",
                    n.addr,
                    n.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn logs(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The master and its workers (whose CPU counts).
    fn pids(&self) -> Vec<u32> {
        let master = self.master.id();
        let mut pids = vec![master];
        pids.extend(children_of(master));
        pids
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pgid = self.master.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group this harness created.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.master.wait();
    }
}

/// Processes whose parent is `pid` (from /proc/*/stat, field 4).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn median(v: &[f64]) -> f64 {
    pct(&sorted(v.to_vec()), 0.5)
}

/// Median of a load figure over the runs.
fn med_of(loads: &[Load], f: impl Fn(&Load) -> f64) -> f64 {
    median(&loads.iter().map(f).collect::<Vec<_>>())
}

/// Scenario 8: `runs` rounds of the four loads (ours and nginx, saturated
/// then paced), the order of the two servers alternating between rounds.
pub async fn side_by_side(ctx: &Ctx, runs: usize) -> anyhow::Result<Value> {
    let hz = clock_ticks_per_sec()?;
    let load_before = loadavg();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (node, mp_addr) = management_point(ctx).await?;
    let mix = settled_mix(mp_addr).await?;
    let ours = Target {
        name: "ours",
        addr: mp_addr,
        pids: node.pid().into_iter().collect(),
    };
    let nginx = match find_nginx() {
        Some(bin) => Some(Nginx::start(&bin, &ctx.dir("nginx"), &mix, cpus).await?),
        None => {
            eprintln!(
                "SKIPPED: scenario 8's nginx side: no nginx binary on PATH or in /usr/sbin \
                 (install Debian's package with `{NGINX_INSTALL}`, or set NGINX_BIN); \
                 ours is measured alone, paced at half its own saturated rate"
            );
            None
        }
    };
    let theirs = nginx.as_ref().map(|n| Target {
        name: "nginx",
        addr: n.addr,
        pids: n.pids(),
    });
    let (mut ours_sat, mut ours_paced, mut ng_sat, mut ng_paced) = (vec![], vec![], vec![], vec![]);
    for run in 1..=runs {
        // Saturated: both servers, alternating which goes first.
        let mut order: Vec<&Target> = std::iter::once(&ours).chain(theirs.as_ref()).collect();
        if run % 2 == 0 {
            order.reverse();
        }
        for t in &order {
            let l = load(t, &mix, None, hz).await?;
            report(run, runs, t.name, "saturated", &l);
            if t.name == "ours" {
                ours_sat.push(l);
            } else {
                ng_sat.push(l);
            }
        }
        // Paced at half nginx's rate of this round (without nginx: ours).
        let basis = ng_sat.last().or(ours_sat.last()).map_or(1.0, Load::rate);
        let offered = (basis * PACED_SHARE).max(1.0);
        for t in &order {
            let l = load(t, &mix, Some(offered), hz).await?;
            report(run, runs, t.name, "paced", &l);
            if t.name == "ours" {
                ours_paced.push(l);
            } else {
                ng_paced.push(l);
            }
        }
    }
    let rate = |l: &Load| l.rate();
    let pooled = |loads: &[Load]| {
        sorted(
            loads
                .iter()
                .flat_map(|l| l.lat_us.iter().copied())
                .collect(),
        )
    };
    let ours_rate = med_of(&ours_sat, rate);
    let ours_lat = pooled(&ours_paced);
    let ours_errors: u64 = ours_sat.iter().chain(&ours_paced).map(|l| l.errors).sum();
    let mut v = json!({
        "clients": CLIENTS,
        "request_mix": format!("each client on its own keep-alive HTTP/1.1 connection: GET {ASSIGNMENTS}, then GET {}, repeated; every answer 200 and byte-identical to the management point's first", mix.gets[1].0),
        "body_bytes": mix.gets.iter().map(|(u, b)| json!({"url": u, "bytes": b.len()})).collect::<Vec<_>>(),
        "warmup_secs": WARMUP.as_secs_f64(),
        "measured_secs": MEASURE.as_secs_f64(),
        "max_requests": MAX_REQUESTS,
        "paced_share_of_nginx_rate": PACED_SHARE,
        "ours": {
            "requests_per_sec_median": ours_rate.round(),
            "paced_p50_ms": med_of(&ours_paced, |l| pct(&l.lat_us, 0.5)) / 1000.0,
            "paced_p99_ms": med_of(&ours_paced, |l| pct(&l.lat_us, 0.99)) / 1000.0,
            "paced_p99_ms_all_runs_pooled": pct(&ours_lat, 0.99) / 1000.0,
            "errors": ours_errors,
            "saturated": ours_sat.iter().map(Load::to_json).collect::<Vec<_>>(),
            "paced": ours_paced.iter().map(Load::to_json).collect::<Vec<_>>(),
        },
        "target_ratio": TARGET_RATIO,
        "target_p99_ms": TARGET_P99_MS,
        // The cores are shared with whatever else runs on the machine.
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    });
    match &nginx {
        Some(n) => {
            let ng_rate = med_of(&ng_sat, rate);
            let ng_lat = pooled(&ng_paced);
            v["nginx"] = json!({
                "version": n.version,
                "workers": cpus,
                "requests_per_sec_median": ng_rate.round(),
                "paced_p50_ms": med_of(&ng_paced, |l| pct(&l.lat_us, 0.5)) / 1000.0,
                "paced_p99_ms": med_of(&ng_paced, |l| pct(&l.lat_us, 0.99)) / 1000.0,
                "paced_p99_ms_all_runs_pooled": pct(&ng_lat, 0.99) / 1000.0,
                "errors": ng_sat.iter().chain(&ng_paced).map(|l| l.errors).sum::<u64>(),
                "saturated": ng_sat.iter().map(Load::to_json).collect::<Vec<_>>(),
                "paced": ng_paced.iter().map(Load::to_json).collect::<Vec<_>>(),
            });
            // Each round's two saturated loads ran back to back: their ratio
            // is what the neighbours on the shared cores move least.
            let per_run: Vec<f64> = ours_sat
                .iter()
                .zip(&ng_sat)
                .map(|(o, n)| o.rate() / n.rate())
                .collect();
            let ratio = median(&per_run);
            v["ours_over_nginx"] = json!(ratio);
            v["ours_over_nginx_per_run"] = json!(per_run);
            v["ours_median_over_nginx_median"] = json!(ours_rate / ng_rate);
            eprintln!(
                "mp: ours / nginx, median of the runs' ratios {ratio:.2} (per run {per_run:.2?}); medians {ours_rate:.0} / {ng_rate:.0} requests/s; paced p99 (all runs pooled) {:.1} / {:.1} ms",
                pct(&ours_lat, 0.99) / 1000.0,
                pct(&ng_lat, 0.99) / 1000.0
            );
        }
        None => {
            v["nginx_skipped"] = json!(format!(
                "no nginx binary (install with `{NGINX_INSTALL}`, or set NGINX_BIN)"
            ));
        }
    }
    drop(nginx);
    drop(node);
    Ok(v)
}

/// /proc/loadavg's 1, 5 and 15 minute figures, as written there.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn report(run: usize, runs: usize, name: &str, kind: &str, l: &Load) {
    eprintln!(
        "mp: run {run}/{runs} {name:5} {kind:9}: {:.0} requests/s{} p50 {:.2} ms, p99 {:.2} ms; \
         {} errors, {} reconnects; CPU: server {:.0}%, generator {:.0}% of a core",
        l.rate(),
        l.offered_per_sec
            .map(|o| format!(" (offered {o:.0})"))
            .unwrap_or_default(),
        pct(&l.lat_us, 0.5) / 1000.0,
        pct(&l.lat_us, 0.99) / 1000.0,
        l.errors,
        l.reconnects,
        l.server_cpu_pct,
        l.generator_cpu_pct
    );
    if let Some(e) = &l.first_error {
        eprintln!("mp:   first error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_of_finds_a_spawned_child() {
        let mut c = Command::new("sleep").arg("5").spawn().unwrap();
        let kids = children_of(std::process::id());
        let _ = c.kill();
        let _ = c.wait();
        assert!(kids.contains(&c.id()), "{kids:?} lacks {}", c.id());
    }

    /// nginx answers the management point's URLs, query string included,
    /// with the bytes given, and nothing else; its workers are found.
    #[tokio::test]
    async fn nginx_serves_the_mix_at_the_management_points_urls() {
        let Some(bin) = find_nginx() else {
            eprintln!("SKIPPED: no nginx binary (`{NGINX_INSTALL}`)");
            return;
        };
        let dir = std::env::temp_dir().join(format!("sms-bench-nginx-test-{}", std::process::id()));
        let mix = Mix {
            gets: vec![
                (
                    ASSIGNMENTS.to_string(),
                    Bytes::from_static(b"{\"policies\":[]}"),
                ),
                (
                    "/sms_mp/.sms_pol?T01-MACHINE.7".to_string(),
                    Bytes::from_static(b"<Policy id=\"T01-MACHINE\" version=\"7\"/>\n"),
                ),
            ]
            .into(),
        };
        let n = Nginx::start(&bin, &dir, &mix, 1).await.unwrap();
        assert_eq!(n.pids().len(), 2, "master and one worker: {:?}", n.pids());
        let mut c = Conn::open(n.addr).await.unwrap();
        for _ in 0..3 {
            for (url, body) in mix.gets.iter() {
                c.get(url, body).await.unwrap();
            }
        }
        assert_eq!(c.reconnects, 0, "one keep-alive connection throughout");
        let wrong = c.get(&mix.gets[1].0, &mix.gets[0].1).await.unwrap_err();
        assert!(wrong.to_string().contains("differ"), "{wrong:#}");
        let missing = c
            .get("/sms_mp/.sms_aut?mplist", &Bytes::new())
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("status 404"), "{missing:#}");
        drop(n);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
