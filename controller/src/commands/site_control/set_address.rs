//! `controller set-address`: a site's route settings to a neighbour.

use sms_proto::v1 as pb;

use crate::output::{parse_priority, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The site whose address is changed (default: the node's own site).
    #[arg(long)]
    pub site: Option<String>,
    /// The neighbour the address leads to.
    #[arg(long)]
    pub to: String,
    /// Attempts per job before it is marked failed.
    #[arg(long)]
    pub retry_count: Option<u32>,
    /// Upper bound of the backoff between attempts.
    #[arg(long)]
    pub retry_delay_ms: Option<u64>,
    /// Frames in flight on the link.
    #[arg(long)]
    pub concurrent_sendings: Option<u32>,
    /// Bytes per second the sender may use on this link (0: unlimited).
    #[arg(long)]
    pub rate_limit_bytes_per_sec: Option<u64>,
    /// Which priorities may pass when, in UTC hours: `START-END:LOWEST`
    /// rules, comma separated (e.g. `8-18:high,18-22:medium`: only high
    /// priority jobs from 08:00 to 18:00). `always` clears the schedule.
    #[arg(long)]
    pub schedule: Option<String>,
}

/// Parses `8-18:high,22-2:medium` (or `always`) into schedule rules. A rule
/// may wrap past midnight (`22-2`); it may not be empty (`5-5`).
pub fn parse_schedule(s: &str) -> anyhow::Result<Vec<pb::ScheduleRule>> {
    if s.trim() == "always" {
        return Ok(vec![]);
    }
    s.split(',')
        .map(|rule| {
            let bad = || anyhow::anyhow!("schedule rule {rule:?} is not START-END:PRIORITY (hours 0-24, priority high|medium|low)");
            let (hours, prio) = rule.trim().split_once(':').ok_or_else(bad)?;
            let (a, b) = hours.split_once('-').ok_or_else(bad)?;
            let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a > 23 || b > 24 || a == b {
                return Err(bad());
            }
            let lowest = parse_priority(prio).ok_or_else(bad)?;
            Ok(pb::ScheduleRule {
                start_hour: a,
                end_hour: b,
                lowest: lowest as i32,
            })
        })
        .collect()
}

/// The change request. Only the settings given change; a schedule given
/// (even `always`) replaces the old one. A bad schedule is refused before
/// any node is contacted.
pub fn request(a: Args) -> anyhow::Result<pb::ChangeSiteControlRequest> {
    Ok(pb::ChangeSiteControlRequest {
        site: a.site.unwrap_or_default(),
        address: Some(pb::AddressChange {
            to: a.to,
            retry_count: a.retry_count,
            retry_delay_ms: a.retry_delay_ms,
            concurrent_sendings: a.concurrent_sendings,
            rate_limit_bytes_per_sec: a.rate_limit_bytes_per_sec,
            replace_schedule: a.schedule.is_some(),
            schedule: match &a.schedule {
                Some(s) => parse_schedule(s)?,
                None => vec![],
            },
        }),
        ..Default::default()
    })
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    super::send_change(node, out, "set-address", request(a)?).await
}
