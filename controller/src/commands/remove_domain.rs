//! `controller remove-domain`

use sms_proto::v1 as pb;

use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The site (at the site itself or any ancestor).
    #[arg(long)]
    site: String,
    /// Domain name.
    #[arg(long)]
    name: String,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let req = pb::ChangeSiteControlRequest {
        site: a.site,
        remove_domain: a.name,
        ..Default::default()
    };
    super::change::send(node, out, "remove-domain", req).await
}
