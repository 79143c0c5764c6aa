//! Seeded chaos test of the SMS hierarchy, on real `sms-node` processes.
//!
//! Three tiers (PRI; P01 attached below it; S01 under PRI; S11 and S12
//! under P01; M1 a member server of CORP and S12's logon server). For a
//! bounded number of rounds it keeps mixed traffic flowing through the admin
//! API (probes between leaves across the tree and to PRI, small file
//! packages, site control changes made at random tiers, status message
//! load, SMS unique IDs from the logon server) while it kills (`kill -9`,
//! down for 0.5-4 s), restarts cleanly (SIGTERM), freezes (`SIGSTOP`, then
//! `SIGCONT` after 1-3 s) random nodes and severs random links (restored 0-2
//! rounds later). Then it heals everything, waits for convergence
//! and checks what the store-and-forward design promises: everything the
//! API acknowledged arrives exactly once, every site is Active with the
//! same site control serial at every tier, every acknowledged change is
//! either applied or in the bad box, failed boxes are empty (or every
//! failed job is explained), and no SMS unique ID is issued twice.
//!
//! The seed fixes every decision (what is sent where, which fault hits
//! which node, for how long); the timing of processes is not reproducible,
//! so a seed replays the same plan, not necessarily the same interleaving.
//!
//! ```sh
//! cargo build --bin sms-node                      # the nodes it runs (same profile)
//! cargo test -p sms-chaos --test chaos -- --nocapture              # 40 rounds, ~2 min
//! CHAOS_SEED=1234 CHAOS_ROUNDS=40 cargo test -p sms-chaos --test chaos -- --nocapture
//! # the soak (200 rounds, up to 20 min of rounds):
//! cargo test -p sms-chaos --test chaos -- --ignored --nocapture chaos_soak
//! ```
//!
//! `CHAOS_SEED` (default: random, printed), `CHAOS_ROUNDS`, `CHAOS_SECS`
//! (time budget for the rounds), `CHAOS_CONVERGE_SECS` (default 120) and
//! `SMS_NODE_BIN` (the node binary; default: next to the test executable)
//! tune a run. The test target is `test = false`, so `cargo test
//! --workspace` does not run it; `.ci/run` runs it as a step of its own.

pub mod hierarchy;
pub mod ledger;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hierarchy::{parent, tiers, Hierarchy, Run, LINKS, LOGON_SITE, M1, NAMES, P01, PRI, SITES};
use ledger::{BadEntry, Change, Fate};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sms_cluster::{find_node_binary, Cluster, Source};
use sms_proto::v1 as pb;
use sms_types::catalog;

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub rounds: u32,
    /// No new round starts after this much time in rounds.
    pub budget: Duration,
    /// How long the healed hierarchy may take to converge.
    pub converge_timeout: Duration,
    /// The cargo test arguments that select this test, for the reproduce line.
    pub test_args: String,
}

impl Config {
    /// Reads `CHAOS_SEED`, `CHAOS_ROUNDS`, `CHAOS_SECS` and
    /// `CHAOS_CONVERGE_SECS`, with the given defaults for rounds and budget.
    pub fn from_env(rounds: u32, budget: Duration, test_args: &str) -> Result<Config, String> {
        fn var<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={v:?} is not a number")),
                _ => Ok(None),
            }
        }
        Ok(Config {
            seed: var("CHAOS_SEED")?.unwrap_or_else(rand::random),
            rounds: var("CHAOS_ROUNDS")?.unwrap_or(rounds),
            budget: var("CHAOS_SECS")?
                .map(Duration::from_secs)
                .unwrap_or(budget),
            converge_timeout: Duration::from_secs(var("CHAOS_CONVERGE_SECS")?.unwrap_or(120)),
            test_args: test_args.to_string(),
        })
    }

    /// The command that replays this run's plan.
    pub fn reproduce(&self) -> String {
        format!(
            "CHAOS_SEED={} CHAOS_ROUNDS={} cargo test -p sms-chaos --test chaos {}",
            self.seed, self.rounds, self.test_args
        )
    }
}

/// Faults injected, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    pub kills: u32,
    pub freezes: u32,
    /// Clean restarts (SIGTERM, then start again at once).
    pub restarts: u32,
    pub severs: u32,
}

/// A job found in a failed box during the heal.
#[derive(Debug, Clone)]
pub struct FailedJob {
    pub at: String,
    pub to: String,
    pub kind: String,
    pub job_id: String,
    pub attempts: u32,
    pub reason: String,
}

