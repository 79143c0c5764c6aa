//! One log file per SMS component under `DIR/logs/`, plus readable stderr.
//!
//! A component's file is chosen by the module its events come from, so
//! components just use `tracing` macros. Each file rotates by size
//! (`NAME.log.1` is the newest older file) and is read from its end
//! ([`reader`]), so a log of any size can be tailed and followed.

mod reader;
mod rotate;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use reader::LogReader;
pub use rotate::RotatingFile;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{filter_fn, EnvFilter, LevelFilter};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, Layer};

/// Lines queued per log file before a writer waits for the disk.
const LINES_QUEUED: usize = 4096;

/// Module → log file. Events from the node's other modules go to `node.log`.
pub const COMPONENT_LOGS: &[(&str, &str)] = &[
    ("sms_site::site_config", "sitectrl"),
    // Stages 2 and 3 of the watchdog cycle (and the logon server side).
    ("sms_site::logon", "sitectrl"),
    ("sms_site::hierarchy", "hman"),
    ("sms_site::scheduler", "sched"),
    ("sms_site::sender", "sender"),
    ("sms_site::despooler", "despool"),
    // The Site Component Manager: what the wiring installs and supervises.
    ("sms_site::site_component", "sitecomp"),
    ("sms_site::wiring", "sitecomp"),
    // Reporting (`status`) and the Status Manager loop (`status_manager`).
    ("sms_site::status", "statmgr"),
    ("sms_site::bootstrap", "bootstrap"),
    // Management points: the Site Component Manager's installs, the MP
    // Control Manager's verification (site server), setup and the agent
    // (the management point's server).
    ("sms_site::mp_install", "sitecomp"),
    ("sms_site::mp_control", "mpcontrol"),
    ("sms_site::mp_setup", "mpsetup"),
    ("sms_site::mp_agent", "mpagent"),
    ("sms_site::mp_db", "mpagent"),
];

/// Crates whose events belong in the node's logs at all.
const NODE_CRATES: [&str; 5] = [
    "sms_site",
    "sms_server",
    "sms_store",
    "sms_runtime",
    "sms_node",
];

/// How the component log files are written (`sms-node --log-*`).
#[derive(Clone, Debug)]
pub struct LogFiles {
    /// A file is rotated before it grows past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept per log (`NAME.log.1` ... `NAME.log.KEEP`).
    pub keep: usize,
    /// One JSON object per line instead of text.
    pub json: bool,
}

impl Default for LogFiles {
    fn default() -> Self {
        LogFiles {
            max_bytes: 16 * 1024 * 1024,
            keep: 5,
            json: false,
        }
    }
}

/// A size as `--log-max-size` takes it: bytes, or a whole number with
/// B, KiB, MiB or GiB (`16MiB`, `512 KiB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let bad = || format!("{s:?} is not a size like 16MiB, 512KiB or 4096");
    let n: u64 = n.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

/// Keeps the log writers alive; drop it last so buffered lines are written.
pub struct LogGuards(#[allow(dead_code)] Vec<WorkerGuard>);

/// Installs the global subscriber. `RUST_LOG` tunes stderr only; files always
/// get `info` and above from their component.
pub fn init(log_dir: &Path, files: &LogFiles) -> std::io::Result<LogGuards> {
    std::fs::create_dir_all(log_dir)?;
    let mut guards = Vec::new();
    let mut layers: Vec<Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>> = Vec::new();
    // One writer per file, shared by the modules that log to it: a file
    // must have a single owner to rotate it.
    let mut writers = std::collections::BTreeMap::new();
    let mut open = |file: &'static str| -> std::io::Result<NonBlocking> {
        if let Some(w) = writers.get(file) {
            return Ok(NonBlocking::clone(w));
        }
        let f = RotatingFile::open(
            log_dir.join(format!("{file}.log")),
            files.max_bytes,
            files.keep,
        )?;
        // Never drop lines: the logs are how an operator diagnoses a site.
        // The default queue of 128k lines is allocated and touched up front:
        // about 4 MB per log, most of a node's idle memory. A writer that
        // outruns a smaller queue waits instead.
        let (w, g) = NonBlockingBuilder::default()
            .lossy(false)
            .buffered_lines_limit(LINES_QUEUED)
            .finish(f);
        guards.push(g);
        writers.insert(file, w.clone());
        Ok(w)
    };
    for (module, file) in COMPONENT_LOGS {
        let w = open(file)?;
        let module = *module;
        let layer = fmt::layer().with_ansi(false).with_target(false);
        let layer = if files.json {
            layer.json().with_writer(w).boxed()
        } else {
            layer.with_writer(w).boxed()
        };
        layers.push(
            layer
                .with_filter(
                    filter_fn(move |m| {
                        m.target().starts_with(module) && *m.level() <= tracing::Level::INFO
                    })
                    .with_max_level_hint(LevelFilter::INFO),
                )
                .boxed(),
        );
    }
    let w = open("node")?;
    let layer = fmt::layer().with_ansi(false);
    let layer = if files.json {
        layer.json().with_writer(w).boxed()
    } else {
        layer.with_writer(w).boxed()
    };
    layers.push(
        layer
            // The level hints let `log` records below INFO (sled's debug and
            // trace calls, on every write) stop at the macro instead of
            // being built and offered to every layer.
            .with_filter(
                filter_fn(|m| {
                    NODE_CRATES.iter().any(|c| m.target().starts_with(c))
                        && !COMPONENT_LOGS
                            .iter()
                            .any(|(p, _)| m.target().starts_with(p))
                        && *m.level() <= tracing::Level::INFO
                })
                .with_max_level_hint(LevelFilter::INFO),
            )
            .boxed(),
    );
    let env = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sled=warn,h2=warn,tower=warn"));
    // Colour only for a person at a terminal, not for docker logs or journald.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    layers.push(
        fmt::layer()
            .with_ansi(colour)
            .with_writer(std::io::stderr)
            .with_filter(env)
            .boxed(),
    );
    tracing_subscriber::registry().with(layers).init();
    Ok(LogGuards(guards))
}

