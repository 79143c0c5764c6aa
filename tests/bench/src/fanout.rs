//! Scenario 5: fan-out. A central primary PRI with 100 secondaries, each its
//! own `sms-node` process. The hierarchy is built once; then:
//!
//! - idle: RSS (`VmRSS`) of all 101 nodes, and their CPU (utime + stime from
//!   `/proc/PID/stat`) over a quiet window;
//! - `runs` times: one site control change for every secondary, issued at
//!   PRI concurrently (a polling interval change, sent down as a CT1), timed
//!   until PRI holds every secondary's CT2 at the new serial, i.e. until
//!   each one's report is back and processed at PRI.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sms_proto::v1 as pb;

use crate::harness::*;

const SECONDARIES: usize = 100;
/// The quiet window idle CPU is measured over.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

fn code(i: usize) -> String {
    format!("S{i:02}")
}

pub async fn fan_out(ctx: &Ctx, runs: usize) -> anyhow::Result<Value> {
    let t_build = Instant::now();
    let pri = ctx.start("pri", &["--install-primary", "PRI"])?;
    let mut nodes = Vec::with_capacity(SECONDARIES);
    for i in 0..SECONDARIES {
        nodes.push(ctx.bare(&code(i).to_lowercase(), &pri, &code(i)).await?);
    }
    let started_secs = t_build.elapsed().as_secs_f64();
    // Ask for every secondary at once, then wait for all of them.
    let mut a = pri.admin().await?;
    for (i, n) in nodes.iter().enumerate() {
        a.create_secondary(pb::CreateSecondaryRequest {
            site_code: code(i),
            server: n.addr().to_string(),
            sever_link_mid_bootstrap: false,
            site_name: String::new(),
        })
        .await?;
    }
    let codes: Vec<String> = (0..SECONDARIES).map(code).collect();
    wait_active(
        pri.addr(),
        &codes,
        Duration::from_millis(100),
        Duration::from_secs(300),
    )
    .await?;
    let build_secs = t_build.elapsed().as_secs_f64();
    eprintln!("  5: {SECONDARIES} secondaries Active in {build_secs:.1} s");
    // Let the last installs' traffic settle.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut idle = idle(&pri, &nodes).await?;
    // For the record: one read of PRI's whole site list, when idle (the
    // timing below reads each waiting site's CT2 copy instead).
    let mut reads = vec![];
    for _ in 0..20 {
        let t = Instant::now();
        a.list_sites(pb::ListSitesRequest {}).await?;
        reads.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    idle["site_list_read_ms_median_idle"] = json!(r1_2(pct(&sorted(reads), 0.5)));

    // Every change is built on PRI's copy of the site's control.
    let base_interval = a
        .get_site_control(pb::GetSiteControlRequest {
            serial: 0,
            site: code(0),
        })
        .await?
        .into_inner()
        .polling_interval_ms;
    let mut totals = vec![];
    let mut per_run = vec![];
    for run in 0..runs {
        let interval = base_interval + run as u64 + 1;
        let r = change_all(&pri, &codes, interval).await?;
        eprintln!(
            "  5 run {run}: every CT2 back at PRI after {:.0} ms",
            r.total_ms
        );
        totals.push(r1(r.total_ms));
        let done = sorted(r.done_ms);
        let replies = sorted(r.reply_ms);
        per_run.push(json!({
            "all_ct2s_back_ms": r1(r.total_ms),
            "per_site_ct2_back_ms": {
                "p50": r1(pct(&done, 0.5)),
                "p90": r1(pct(&done, 0.9)),
                "max": r1(pct(&done, 1.0)),
            },
            "change_calls_answered_ms": {
                "p50": r1(pct(&replies, 0.5)),
                "max": r1(pct(&replies, 1.0)),
            },
            "sweeps": r.sweeps,
            "sweep_ms_median": r1(r.sweep_ms_median),
        }));
        // A quiet moment between runs.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let in_order = totals.clone();
    let totals = sorted(totals);
    Ok(json!({
        "nodes": SECONDARIES + 1,
        "hierarchy": format!(
            "built once (PRI + {SECONDARIES} secondaries, separate processes; create requests \
             issued back to back, then waited for); the change was made {runs} times on it"
        ),
        "start_processes_secs": r1(started_secs),
        "build_secs": r1(build_secs),
        "change": "polling_interval_ms of every secondary (ChangeSiteControl at PRI with site set), all issued concurrently",
        "measured_until": "PRI holds every secondary's CT2 at the new serial: each sweep reads PRI's CT2 copy of every site still waiting (GetSiteControl with site), concurrently; a site's time is the end of the sweep that first saw it",
        "all_ct2s_back_ms_median": r1(pct(&totals, 0.5)),
        "all_ct2s_back_ms_runs": in_order,
        "runs": per_run,
        "target_ms": 3000,
        "idle": idle,
        "target_idle_rss_kb": 20480,
    }))
}

/// RSS and CPU of every node over a quiet window.
async fn idle(pri: &Node, nodes: &[Node]) -> anyhow::Result<Value> {
    let hz = clock_ticks_per_sec()?;
    let pids: Vec<Option<u32>> = std::iter::once(pri.pid())
        .chain(nodes.iter().map(|n| n.pid()))
        .collect();
    let before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let t0 = Instant::now();
    tokio::time::sleep(IDLE_WINDOW).await;
    let after: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let secs = t0.elapsed().as_secs_f64();
    // % of one core per node.
    let cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) as f64 / hz / secs * 100.0)
        .collect();
    let rss: Vec<f64> = pids.iter().map(|p| rss_kb(*p) as f64).collect();
    let threads: Vec<f64> = pids.iter().map(|p| thread_count(*p) as f64).collect();
    anyhow::ensure!(
        rss.iter().all(|r| *r > 0.0),
        "a node exited during the idle window"
    );
    let (pri_cpu, pri_rss) = (cpu[0], rss[0]);
    let total_cpu: f64 = cpu.iter().sum();
    let total_rss: f64 = rss.iter().sum();
    let cpu = sorted(cpu);
    let rss = sorted(rss);
    let threads = sorted(threads);
    Ok(json!({
        "window_secs": r1(secs),
        "rss_kb": {
            "median": pct(&rss, 0.5),
            "p90": pct(&rss, 0.9),
            "max": pct(&rss, 1.0),
            "central": pri_rss,
            "total_mb": r1(total_rss / 1024.0),
        },
        "cpu_pct_of_one_core": {
            "median_per_node": r1_2(pct(&cpu, 0.5)),
            "max_per_node": r1_2(pct(&cpu, 1.0)),
            "central": r1_2(pri_cpu),
            "total_all_nodes": r1_2(total_cpu),
            "resolution_per_node": r1_2(1.0 / hz / secs * 100.0),
        },
        "threads_per_node_median": pct(&threads, 0.5),
    }))
}

