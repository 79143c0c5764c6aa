//! `controller force-ct2`: article 002's first workaround. The site
//! re-processes its CT0 as a CT1 and sends a fresh CT2 to its parent.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(node: &Option<String>, out: &Out, _: Args) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    let r = c
        .force_ct2(pb::ForceCt2Request {})
        .await
        .reply("force-ct2")?;
    out.print(
        &json!({"site_code": r.site_code, "serial": r.serial}),
        || {
            println!(
            "site {} re-processes its site control as serial {} and sends a new CT2 to its parent",
            r.site_code, r.serial
        )
        },
    );
    Ok(())
}
