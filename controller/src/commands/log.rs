//! `controller log`

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{admin, node_addr, status_err};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Log name: sitectrl, hman, sched, sender, despool, sitecomp, statmgr, bootstrap, node.
    name: String,
    /// Only the last N lines.
    #[arg(long, default_value_t = 0)]
    tail: u32,
}

/// Reads a component log from a node and prints it.
pub async fn read(node: &Option<String>, out: &Out, name: &str, tail: u32) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let lines = admin(&addr)
        .await?
        .read_log(pb::ReadLogRequest {
            name: name.to_string(),
            tail,
        })
        .await
        .map_err(|e| status_err("log", e))?
        .into_inner()
        .lines;
    out.print(&json!({ "lines": lines }), || {
        for l in &lines {
            println!("{l}");
        }
    });
    Ok(())
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    read(node, out, &a.name, a.tail).await
}
