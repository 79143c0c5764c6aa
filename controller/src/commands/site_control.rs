//! `controller site-control`

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{admin, node_addr, status_err};
use crate::output::{table, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A serial from the site's CT0 history (default: the current one).
    #[arg(long)]
    serial: Option<u64>,
    /// At an ancestor: its copy of this descendant's site control (from its last CT2).
    #[arg(long)]
    site: Option<String>,
    /// Show what changed between two serials of the site's history.
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "serial")]
    diff: Option<Vec<u64>>,
}

/// Flattens a JSON document into path -> value, keying list items by their
/// name or site code so a reordered list does not look changed.
fn flatten(
    prefix: &str,
    v: &serde_json::Value,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                flatten(
                    &format!("{prefix}{}{k}", if prefix.is_empty() { "" } else { "." }),
                    x,
                    out,
                );
            }
        }
        serde_json::Value::Array(a) => {
            if a.is_empty() {
                out.insert(prefix.to_string(), "[]".into());
            }
            for (i, x) in a.iter().enumerate() {
                let key = x
                    .get("name")
                    .or_else(|| x.get("site_code"))
                    .or_else(|| x.get("server"))
                    .and_then(|k| k.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string());
                flatten(&format!("{prefix}[{key}]"), x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

async fn diff(addr: &str, out: &Out, site: Option<String>, a: u64, b: u64) -> anyhow::Result<()> {
    let mut c = admin(addr).await?;
    let mut controls = Vec::new();
    for serial in [a, b] {
        let req = pb::GetSiteControlRequest {
            serial,
            site: site.clone().unwrap_or_default(),
        };
        let ctl = c
            .get_site_control(req)
            .await
            .map_err(|e| status_err("site-control", e))?;
        controls.push(control_json(&ctl.into_inner()));
    }
    let (x, y) = (&controls[0], &controls[1]);
    let (mut fx, mut fy) = (Default::default(), Default::default());
    flatten("", x, &mut fx);
    flatten("", y, &mut fy);
    let keys: std::collections::BTreeSet<&String> = fx.keys().chain(fy.keys()).collect();
    let mut changes = Vec::new();
    for k in keys {
        let (va, vb) = (fx.get(k), fy.get(k));
        if va != vb {
            changes.push(json!({"field": k, "from": va, "to": vb}));
        }
    }
    out.print(
        &json!({"from_serial": a, "to_serial": b, "changes": changes}),
        || {
            if changes.is_empty() {
                println!("serials {a} and {b} are identical");
            }
            for ch in &changes {
                let show = |v: &serde_json::Value| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| "(absent)".into())
                };
                println!(
                    "{}: {} -> {}",
                    ch["field"].as_str().unwrap_or(""),
                    show(&ch["from"]),
                    show(&ch["to"])
                );
            }
        },
    );
    Ok(())
}

/// The site control as JSON (shared with `up`).
pub fn control_json(c: &pb::SiteControl) -> serde_json::Value {
    json!({
        "site_code": c.site_code,
        "site_name": c.site_name,
        "serial": c.serial,
        "parent_site_code": c.parent_site_code,
        "polling_interval_ms": c.polling_interval_ms,
        "version": c.version,
        "next_unique_id": c.next_unique_id,
        "domains": c.domains.iter().map(|d| json!({
            "name": d.name,
            "browse": d.browse,
            "logon_servers": d.logon_servers.iter().map(|l| json!({"server": l.server, "state": l.state})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "addresses": c.addresses.iter().map(|a| json!({
            "site_code": a.site_code,
            "server": a.server,
            "retry_count": a.retry_count,
            "retry_delay_ms": a.retry_delay_ms,
            "concurrent_sendings": a.concurrent_sendings,
            "rate_limit_bytes_per_sec": a.rate_limit_bytes_per_sec,
            "schedule": a.schedule.iter().map(|r| json!({
                "start_hour": r.start_hour,
                "end_hour": r.end_hour,
                "lowest": match pb::Priority::try_from(r.lowest) {
                    Ok(pb::Priority::High) => "high",
                    Ok(pb::Priority::Medium) => "medium",
                    _ => "low",
                },
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    if let Some(d) = &a.diff {
        return diff(&addr, out, a.site, d[0], d[1]).await;
    }
    if a.serial == Some(0) {
        anyhow::bail!("serials start at 1");
    }
    let c = admin(&addr)
        .await?
        .get_site_control(pb::GetSiteControlRequest {
            serial: a.serial.unwrap_or(0),
            site: a.site.unwrap_or_default(),
        })
        .await
        .map_err(|e| status_err("site-control", e))?
        .into_inner();
    out.print(&control_json(&c), || {
        let parent = if c.parent_site_code.is_empty() {
            "none".into()
        } else {
            c.parent_site_code.clone()
        };
        println!(
            "site {} \"{}\"  serial {}  parent {}  version {}",
            c.site_code, c.site_name, c.serial, parent, c.version
        );
        println!(
            "polling interval {} ms, next SMS unique id {}",
            c.polling_interval_ms, c.next_unique_id
        );
        if c.domains.is_empty() {
            println!("domains: none");
        } else {
            let mut t = table(&["domain", "browse list", "logon server", "state"]);
            for d in &c.domains {
                if d.logon_servers.is_empty() {
                    t.add_row(vec![
                        d.name.clone(),
                        d.browse.join(","),
                        "-".into(),
                        "-".into(),
                    ]);
                }
                for l in &d.logon_servers {
                    t.add_row(vec![
                        d.name.clone(),
                        d.browse.join(","),
                        l.server.clone(),
                        l.state.clone(),
                    ]);
                }
            }
            println!("{t}");
        }
        if !c.addresses.is_empty() {
            let mut t = table(&[
                "address to",
                "server",
                "retries",
                "max retry delay ms",
                "concurrent",
            ]);
            for x in &c.addresses {
                t.add_row(vec![
                    x.site_code.clone(),
                    x.server.clone(),
                    x.retry_count.to_string(),
                    x.retry_delay_ms.to_string(),
                    x.concurrent_sendings.to_string(),
                ]);
            }
            println!("{t}");
        }
    });
    Ok(())
}
