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
}

fn severity(s: i32) -> &'static str {
    match pb::Severity::try_from(s) {
        Ok(pb::Severity::Informational) => "informational",
        Ok(pb::Severity::Warning) => "warning",
        Ok(pb::Severity::Error) => "error",
        _ => "unknown",
    }
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let msgs = admin(&addr)
        .await?
        .list_status_messages(pb::ListStatusMessagesRequest {
            site: a.site.unwrap_or_default(),
            id: a.id.unwrap_or(0),
            limit: a.limit,
        })
        .await
        .map_err(|e| status_err("status-messages", e))?
        .into_inner()
        .messages;
    let v = json!({
        "messages": msgs.iter().map(|m| json!({
            "id": m.id,
            "severity": severity(m.severity),
            "site_code": m.site_code,
            "component": m.component,
            "machine": m.machine,
            "time": time(m.time_unix_ms),
            "time_unix_ms": m.time_unix_ms,
            "text": m.text,
            "insertion_strings": m.insertion_strings,
        })).collect::<Vec<_>>()
    });
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
