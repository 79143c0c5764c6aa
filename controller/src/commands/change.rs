//! Shared by the commands that change a site's control (`set-site-control`,
//! `set-address`, `add-domain`, `remove-domain`): each sends one
//! ChangeSiteControl request and prints where it went.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{admin, node_addr, status_err};
use crate::output::Out;

/// Sends `req` to the node and prints the outcome.
pub async fn send(
    node: &Option<String>,
    out: &Out,
    what: &str,
    req: pb::ChangeSiteControlRequest,
) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let r = admin(&addr)
        .await?
        .change_site_control(req)
        .await
        .map_err(|e| status_err(what, e))?
        .into_inner();
    out.print(
        &json!({"site_code": r.site_code, "serial": r.serial, "base_serial": r.base_serial}),
        || {
            println!(
                "change sent to site {} as a CT1 against serial {}; applied, it becomes serial {}",
                r.site_code, r.base_serial, r.serial
            )
        },
    );
    Ok(())
}
