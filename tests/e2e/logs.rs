//! Logs that scale, across real processes: a node's component log rotates
//! by size and `controller log` tails it across the rotated files, filters
//! by time and follows new lines through rotations; a 100 MB log tails
//! without the node's memory growing with it; and a controller whose output
//! pipe is closed early exits quietly.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::*;
use sms_proto::v1 as pb;

type Admin = pb::admin_client::AdminClient<tonic::transport::Channel>;

async fn admin(node: &NodeProc) -> Admin {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Admin::new(ch)
}

/// Runs one tiny status load test tagged `tag`: the Status Manager logs
/// two lines (started, finished) naming it in `statmgr.log`.
async fn load(a: &mut Admin, tag: &str, count: u32) {
    a.generate_status_load(pb::StatusLoadRequest {
        count,
        per_second: 100_000,
        tag: tag.into(),
    })
    .await
    .unwrap();
}

/// The whole history of a log on disk, oldest line first.
fn on_disk(logs: &Path, name: &str) -> Vec<String> {
    let mut files: Vec<(usize, std::path::PathBuf)> = std::fs::read_dir(logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let f = p.file_name()?.to_str()?.to_string();
            let rest = f.strip_prefix(&format!("{name}.log"))?;
            let n = if rest.is_empty() {
                0
            } else {
                rest.strip_prefix('.')?.parse().ok()?
            };
            Some((n, p))
        })
        .collect();
    files.sort();
    files
        .iter()
        .rev()
        .flat_map(|(_, p)| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn lines(v: &serde_json::Value) -> Vec<String> {
    v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn has(lines: &[String], tag: &str) -> bool {
    lines.iter().any(|l| l.contains(&format!("\"{tag}\"")))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_rotates_and_is_tailed_filtered_and_followed_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let pri = NodeProc::start(
        &dir.path().join("pri"),
        &[
            "--install-primary",
            "PRI",
            "--log-max-size",
            "2KiB",
            "--log-keep",
            "500",
        ],
    );
    let logs = pri.data.join("logs");
    let mut a = admin(&pri).await;
    for i in 0..60 {
        load(&mut a, &format!("fill-{i:03}"), 1).await;
    }
    wait_for("the last load in the log", Duration::from_secs(30), || {
        has(&on_disk(&logs, "statmgr"), "fill-059")
    });
    assert!(
        logs.join("statmgr.log.5").exists(),
        "2 KiB files should have rotated at least five times"
    );
    for n in 1..=5 {
        let f = logs.join(format!("statmgr.log.{n}"));
        assert!(std::fs::metadata(&f).unwrap().len() <= 2048, "{f:?}");
    }

    // More lines than the current file holds: the rotated ones supply them.
    let current = std::fs::read_to_string(logs.join("statmgr.log"))
        .unwrap()
        .lines()
        .count();
    let want = current + 25;
    let got = lines(&pri.json(&["log", "statmgr", "--tail", &want.to_string()]));
    let disk = on_disk(&logs, "statmgr");
    assert_eq!(got.len(), want);
    let from = disk
        .iter()
        .position(|l| *l == got[0])
        .expect("the first line is on disk");
    assert_eq!(
        got,
        disk[from..from + want],
        "not the lines on disk, in order"
    );
    assert!(has(&got, "fill-059"), "the newest line is missing: {got:?}");
    // The whole log is every line of every file, oldest first.
    let all = lines(&pri.json(&["log", "statmgr"]));
    assert_eq!(all[..disk.len()], disk[..]);

    // --since: from the first line of load 30 on, wherever it is.
    let start = disk
        .iter()
        .find(|l| l.contains("\"fill-030\""))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let since = lines(&pri.json(&["log", "statmgr", "--since", &start]));
    assert!(since[0].starts_with(&start), "{:?}", since[0]);
    assert!(has(&since, "fill-030") && has(&since, "fill-059"));
    assert!(!has(&since, "fill-029"), "older lines let through");
    let recent = lines(&pri.json(&["log", "statmgr", "--since", "1h"]));
    assert!(has(&recent, "fill-000"));

    // --follow: lines written after it started, through several rotations.
    let mut follow = Command::new(CONTROLLER)
        .args([
            "--node", &pri.addr, "log", "statmgr", "--follow", "--tail", "1",
        ])
        .env_remove("SMS_NODE")
        .env("SMS_INSECURE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("--follow printed no line for {what}"))
    };
    // The backlog line first: following has begun before the loads.
    let first = next("the backlog");
    assert!(disk.contains(&first), "{first}");
    for i in 0..30 {
        load(&mut a, &format!("follow-{i:02}"), 1).await;
    }
    let mut seen = Vec::new();
    let mut got = Vec::new();
    while !seen.contains(&"follow-29".to_string()) {
        let l = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("--follow printed no line for follow-29 after {got:#?}"));
        got.push(l.clone());
        if let Some(i) = (0..30).find(|i| l.contains(&format!("\"follow-{i:02}\""))) {
            if l.contains("finished") {
                seen.push(format!("follow-{i:02}"));
            }
        }
    }
    let want: Vec<String> = (0..30).map(|i| format!("follow-{i:02}")).collect();
    assert_eq!(seen, want, "a followed line was lost or repeated");
    // Ctrl-C ends it cleanly.
    // SAFETY: signalling a child process this test started.
    unsafe { libc::kill(follow.id() as i32, libc::SIGINT) };
    let st = follow.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut follow.stderr.take().unwrap(), &mut err).unwrap();
    assert!(st.success(), "--follow ended with {st}: {err}");
}

