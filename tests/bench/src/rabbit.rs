//! Scenario 2r: our node against a RabbitMQ quorum queue with publisher
//! confirms, on the same machine and in the same run. A quorum queue is
//! RabbitMQ's replicated, durable queue (Raft): with one member, a confirm
//! is sent once the message is in the Raft log on disk (the log's write-ahead
//! file is fdatasynced per batch, a group commit like ours).
//!
//! - 20 000 persistent 1 KiB publishes with 64 confirms outstanding (our 1a);
//! - 2 000 with one in flight, publish to confirm timed each (our 1b).
//!
//! The harness runs Debian's `rabbitmq-server` itself (one broker for the
//! scenario, a fresh queue each run): on 127.0.0.1 only, with its own node
//! name, AMQP port, Erlang distribution port, its own `epmd` on its own port,
//! and its data, logs, config and Erlang cookie (`HOME`) in a temporary
//! directory. Broker and `epmd` are killed on drop. It does not install the
//! package: without it the scenario stops with the `apt-get` line to run.
//!
//! Built only with `--features rabbit`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{json, Value};

use crate::harness::{pct, sorted, Ctx};
use crate::Ours;

const MSGS: usize = 20_000;
const BYTES: usize = 1024;
const IN_FLIGHT: usize = 64;
const RT_MSGS: usize = 2_000;
const RT_WARMUP: usize = 10;
/// No single publishing run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// How long the broker may take to accept AMQP connections.
const START_LIMIT: Duration = Duration::from_secs(60);
/// Debian's scripts: these run the broker as the calling user (the ones in
/// /usr/sbin switch to the `rabbitmq` user, who cannot write our temp dir).
const SCRIPTS: &str = "/usr/lib/rabbitmq/bin";
const INSTALL: &str = "apt-get install -y rabbitmq-server";

/// The directory holding `rabbitmq-server` and `rabbitmqctl`
/// (`RABBITMQ_SCRIPTS` overrides), and `epmd`; an error naming the install
/// command if either is missing. Called before any scenario runs.
pub fn find_server() -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("RABBITMQ_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SCRIPTS));
    ensure!(
        dir.join("rabbitmq-server").is_file() && dir.join("rabbitmqctl").is_file(),
        "scenario 2r needs RabbitMQ: no rabbitmq-server in {} (install Debian's package with \
         `{INSTALL}`, or set RABBITMQ_SCRIPTS to the directory of its scripts)",
        dir.display()
    );
    let epmd = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("epmd"))
                .find(|p| p.is_file())
        })
        .with_context(|| format!("scenario 2r: no `epmd` on PATH (Erlang; `{INSTALL}`)"))?;
    Ok((dir, epmd))
}

/// `n` distinct free loopback ports. They are held until all are chosen, then
/// released for the broker; another process could take one in between, in
/// which case the broker fails to start and says so.
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let mut ports = [0u16; N];
    for (p, l) in ports.iter_mut().zip(&held) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// One RabbitMQ node and its `epmd`; both killed on drop.
struct Broker {
    /// The broker's shell script, which execs `erl`: in a process group of
    /// its own, so that the whole group can be killed.
    server: Child,
    epmd: Child,
    /// Environment for `rabbitmqctl` (node name, ports, cookie).
    env: Vec<(String, String)>,
    scripts: PathBuf,
    node: String,
    amqp_url: String,
    dir: PathBuf,
}

