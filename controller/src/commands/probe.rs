//! `controller probe send|received`: test traffic between sites.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::{parse_priority, priority_name, uuid, Out};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Queue N probe jobs for a site (they travel like any job).
    Send {
        /// Destination site.
        #[arg(long)]
        to: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Payload size of each probe: bytes, or a size such as `4KiB`.
        #[arg(long, default_value_t = 1024, value_name = "SIZE",
              value_parser = crate::units::parse_size_u32)]
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

/// The priority a probe is sent with.
fn prio(s: &str) -> anyhow::Result<pb::Priority> {
    parse_priority(s).ok_or_else(|| anyhow::anyhow!("unknown priority {s:?} (high, medium, low)"))
}

pub async fn run(node: &Option<String>, out: &Out, cmd: Cmd) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
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
                .reply("probe send")?;
            let ids: Vec<String> = r.job_ids.iter().map(|b| uuid(b)).collect();
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
                .reply("probe received")?;
            let probes = &r.probes;
            let v = if summary {
                json!({"count": r.count})
            } else {
                json!({
                    "count": probes.len(),
                    "probes": probes.iter().map(|p| json!({
                        "job_id": uuid(&p.job_id),
                        "source_site": p.source_site,
                        "priority": priority_name(p.priority).unwrap_or("unknown"),
                        "arrival": p.arrival,
                    })).collect::<Vec<_>>()
                })
            };
            out.print(&v, || println!("{} probes received", r.count));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_priorities_are_high_medium_or_low() {
        assert_eq!(prio("high").unwrap(), pb::Priority::High);
        assert_eq!(prio("low").unwrap(), pb::Priority::Low);
        assert_eq!(
            prio("urgent").unwrap_err().to_string(),
            "unknown priority \"urgent\" (high, medium, low)"
        );
    }
}
