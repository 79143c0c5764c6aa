//! Scenario 7: status messages up two tiers. The central primary PRI has two
//! child primaries, P01 and P02, each with five secondaries (S11..S15 and
//! S21..S25): ten sites two hops below PRI. Each of the ten reports test
//! status messages at 1 000 a second at once (the node's GenerateStatusLoad),
//! and PRI's WatchStatusMessages stream tells when each one is stored there.
//! Latency is stored-at-PRI minus the message's time at its origin (one
//! clock: all processes share the machine). Nothing is polled, so the
//! measurement does not bound the figure.
//!
//! After the measured runs, one more run also watches the two child
//! primaries, to show which hop the time goes to (kept apart: watching the
//! middle tier adds work there).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sms_proto::v1 as pb;
use tokio::sync::mpsc;

use crate::harness::*;

/// Child primaries below PRI, and secondaries below each.
const CHILD_PRIMARIES: usize = 2;
const SECONDARIES_EACH: usize = 5;
/// Messages per second from each of the ten sites.
const RATE: u32 = 1_000;
/// Length of each run's load.
const LOAD_SECS: u32 = 10;
/// Catalogue id of the load test message.
const LOAD_ID: u32 = sms_types::catalog::STATUS_LOAD_TEST.id;
/// How long a run may take to deliver everything after its load ended.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// One load test message as stored at a watched site.
struct Arrival {
    tag: String,
    site: String,
    index: u32,
    origin_ms: u64,
    stored_us: u64,
}