/// The outcome of a run. `problems` empty means it passed.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub rounds: u32,
    pub faults: Faults,
    pub probes: usize,
    pub packages: usize,
    pub changes: usize,
    pub changes_applied: usize,
    pub changes_refused: usize,
    pub status_messages: usize,
    pub ids: usize,
    /// Admin calls that failed or timed out (not acknowledged, not counted).
    pub unacknowledged: u32,
    pub lost: usize,
    pub duplicated: usize,
    pub failed_jobs: Vec<FailedJob>,
    /// Failed jobs that nothing explains.
    pub unexplained: usize,
    pub converged_after: Option<Duration>,
    pub elapsed: Duration,
    pub problems: Vec<String>,
    /// Log tails of every node, gathered when a problem was found.
    pub evidence: String,
    /// The nodes' data dirs, kept when a problem was found.
    pub kept_dir: Option<PathBuf>,
}

impl Report {
    /// The one summary line (the figures the README quotes).
    pub fn summary(&self) -> String {
        let converge = match self.converged_after {
            Some(d) => format!("{:.1} s", d.as_secs_f64()),
            None => "never".into(),
        };
        format!(
            "chaos seed={} rounds={} faults: kill={} freeze={} restart={} sever={} | jobs={} \
             (probes {}, packages {}, site control changes {} [{} applied, {} refused as stale]) \
             status messages={} ids={} unacknowledged calls={} | lost={} duplicated={} \
             failed={} (unexplained {}) | converged in {} | total {:.0} s",
            self.seed,
            self.rounds,
            self.faults.kills,
            self.faults.freezes,
            self.faults.restarts,
            self.faults.severs,
            self.probes + self.packages + self.changes,
            self.probes,
            self.packages,
            self.changes,
            self.changes_applied,
            self.changes_refused,
            self.status_messages,
            self.ids,
            self.unacknowledged,
            self.lost,
            self.duplicated,
            self.failed_jobs.len(),
            self.unexplained,
            converge,
            self.elapsed.as_secs_f64(),
        )
    }
}

