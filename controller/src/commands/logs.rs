//! A node's logs: `log NAME` reads any component log; `bootstrap-log` is
//! `log bootstrap` under its own name because it is the first thing to read
//! on a node whose install failed (it works on bare nodes).

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// Log name: sitectrl, hman, sched, sender, despool, sitecomp, statmgr, bootstrap, node.
    pub name: String,
    /// Only the last N lines.
    #[arg(long, default_value_t = 0)]
    pub tail: u32,
}

#[derive(clap::Args, Debug)]
pub struct BootstrapArgs {
    /// Only the last N lines.
    #[arg(long, default_value_t = 0)]
    pub tail: u32,
}

/// Reads log `name` (the last `tail` lines, all if 0) and prints it.
pub async fn run(node: &Option<String>, out: &Out, name: &str, tail: u32) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    let lines = c
        .read_log(pb::ReadLogRequest {
            name: name.to_string(),
            tail,
        })
        .await
        .reply("log")?
        .lines;
    out.print(&json!({ "lines": lines }), || {
        for l in &lines {
            println!("{l}");
        }
    });
    Ok(())
}