fn r1_2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct ChangeRun {
    total_ms: f64,
    /// Per secondary: from the start until PRI showed its new serial.
    done_ms: Vec<f64>,
    /// Per secondary: until its ChangeSiteControl call was answered.
    reply_ms: Vec<f64>,
    sweeps: usize,
    sweep_ms_median: f64,
}

/// Issues one change per secondary concurrently and waits until PRI holds,
/// for each, a CT2 at the serial its change becomes. Each sweep reads PRI's
/// CT2 copy (GetSiteControl with `site`) of every site still waiting, all at
/// once; a site's time is the end of the sweep that first saw it.
async fn change_all(pri: &Node, codes: &[String], interval: u64) -> anyhow::Result<ChangeRun> {
    let a = pri.admin().await?;
    let t0 = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for c in codes {
        let mut a = a.clone();
        let c = c.clone();
        calls.spawn(async move {
            let r = a
                .change_site_control(pb::ChangeSiteControlRequest {
                    site: c.clone(),
                    polling_interval_ms: Some(interval),
                    ..Default::default()
                })
                .await?
                .into_inner();
            anyhow::ensure!(
                r.site_code == c,
                "the change for {c} went to {}",
                r.site_code
            );
            anyhow::Ok((c, r.serial, t0.elapsed()))
        });
    }
    // The serial each change becomes, once its call is answered.
    let mut want: HashMap<String, u64> = HashMap::new();
    let mut reply_ms = vec![];
    // Sites not yet seen at their new serial: the serial PRI holds and when
    // that was first read (a CT2 may land before the call's answer does).
    let mut waiting: HashMap<String, (u64, f64)> =
        codes.iter().map(|c| (c.clone(), (0, 0.0))).collect();
    let mut done: Vec<f64> = vec![];
    let mut sweep_ms = vec![];
    let deadline = t0 + Duration::from_secs(120);
    while !waiting.is_empty() {
        while let Some(r) = calls.try_join_next() {
            let (c, serial, at) = r??;
            reply_ms.push(at.as_secs_f64() * 1000.0);
            want.insert(c, serial);
        }
        let ts = Instant::now();
        let mut reads = tokio::task::JoinSet::new();
        for c in waiting.keys() {
            let mut a = a.clone();
            let c = c.clone();
            reads.spawn(async move {
                let r = a
                    .get_site_control(pb::GetSiteControlRequest {
                        serial: 0,
                        site: c.clone(),
                    })
                    .await?
                    .into_inner();
                anyhow::Ok((c, r.serial))
            });
        }
        let mut serials = vec![];
        while let Some(r) = reads.join_next().await {
            serials.push(r??);
        }
        sweep_ms.push(ts.elapsed().as_secs_f64() * 1000.0);
        let now_ms = t0.elapsed().as_secs_f64() * 1000.0;
        for (c, serial) in serials {
            let w = waiting.get_mut(&c).expect("a waiting site");
            if w.0 != serial {
                *w = (serial, now_ms);
            }
        }
        waiting.retain(|c, (serial, at)| match want.get(c) {
            Some(target) if *serial >= *target => {
                done.push(*at);
                false
            }
            _ => true,
        });
        if Instant::now() > deadline {
            anyhow::bail!(
                "after 120 s PRI holds the new serial of {} of {} secondaries",
                done.len(),
                codes.len()
            );
        }
    }
    while let Some(r) = calls.join_next().await {
        let (_, _, at) = r??;
        reply_ms.push(at.as_secs_f64() * 1000.0);
    }
    let total_ms = done.iter().copied().fold(0.0, f64::max);
    let sweep_ms = sorted(sweep_ms);
    Ok(ChangeRun {
        total_ms,
        done_ms: done,
        reply_ms,
        sweeps: sweep_ms.len(),
        sweep_ms_median: pct(&sweep_ms, 0.5),
    })
}
