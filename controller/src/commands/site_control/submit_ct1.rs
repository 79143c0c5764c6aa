//! `controller submit-ct1 --file F`: drop a CT1 into the node's site control
//! inbox as it is, like copying a `.CT1` file into SMS's `sitecfg.box`. The
//! Site Configuration Manager validates it; a bad one lands in the bad box.
//!
//! The file is JSON: `{"base_serial": N, "origin": "...", "proposed": {...}}`
//! where `proposed` has the fields `site-control --json` prints.

use serde_json::{json, Value};
use sms_proto::v1 as pb;

use crate::client::{admin, node_addr, Reply};
use crate::output::{parse_priority, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// JSON file holding the CT1.
    #[arg(long)]
    pub file: std::path::PathBuf,
}

fn field<'a>(v: &'a Value, k: &str) -> anyhow::Result<&'a Value> {
    v.get(k)
        .ok_or_else(|| anyhow::anyhow!("the CT1 file has no field {k:?}"))
}

/// A schedule rule; a missing or unknown priority is low (lets all pass).
fn rule(r: &Value) -> pb::ScheduleRule {
    pb::ScheduleRule {
        start_hour: r["start_hour"].as_u64().unwrap_or_default() as u32,
        end_hour: r["end_hour"].as_u64().unwrap_or_default() as u32,
        lowest: r["lowest"]
            .as_str()
            .and_then(parse_priority)
            .unwrap_or(pb::Priority::Low) as i32,
    }
}

/// The proposed site control, read from the shape `site-control --json`
/// prints. Missing fields are empty: the Site Configuration Manager, not
/// this command, decides whether the CT1 is acceptable.
fn control(v: &Value) -> anyhow::Result<pb::SiteControl> {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or_default();
    let list = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    Ok(pb::SiteControl {
        site_code: s("site_code"),
        site_name: s("site_name"),
        serial: n("serial"),
        parent_site_code: s("parent_site_code"),
        polling_interval_ms: n("polling_interval_ms"),
        version: s("version"),
        next_unique_id: n("next_unique_id"),
        management_points: vec![],
        status_rules: list("status_rules")
            .iter()
            .map(crate::commands::status_rules::rule_from_json)
            .collect(),
        domains: list("domains")
            .iter()
            .map(|d| pb::Domain {
                name: d["name"].as_str().unwrap_or_default().into(),
                browse: d["browse"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                logon_servers: vec![],
            })
            .collect(),
        addresses: list("addresses")
            .iter()
            .map(|a| pb::Address {
                site_code: a["site_code"].as_str().unwrap_or_default().into(),
                server: a["server"].as_str().unwrap_or_default().into(),
                retry_count: a["retry_count"].as_u64().unwrap_or_default() as u32,
                retry_delay_ms: a["retry_delay_ms"].as_u64().unwrap_or_default(),
                concurrent_sendings: a["concurrent_sendings"].as_u64().unwrap_or_default() as u32,
                rate_limit_bytes_per_sec: a["rate_limit_bytes_per_sec"]
                    .as_u64()
                    .unwrap_or_default(),
                schedule: a["schedule"]
                    .as_array()
                    .map(|rules| rules.iter().map(rule).collect())
                    .unwrap_or_default(),
                // Out of range stays out of range (the SCM refuses it), never wraps.
                keepalive_secs: a["keepalive_secs"]
                    .as_u64()
                    .map(|k| u32::try_from(k).unwrap_or(u32::MAX)),
            })
            .collect(),
    })
}

/// The CT1 in a file's text; `file` names it in errors.
pub fn parse_ct1(text: &str, file: &std::path::Path) -> anyhow::Result<pb::Ct1> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", file.display()))?;
    let base = field(&v, "base_serial")?
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("base_serial must be a number"))?;
    Ok(pb::Ct1 {
        base_serial: base,
        proposed: Some(control(field(&v, "proposed")?)?),
        origin: v
            .get("origin")
            .and_then(Value::as_str)
            .unwrap_or("submit-ct1")
            .to_string(),
        // Dropped as it is: unsigned, so a secure site puts it in the bad box.
        ..Default::default()
    })
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let text = std::fs::read_to_string(&a.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.file.display()))?;
    let ct1 = parse_ct1(&text, &a.file)?;
    let r = admin(&addr)
        .await?
        .submit_ct1(ct1)
        .await
        .reply("submit-ct1")?;
    out.print(&json!({"site_code": r.site_code, "base_serial": r.base_serial}), || {
        println!(
            "CT1 placed in the site control inbox of {}; `controller bad-box` lists it if it is refused",
            r.site_code
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::control_json;

    #[test]
    fn a_site_control_printed_by_site_control_reads_back_unchanged() {
        let c = pb::SiteControl {
            site_code: "S01".into(),
            site_name: "North".into(),
            serial: 7,
            parent_site_code: "PRI".into(),
            polling_interval_ms: 250,
            version: "0.1.0".into(),
            next_unique_id: 42,
            management_points: vec![],
            status_rules: vec![],
            domains: vec![pb::Domain {
                name: "NORTH".into(),
                browse: vec!["10.0.0.1".into(), "dc.north".into()],
                logon_servers: vec![],
            }],
            addresses: vec![pb::Address {
                site_code: "PRI".into(),
                server: "127.0.0.1:4000".into(),
                retry_count: 5,
                retry_delay_ms: 2000,
                concurrent_sendings: 2,
                rate_limit_bytes_per_sec: 1 << 20,
                schedule: vec![
                    pb::ScheduleRule {
                        start_hour: 8,
                        end_hour: 18,
                        lowest: pb::Priority::High as i32,
                    },
                    pb::ScheduleRule {
                        start_hour: 18,
                        end_hour: 8,
                        lowest: pb::Priority::Medium as i32,
                    },
                ],
                keepalive_secs: Some(30),
            }],
        };
        let text = json!({"base_serial": 7, "proposed": control_json(&c)}).to_string();
        let ct1 = parse_ct1(&text, std::path::Path::new("x.json")).unwrap();
        assert_eq!(ct1.base_serial, 7);
        assert_eq!(ct1.origin, "submit-ct1");
        assert_eq!(ct1.proposed.unwrap(), c);
    }

    #[test]
    fn a_ct1_file_missing_its_parts_is_refused_clearly() {
        let f = std::path::Path::new("ct1.json");
        let err = |text: &str| parse_ct1(text, f).unwrap_err().to_string();
        assert!(err("{not json").starts_with("ct1.json is not JSON: "));
        assert_eq!(
            err(r#"{"proposed": {}}"#),
            "the CT1 file has no field \"base_serial\""
        );
        assert_eq!(
            err(r#"{"base_serial": "3", "proposed": {}}"#),
            "base_serial must be a number"
        );
        assert_eq!(
            err(r#"{"base_serial": 3}"#),
            "the CT1 file has no field \"proposed\""
        );
        let ct1 = parse_ct1(
            r#"{"base_serial": 3, "origin": "me", "proposed": {"addresses": [{"schedule": [{"lowest": "urgent"}]}]}}"#,
            f,
        )
        .unwrap();
        assert_eq!(ct1.origin, "me");
        let rule = &ct1.proposed.unwrap().addresses[0].schedule[0];
        assert_eq!(rule.lowest, pb::Priority::Low as i32);
    }
}
