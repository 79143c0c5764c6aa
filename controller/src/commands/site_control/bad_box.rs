//! `controller bad-box`: CT1s the Site Configuration Manager refused.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::{self, table, time, Out};

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(node: &Option<String>, out: &Out, _: Args) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    let entries = c
        .list_bad_ct1(pb::ListBadCt1Request {})
        .await
        .reply("bad-box")?
        .entries;
    let v = json!({"entries": entries.iter().map(|b| json!({
        "base_serial": b.base_serial, "site_code": b.site_code, "origin": b.origin,
        "reason": b.reason, "rejected": time(b.rejected_unix_ms),
    })).collect::<Vec<_>>()});
    out.print(&v, || {
        if entries.is_empty() {
            println!("the bad box is empty");
            return;
        }
        let mut t = table(&[
            "rejected (UTC)",
            "for site",
            "base serial",
            "origin",
            "reason",
        ]);
        for b in &entries {
            t.add_row(vec![
                output::time_ago(b.rejected_unix_ms),
                b.site_code.clone(),
                b.base_serial.to_string(),
                output::shown(&b.origin),
                output::shown(&b.reason),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}
