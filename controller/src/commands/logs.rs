//! A node's logs: `log NAME` reads any component log; `bootstrap-log` is
//! `log bootstrap` under its own name because it is the first thing to read
//! on a node whose install failed (it works on bare nodes).
//!
//! Logs are streamed (`StreamLog`) and printed as they come, so neither the
//! node nor this process holds a whole log however large it is.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sms_proto::v1 as pb;

use crate::client::{connect, status_err, Reply};
use crate::output::Out;

/// Lines `--follow` starts with when neither --tail nor --since is given.
const FOLLOW_BACKLOG: u32 = 10;

#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// Log name: sitectrl, hman, sched, sender, despool, sitecomp, statmgr, bootstrap, node.
    pub name: String,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(clap::Args, Debug)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub read: ReadArgs,
}

/// Which part of a log to print.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReadArgs {
    /// Only the last N lines, from the rotated files too when the current
    /// one has fewer (0: the whole log, oldest rotated file first). Read
    /// from the end, so a log of any size tails at once.
    #[arg(long, default_value_t = 0)]
    pub tail: u32,
    /// Only lines written since WHEN: a duration back from now (30s, 10m,
    /// 2h, 1d) or a UTC time (2025-01-31T12:00:00Z).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<SystemTime>,
    /// Keep printing lines as they are written, across rotations, until
    /// Ctrl-C (with --json: one JSON object a line). Starts with the last
    /// 10 lines unless --tail or --since says otherwise.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// `--since`: a duration back from now, or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<SystemTime, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return SystemTime::now()
            .checked_sub(d)
            .ok_or_else(|| format!("{s} reaches back before 1970"));
    }
    humantime::parse_rfc3339_weak(s).map_err(|_| {
        format!("{s:?} is neither a duration (10m, 2h, 1d) nor a UTC time (2025-01-31T12:00:00Z)")
    })
}

/// The request for `name` that `a` asks for.
fn request(name: &str, a: &ReadArgs) -> pb::ReadLogRequest {
    let since_unix_ms = a
        .since
        .map(|t| {
            t.duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_millis()
                .max(1) as u64
        })
        .unwrap_or(0);
    let tail = if a.follow && a.tail == 0 && a.since.is_none() {
        FOLLOW_BACKLOG
    } else {
        a.tail
    };
    pb::ReadLogRequest {
        name: name.to_string(),
        tail,
        since_unix_ms,
        follow: a.follow,
    }
}

/// Prints log lines as they arrive: plain lines, one JSON document
/// (`{"lines": [...]}`) written as it streams, or with --follow one JSON
/// object per line.
struct Printer<'a> {
    out: &'a Out,
    follow: bool,
    first: bool,
}

impl Printer<'_> {
    fn begin(&mut self) {
        if self.out.json && !self.follow {
            print!("{{\"lines\":[");
        }
    }

    fn lines(&mut self, lines: &[String]) {
        let mut o = std::io::stdout().lock();
        for l in lines {
            if !self.out.json {
                writeln!(o, "{l}")
            } else if self.follow {
                writeln!(o, "{}", serde_json::json!({ "line": l }))
            } else {
                let sep = if self.first { "" } else { "," };
                write!(o, "{sep}\n{}", serde_json::Value::String(l.clone()))
            }
            .unwrap_or_else(|e| crate::output::stdout_failed(e));
            self.first = false;
        }
        if self.follow {
            o.flush()
                .unwrap_or_else(|e| crate::output::stdout_failed(e));
        }
    }

    fn end(&mut self) {
        if self.out.json && !self.follow {
            println!("\n]}}");
        }
    }
}

/// Reads log `name` as `a` says and prints it.
pub async fn run(node: &Option<String>, out: &Out, name: &str, a: ReadArgs) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    let req = request(name, &a);
    let what = if a.follow { "log --follow" } else { "log" };
    let mut p = Printer {
        out,
        follow: a.follow,
        first: true,
    };
    let mut stream = match c.stream_log(req.clone()).await {
        Ok(s) => s.into_inner(),
        Err(s) if s.code() == tonic::Code::Unimplemented && !a.follow => {
            // A node from before StreamLog: one reply, which it may cap.
            let r = c.read_log(req).await.reply("log")?;
            p.begin();
            p.lines(&r.lines);
            p.end();
            if r.truncated {
                eprintln!("(older lines not shown: the log is larger than one reply; use --tail or --since)");
            }
            return Ok(());
        }
        Err(s) => return Err(status_err(what, s)),
    };
    p.begin();
    loop {
        let item = tokio::select! {
            _ = tokio::signal::ctrl_c(), if a.follow => break,
            item = stream.message() => item.map_err(|e| status_err(what, e))?,
        };
        match item {
            Some(chunk) => p.lines(&chunk.lines),
            None if a.follow => anyhow::bail!("the node closed the log (it is stopping)"),
            None => break,
        }
    }
    p.end();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_back_or_a_time() {
        let t = parse_since("10m").unwrap();
        let ago = SystemTime::now().duration_since(t).unwrap();
        assert!(ago >= Duration::from_secs(600) && ago < Duration::from_secs(660));
        assert_eq!(
            parse_since("2025-01-31T12:00:00Z").unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_738_324_800)
        );
        let e = parse_since("yesterday").unwrap_err();
        assert!(e.contains("neither a duration"), "{e}");
    }

    #[test]
    fn follow_starts_with_a_few_lines_unless_told() {
        let a = ReadArgs {
            follow: true,
            ..Default::default()
        };
        assert_eq!(request("hman", &a).tail, FOLLOW_BACKLOG);
        let a = ReadArgs {
            follow: true,
            tail: 3,
            ..Default::default()
        };
        assert_eq!(request("hman", &a).tail, 3);
        let a = ReadArgs {
            follow: true,
            since: Some(UNIX_EPOCH + Duration::from_millis(1500)),
            ..Default::default()
        };
        let r = request("hman", &a);
        assert_eq!((r.tail, r.since_unix_ms, r.follow), (0, 1500, true));
        // Without --follow, no tail means the whole log.
        assert_eq!(request("sched", &ReadArgs::default()).tail, 0);
    }
}
