//! `controller status-messages`

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{admin, node_addr, status_err};
use crate::output::{table, time, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only messages reported by this site.
    #[arg(long)]
    site: Option<String>,
    /// Only messages with this id.
    #[arg(long)]
    id: Option<u32>,
    /// The newest N messages at most.
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    /// Keep printing new messages as they arrive (Ctrl-C stops).
    #[arg(long)]
    follow: bool,
}

fn severity(s: i32) -> &'static str {
    match pb::Severity::try_from(s) {
        Ok(pb::Severity::Informational) => "informational",
        Ok(pb::Severity::Warning) => "warning",
        Ok(pb::Severity::Error) => "error",
        _ => "unknown",
    }
}

fn message_json(m: &pb::StatusMessage) -> serde_json::Value {
    json!({
        "id": m.id,
        "severity": severity(m.severity),
        "site_code": m.site_code,
        "component": m.component,
        "machine": m.machine,
        "time": time(m.time_unix_ms),
        "time_unix_ms": m.time_unix_ms,
        "text": m.text,
        "insertion_strings": m.insertion_strings,
    })
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let mut c = admin(&addr).await?;
    let req = |after_uid: Vec<u8>, limit: u32| pb::ListStatusMessagesRequest {
        site: a.site.clone().unwrap_or_default(),
        id: a.id.unwrap_or(0),
        limit,
        after_uid,
    };
    // Following: watch before listing, so nothing stored in between is
    // missed. The watch sees every message as it is stored here, including
    // one that arrives late from a far site with an older time (a listing
    // by uid would skip it).
    let mut watch = if a.follow {
        Some(
            c.watch_status_messages(pb::WatchStatusMessagesRequest {
                site: a.site.clone().unwrap_or_default(),
                id: a.id.unwrap_or(0),
            })
            .await
            .map_err(|e| status_err("status-messages --follow", e))?
            .into_inner(),
        )
    } else {
        None
    };
    let msgs = c
        .list_status_messages(req(vec![], a.limit))
        .await
        .map_err(|e| status_err("status-messages", e))?
        .into_inner()
        .messages;
    if let Some(watch) = watch.as_mut() {
        // One line per message (one JSON document per line with --json).
        let print = |m: &pb::StatusMessage| {
            if out.json {
                println!("{}", message_json(m));
            } else {
                println!(
                    "{}  {}  {:>5} {:<13} {}",
                    time(m.time_unix_ms),
                    m.site_code,
                    m.id,
                    severity(m.severity),
                    m.text
                );
            }
        };
        let listed: std::collections::HashSet<Vec<u8>> =
            msgs.iter().map(|m| m.uid.clone()).collect();
        msgs.iter().for_each(print);
        loop {
            let item = tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                item = watch.message() => item.map_err(|e| status_err("status-messages --follow", e))?,
            };
            let Some(item) = item else {
                anyhow::bail!("the node closed the watch (it is stopping)");
            };
            if item.missed_batches > 0 {
                eprintln!(
                    "warning: this terminal fell behind; {} batches of messages were not shown (status-messages lists them)",
                    item.missed_batches
                );
            }
            item.messages
                .iter()
                .filter(|m| !listed.contains(&m.uid))
                .for_each(print);
        }
    }
    let v = json!({ "messages": msgs.iter().map(message_json).collect::<Vec<_>>() });
    out.print(&v, || {
        let mut t = table(&["time (UTC)", "site", "id", "severity", "component", "text"]);
        for m in &msgs {
            t.add_row(vec![
                time(m.time_unix_ms),
                m.site_code.clone(),
                m.id.to_string(),
                severity(m.severity).to_string(),
                m.component.clone(),
                m.text.clone(),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}