impl Broker {
    async fn start(scripts: &Path, epmd_bin: &Path, dir: &Path) -> anyhow::Result<Broker> {
        use std::os::unix::process::CommandExt;
        let home = dir.join("home");
        for d in [&home, &dir.join("mnesia"), &dir.join("log")] {
            std::fs::create_dir_all(d)?;
        }
        let [amqp, dist, epmd_port, ctl_dist] = free_ports::<4>()?;
        let node = format!("sms_bench_{}@localhost", std::process::id());
        std::fs::write(
            dir.join("rabbitmq.conf"),
            "# sms-bench: ports, addresses and directories come from RABBITMQ_* variables.\n\
             log.file.level = warning\n",
        )?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        std::fs::write(dir.join("rabbitmq-env.conf"), "")?;
        let loopback_dist = "-kernel inet_dist_use_interface {127,0,0,1}";
        let p = |x: &Path| x.display().to_string();
        let env: Vec<(String, String)> = [
            ("HOME", p(&home)),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
            ("ERL_EPMD_PORT", epmd_port.to_string()),
            ("RABBITMQ_NODENAME", node.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT", amqp.to_string()),
            ("RABBITMQ_DIST_PORT", dist.to_string()),
            ("RABBITMQ_CTL_DIST_PORT_MIN", ctl_dist.to_string()),
            ("RABBITMQ_CTL_DIST_PORT_MAX", ctl_dist.to_string()),
            ("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", loopback_dist.into()),
            ("RABBITMQ_CTL_ERL_ARGS", loopback_dist.into()),
            ("RABBITMQ_MNESIA_BASE", p(&dir.join("mnesia"))),
            ("RABBITMQ_LOG_BASE", p(&dir.join("log"))),
            ("RABBITMQ_CONFIG_FILE", p(&dir.join("rabbitmq"))),
            ("RABBITMQ_CONF_ENV_FILE", p(&dir.join("rabbitmq-env.conf"))),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                p(&dir.join("enabled_plugins")),
            ),
            ("RABBITMQ_PID_FILE", p(&dir.join("rabbitmq.pid"))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let epmd = Command::new(epmd_bin)
            .args(["-address", "127.0.0.1", "-port"])
            .arg(epmd_port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("epmd.log"))?)
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawn {}", epmd_bin.display()))?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let server = Command::new(scripts.join("rabbitmq-server"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn();
        let server = match server {
            Ok(s) => s,
            Err(e) => {
                let mut epmd = epmd;
                let _ = epmd.kill();
                let _ = epmd.wait();
                bail!("spawn {}/rabbitmq-server: {e}", scripts.display());
            }
        };
        let mut b = Broker {
            server,
            epmd,
            env,
            scripts: scripts.to_path_buf(),
            node,
            amqp_url: format!("amqp://guest:guest@127.0.0.1:{amqp}/%2f"),
            dir: dir.to_path_buf(),
        };
        let t0 = Instant::now();
        loop {
            // Accepting TCP is not enough: the listener opens before the
            // broker has finished booting. An AMQP handshake is.
            if tokio::net::TcpStream::connect(("127.0.0.1", amqp))
                .await
                .is_ok()
            {
                if let Ok(Ok(c)) = tokio::time::timeout(
                    Duration::from_secs(5),
                    Connection::connect(&b.amqp_url, ConnectionProperties::default()),
                )
                .await
                {
                    let _ = c.close(200, "ready".into()).await;
                    eprintln!(
                        "rabbit: node {} up on 127.0.0.1:{amqp} in {:.1} s",
                        b.node,
                        t0.elapsed().as_secs_f64()
                    );
                    return Ok(b);
                }
            }
            if let Some(status) = b.server.try_wait()? {
                bail!(
                    "rabbitmq-server exited ({status}); its output:\n{}",
                    b.log_tail()
                );
            }
            if t0.elapsed() > START_LIMIT {
                bail!(
                    "rabbitmq-server did not accept AMQP on 127.0.0.1:{amqp} within {START_LIMIT:?}; its output:\n{}",
                    b.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `rabbitmqctl -q ARGS` against this node; its standard output.
    fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(self.scripts.join("rabbitmqctl"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["-q", "-n", &self.node, "-t", "30"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run rabbitmqctl")?;
        ensure!(
            out.status.success(),
            "rabbitmqctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // The group holds the script's `erl` and its beam.smp; the helpers
        // beam starts (erl_child_setup, inet_gethost) exit with it.
        let pgid = self.server.id() as libc::pid_t;
        // SAFETY: kill(2) on a process group this harness created.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.server.wait();
        let _ = self.epmd.kill();
        let _ = self.epmd.wait();
    }
}

/// A channel in confirm mode on a fresh, durable quorum queue `name`.
async fn quorum_queue(conn: &Connection, name: &str) -> anyhow::Result<Channel> {
    let ch = conn.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// Persistent (delivery mode 2) publish to the default exchange; returns the
/// confirm to wait for.
async fn publish(
    ch: &Channel,
    queue: &str,
    payload: &[u8],
) -> anyhow::Result<lapin::PublisherConfirm> {
    Ok(ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            payload,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?)
}

/// The queue holds `n` messages (a passive declare reports its count).
async fn check_held(ch: &Channel, queue: &str, n: usize) -> anyhow::Result<()> {
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    ensure!(
        q.message_count() as usize == n,
        "queue {queue} holds {} messages, not {n}",
        q.message_count()
    );
    Ok(())
}

/// 20 000 publishes with 64 confirms outstanding; every one must be acked.
/// Returns messages per second, first publish to last confirm.
async fn throughput_run(conn: &Connection, queue: &str) -> anyhow::Result<f64> {
    let ch = quorum_queue(conn, queue).await?;
    let payload = vec![0x5a; BYTES];
    let mut confirms = FuturesUnordered::new();
    let mut acked = 0usize;
    let t0 = Instant::now();
    let timed = async {
        for _ in 0..MSGS {
            if confirms.len() == IN_FLIGHT {
                let c: lapin::Confirmation =
                    confirms.next().await.context("confirm window empty")??;
                acked += usize::from(c.is_ack());
            }
            confirms.push(publish(&ch, queue, &payload).await?);
        }
        while let Some(c) = confirms.next().await {
            acked += usize::from(c?.is_ack());
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(RUN_LIMIT, timed)
        .await
        .with_context(|| format!("RabbitMQ run took over {RUN_LIMIT:?}"))??;
    let secs = t0.elapsed().as_secs_f64();
    ensure!(acked == MSGS, "only {acked} of {MSGS} publishes confirmed");
    check_held(&ch, queue, MSGS).await?;
    Ok(MSGS as f64 / secs)
}

/// 2 000 publishes one at a time, each timed from publish to confirm;
/// latencies in µs after the warm-up.
async fn round_trip_run(conn: &Connection, queue: &str) -> anyhow::Result<Vec<f64>> {
    let ch = quorum_queue(conn, queue).await?;
    let payload = vec![0x5a; BYTES];
    let mut lat = Vec::with_capacity(RT_MSGS);
    let timed = async {
        for _ in 0..RT_MSGS {
            let t = Instant::now();
            let c = publish(&ch, queue, &payload).await?.await?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            ensure!(c.is_ack(), "publish nacked: {c:?}");
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(RUN_LIMIT, timed)
        .await
        .with_context(|| format!("RabbitMQ round trips took over {RUN_LIMIT:?}"))??;
    check_held(&ch, queue, RT_MSGS).await?;
    Ok(lat.split_off(RT_WARMUP))
}

/// Runs both loads `runs` times on one broker (fresh queues each run, deleted
/// after), checks with `rabbitmqctl` that the queues are quorum queues, and
/// compares the medians with ours from the same run.
pub async fn side_by_side(ctx: &Ctx, runs: usize, ours: &Ours) -> anyhow::Result<Value> {
    let (scripts, epmd) = find_server()?;
    let broker = Broker::start(&scripts, &epmd, &ctx.dir("rabbitmq")).await?;
    let version = broker
        .ctl(&["version"])
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    let conn = Connection::connect(&broker.amqp_url, ConnectionProperties::default()).await?;
    let (mut rates, mut rt) = (vec![], vec![]);
    let mut queue_types = serde_json::Map::new();
    for run in 1..=runs {
        let (tq, rq) = (format!("bench-{run}"), format!("bench-rt-{run}"));
        let rate = throughput_run(&conn, &tq).await?;
        let lat = sorted(round_trip_run(&conn, &rq).await?);
        // What the broker says these queues are, while they exist.
        let listed = broker.ctl(&["list_queues", "name", "type", "durable", "messages"])?;
        for q in [&tq, &rq] {
            let row = listed
                .lines()
                .map(|l| l.split('\t').collect::<Vec<_>>())
                .find(|f| f.first() == Some(&q.as_str()))
                .with_context(|| format!("rabbitmqctl list_queues does not list {q}:\n{listed}"))?;
            ensure!(
                row.get(1) == Some(&"quorum") && row.get(2) == Some(&"true"),
                "queue {q} is not a durable quorum queue: rabbitmqctl says {row:?}"
            );
            queue_types.insert(q.clone(), json!(row[1]));
        }
        eprintln!(
            "rabbit: run {run}/{runs}: {rate:.0} msgs/s (1 KiB, {IN_FLIGHT} in flight); one in flight p50 {:.0} us, p99 {:.0} us; \
             rabbitmqctl list_queues: {tq}, {rq} type quorum, durable",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
        rates.push(rate);
        rt.extend(lat);
        let ch = conn.create_channel().await?;
        for q in [&tq, &rq] {
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
    }
    let _ = conn.close(200, "done".into()).await;
    let (rates, rt) = (sorted(rates), sorted(rt));
    let (m, rt50, rt99) = (pct(&rates, 0.5), pct(&rt, 0.5), pct(&rt, 0.99));
    let ratio = ours.jobs_per_sec / m;
    let ratio_p50 = ours.p50_us / rt50;
    eprintln!(
        "rabbit: ours / quorum queue, 1 KiB 64 in flight = {:.0} / {m:.0} = {ratio:.3}; one in flight p50 = {:.0} / {rt50:.0} us = {ratio_p50:.3}",
        ours.jobs_per_sec, ours.p50_us
    );
    Ok(json!({
        "ours": ours.to_json(),
        "rabbitmq_version": version,
        "queue": {
            "declare_arguments": {"x-queue-type": "quorum"},
            "durable": true,
            "publisher_confirms": true,
            "delivery_mode": 2,
            "type_per_rabbitmqctl": queue_types,
        },
        "quorum_64_in_flight": {"msgs_per_sec_median": m, "runs": rates},
        "round_trip_one_in_flight": {
            "p50_us": rt50,
            "p99_us": rt99,
            "samples": rt.len(),
            "msgs_per_run": RT_MSGS,
        },
        "ours_over_quorum": ratio,
        "ours_p50_over_quorum_p50": ratio_p50,
    }))
}
