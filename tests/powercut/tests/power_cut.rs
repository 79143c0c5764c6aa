//! Power cuts under the node's store, on the FUSE layer of `sms-powercut`.
//!
//! * The layer alone, through real system calls: what was fsynced
//!   survives a cut, nothing else does (not even after `sync_file_range`).
//! * The negative control: sled's own `flush()` (a `sync_file_range`) does
//!   not make writes durable under the layer, sled's flush followed by the
//!   store's `fdatasync` does. So the node test below can fail.
//! * The node test (ignored by default: half a minute; `.ci/run` runs
//!   it): a central primary PRI on a normal directory and its secondary
//!   S01 whose data dir is on the layer, probes flowing both ways and file
//!   packages going down. At a random moment S01's power is cut and S01
//!   killed; the layer is remounted (everything unsynced gone), S01
//!   restarted; once the links drain, every probe and package acknowledged
//!   before the cut must be at its destination exactly once, and S01 must
//!   still be S01. Repeated `POWERCUT_CUTS` times (default 10), with cut
//!   moments drawn from `POWERCUT_SEED` (printed; set it to replay).
//!   `POWERCUT_NAMESPACE=posix` makes only directory fsyncs persist names;
//!   `POWERCUT_PACKAGES=0` sends no file packages (so no sled blob files).
//! * The end-to-end negative control: the same loop with the store's
//!   `fdatasync` of sled's log disabled in the layer must lose probes.
//!
//! Needs `/dev/fuse` and root (or `fusermount3`); without them every test
//! prints one `SKIPPED: ...` line and passes. The node test needs the
//! `sms-node` binary of this build: `cargo build --bin sms-node` first.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sms_cluster::{Cluster, Node, Source};
use sms_powercut::{Mount, Namespace};
use sms_proto::v1 as pb;

/// Why FUSE cannot be used here, asked once per test binary.
fn skipped() -> bool {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    match WHY.get_or_init(sms_powercut::unavailable) {
        Some(why) => {
            println!("SKIPPED: power-cut tests need FUSE: {why}");
            true
        }
        None => false,
    }
}

/// A mount in a fresh temp dir: dropped before the dir is removed.
struct Rig {
    mount: Mount,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new(ns: Namespace) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let mount = Mount::new(&dir.path().join("disk"), &dir.path().join("mnt"), ns).unwrap();
        Rig { mount, dir }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.mount.path().join(rel)
    }
}

#[test]
fn only_what_was_fsynced_survives_a_cut() {
    if skipped() {
        return;
    }
    use std::io::Write;
    use std::os::unix::io::AsRawFd;
    let mut rig = Rig::new(Namespace::Linked);
    let _ = &rig.dir;
    std::fs::create_dir(rig.path("d")).unwrap();
    // Never synced.
    std::fs::write(rig.path("d/volatile"), b"gone").unwrap();
    // Synced, then more written.
    let mut f = std::fs::File::create(rig.path("d/log")).unwrap();
    f.write_all(b"durable").unwrap();
    f.sync_data().unwrap();
    f.write_all(b" and volatile").unwrap();
    drop(f);
    // sync_file_range is not a sync: FUSE never hears of it.
    let f = std::fs::File::create(rig.path("d/ranged")).unwrap();
    (&f).write_all(b"ranged").unwrap();
    // SAFETY: sync_file_range(2) on an open fd.
    let rc = unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            0,
            0,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )
    };
    assert_eq!(rc, 0);
    drop(f);
    // A synced file renamed, the rename not synced.
    let f = std::fs::File::create(rig.path("snap.tmp")).unwrap();
    (&f).write_all(b"snapshot").unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::rename(rig.path("snap.tmp"), rig.path("snap")).unwrap();

    // Read-your-writes before the cut.
    assert_eq!(
        std::fs::read(rig.path("d/log")).unwrap(),
        b"durable and volatile"
    );
    assert_eq!(std::fs::read(rig.path("d/volatile")).unwrap(), b"gone");

    let lost = rig.mount.cut();
    assert!(lost.dirty_pages >= 3, "{lost:?}");
    let err = std::fs::read(rig.path("d/log")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "I/O fails after a cut");
    rig.mount.remount().unwrap();

    let mut names: Vec<String> = walk(rig.mount.path());
    names.sort();
    assert_eq!(names, ["d/", "d/log", "snap.tmp"]);
    assert_eq!(std::fs::read(rig.path("d/log")).unwrap(), b"durable");
    assert_eq!(std::fs::read(rig.path("snap.tmp")).unwrap(), b"snapshot");
    // The layer works again after the remount.
    std::fs::write(rig.path("again"), b"x").unwrap();
    assert_eq!(std::fs::read(rig.path("again")).unwrap(), b"x");
}

