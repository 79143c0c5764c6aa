//! `controller set-site-control`

use sms_proto::v1 as pb;

use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The site to change (default: the node's own site). At an ancestor, the
    /// change travels down as a CT1.
    #[arg(long)]
    site: Option<String>,
    /// Watchdog polling interval of the Site Configuration Manager.
    #[arg(long)]
    polling_interval_ms: Option<u64>,
    #[arg(long)]
    site_name: Option<String>,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    if a.polling_interval_ms.is_none() && a.site_name.is_none() {
        anyhow::bail!("nothing to change: give --polling-interval-ms and/or --site-name");
    }
    let req = pb::ChangeSiteControlRequest {
        site: a.site.unwrap_or_default(),
        polling_interval_ms: a.polling_interval_ms,
        site_name: a.site_name,
        ..Default::default()
    };
    super::change::send(node, out, "set-site-control", req).await
}