/// Follows a node's stored messages of the load test id; forwards every one.
async fn follow(
    node: &Node,
    missed: Arc<AtomicU64>,
) -> anyhow::Result<mpsc::UnboundedReceiver<Arrival>> {
    let mut stream = node
        .admin()
        .await?
        .watch_status_messages(pb::WatchStatusMessagesRequest {
            site: String::new(),
            id: LOAD_ID,
        })
        .await?
        .into_inner();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(b)) = stream.message().await {
            missed.fetch_add(b.missed_batches, Ordering::Relaxed);
            for m in b.messages {
                let (Some(tag), Some(index)) = (
                    m.insertion_strings.first(),
                    m.insertion_strings.get(1).and_then(|i| i.parse().ok()),
                ) else {
                    continue;
                };
                let a = Arrival {
                    tag: tag.clone(),
                    site: m.site_code,
                    index,
                    origin_ms: m.time_unix_ms,
                    stored_us: b.stored_unix_us,
                };
                if tx.send(a).is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// First arrival of each (site, index) of run `tag`: (origin ms, stored µs).
type Arrivals = HashMap<(String, u32), (u64, u64)>;

/// Takes arrivals of `tag` until `expected` distinct ones came or `until`
/// passed; returns them and the number of repeats.
async fn gather(
    rx: &mut mpsc::UnboundedReceiver<Arrival>,
    tag: &str,
    expected: usize,
    until: Instant,
) -> (Arrivals, u64) {
    let mut got = Arrivals::with_capacity(expected);
    let mut repeats = 0;
    while got.len() < expected {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(Some(a)) = tokio::time::timeout(left, rx.recv()).await else {
            break;
        };
        if a.tag != tag {
            continue;
        }
        if got
            .insert((a.site, a.index), (a.origin_ms, a.stored_us))
            .is_some()
        {
            repeats += 1;
        }
    }
    (got, repeats)
}

/// Latencies in ms (stored minus origin), sorted.
fn latencies(got: &Arrivals) -> Vec<f64> {
    sorted(
        got.values()
            .map(|(origin_ms, stored_us)| *stored_us as f64 / 1000.0 - *origin_ms as f64)
            .collect(),
    )
}

fn summary(lat: &[f64]) -> Value {
    json!({
        "p50_ms": r1(pct(lat, 0.5)),
        "p90_ms": r1(pct(lat, 0.9)),
        "p99_ms": r1(pct(lat, 0.99)),
        "max_ms": r1(pct(lat, 1.0)),
    })
}

/// CPU ticks used so far by: the central site, the child primaries, the
/// secondaries, and this benchmark process.
fn cpu_by_role(pri: &Node, primaries: &[Node], secondaries: &[(String, Node)]) -> [u64; 4] {
    [
        cpu_ticks(pri.pid()),
        primaries.iter().map(|n| cpu_ticks(n.pid())).sum(),
        secondaries.iter().map(|(_, n)| cpu_ticks(n.pid())).sum(),
        cpu_ticks(Some(std::process::id())),
    ]
}

/// The hierarchy under test.
struct Tiers {
    pri: Node,
    primaries: Vec<Node>,
    secondaries: Vec<(String, Node)>,
}

/// Starts every secondary's load at once; returns (emitted in all, lowest
/// achieved rate per site) when all have reported their last message.
async fn load(t: &Tiers, tag: &str) -> anyhow::Result<(u64, f64)> {
    let count = RATE * LOAD_SECS;
    let mut loads = tokio::task::JoinSet::new();
    for (code, node) in &t.secondaries {
        let mut a = node.admin().await?;
        let (code, tag) = (code.clone(), tag.to_string());
        loads.spawn(async move {
            let r = a
                .generate_status_load(pb::StatusLoadRequest {
                    count,
                    per_second: RATE,
                    tag,
                })
                .await?
                .into_inner();
            anyhow::Ok((code, r))
        });
    }
    let mut emitted = 0u64;
    let mut lowest_rate = f64::INFINITY;
    while let Some(r) = loads.join_next().await {
        let (code, r) = r??;
        anyhow::ensure!(
            r.emitted == count,
            "{code} emitted {} of {count}",
            r.emitted
        );
        emitted += r.emitted as u64;
        let secs = (r.finished_unix_ms - r.started_unix_ms) as f64 / 1000.0;
        lowest_rate = lowest_rate.min(r.emitted as f64 / secs);
    }
    Ok((emitted, lowest_rate))
}

pub async fn status_two_tiers(ctx: &Ctx, runs: usize) -> anyhow::Result<Value> {
    let t_build = Instant::now();
    let pri = ctx.start("pri", &["--install-primary", "PRI"])?;
    let mut primaries = vec![];
    let mut secondaries = vec![];
    let mut codes = vec![];
    for p in 1..=CHILD_PRIMARIES {
        let code = format!("P{p:02}");
        let node = ctx.start(
            &code.to_lowercase(),
            &[
                "--install-primary",
                &code,
                "--parent-site",
                "PRI",
                "--parent",
                pri.addr(),
            ],
        )?;
        codes.push(code);
        for s in 1..=SECONDARIES_EACH {
            let scode = format!("S{p}{s}");
            let child = ctx.bare(&scode.to_lowercase(), &node, &scode).await?;
            create(&node, &child, &scode).await?;
            codes.push(scode.clone());
            secondaries.push((scode, child));
        }
        primaries.push(node);
    }
    wait_active(
        pri.addr(),
        &codes,
        Duration::from_millis(50),
        Duration::from_secs(60),
    )
    .await?;
    let build_secs = t_build.elapsed().as_secs_f64();
    let t = Tiers {
        pri,
        primaries,
        secondaries,
    };
    // Let the install traffic settle before the first run.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let hz = clock_ticks_per_sec()?;
    let missed = Arc::new(AtomicU64::new(0));
    let mut at_pri = follow(&t.pri, missed.clone()).await?;
    let expected = (RATE * LOAD_SECS) as usize * t.secondaries.len();
    let mut per_run = vec![];
    let mut pooled = vec![];
    let mut p99s = vec![];
    let mut p50s = vec![];
    for run in 0..runs {
        let tag = format!("bench-run-{run}");
        let cpu0 = cpu_by_role(&t.pri, &t.primaries, &t.secondaries);
        let t0 = Instant::now();
        let (emitted, lowest_rate) = load(&t, &tag).await?;
        let load_done = t0.elapsed();
        let (got, repeats) =
            gather(&mut at_pri, &tag, expected, Instant::now() + DRAIN_LIMIT).await;
        let drained_after_load_ms = (t0.elapsed() - load_done).as_secs_f64() * 1000.0;
        let secs = t0.elapsed().as_secs_f64();
        let cpu1 = cpu_by_role(&t.pri, &t.primaries, &t.secondaries);
        let cpu_pct = |i: usize| r1((cpu1[i] - cpu0[i]) as f64 / hz / secs * 100.0);
        let first = got.values().map(|v| v.1).min().unwrap_or(0);
        let last = got.values().map(|v| v.1).max().unwrap_or(0);
        // A message that never arrived counts as arriving never, so a loss
        // can only worsen the percentiles.
        let mut lat = latencies(&got);
        lat.extend(std::iter::repeat_n(
            f64::INFINITY,
            expected.saturating_sub(got.len()),
        ));
        let lat = sorted(lat);
        let (p50, p99) = (pct(&lat, 0.5), pct(&lat, 0.99));
        eprintln!(
            "  7 run {run}: {} of {expected} stored at PRI; p50 {p50:.0} ms, p99 {p99:.0} ms",
            got.len()
        );
        let mut r = summary(&lat);
        r["emitted"] = json!(emitted);
        r["stored_at_central"] = json!(got.len());
        r["missing"] = json!(expected - got.len());
        r["repeats"] = json!(repeats);
        r["lowest_origin_rate_per_site"] = json!(r1(lowest_rate));
        r["central_msgs_per_sec"] = json!(r1(got.len() as f64 / ((last - first) as f64 / 1e6)));
        r["drained_after_load_ms"] = json!(r1(drained_after_load_ms));
        r["cpu_pct_of_one_core"] = json!({
            "central": cpu_pct(0),
            "child_primaries": cpu_pct(1),
            "secondaries": cpu_pct(2),
            "bench": cpu_pct(3),
        });
        per_run.push(r);
        p50s.push(p50);
        p99s.push(p99);
        pooled.extend(lat);
        // A quiet moment between runs.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Diagnostic run: where the time goes, hop by hop.
    let mut at_children = vec![];
    for p in &t.primaries {
        at_children.push(follow(p, missed.clone()).await?);
    }
    let tag = "bench-hops".to_string();
    load(&t, &tag).await?;
    let until = Instant::now() + DRAIN_LIMIT;
    let (top, _) = gather(&mut at_pri, &tag, expected, until).await;
    let mut first_hop = Arrivals::new();
    for rx in &mut at_children {
        let (got, _) = gather(rx, &tag, expected / t.primaries.len(), until).await;
        first_hop.extend(got);
    }
    let hops = json!({
        "origin_to_stored_at_child_primary": summary(&latencies(&first_hop)),
        "origin_to_stored_at_central": summary(&latencies(&top)),
        "messages": [first_hop.len(), top.len()],
    });

    let pooled = sorted(pooled);
    let p99s = sorted(p99s);
    let p50s = sorted(p50s);
    Ok(json!({
        "hierarchy": format!(
            "PRI <- {CHILD_PRIMARIES} child primaries <- {SECONDARIES_EACH} secondaries each; \
             load from the {} secondaries (two hops below PRI)",
            t.secondaries.len()
        ),
        "rate_per_site": RATE,
        "load_secs_per_run": LOAD_SECS,
        "messages_per_run": expected,
        "latency": "stored at PRI (WatchStatusMessages) minus time_unix_ms at the origin; ms resolution at the origin",
        "p50_ms_median_of_runs": r1(pct(&p50s, 0.5)),
        "p99_ms_median_of_runs": r1(pct(&p99s, 0.5)),
        "p99_ms_all_runs_pooled": r1(pct(&pooled, 0.99)),
        "max_ms_all_runs": r1(pct(&pooled, 1.0)),
        "watcher_missed_batches": missed.load(Ordering::Relaxed),
        "runs": per_run,
        "hops_diagnostic_run": hops,
        "build_secs": r1(build_secs),
        "target_p99_ms": 2000,
    }))
}