/// Most text a single `ReadLog` reply carries; a longer read keeps the
/// newest lines and says so (`StreamLog` has no such limit).
pub const MAX_REPLY_BYTES: u64 = 2 * 1024 * 1024;

/// Why a log cannot be read.
#[derive(Debug)]
pub enum ReadError {
    /// No log has that name (the message lists the names).
    Unknown(String),
    /// The file is there but could not be read.
    Io(String),
}

/// The file of log `name` (checked against the known logs).
pub fn log_path(log_dir: &Path, name: &str) -> Result<PathBuf, ReadError> {
    let known = COMPONENT_LOGS.iter().any(|(_, f)| *f == name) || name == "node";
    if !known {
        let mut names: Vec<&str> = COMPONENT_LOGS
            .iter()
            .map(|(_, f)| *f)
            .chain(["node"])
            .collect();
        names.dedup();
        return Err(ReadError::Unknown(format!(
            "unknown log {name:?}; logs are: {}",
            names.join(", ")
        )));
    }
    Ok(log_dir.join(format!("{name}.log")))
}

/// Opens log `name` to read its last `tail` lines (all if 0) not older
/// than `since`, and then follow it if asked (see [`LogReader::open`]).
pub fn open(
    log_dir: &Path,
    name: &str,
    tail: u64,
    since: Option<SystemTime>,
    follow: bool,
    max_bytes: Option<u64>,
) -> Result<(LogReader, bool), ReadError> {
    let path = log_path(log_dir, name)?;
    LogReader::open(&path, tail, since, follow, max_bytes)
        .map_err(|e| ReadError::Io(format!("cannot read {name}.log: {e}")))
}

/// Reads a component log (last `tail` lines, or all when 0) in one reply of
/// at most [`MAX_REPLY_BYTES`]; true if older lines were left out for that.
pub fn read(
    log_dir: &Path,
    name: &str,
    tail: u64,
    since: Option<SystemTime>,
) -> Result<(Vec<String>, bool), ReadError> {
    let (mut r, truncated) = open(log_dir, name, tail, since, false, Some(MAX_REPLY_BYTES))?;
    let mut lines = Vec::new();
    while let Some(chunk) = r
        .next_chunk()
        .map_err(|e| ReadError::Io(format!("cannot read {name}.log: {e}")))?
    {
        lines.extend(chunk);
    }
    Ok((lines, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert_eq!(parse_size("7B"), Ok(7));
        for bad in ["", "MiB", "1.5MiB", "16MB", "-1", "99999999999999GiB"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("is not a size"), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_logs_are_refused_with_the_names_there_are() {
        match log_path(Path::new("/x"), "hmann") {
            Err(ReadError::Unknown(m)) => {
                assert!(m.contains("\"hmann\""), "{m}");
                assert!(m.contains("hman, sched"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            log_path(Path::new("/x"), "node").unwrap(),
            Path::new("/x/node.log")
        );
    }
}
