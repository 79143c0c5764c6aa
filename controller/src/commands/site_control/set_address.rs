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
    /// Upper bound of the backoff between attempts, in ms.
    #[arg(long, conflicts_with = "retry_delay")]
    pub retry_delay_ms: Option<u64>,
    /// The same as a duration: `500ms`, `30s`, `2m`.
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration_ms)]
    pub retry_delay: Option<u64>,
    /// Frames in flight on the link.
    #[arg(long)]
    pub concurrent_sendings: Option<u32>,
    /// Bytes per second the sender may use on this link (0: unlimited); a
    /// size such as `512KiB` or `2MB` works too.
    #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
    pub rate_limit_bytes_per_sec: Option<u64>,
    /// Which priorities may pass when, in UTC hours: `START-END:LOWEST`
    /// rules, comma separated (e.g. `8-18:high,18-22:medium`: only high
    /// priority jobs from 08:00 to 18:00). `always` clears the schedule.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Seconds without traffic before the link's connection is probed
    /// (HTTP/2 PING, TCP keepalive), and to wait for the answer: a silent
    /// link is noticed within twice this. 1-3600, or `default` for the
    /// sending node's --keepalive-secs.
    #[arg(long, value_name = "SECS|default")]
    pub keepalive_secs: Option<Keepalive>,
}

/// `--keepalive-secs`: a number of seconds, or back to the node's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keepalive {
    Default,
    Secs(u32),
}

impl std::str::FromStr for Keepalive {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "default" => Ok(Keepalive::Default),
            n => n.parse().map(Keepalive::Secs).map_err(|_| {
                format!("{s:?} is neither a number of seconds (1-3600) nor `default`")
            }),
        }
    }
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
            retry_delay_ms: a.retry_delay_ms.or(a.retry_delay),
            concurrent_sendings: a.concurrent_sendings,
            rate_limit_bytes_per_sec: a.rate_limit_bytes_per_sec,
            replace_schedule: a.schedule.is_some(),
            schedule: match &a.schedule {
                Some(s) => parse_schedule(s)?,
                None => vec![],
            },
            // The node checks the bounds: one rule, in one place.
            keepalive_secs: match a.keepalive_secs {
                Some(Keepalive::Secs(n)) => Some(n),
                _ => None,
            },
            reset_keepalive: a.keepalive_secs == Some(Keepalive::Default),
        }),
        ..Default::default()
    })
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    super::send_change(node, out, "set-address", request(a)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(start_hour: u32, end_hour: u32, lowest: pb::Priority) -> pb::ScheduleRule {
        pb::ScheduleRule {
            start_hour,
            end_hour,
            lowest: lowest as i32,
        }
    }

    #[test]
    fn schedules_parse_rule_by_rule_including_past_midnight() {
        assert_eq!(
            parse_schedule("8-18:high, 22-2:medium,0-24:low").unwrap(),
            [
                rule(8, 18, pb::Priority::High),
                rule(22, 2, pb::Priority::Medium),
                rule(0, 24, pb::Priority::Low),
            ]
        );
        assert_eq!(parse_schedule(" always ").unwrap(), []);
    }

    #[test]
    fn bad_schedules_are_refused_naming_the_rule() {
        for (input, bad_rule) in [
            ("24-3:high", "24-3:high"),
            ("8-25:high", "8-25:high"),
            ("5-5:low", "5-5:low"),
            ("8-18:urgent", "8-18:urgent"),
            ("8-18", "8-18"),
            ("8:high", "8:high"),
            ("a-b:low", "a-b:low"),
            ("8-18:high,", ""),
            ("-1-3:low", "-1-3:low"),
        ] {
            let e = parse_schedule(input).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("schedule rule {bad_rule:?} is not START-END:PRIORITY (hours 0-24, priority high|medium|low)"),
                "{input}"
            );
        }
    }

    #[test]
    fn a_schedule_flag_replaces_the_schedule_and_its_absence_keeps_it() {
        let args = |schedule: Option<&str>| Args {
            site: Some("S01".into()),
            to: "PRI".into(),
            retry_count: Some(3),
            retry_delay_ms: None,
            retry_delay: None,
            concurrent_sendings: None,
            rate_limit_bytes_per_sec: Some(0),
            schedule: schedule.map(String::from),
            keepalive_secs: None,
        };
        let kept = request(args(None)).unwrap().address.unwrap();
        assert!(!kept.replace_schedule && kept.schedule.is_empty());
        assert_eq!((kept.retry_count, kept.retry_delay_ms), (Some(3), None));
        assert_eq!(kept.rate_limit_bytes_per_sec, Some(0));
        let cleared = request(args(Some("always"))).unwrap().address.unwrap();
        assert!(cleared.replace_schedule && cleared.schedule.is_empty());
        let set = request(args(Some("1-2:high"))).unwrap();
        assert_eq!(set.site, "S01");
        assert_eq!(
            set.address.unwrap().schedule,
            [rule(1, 2, pb::Priority::High)]
        );
        assert!(request(args(Some("nope"))).is_err());
    }

    #[test]
    fn a_keepalive_is_a_number_or_default_and_absent_leaves_it() {
        let args = |k: Option<Keepalive>| Args {
            site: None,
            to: "PRI".into(),
            retry_count: None,
            retry_delay_ms: None,
            retry_delay: None,
            concurrent_sendings: None,
            rate_limit_bytes_per_sec: None,
            schedule: None,
            keepalive_secs: k,
        };
        let set = request(args(Some("45".parse().unwrap())))
            .unwrap()
            .address
            .unwrap();
        assert_eq!((set.keepalive_secs, set.reset_keepalive), (Some(45), false));
        let reset = request(args(Some("default".parse().unwrap())))
            .unwrap()
            .address
            .unwrap();
        assert_eq!((reset.keepalive_secs, reset.reset_keepalive), (None, true));
        let kept = request(args(None)).unwrap().address.unwrap();
        assert_eq!((kept.keepalive_secs, kept.reset_keepalive), (None, false));
        assert_eq!(
            "soon".parse::<Keepalive>().unwrap_err(),
            "\"soon\" is neither a number of seconds (1-3600) nor `default`"
        );
    }
}