/// Runs the chaos described by `cfg`. Err only when the hierarchy could not
/// be set up at all; everything found during the run is in the report.
pub fn run(cfg: &Config) -> Result<Report, String> {
    let bin = find_node_binary(None);
    if bin.source == Source::Path {
        return Err(format!(
            "no sms-node binary next to this test or in the target dir; build it first \
             (cargo build --bin sms-node) or set {}",
            sms_cluster::NODE_BIN_ENV
        ));
    }
    eprintln!("chaos: nodes run {}", bin.path.display());
    let cluster = Cluster::new(bin.path)
        .env("RUST_LOG", "warn")
        .env("SMS_INSECURE", "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("a Tokio runtime: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("sms-chaos-")
        .tempdir()
        .map_err(|e| format!("a temp dir: {e}"))?;
    let mut report = rt.block_on(async {
        let t0 = Instant::now();
        let h = Hierarchy::build(&cluster, dir.path()).await?;
        eprintln!(
            "chaos: hierarchy up in {:.1} s: {}",
            t0.elapsed().as_secs_f64(),
            h.nodes
                .iter()
                .map(|m| format!("{} {}", m.name, m.node.addr()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut chaos = Chaos::new(cfg, h);
        chaos.run().await;
        Ok::<_, String>(chaos.report)
    })?;
    if !report.problems.is_empty() {
        report.kept_dir = Some(dir.keep());
    }
    Ok(report)
}

/// Every acknowledged item, to account for at the end.
#[derive(Default)]
struct Books {
    /// Probe job id -> destination.
    probes: BTreeMap<Vec<u8>, String>,
    /// Package job id -> (destination, sha256).
    packages: BTreeMap<Vec<u8>, (usize, String)>,
    /// "site/tag/index" of every acknowledged load message -> "PRI".
    loads: BTreeMap<String, String>,
    changes: Vec<Change>,
    ids: Vec<u64>,
    sms_ids: Vec<String>,
}

/// A link cut by the chaos, restored after round `until`.
struct Severed {
    by: usize,
    to: usize,
    until: u32,
}

/// A kill or freeze that ends at a given time in the round.
enum Timed {
    Restart(usize),
    Thaw(usize),
}

/// Where probes go: the leaves and the central site.
const ENDPOINTS: [usize; 4] = [0, 2, 3, 4];

struct Chaos<'a> {
    cfg: &'a Config,
    /// Decides the faults. Traffic has its own generator, so the fault plan
    /// of a seed stays the same whatever the traffic calls' timing does.
    rng: StdRng,
    trng: StdRng,
    h: Hierarchy,
    books: Books,
    severed: Vec<Severed>,
    failed: BTreeMap<String, FailedJob>,
    changes_made: u32,
    report: Report,
}

fn id_text(id: &[u8]) -> String {
    uuid::Uuid::from_slice(id)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| format!("{id:02x?}"))
}

impl<'a> Chaos<'a> {
    fn new(cfg: &'a Config, h: Hierarchy) -> Chaos<'a> {
        Chaos {
            cfg,
            rng: StdRng::seed_from_u64(cfg.seed),
            trng: StdRng::seed_from_u64(cfg.seed ^ 0x5eed_7aff_1c00_0000),
            h,
            books: Books::default(),
            severed: vec![],
            failed: BTreeMap::new(),
            changes_made: 0,
            report: Report {
                seed: cfg.seed,
                ..Default::default()
            },
        }
    }

    async fn run(&mut self) {
        let t0 = Instant::now();
        for r in 1..=self.cfg.rounds {
            if t0.elapsed() > self.cfg.budget {
                eprintln!("chaos: time budget of {:?} used up", self.cfg.budget);
                break;
            }
            if let Err(e) = self.round(r).await {
                self.report.problems.push(format!("round {r}: {e}"));
                break;
            }
            self.report.rounds = r;
        }
        let healed = self.heal().await;
        let converged = match healed {
            Ok(()) => self.converge().await,
            Err(e) => {
                self.report.problems.push(e);
                false
            }
        };
        self.check(converged).await;
        self.report.elapsed = t0.elapsed();
        if !self.report.problems.is_empty() {
            self.report.evidence = (0..NAMES.len()).map(|i| self.h.log_tails(i, 12)).collect();
        }
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> Option<T> {
        pick(&mut self.rng, from)
    }

    /// One round: traffic, then faults landing while its jobs are in
    /// flight, more traffic while the faults last (some of it queued for the
    /// faulted nodes) as the kills and freezes end, then the links due back
    /// are restored.
    async fn round(&mut self, r: u32) -> Result<(), String> {
        let mut line = format!("chaos: round {r}:");
        let mut sent = self.traffic(r, 0).await;
        let pause = self.rng.random_range(0..300);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let mut timed: Vec<(Instant, Timed)> = vec![];
        let mut touched: Vec<usize> = vec![];
        for _ in 0..self.rng.random_range(1..=2) {
            let kind = self.rng.random_range(0..10);
            let candidates: Vec<usize> = (0..NAMES.len())
                .filter(|&i| self.h.up(i) && !touched.contains(&i))
                .collect();
            match kind {
                0..=2 => {
                    let Some(i) = self.pick(&candidates) else {
                        continue;
                    };
                    let ms = self.rng.random_range(500..=4_000);
                    self.h.kill(i);
                    touched.push(i);
                    self.report.faults.kills += 1;
                    timed.push((
                        Instant::now() + Duration::from_millis(ms),
                        Timed::Restart(i),
                    ));
                    line.push_str(&format!(" kill -9 {} for {ms} ms;", NAMES[i]));
                }
                3 => {
                    let Some(i) = self.pick(&candidates) else {
                        continue;
                    };
                    touched.push(i);
                    self.report.faults.restarts += 1;
                    line.push_str(&format!(" restart {};", NAMES[i]));
                    if let Err(e) = self.h.stop_and_restart(i) {
                        self.report.problems.push(format!("round {r}: {e}"));
                    }
                }
                4..=6 => {
                    let Some(i) = self.pick(&candidates) else {
                        continue;
                    };
                    let ms = self.rng.random_range(1_000..=3_000);
                    self.h.freeze(i);
                    touched.push(i);
                    self.report.faults.freezes += 1;
                    timed.push((Instant::now() + Duration::from_millis(ms), Timed::Thaw(i)));
                    line.push_str(&format!(" SIGSTOP {} for {ms} ms;", NAMES[i]));
                }
                _ => {
                    let links: Vec<(usize, usize)> = LINKS
                        .iter()
                        .copied()
                        .filter(|&(a, b)| {
                            (self.h.up(a) || self.h.up(b))
                                && !self
                                    .severed
                                    .iter()
                                    .any(|s| (s.by, s.to) == (a, b) || (s.by, s.to) == (b, a))
                        })
                        .collect();
                    let Some((a, b)) = self.pick(&links) else {
                        continue;
                    };
                    let ends: Vec<(usize, usize)> = [(a, b), (b, a)]
                        .into_iter()
                        .filter(|&(by, _)| self.h.up(by))
                        .collect();
                    let Some((by, to)) = self.pick(&ends) else {
                        continue;
                    };
                    let until = r + self.rng.random_range(0..=2);
                    let res = self
                        .h
                        .admin(by)
                        .sever_link(pb::LinkRequest {
                            to: NAMES[to].into(),
                        })
                        .await;
                    // Recorded either way: a timed-out call may have cut it.
                    self.severed.push(Severed { by, to, until });
                    self.report.faults.severs += 1;
                    line.push_str(&format!(
                        " sever {}->{} until round {until}{};",
                        NAMES[by],
                        NAMES[to],
                        if res.is_err() { " (call failed)" } else { "" }
                    ));
                }
            }
        }
        // Traffic keeps flowing while the faults last: batches spread over
        // the round's window, the kills and freezes ending as they fall due.
        let t0 = Instant::now();
        let window = Duration::from_millis(self.rng.random_range(1_000..=3_000))
            .max(timed.iter().map(|(t, _)| *t - t0).max().unwrap_or_default());
        let batches = self.trng.random_range(3..=6);
        timed.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
        for k in 1..=batches {
            let at = t0 + window * k / (batches + 1);
            while timed.last().is_some_and(|(t, _)| *t <= at) {
                let (t, action) = timed.pop().expect("just seen");
                tokio::time::sleep_until(t.into()).await;
                self.end_fault(action)?;
            }
            tokio::time::sleep_until(at.into()).await;
            sent = sent.merge(self.traffic(r, k).await);
        }
        while let Some((t, action)) = timed.pop() {
            tokio::time::sleep_until(t.into()).await;
            self.end_fault(action)?;
        }
        let due: Vec<Severed> = {
            let (due, keep) = std::mem::take(&mut self.severed)
                .into_iter()
                .partition(|s| s.until <= r);
            self.severed = keep;
            due
        };
        for s in due {
            self.restore(s.by, s.to).await?;
        }
        for (i, name) in NAMES.iter().enumerate() {
            if self.h.died_on_its_own(i) {
                self.report.problems.push(format!(
                    "{name} exited on its own in round {r} (not killed by the test):\n{}",
                    self.h.log_tails(i, 30)
                ));
                self.h.reap(i);
                self.h.restart(i)?;
            }
        }
        eprintln!("{line} sent {sent}");
        Ok(())
    }

    fn end_fault(&mut self, action: Timed) -> Result<(), String> {
        match action {
            Timed::Restart(i) => self.h.restart(i),
            Timed::Thaw(i) => {
                self.h.thaw(i);
                Ok(())
            }
        }
    }

    /// Restores a link, retrying a few times: the node may have just
    /// restarted.
    async fn restore(&mut self, by: usize, to: usize) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..20 {
            match self
                .h
                .admin(by)
                .restore_link(pb::LinkRequest {
                    to: NAMES[to].into(),
                })
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(format!(
            "cannot restore {}->{}: {last}",
            NAMES[by], NAMES[to]
        ))
    }

    /// One batch of mixed traffic from the nodes that are up. Only what the
    /// API acknowledged is booked; a failed call counts as unacknowledged.
    async fn traffic(&mut self, r: u32, batch: u32) -> Sent {
        let mut sent = Sent::default();
        let up: Vec<usize> = (0..SITES).filter(|&i| self.h.up(i)).collect();
        if up.is_empty() {
            return sent;
        }
        for _ in 0..self.trng.random_range(1..=3) {
            let src = pick(&mut self.trng, &up).expect("not empty");
            let dests: Vec<usize> = ENDPOINTS.into_iter().filter(|&d| d != src).collect();
            let dest = pick(&mut self.trng, &dests).expect("not empty");
            let count = self.trng.random_range(1..=40);
            let priority = self
                .pick(&[pb::Priority::High, pb::Priority::Medium, pb::Priority::Low])
                .expect("not empty");
            let res = self
                .h
                .admin(src)
                .send_probes(pb::SendProbesRequest {
                    to: NAMES[dest].into(),
                    count,
                    bytes: 64,
                    priority: priority as i32,
                })
                .await;
            match res {
                Ok(reply) => {
                    for id in reply.into_inner().job_ids {
                        self.books.probes.insert(id, NAMES[dest].into());
                        sent.probes += 1;
                    }
                }
                Err(_) => self.report.unacknowledged += 1,
            }
        }
        if self.trng.random_bool(0.35) {
            let src = pick(&mut self.trng, &up).expect("not empty");
            let dests: Vec<usize> = ENDPOINTS.into_iter().filter(|&d| d != src).collect();
            let dest = pick(&mut self.trng, &dests).expect("not empty");
            let size = self.trng.random_range(1..=300 * 1024);
            let res = self
                .h
                .admin(src)
                .send_package(pb::SendPackageRequest {
                    to: NAMES[dest].into(),
                    name: format!("chaos-{r}.{batch}"),
                    source_path: String::new(),
                    size_bytes: size,
                    chunk_bytes: 64 * 1024,
                })
                .await;
            match res {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    self.books
                        .packages
                        .insert(reply.job_id, (dest, reply.sha256));
                    sent.packages += 1;
                }
                Err(_) => self.report.unacknowledged += 1,
            }
        }
        if self.trng.random_bool(0.5) {
            let target = self.trng.random_range(0..SITES);
            let origins: Vec<usize> = tiers(target)
                .into_iter()
                .filter(|&i| self.h.up(i))
                .collect();
            let polling = self.trng.random_range(1..=20) * 1_000;
            if let Some(origin) = pick(&mut self.trng, &origins) {
                self.changes_made += 1;
                let name = format!(
                    "chaos #{} r{r}.{batch} at {}",
                    self.changes_made, NAMES[origin]
                );
                let res = self
                    .h
                    .admin(origin)
                    .change_site_control(pb::ChangeSiteControlRequest {
                        site: NAMES[target].into(),
                        polling_interval_ms: Some(polling),
                        site_name: Some(name.clone()),
                        ..Default::default()
                    })
                    .await;
                match res {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        self.books.changes.push(Change {
                            target: NAMES[target].into(),
                            origin: NAMES[origin].into(),
                            base_serial: reply.base_serial,
                            serial: reply.serial,
                            name,
                        });
                        sent.changes += 1;
                    }
                    Err(_) => self.report.unacknowledged += 1,
                }
            }
        }
        if self.trng.random_bool(0.4) {
            let site = pick(&mut self.trng, &up).expect("not empty");
            let count = self.trng.random_range(5..=40);
            let tag = format!("chaos-{}-{r}.{batch}", self.cfg.seed);
            let res = self
                .h
                .admin(site)
                .generate_status_load(pb::StatusLoadRequest {
                    count,
                    per_second: 400,
                    tag: tag.clone(),
                })
                .await;
            match res {
                Ok(reply) => {
                    for i in 1..=reply.into_inner().emitted {
                        self.books
                            .loads
                            .insert(format!("{}/{tag}/{i}", NAMES[site]), "PRI".into());
                        sent.messages += 1;
                    }
                }
                Err(_) => self.report.unacknowledged += 1,
            }
        }
        if self.trng.random_bool(0.5) {
            let count = self.trng.random_range(20..=150);
            if self.h.up(M1) {
                match self
                    .h
                    .admin(M1)
                    .allocate_ids(pb::AllocateIdsRequest { count })
                    .await
                {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        sent.ids += reply.ids.len();
                        self.books.ids.extend(reply.ids);
                        self.books.sms_ids.extend(reply.sms_ids);
                    }
                    Err(_) => self.report.unacknowledged += 1,
                }
            }
        }
        sent
    }

    /// Ends every fault: restarts, SIGCONT, and restores every link from
    /// both ends (restoring a link that is not cut changes nothing).
    async fn heal(&mut self) -> Result<(), String> {
        for i in 0..NAMES.len() {
            match self.h.nodes[i].run {
                Run::Up => {}
                Run::Down => self.h.restart(i)?,
                Run::Frozen => self.h.thaw(i),
            }
        }
        self.severed.clear();
        for (a, b) in LINKS {
            self.restore(a, b).await?;
            self.restore(b, a).await?;
        }
        Ok(())
    }

    /// Polls until everything acknowledged has arrived, every site is
    /// Active with one serial at every tier and every queue is empty.
    /// A job found in a failed box is recorded and put back in its outbox
    /// (what an administrator does with `retry-jobs`), so that the checks
    /// can tell whether it was lost. Returns whether it converged.
    async fn converge(&mut self) -> bool {
        let t0 = Instant::now();
        let mut last: Vec<String> = vec![];
        let mut shown = Instant::now();
        while t0.elapsed() < self.cfg.converge_timeout {
            let snap = self.snapshot().await;
            self.retry_failed(&snap).await;
            last = self.not_converged(&snap);
            if shown.elapsed() > Duration::from_secs(10) && !last.is_empty() {
                shown = Instant::now();
                eprintln!(
                    "chaos: {:.0} s after the heal, still waiting for: {}",
                    t0.elapsed().as_secs_f64(),
                    last.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                );
            }
            if last.is_empty() {
                let d = t0.elapsed();
                eprintln!("chaos: converged {:.1} s after the heal", d.as_secs_f64());
                self.report.converged_after = Some(d);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.report.problems.push(format!(
            "not converged {} s after the heal:\n  {}",
            self.cfg.converge_timeout.as_secs(),
            last.join("\n  ")
        ));
        false
    }

    async fn retry_failed(&mut self, snap: &Snapshot) {
        for (i, l) in &snap.links {
            if l.failed_jobs == 0 {
                continue;
            }
            let req = pb::LinkRequest { to: l.to.clone() };
            if let Ok(list) = self.h.admin(*i).list_failed_jobs(req.clone()).await {
                for j in list.into_inner().jobs {
                    let job_id = id_text(&j.job_id);
                    let key = format!("{job_id}/{}", j.attempts);
                    self.failed.entry(key).or_insert(FailedJob {
                        at: NAMES[*i].into(),
                        to: l.to.clone(),
                        kind: j.kind,
                        job_id,
                        attempts: j.attempts,
                        reason: j.reason,
                    });
                }
            }
            let _ = self.h.admin(*i).retry_failed_jobs(req).await;
        }
    }

    /// Reads every node's view once. Calls that fail are listed in `errors`.
    async fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for (i, name) in NAMES.iter().enumerate().take(SITES) {
            let mut a = self.h.admin(i);
            match a
                .list_probes(pb::ListProbesRequest { count_only: false })
                .await
            {
                Ok(p) => s.probes.extend(
                    p.into_inner()
                        .probes
                        .into_iter()
                        .map(|p| (name.to_string(), p.job_id)),
                ),
                Err(e) => s
                    .errors
                    .push(format!("{} list probes: {}", name, e.message())),
            }
            match a.list_packages(pb::ListPackagesRequest {}).await {
                Ok(p) => s
                    .packages
                    .extend(p.into_inner().packages.into_iter().map(|p| (i, p))),
                Err(e) => s
                    .errors
                    .push(format!("{} list packages: {}", name, e.message())),
            }
            match a
                .get_site_control(pb::GetSiteControlRequest {
                    serial: 0,
                    site: String::new(),
                })
                .await
            {
                Ok(c) => {
                    s.ct0.insert(i, c.into_inner().serial);
                }
                Err(e) => s
                    .errors
                    .push(format!("{} site control: {}", name, e.message())),
            }
            for holder in tiers(i).into_iter().skip(1) {
                match self
                    .h
                    .admin(holder)
                    .get_site_control(pb::GetSiteControlRequest {
                        serial: 0,
                        site: name.to_string(),
                    })
                    .await
                {
                    Ok(c) => {
                        s.copies.insert((holder, i), c.into_inner().serial);
                    }
                    Err(e) => s.errors.push(format!(
                        "{}'s copy of {}: {}",
                        NAMES[holder],
                        name,
                        e.message()
                    )),
                }
            }
        }
        for (i, name) in NAMES.iter().enumerate() {
            match self.h.admin(i).get_status(pb::GetStatusRequest {}).await {
                Ok(st) => s
                    .links
                    .extend(st.into_inner().links.into_iter().map(|l| (i, l))),
                Err(e) => s.errors.push(format!("{name} status: {}", e.message())),
            }
        }
        for (i, into) in [(PRI, &mut s.pri_sites), (P01, &mut s.p01_sites)] {
            match self.h.admin(i).list_sites(pb::ListSitesRequest {}).await {
                Ok(l) => *into = l.into_inner().sites,
                Err(e) => s
                    .errors
                    .push(format!("{} sites: {}", NAMES[i], e.message())),
            }
        }
        match self
            .h
            .admin(PRI)
            .list_status_messages(pb::ListStatusMessagesRequest {
                site: String::new(),
                id: catalog::STATUS_LOAD_TEST.id,
                limit: 1_000_000,
                after_uid: vec![],
            })
            .await
        {
            Ok(l) => s
                .loads
                .extend(l.into_inner().messages.into_iter().filter_map(|m| {
                    let tag = m.insertion_strings.first()?;
                    let index = m.insertion_strings.get(1)?;
                    Some(("PRI".to_string(), format!("{}/{tag}/{index}", m.site_code)))
                })),
            Err(e) => s
                .errors
                .push(format!("PRI status messages: {}", e.message())),
        }
        s
    }

    /// Why `snap` is not converged yet (empty: converged).
    fn not_converged(&self, snap: &Snapshot) -> Vec<String> {
        let mut why = snap.errors.clone();
        let probes = ledger::tally(&self.books.probes, &snap.probes);
        if !probes.missing.is_empty() {
            why.push(format!(
                "{} of {} probes not at their destination (first: {} -> {})",
                probes.missing.len(),
                probes.acknowledged,
                id_text(&probes.missing[0]),
                self.books.probes[&probes.missing[0]]
            ));
        }
        let packages = self.package_problems(snap);
        if !packages.is_empty() {
            why.push(format!(
                "{} packages not complete at their destination (first: {})",
                packages.len(),
                packages[0]
            ));
        }
        let loads = ledger::tally(&self.books.loads, &snap.loads);
        if !loads.missing.is_empty() {
            why.push(format!(
                "{} of {} status messages not at PRI (first: {})",
                loads.missing.len(),
                loads.acknowledged,
                loads.missing[0]
            ));
        }
        why.extend(site_problems(snap));
        for (i, l) in &snap.links {
            if l.queued_jobs > 0 || l.failed_jobs > 0 || l.state == "severed" {
                why.push(format!(
                    "{} link to {}: {} ({} queued, {} failed) {}",
                    NAMES[*i], l.to, l.state, l.queued_jobs, l.failed_jobs, l.detail
                ));
            }
        }
        why
    }

    /// Acknowledged packages that are not complete and intact at their
    /// destination.
    fn package_problems(&self, snap: &Snapshot) -> Vec<String> {
        let mut out = vec![];
        for (id, (dest, sha)) in &self.books.packages {
            let got = snap
                .packages
                .iter()
                .find(|(i, p)| i == dest && &p.job_id == id);
            let what = match got {
                None => "absent",
                Some((_, p)) if !p.complete => "incomplete",
                Some((_, p)) if &p.sha256 != sha => "CORRUPTED (sha256 differs)",
                Some(_) => continue,
            };
            out.push(format!("{} at {}: {what}", id_text(id), NAMES[*dest]));
        }
        out
    }

    /// The checks after convergence (or after giving up on it): exactly
    /// once, changes accounted for, IDs unique, failed jobs explained.
    async fn check(&mut self, converged: bool) {
        if converged {
            // Anything still to arrive twice gets a moment to show up.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let snap = self.snapshot().await;
        let probes = ledger::tally(&self.books.probes, &snap.probes);
        let loads = ledger::tally(&self.books.loads, &snap.loads);
        let packages = self.package_problems(&snap);
        let rep = &mut self.report;
        rep.probes = probes.acknowledged;
        rep.packages = self.books.packages.len();
        rep.status_messages = loads.acknowledged;
        rep.ids = self.books.ids.len();
        rep.changes = self.books.changes.len();
        rep.lost = probes.missing.len() + loads.missing.len() + packages.len();
        rep.duplicated = probes.duplicated.len() + loads.duplicated.len();
        for (what, missing) in [
            (
                "probes",
                probes
                    .missing
                    .iter()
                    .map(|id| format!("{} -> {}", id_text(id), self.books.probes[id]))
                    .collect::<Vec<_>>(),
            ),
            ("status messages", loads.missing.clone()),
            ("packages", packages),
        ] {
            if !missing.is_empty() {
                rep.problems.push(format!(
                    "LOST: {} acknowledged {what} never arrived: {}",
                    missing.len(),
                    sample(&missing)
                ));
            }
        }
        if !probes.duplicated.is_empty() {
            let d: Vec<String> = probes
                .duplicated
                .iter()
                .map(|(id, n)| format!("{} x{n}", id_text(id)))
                .collect();
            rep.problems
                .push(format!("DUPLICATED: {} probes: {}", d.len(), sample(&d)));
        }
        if !probes.misdelivered.is_empty() {
            let d: Vec<String> = probes
                .misdelivered
                .iter()
                .map(|(id, at)| format!("{} at {at}", id_text(id)))
                .collect();
            rep.problems
                .push(format!("MISDELIVERED: {} probes: {}", d.len(), sample(&d)));
        }
        if !loads.duplicated.is_empty() {
            let d: Vec<String> = loads
                .duplicated
                .iter()
                .map(|(k, n)| format!("{k} x{n}"))
                .collect();
            rep.problems.push(format!(
                "DUPLICATED: {} status messages stored twice at PRI: {}",
                d.len(),
                sample(&d)
            ));
        }
        // Unique IDs.
        let mut seen = HashSet::new();
        let twice: Vec<String> = self
            .books
            .ids
            .iter()
            .filter(|id| !seen.insert(**id))
            .map(u64::to_string)
            .collect();
        if !twice.is_empty() {
            rep.duplicated += twice.len();
            rep.problems.push(format!(
                "DUPLICATED: {} SMS unique IDs issued twice by {}'s logon server: {}",
                twice.len(),
                NAMES[LOGON_SITE],
                sample(&twice)
            ));
        }
        let sms: HashSet<&String> = self.books.sms_ids.iter().collect();
        if sms.len() != self.books.sms_ids.len() {
            rep.problems
                .push("DUPLICATED: an SMS ID string was issued twice".into());
        }
        // Failed jobs: every one must be explained.
        for f in self.failed.values() {
            let label = ledger::explain_failure(&f.reason);
            eprintln!(
                "chaos: failed job at {} to {}: {} {} after {} attempts: {} [{}]",
                f.at,
                f.to,
                f.kind,
                f.job_id,
                f.attempts,
                f.reason,
                label.unwrap_or("UNEXPLAINED")
            );
            if label.is_none() {
                rep.unexplained += 1;
            }
        }
        rep.failed_jobs = self.failed.values().cloned().collect();
        if rep.unexplained > 0 {
            rep.problems.push(format!(
                "{} failed jobs that no fault explains (listed above)",
                rep.unexplained
            ));
        }
        if converged {
            self.check_changes().await;
        } else {
            let rep = &mut self.report;
            rep.problems.extend(site_problems(&snap));
        }
    }

    /// Every acknowledged change is in its target's history at its serial,
    /// or in its bad box.
    async fn check_changes(&mut self) {
        let mut history: Vec<HashMap<u64, String>> = vec![HashMap::new(); SITES];
        let mut bad: Vec<Vec<BadEntry>> = vec![vec![]; SITES];
        for i in 0..SITES {
            let mut a = self.h.admin(i);
            let cur = match a
                .get_site_control(pb::GetSiteControlRequest::default())
                .await
            {
                Ok(c) => c.into_inner().serial,
                Err(e) => {
                    self.report.problems.push(format!(
                        "{}: cannot read site control: {}",
                        NAMES[i],
                        e.message()
                    ));
                    continue;
                }
            };
            for serial in 1..=cur {
                if let Ok(c) = a
                    .get_site_control(pb::GetSiteControlRequest {
                        serial,
                        site: String::new(),
                    })
                    .await
                {
                    history[i].insert(serial, c.into_inner().site_name);
                }
            }
            match a.list_bad_ct1(pb::ListBadCt1Request {}).await {
                Ok(l) => {
                    bad[i] = l
                        .into_inner()
                        .entries
                        .into_iter()
                        .map(|e| BadEntry {
                            base_serial: e.base_serial,
                            origin: e.origin,
                            reason: e.reason,
                        })
                        .collect()
                }
                Err(e) => self.report.problems.push(format!(
                    "{}: cannot read the bad box: {}",
                    NAMES[i],
                    e.message()
                )),
            }
        }
        let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
        for c in &self.books.changes {
            let i = NAMES.iter().position(|n| *n == c.target).expect("a site");
            match ledger::fate(c, &history[i], &bad[i]) {
                Fate::Applied => self.report.changes_applied += 1,
                Fate::Refused(reason) => {
                    self.report.changes_refused += 1;
                    // "it is stale: ..." -> "it is stale"
                    let short = reason.split(':').next().unwrap_or_default().to_string();
                    *refusals.entry(short).or_default() += 1;
                }
                Fate::Lost => {
                    self.report.lost += 1;
                    self.report.problems.push(format!(
                        "LOST: site control change {:?} made at {} for {} against serial {} \
                         is neither in {}'s history at serial {} nor in its bad box",
                        c.name, c.origin, c.target, c.base_serial, c.target, c.serial
                    ));
                }
            }
        }
        for (reason, n) in refusals {
            eprintln!("chaos: {n} changes refused: {reason}");
        }
    }
}

fn pick<T: Copy>(rng: &mut StdRng, from: &[T]) -> Option<T> {
    from.choose(rng).copied()
}

/// The first few of a list, for a message that stays readable.
fn sample(items: &[String]) -> String {
    let mut s = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        s.push_str(&format!(", ... ({} in all)", items.len()));
    }
    s
}

/// Sites not Active, or whose serial differs between the site and any tier
/// above it.
fn site_problems(snap: &Snapshot) -> Vec<String> {
    let mut why = vec![];
    let record = |list: &[pb::SiteRecord], code: &str| {
        list.iter()
            .find(|s| s.site_code == code)
            .map(|s| (s.status.clone(), s.serial))
    };
    for (i, name) in NAMES.iter().enumerate().take(SITES) {
        let mut views: Vec<(String, Option<u64>)> =
            vec![(format!("{} itself", name), snap.ct0.get(&i).copied())];
        for holder in tiers(i).into_iter().skip(1) {
            views.push((
                format!("{}'s copy", NAMES[holder]),
                snap.copies.get(&(holder, i)).copied(),
            ));
        }
        let mut lists = vec![("PRI's site list", &snap.pri_sites)];
        if parent(i) == Some(P01) {
            lists.push(("P01's site list", &snap.p01_sites));
        }
        for (what, list) in lists {
            match record(list, name) {
                Some((status, serial)) => {
                    if status != "Active" {
                        why.push(format!("{} is {status} in {what}", name));
                    }
                    views.push((what.to_string(), Some(serial)));
                }
                None => why.push(format!("{} is missing from {what}", name)),
            }
        }
        let serials: HashSet<Option<u64>> = views.iter().map(|(_, s)| *s).collect();
        if serials.len() > 1 {
            why.push(format!(
                "{}'s serial differs by tier: {}",
                name,
                views
                    .iter()
                    .map(|(w, s)| format!(
                        "{w} {}",
                        s.map_or("unknown".to_string(), |s| s.to_string())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    why
}

/// What one batch of traffic got acknowledged.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    probes: usize,
    packages: usize,
    changes: usize,
    messages: u32,
    ids: usize,
}

impl Sent {
    fn merge(self, o: Sent) -> Sent {
        Sent {
            probes: self.probes + o.probes,
            packages: self.packages + o.packages,
            changes: self.changes + o.changes,
            messages: self.messages + o.messages,
            ids: self.ids + o.ids,
        }
    }
}

impl std::fmt::Display for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} probes, {} packages, {} changes, {} status messages, {} ids",
            self.probes, self.packages, self.changes, self.messages, self.ids
        )
    }
}

/// Every node's view at one moment of the heal.
#[derive(Default)]
struct Snapshot {
    /// (node, probe job id) for every stored probe.
    probes: Vec<(String, Vec<u8>)>,
    /// (node, package) for every package a node lists.
    packages: Vec<(usize, pb::ReceivedPackage)>,
    /// ("PRI", "site/tag/index") for every load message stored at PRI.
    loads: Vec<(String, String)>,
    pri_sites: Vec<pb::SiteRecord>,
    p01_sites: Vec<pb::SiteRecord>,
    /// Each site's own CT0 serial.
    ct0: HashMap<usize, u64>,
    /// (holder, site) -> the serial of the holder's copy of the site's control.
    copies: HashMap<(usize, usize), u64>,
    links: Vec<(usize, pb::LinkState)>,
    errors: Vec<String>,
}
