//! `controller allocate-id --count N` (at a logon server): SMS unique IDs
//! from its range; never the same ID twice.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many IDs.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    let r = c
        .allocate_ids(pb::AllocateIdsRequest { count: a.count })
        .await
        .reply("allocate-id")?;
    out.print(&json!({ "ids": r.ids, "sms_ids": r.sms_ids }), || {
        for id in &r.sms_ids {
            println!("{id}");
        }
    });
    Ok(())
}
