//! `--watch [SECS]` for `sites` and `status`: the command's output redrawn
//! every SECS seconds until Ctrl-C (or `--count N` refreshes). The screen
//! is cleared only when stdout is a terminal, so a piped watch is a plain
//! log of snapshots; with `--json` each refresh is one JSON document on
//! one line.

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use crate::output::Out;

/// The watch flags a command flattens in.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WatchArgs {
    /// Redraw every SECS seconds (default 2; `500ms`, `1m` also work) until
    /// Ctrl-C; with --json, one JSON document per line per refresh.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2",
          value_parser = crate::units::parse_watch_interval)]
    pub watch: Option<Duration>,
    /// With --watch: stop after N refreshes.
    #[arg(long, value_name = "N", requires = "watch",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// The longest one refresh may take before it is reported as failed (the
/// interval when that is longer).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `fetch` once and prints its result, or, with `--watch`, again
/// every interval. `fetch` gives the JSON document and the text for
/// people. A failure of the first refresh ends the command (a wrong
/// address or certificate will not mend itself); a later one is shown
/// with its time and the watch goes on (a node restarting).
pub async fn run<F, Fut>(out: &Out, w: &WatchArgs, title: &str, mut fetch: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(Value, String)>>,
{
    let Some(every) = w.watch else {
        let (v, text) = fetch().await?;
        out.print(&v, || println!("{text}"));
        return Ok(());
    };
    let clear = !out.json && std::io::stdout().is_terminal();
    let limit = REFRESH_TIMEOUT.max(every);
    let mut done = 0u64;
    loop {
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            r = tokio::time::timeout(limit, fetch()) => match r {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("no answer within {} s", limit.as_secs())),
            },
        };
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        match result {
            Ok((v, _)) if out.json => println!("{}", serde_json::to_string(&v).expect("json")),
            Ok((_, text)) => {
                if clear {
                    print!("\x1b[2J\x1b[H");
                }
                println!(
                    "Every {}: controller {title}    {stamp}\n\n{text}",
                    humantime::format_duration(every)
                );
                if !clear {
                    println!();
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(e) => {
                let why = crate::client::error_text(&e);
                if out.json {
                    eprintln!("controller: {stamp}: {why}");
                } else {
                    if clear {
                        print!("\x1b[2J\x1b[H");
                    }
                    println!(
                        "Every {}: controller {title}    {stamp}\n\nfailed: {why}\n",
                        humantime::format_duration(every)
                    );
                }
            }
        }
        done += 1;
        if w.count.is_some_and(|n| done >= n) {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep_until(started + every) => {}
        }
    }
}
