//! One log file per SMS component under `DIR/logs/`, plus readable stderr.
//!
//! A component's file is chosen by the module its events come from, so
//! components just use `tracing` macros.

use std::path::Path;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
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

/// Keeps the log writers alive; drop it last so buffered lines are written.
pub struct LogGuards(#[allow(dead_code)] Vec<WorkerGuard>);

/// Installs the global subscriber. `RUST_LOG` tunes stderr only; files always
/// get `info` and above from their component.
pub fn init(log_dir: &Path) -> std::io::Result<LogGuards> {
    std::fs::create_dir_all(log_dir)?;
    let mut guards = Vec::new();
    let mut layers: Vec<Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>> = Vec::new();
    let mut open = |file: &str| -> std::io::Result<_> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{file}.log")))?;
        // Never drop lines: the logs are how an operator diagnoses a site.
        // The default queue of 128k lines is allocated and touched up front:
        // about 4 MB per log, most of a node's idle memory. A writer that
        // outruns a smaller queue waits instead.
        let (w, g) = NonBlockingBuilder::default()
            .lossy(false)
            .buffered_lines_limit(LINES_QUEUED)
            .finish(f);
        guards.push(g);
        Ok(w)
    };
    for (module, file) in COMPONENT_LOGS {
        let w = open(file)?;
        let module = *module;
        layers.push(
            fmt::layer()
                .with_ansi(false)
                .with_target(false)
                .with_writer(w)
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
    layers.push(
        fmt::layer()
            .with_ansi(false)
            .with_writer(w)
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

/// Reads a component log (last `tail` lines, or all when 0).
pub fn read(log_dir: &Path, name: &str, tail: usize) -> Result<Vec<String>, String> {
    let known = COMPONENT_LOGS.iter().any(|(_, f)| *f == name) || name == "node";
    if !known {
        let names: Vec<&str> = COMPONENT_LOGS
            .iter()
            .map(|(_, f)| *f)
            .chain(["node"])
            .collect();
        return Err(format!(
            "unknown log {name:?}; logs are: {}",
            names.join(", ")
        ));
    }
    let text = match std::fs::read_to_string(log_dir.join(format!("{name}.log"))) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {name}.log: {e}")),
    };
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let skip = if tail == 0 {
        0
    } else {
        lines.len().saturating_sub(tail)
    };
    Ok(lines.into_iter().skip(skip).collect())
}
