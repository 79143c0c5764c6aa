//! `controller force-ct2`: article 002's first workaround. The site
//! re-processes its CT0 as a CT1 and sends a fresh CT2 to its parent.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{admin, node_addr, status_err};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(node: &Option<String>, out: &Out, _: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let r = admin(&addr)
        .await?
        .force_ct2(pb::ForceCt2Request {})
        .await
        .map_err(|e| status_err("force-ct2", e))?
        .into_inner();
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