/// Every path under `root`, relative, directories with a trailing `/`.
fn walk(root: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                todo.push(e.path());
            } else {
                out.push(rel);
            }
        }
    }
    out
}

const BASE: u32 = 300;
const EXTRA: u32 = 300;

/// Runs the sled writer helper on the layer until it says its extra
/// writes are acknowledged, cuts the power and kills it, remounts and
/// counts what sled recovers: (base keys, extra keys).
fn sled_after_cut(mode: &str) -> (u32, u32) {
    let mut rig = Rig::new(Namespace::Linked);
    let db = rig.path("db");
    let bin = env!("CARGO_BIN_EXE_sms-powercut");
    let mut child = Command::new(bin)
        .args(["sled-writer", db.to_str().unwrap()])
        .args([BASE.to_string(), EXTRA.to_string(), mode.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "BASE");
    assert_eq!(lines.next().unwrap().unwrap(), "ACKED");
    rig.mount.cut();
    kill(&mut child);
    rig.mount.remount().unwrap();
    let out = Command::new(bin)
        .args(["sled-count", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let n: Vec<u32> = text
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    (n[0], n[1])
}

fn kill(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// The negative control: a sled flush alone is `sync_file_range`, which
/// makes nothing durable here (nor, on a real disk, its write cache or
/// the file's size), so writes a caller of `flush()` took as durable are
/// gone after the cut. If this ever keeps them, the layer has stopped
/// modelling power cuts and the node test below proves nothing.
#[test]
fn sled_flush_alone_loses_acknowledged_writes() {
    if skipped() {
        return;
    }
    let (base, extra) = sled_after_cut("flush");
    assert_eq!(base, BASE, "writes made durable before are kept");
    assert_eq!(
        extra, 0,
        "sled's flush alone must not survive a power cut on this layer"
    );
}

/// ... and sled's flush followed by what the store does after it
/// (`fdatasync` of the log, fsync of the directory) keeps them all.
#[test]
fn sled_flush_then_fdatasync_keeps_them() {
    if skipped() {
        return;
    }
    assert_eq!(sled_after_cut("fdatasync"), (BASE, EXTRA));
}

// ---------------------------------------------------------------------
// The node under power cuts.

type Admin = sms_cluster::Admin;
type Id = Vec<u8>;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

/// What the traffic tasks were told was durable (acknowledged).
#[derive(Default)]
struct Acked {
    /// Probe ids PRI's SendProbes returned (queued durably at PRI for S01).
    down: Mutex<HashSet<Id>>,
    /// Probe ids S01's SendProbes returned (queued durably at S01 for PRI).
    up: Mutex<HashSet<Id>>,
    /// S01 calls that failed: their probes may or may not have been queued.
    up_unknown_calls: AtomicU64,
    /// Calls to PRI that failed: PRI never goes down, so none should.
    down_errors: AtomicU64,
    /// File packages PRI queued for S01: job id -> sha256.
    packages: Mutex<HashMap<Id, String>>,
}

/// Starts and pauses the traffic tasks. A task counts itself in flight
/// before it looks at `paused`, so once [`Traffic::pause`] has seen no call
/// in flight, none starts until [`Traffic::resume`].
#[derive(Default)]
struct Traffic {
    paused: AtomicBool,
    stop: AtomicBool,
    in_flight: AtomicUsize,
}

impl Traffic {
    /// Waits until the task may send; false when it must end.
    async fn enter(&self) -> bool {
        loop {
            if self.stop.load(SeqCst) {
                return false;
            }
            self.in_flight.fetch_add(1, SeqCst);
            if !self.paused.load(SeqCst) {
                return true;
            }
            self.in_flight.fetch_sub(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, SeqCst);
    }

    async fn pause(&self) {
        self.paused.store(true, SeqCst);
        while self.in_flight.load(SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn resume(&self) {
        self.paused.store(false, SeqCst);
    }
}

/// Probes per SendProbes call, payload bytes, pause between calls.
const BATCH: u32 = 50;
const PROBE_BYTES: u32 = 512;
const CALL_GAP: Duration = Duration::from_millis(2);
/// Concurrent senders per direction.
const SENDERS: usize = 2;

fn priority(i: u64) -> i32 {
    [pb::Priority::High, pb::Priority::Medium, pb::Priority::Low][(i % 3) as usize] as i32
}

/// PRI -> S01 probes, acknowledged by PRI (which is never cut).
async fn traffic_down(addr: String, t: Arc<Traffic>, acked: Arc<Acked>) {
    let mut c = sms_cluster::admin(&addr)
        .await
        .expect("admin client for PRI");
    let mut i = 0;
    while t.enter().await {
        i += 1;
        let r = c
            .send_probes(pb::SendProbesRequest {
                to: "S01".into(),
                count: BATCH,
                bytes: PROBE_BYTES,
                priority: priority(i),
            })
            .await;
        match r {
            Ok(r) => acked.down.lock().unwrap().extend(r.into_inner().job_ids),
            Err(e) => {
                eprintln!("PRI refused probes: {e}");
                acked.down_errors.fetch_add(1, SeqCst);
            }
        }
        t.leave();
        tokio::time::sleep(CALL_GAP).await;
    }
}

/// S01 -> PRI probes, acknowledged by S01, whose power is cut: a call in
/// flight at the cut fails and its probes are unknown.
async fn traffic_up(addr: String, t: Arc<Traffic>, acked: Arc<Acked>) {
    let mut client: Option<Admin> = None;
    let mut i = 0;
    while t.enter().await {
        i += 1;
        if client.is_none() {
            client = sms_cluster::admin(&addr).await.ok();
        }
        if let Some(c) = client.as_mut() {
            let r = c
                .send_probes(pb::SendProbesRequest {
                    to: "PRI".into(),
                    count: BATCH,
                    bytes: PROBE_BYTES,
                    priority: priority(i),
                })
                .await;
            match r {
                Ok(r) => acked.up.lock().unwrap().extend(r.into_inner().job_ids),
                Err(_) => {
                    acked.up_unknown_calls.fetch_add(1, SeqCst);
                    client = None;
                }
            }
        }
        t.leave();
        tokio::time::sleep(CALL_GAP).await;
    }
}

/// A link as `from` sees it.
async fn link(from: &mut Admin, to: &str) -> anyhow::Result<pb::LinkState> {
    let st = from.get_status(pb::GetStatusRequest {}).await?.into_inner();
    st.links
        .into_iter()
        .find(|l| l.to == to)
        .ok_or_else(|| anyhow::anyhow!("no link to {to}"))
}

/// What one cut cycle found wrong, if anything.
fn check_probes(what: &str, got: &pb::ProbeList, acked: &HashSet<Id>, unknown: u64) -> Vec<String> {
    let mut errs = vec![];
    let mut seen = HashSet::new();
    let dups: Vec<_> = got
        .probes
        .iter()
        .filter(|p| !seen.insert(p.job_id.clone()))
        .map(|p| hex(&p.job_id))
        .collect();
    if !dups.is_empty() {
        errs.push(format!(
            "{what}: {} delivered twice: {:?}",
            dups.len(),
            &dups[..dups.len().min(5)]
        ));
    }
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !seen.contains(*id))
        .map(|i| hex(i))
        .collect();
    if !missing.is_empty() {
        errs.push(format!(
            "{what}: {} acknowledged probes LOST (of {}): {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let extra = seen.iter().filter(|id| !acked.contains(*id)).count() as u64;
    if extra > unknown * BATCH as u64 {
        errs.push(format!(
            "{what}: {extra} probes nobody acknowledged sending (at most {} from failed calls)",
            unknown * BATCH as u64
        ));
    }
    errs
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One run of the cut loop.
struct Plan {
    seed: u64,
    cuts: u64,
    ns: Namespace,
    /// The negative control: S01's store "forgets" its `fdatasync` of
    /// sled's log (see [`Mount::ignore_fdatasync_of`]).
    without_fdatasync: bool,
    /// File packages go down too (their chunks are sled blob files).
    packages: bool,
}

/// Everything the cut loop holds; dropped in this order (nodes killed
/// before the mount goes, the mount before its directory).
struct Cuts {
    rt: tokio::runtime::Runtime,
    pri: Node,
    s01: Node,
    mount: Mount,
    _dir: tempfile::TempDir,
}

const WAIT: Duration = Duration::from_secs(90);

/// The node tests take turns: two clusters at once on two cores would
/// only slow both down.
fn one_cluster_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
#[ignore = "about half a minute; .ci/run runs it (cargo test -p sms-powercut -- --include-ignored)"]
fn acknowledged_work_survives_power_cuts() {
    if skipped() {
        return;
    }
    let _turn = one_cluster_at_a_time();
    let seed = env_u64("POWERCUT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64
    });
    let cuts = env_u64("POWERCUT_CUTS").unwrap_or(10);
    let ns = match std::env::var("POWERCUT_NAMESPACE").as_deref() {
        Ok("posix") => Namespace::Posix,
        _ => Namespace::Linked,
    };
    println!(
        "power-cut test: seed {seed}, {cuts} cuts, names: {ns:?} (replay: POWERCUT_SEED={seed})"
    );
    let plan = Plan {
        seed,
        cuts,
        ns,
        without_fdatasync: false,
        packages: env_u64("POWERCUT_PACKAGES") != Some(0),
    };
    if let Err(e) = run_cuts(&plan) {
        panic!(
            "power-cut test failed with seed {seed} \
             (replay: POWERCUT_SEED={seed} POWERCUT_CUTS={cuts}):\n{e}"
        );
    }
}

/// The end-to-end negative control: the same run with S01's `fdatasync`
/// of sled's log turned into a no-op must report acknowledged probes lost
/// (its identity, synced when the store opened, survives). If this run
/// passed, the checks above could not see a missing sync.
#[test]
#[ignore = "a few seconds with the node; .ci/run runs it"]
fn without_the_stores_fdatasync_acknowledged_probes_are_lost() {
    if skipped() {
        return;
    }
    let _turn = one_cluster_at_a_time();
    let plan = Plan {
        seed: 7,
        cuts: 3,
        ns: Namespace::Linked,
        without_fdatasync: true,
        // Probes only: a lost chunk receipt shows up as a package stuck
        // out of order rather than as a count.
        packages: false,
    };
    let err = run_cuts(&plan).expect_err("a store without fdatasync must lose acknowledged work");
    assert!(
        err.contains("acknowledged probes LOST"),
        "lost, but not as expected: {err}"
    );
    println!("as expected: {}", err.lines().next().unwrap_or_default());
}

/// Starts PRI and S01 (on the layer), cuts S01's power `plan.cuts` times
/// under traffic and checks after each cut. Panics when the setup fails;
/// returns what the checks found wrong.
fn run_cuts(plan: &Plan) -> Result<(), String> {
    let t0 = Instant::now();
    let bin = sms_cluster::find_node_binary(None);
    assert!(
        bin.source != Source::Path,
        "no sms-node binary of this build: run `cargo build --bin sms-node` first (or set {})",
        sms_cluster::NODE_BIN_ENV
    );
    let cluster = Cluster::new(&bin.path)
        .env("RUST_LOG", "warn")
        .env("SMS_INSECURE", "1")
        .start_timeout(Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mnt")).unwrap();
    let mount = Mount::new(&dir.path().join("disk"), &dir.path().join("mnt"), plan.ns).unwrap();
    let pri = cluster
        .start(&dir.path().join("pri"), &["--install-primary", "PRI"])
        .unwrap_or_else(|e| panic!("PRI: {e}"));
    // The data dir is there before the node, as in a deployment: made
    // (durably) by the test, everything inside it by the node.
    let s01_data = mount.path().join("s01");
    std::fs::create_dir(&s01_data).unwrap();
    std::fs::File::open(mount.path())
        .and_then(|d| d.sync_all())
        .unwrap();
    let s01 = cluster
        .start(&s01_data, &[])
        .unwrap_or_else(|e| panic!("S01: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut c = Cuts {
        rt,
        pri,
        s01,
        mount,
        _dir: dir,
    };
    let (pri_addr, s01_addr) = (c.pri.addr().to_string(), c.s01.addr().to_string());
    let poll = Duration::from_millis(25);
    c.rt.block_on(sms_cluster::create_secondary(
        &pri_addr, "S01", &s01_addr, poll, WAIT,
    ))
    .unwrap_or_else(|e| panic!("creating S01: {e:#}"));
    let node_id = c.rt.block_on(status(&s01_addr)).unwrap().node_id;
    println!(
        "S01 Active (node id {node_id}) after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    if plan.without_fdatasync {
        // A clean restart makes the install durable (the store syncs its
        // log when it opens); from then on its commits are not.
        c.s01.stop(Duration::from_secs(15));
        c.s01
            .restart()
            .unwrap_or_else(|e| panic!("S01 restart: {e}"));
        c.mount.ignore_fdatasync_of("db");
    }

    let traffic = Arc::new(Traffic::default());
    let acked = Arc::new(Acked::default());
    traffic.paused.store(true, SeqCst);
    for _ in 0..SENDERS {
        let (t, a) = (traffic.clone(), acked.clone());
        c.rt.spawn(traffic_down(pri_addr.clone(), t.clone(), a.clone()));
        c.rt.spawn(traffic_up(s01_addr.clone(), t, a));
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(plan.seed);
    let mut store_hit = 0;
    let mut result = Ok(());
    for cut in 1..=plan.cuts {
        let delay = Duration::from_millis(rng.random_range(30..1500));
        let package = rng
            .random_bool(0.5)
            .then(|| rng.random_range(256 * 1024..2048 * 1024))
            .filter(|_| plan.packages);
        traffic.resume();
        if let Some(size) = package {
            let sent = c.rt.block_on(send_package(&pri_addr, cut, size));
            let sent = sent.unwrap_or_else(|e| panic!("PRI refused a package: {e:#}"));
            acked
                .packages
                .lock()
                .unwrap()
                .insert(sent.job_id, sent.sha256);
        }
        std::thread::sleep(delay);

        // The power cut, and S01 dies with it.
        let lost = c.mount.cut();
        c.s01.kill9();
        let t_cut = Instant::now();
        c.rt.block_on(traffic.pause());
        let t_paused = t_cut.elapsed();
        c.mount.remount().expect("remount after the cut");
        let t_mounted = t_cut.elapsed();
        let restarted = c.s01.restart();
        let t_up = t_cut.elapsed();
        if t_up > Duration::from_secs(5) {
            println!(
                "  slow restart ({:.1} s: traffic paused at {:.1} s, remounted at {:.1} s); S01 stderr:\n{}\n  node.log:\n{}",
                t_up.as_secs_f64(),
                t_paused.as_secs_f64(),
                t_mounted.as_secs_f64(),
                tail(&c.s01.stderr_log(), 20),
                tail(&c.s01.log("node"), 20)
            );
        }
        let errs = match restarted {
            Ok(()) => {
                c.rt.block_on(after_cut(&pri_addr, &s01_addr, &node_id, &acked))
            }
            Err(e) => vec![format!("S01 did not come back: {e}")],
        };
        // What the cut caught of the store (sled's log and blob files)
        // before they were synced: the moments that test the store.
        let store: Vec<String> = lost
            .files
            .iter()
            .filter(|(p, _)| p.starts_with("s01/db/") && p != "s01/db/conf")
            .map(|(p, n)| format!("{} ({n} pages)", &p["s01/db/".len()..]))
            .collect();
        store_hit += u64::from(!store.is_empty());
        println!(
            "cut {cut}/{} after {} ms{}: dropped {} dirty pages, {} names{}; back in {:.1} s, drained in {:.1} s; \
             acknowledged so far: {} probes down, {} up, {} packages",
            plan.cuts,
            delay.as_millis(),
            package.map(|s| format!(" (package of {} KiB)", s / 1024)).unwrap_or_default(),
            lost.dirty_pages,
            lost.unsynced_names,
            if store.is_empty() { String::new() } else { format!(", unsynced store: {}", store.join(", ")) },
            t_up.as_secs_f64(),
            t_cut.elapsed().as_secs_f64(),
            acked.down.lock().unwrap().len(),
            acked.up.lock().unwrap().len(),
            acked.packages.lock().unwrap().len(),
        );
        if errs.iter().any(|e| e.starts_with("package")) {
            // Which chunks S01 holds, read from its store directly.
            c.s01.kill9();
            let out = Command::new(env!("CARGO_BIN_EXE_sms-powercut"))
                .arg("sled-chunks")
                .arg(c.s01.data().join("db"))
                .output()
                .unwrap();
            println!(
                "  S01's chunks (job, index, bytes):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if !errs.is_empty() {
            println!(
                "  the last syncs before the cut:\n    {}",
                lost.last_syncs.join("\n    ")
            );
            result = Err(format!(
                "cut {cut} (after {} ms): {}\nS01 stderr (tail):\n{}",
                delay.as_millis(),
                errs.join("\n"),
                tail(&c.s01.stderr_log(), 30)
            ));
            break;
        }
    }
    traffic.stop.store(true, SeqCst);
    let stats = c.mount.stats();
    println!(
        "{} cuts in {:.1} s, {store_hit} of them with unsynced store writes; \
         layer: {} writes, {} file syncs, {} dir syncs, {} pages synced",
        stats.cuts,
        t0.elapsed().as_secs_f64(),
        stats.writes,
        stats.file_syncs,
        stats.dir_syncs,
        stats.synced_pages
    );
    assert_eq!(acked.down_errors.load(SeqCst), 0, "PRI refused probes");
    result
}

async fn send_package(pri: &str, cut: u64, size: u64) -> anyhow::Result<pb::SendPackageReply> {
    let mut a = sms_cluster::admin(pri).await?;
    let r = a
        .send_package(pb::SendPackageRequest {
            to: "S01".into(),
            name: format!("pkg-{cut}"),
            source_path: String::new(),
            size_bytes: size,
            // Over sled's 128 KiB blob threshold: each chunk a blob file.
            chunk_bytes: 256 * 1024,
        })
        .await?;
    Ok(r.into_inner())
}

async fn status(addr: &str) -> anyhow::Result<pb::NodeStatus> {
    let mut a = sms_cluster::admin(addr).await?;
    Ok(a.get_status(pb::GetStatusRequest {}).await?.into_inner())
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// After S01 is back: its identity, then both links drained (failed jobs
/// retried), then every acknowledged probe and package delivered exactly
/// once. Returns what is wrong.
async fn after_cut(pri_addr: &str, s01_addr: &str, node_id: &str, acked: &Acked) -> Vec<String> {
    let mut errs = vec![];
    let st = match status(s01_addr).await {
        Ok(s) => s,
        Err(e) => return vec![format!("S01 does not answer after restart: {e:#}")],
    };
    if st.site_code != "S01" || st.node_id != node_id || st.parent_site_code != "PRI" {
        return vec![format!(
            "S01 lost its identity: now site {:?} (parent {:?}, role {:?}), node id {:?} (was {node_id})",
            st.site_code, st.parent_site_code, st.role, st.node_id
        )];
    }
    let (mut pri, mut s01) = match (
        sms_cluster::admin(pri_addr).await,
        sms_cluster::admin(s01_addr).await,
    ) {
        (Ok(p), Ok(s)) => (p, s),
        _ => return vec!["cannot reach PRI or S01".into()],
    };
    let t0 = Instant::now();
    let deadline = t0 + WAIT;
    let mut retried = 0;
    let mut slow_said = false;
    loop {
        let (down, up) = match (link(&mut pri, "S01").await, link(&mut s01, "PRI").await) {
            (Ok(d), Ok(u)) => (d, u),
            (d, u) => {
                return vec![format!(
                    "link state unreadable: {:?} / {:?}",
                    d.err(),
                    u.err()
                )]
            }
        };
        if down.queued_jobs == 0
            && up.queued_jobs == 0
            && down.failed_jobs == 0
            && up.failed_jobs == 0
        {
            break;
        }
        // Jobs that ran out of attempts while S01 was down are not lost:
        // they wait in the failed box. Send them again.
        for (client, to, l) in [(&mut pri, "S01", &down), (&mut s01, "PRI", &up)] {
            if l.failed_jobs > 0 {
                retried += l.failed_jobs;
                let _ = client
                    .retry_failed_jobs(pb::LinkRequest { to: to.into() })
                    .await;
            }
        }
        if !slow_said && t0.elapsed() > Duration::from_secs(10) {
            slow_said = true;
            println!(
                "  slow drain: PRI->S01 {} queued {} failed ({}: {}), S01->PRI {} queued {} failed ({}: {})",
                down.queued_jobs, down.failed_jobs, down.state, down.detail,
                up.queued_jobs, up.failed_jobs, up.state, up.detail
            );
        }
        if Instant::now() > deadline {
            return vec![format!(
                "links did not drain within {WAIT:?}: PRI->S01 {} queued {} failed ({}: {}), S01->PRI {} queued {} failed ({}: {})",
                down.queued_jobs, down.failed_jobs, down.state, down.detail,
                up.queued_jobs, up.failed_jobs, up.state, up.detail
            )];
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if retried > 0 {
        println!("  ({retried} jobs had run out of attempts during the outage and were retried)");
    }
    let at_s01 = s01
        .list_probes(pb::ListProbesRequest { count_only: false })
        .await;
    let at_pri = pri
        .list_probes(pb::ListProbesRequest { count_only: false })
        .await;
    let (at_s01, at_pri) = match (at_s01, at_pri) {
        (Ok(a), Ok(b)) => (a.into_inner(), b.into_inner()),
        _ => return vec!["cannot list probes".into()],
    };
    let down = acked.down.lock().unwrap().clone();
    let up = acked.up.lock().unwrap().clone();
    errs.extend(check_probes("PRI->S01", &at_s01, &down, 0));
    errs.extend(check_probes(
        "S01->PRI",
        &at_pri,
        &up,
        acked.up_unknown_calls.load(SeqCst),
    ));
    let packages = acked.packages.lock().unwrap().clone();
    match s01.list_packages(pb::ListPackagesRequest {}).await {
        Ok(got) => {
            let got = got.into_inner().packages;
            for (id, sha) in &packages {
                let copies: Vec<_> = got.iter().filter(|p| &p.job_id == id).collect();
                match copies.as_slice() {
                    [p] if p.complete && &p.sha256 == sha => {}
                    [p] => errs.push(format!(
                        "package {} at S01: complete {} ({}/{} chunks), sha256 {} (sent {sha})",
                        hex(id),
                        p.complete,
                        p.chunks_received,
                        p.chunk_count,
                        p.sha256
                    )),
                    other => errs.push(format!("package {} at S01 {} times", hex(id), other.len())),
                }
            }
        }
        Err(e) => errs.push(format!("cannot list packages: {e}")),
    }
    errs
}
