//! A site's control image (CT0) and the ways to change it: `site-control`
//! (show), `set-site-control`, `set-address`, `add-domain` and
//! `remove-domain` (each a CT1 built from flags, sent by [`send_change`]),
//! `submit-ct1` (a CT1 written by hand), `bad-box` (the CT1s refused) and
//! `force-ct2`.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::Out;

pub mod bad_box;
pub mod force_ct2;
pub mod set;
pub mod set_address;
pub mod show;
pub mod submit_ct1;

/// Sends one ChangeSiteControl request and prints where it went; `what`
/// names the command in an error.
pub async fn send_change(
    node: &Option<String>,
    out: &Out,
    what: &str,
    req: pb::ChangeSiteControlRequest,
) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    let r = c.change_site_control(req).await.reply(what)?;
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

/// A site's control as `node` shows it: its own CT0, or at an ancestor its
/// copy of `site`'s (what `mp list` and `status-rules list` read).
pub async fn fetch(
    node: &Option<String>,
    site: Option<String>,
    what: &str,
) -> anyhow::Result<pb::SiteControl> {
    let addr = crate::client::node_addr(node)?;
    crate::client::admin(&addr)
        .await?
        .get_site_control(pb::GetSiteControlRequest {
            site: site.unwrap_or_default(),
            ..Default::default()
        })
        .await
        .reply(what)
}
