//! `controller site-control`: show a site's control image (CT0), an
//! ancestor's copy of a descendant's, or what changed between two serials.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{admin, node_addr, Reply};
use crate::output::{control_json, table, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A serial from the site's CT0 history (default: the current one).
    #[arg(long)]
    pub serial: Option<u64>,
    /// At an ancestor: its copy of this descendant's site control (from its last CT2).
    #[arg(long)]
    pub site: Option<String>,
    /// Show what changed between two serials of the site's history.
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "serial")]
    pub diff: Option<Vec<u64>>,
}

/// A change as `diff` prints it: `field: from -> to`.
fn change_line(ch: &serde_json::Value) -> String {
    let show = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "(absent)".into())
    };
    format!(
        "{}: {} -> {}",
        ch["field"].as_str().unwrap_or(""),
        show(&ch["from"]),
        show(&ch["to"])
    )
}

async fn diff(addr: &str, out: &Out, site: Option<String>, a: u64, b: u64) -> anyhow::Result<()> {
    let mut c = admin(addr).await?;
    let mut controls = Vec::new();
    for serial in [a, b] {
        let req = pb::GetSiteControlRequest {
            serial,
            site: site.clone().unwrap_or_default(),
        };
        let ctl = c.get_site_control(req).await.reply("site-control")?;
        controls.push(control_json(&ctl));
    }
    let changes = sms_types::json_diff::changes(&controls[0], &controls[1]);
    out.print(
        &json!({"from_serial": a, "to_serial": b, "changes": changes}),
        || {
            if changes.is_empty() {
                println!("serials {a} and {b} are identical");
            }
            for ch in &changes {
                println!("{}", change_line(ch));
            }
        },
    );
    Ok(())
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
        .reply("site-control")?;
    out.print(&control_json(&c), || {
        let parent = if c.parent_site_code.is_empty() {
            "none"
        } else {
            &c.parent_site_code
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
                "keepalive s",
            ]);
            for x in &c.addresses {
                t.add_row(vec![
                    x.site_code.clone(),
                    x.server.clone(),
                    x.retry_count.to_string(),
                    x.retry_delay_ms.to_string(),
                    x.concurrent_sendings.to_string(),
                    x.keepalive_secs
                        .map_or_else(|| "node default".to_string(), |k| k.to_string()),
                ]);
            }
            println!("{t}");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_item_shows_as_absent_before() {
        let x = json!({"addresses": []});
        let y = json!({"addresses": [{"site_code": "PRI", "retry_count": 3}]});
        let ch = sms_types::json_diff::changes(&x, &y);
        assert_eq!(
            ch.iter().map(change_line).collect::<Vec<_>>(),
            [
                "addresses: [] -> (absent)",
                "addresses[PRI].retry_count: (absent) -> 3",
                "addresses[PRI].site_code: (absent) -> \"PRI\"",
            ]
        );
    }
}
