//! `controller probe send|received`: test traffic between sites.

use serde_json::json;
use sms_proto::v1 as pb;
use uuid::Uuid;

use crate::client::{admin, node_addr, status_err};
use crate::output::Out;

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Queue N probe jobs for a site (they travel like any job).
    Send {
        /// Destination site.
        #[arg(long)]
        to: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Payload size of each probe.
        #[arg(long, default_value_t = 1024)]
        bytes: u32,
        /// high, medium or low.
        #[arg(long, default_value = "medium")]
        priority: String,
    },
    /// Probe jobs that arrived at this node, in arrival order.
    Received {
        /// Print only the counts.
        #[arg(long)]
        summary: bool,
    },
}

fn prio(s: &str) -> anyhow::Result<pb::Priority> {
    match s {
        "high" => Ok(pb::Priority::High),
        "medium" => Ok(pb::Priority::Medium),
        "low" => Ok(pb::Priority::Low),
        other => anyhow::bail!("unknown priority {other:?} (high, medium, low)"),
    }
}

fn prio_name(p: i32) -> &'static str {
    match pb::Priority::try_from(p) {
        Ok(pb::Priority::High) => "high",
        Ok(pb::Priority::Medium) => "medium",
        Ok(pb::Priority::Low) => "low",
        _ => "unknown",
    }
}

fn id(b: &[u8]) -> String {
    Uuid::from_slice(b)
        .map(|u| u.to_string())
        .unwrap_or_default()
}

pub async fn run(node: &Option<String>, out: &Out, cmd: Cmd) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let mut c = admin(&addr).await?;
    match cmd {
        Cmd::Send {
            to,
            count,
            bytes,
            priority,
        } => {
            let r = c
                .send_probes(pb::SendProbesRequest {
                    to: to.clone(),
                    count,
                    bytes,
                    priority: prio(&priority)? as i32,
                })
                .await
                .map_err(|e| status_err("probe send", e))?
                .into_inner();
            let ids: Vec<String> = r.job_ids.iter().map(|b| id(b)).collect();
            out.print(&json!({"to": to, "job_ids": ids}), || {
                println!(
                    "queued {} {priority}-priority probes for site {to}",
                    ids.len()
                )
            });
        }
        Cmd::Received { summary } => {
            let r = c
                .list_probes(pb::ListProbesRequest {
                    count_only: summary,
                })
                .await
                .map_err(|e| status_err("probe received", e))?
                .into_inner();
            let probes = &r.probes;
            let v = if summary {
                json!({"count": r.count})
            } else {
                json!({
                    "count": probes.len(),
                    "probes": probes.iter().map(|p| json!({
                        "job_id": id(&p.job_id),
                        "source_site": p.source_site,
                        "priority": prio_name(p.priority),
                        "arrival": p.arrival,
                    })).collect::<Vec<_>>()
                })
            };
            out.print(&v, || println!("{} probes received", r.count));
        }
    }
    Ok(())
}
