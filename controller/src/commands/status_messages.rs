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
    let msgs = c
        .list_status_messages(req(vec![], a.limit))
        .await
        .map_err(|e| status_err("status-messages", e))?
        .into_inner()
        .messages;
    if a.follow {
        // Print what is there, then every new message as it is stored (one
        // line each; one JSON document per line with --json).
        let mut last: Option<Vec<u8>> = None;
        loop {
            let batch = match &last {
                None => msgs.clone(),
                Some(uid) => {
                    c.list_status_messages(req(uid.clone(), 1000))
                        .await
                        .map_err(|e| status_err("status-messages", e))?
                        .into_inner()
                        .messages
                }
            };
            for m in &batch {
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
            }
            if let Some(m) = batch.last() {
                last = Some(m.uid.clone());
            } else if last.is_none() {
                last = Some(uuid::Uuid::nil().as_bytes().to_vec());
            }
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
            }
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