/// A timestamped filler line as the text format writes it.
fn filler(i: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + i);
    format!(
        "{}  INFO filler line {i:09} {}",
        humantime::format_rfc3339_micros(t),
        "x".repeat(40)
    )
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_mb_log_tails_with_bounded_memory_and_a_closed_pipe_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let pri = NodeProc::start(&dir.path().join("pri"), &["--install-primary", "PRI"]);
    // A central site without children writes nothing to its despooler log:
    // fill it by hand, past any message and memory limit.
    let path = pri.data.join("logs/despool.log");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut n = 0u64;
    let mut size = 0usize;
    while size < 100 << 20 {
        let l = filler(n);
        size += l.len() + 1;
        writeln!(w, "{l}").unwrap();
        n += 1;
    }
    w.into_inner().unwrap().sync_all().unwrap();

    let pid = pri.pid().unwrap();
    let before = peak_rss_kib(pid);
    let got = lines(&pri.json(&["log", "despool", "--tail", "5"]));
    let want: Vec<String> = (n - 5..n).map(filler).collect();
    assert_eq!(got, want);
    let since = filler(n - 3).split(' ').next().unwrap().to_string();
    let got = lines(&pri.json(&["log", "despool", "--since", &since]));
    assert_eq!(got, (n - 3..n).map(filler).collect::<Vec<_>>());
    // One ReadLog reply stays small and says what it left out.
    let r = admin(&pri)
        .await
        .read_log(pb::ReadLogRequest {
            name: "despool".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.truncated);
    assert_eq!(r.lines.last(), Some(&filler(n - 1)));
    assert!(r.lines.iter().map(|l| l.len() + 1).sum::<usize>() <= 2 << 20);
    let grown = peak_rss_kib(pid).saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "reading a 100 MB log grew the node's peak memory by {grown} KiB"
    );

    // The whole log, streamed into a reader that stops after one line
    // (as `| head -1` does): the controller ends quietly.
    let mut c = Command::new(CONTROLLER)
        .args(["--node", &pri.addr, "log", "despool"])
        .env_remove("SMS_NODE")
        .env("SMS_INSECURE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first.trim_end(), filler(0));
    drop(out);
    let done = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(done.status.success(), "{}: {err}", done.status);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_exits_quietly_when_its_output_pipe_closes() {
    let dir = tempfile::tempdir().unwrap();
    let pri = NodeProc::start(&dir.path().join("pri"), &["--install-primary", "PRI"]);
    // Enough messages that the listing outgrows a pipe's buffer, so the
    // controller is still writing when the reader goes.
    load(&mut admin(&pri).await, "pipe", 2000).await;
    for args in [
        &["--json", "status-messages", "--limit", "2000"][..],
        &["status-messages", "--limit", "2000"][..],
    ] {
        let mut c = Command::new(CONTROLLER)
            .args(["--node", &pri.addr])
            .args(args)
            .env_remove("SMS_NODE")
            .env("SMS_INSECURE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "{args:?} printed nothing");
        drop(out);
        let done = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&done.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(done.status.success(), "{args:?}: {}: {err}", done.status);
    }
}
