//! `controller add-domain`

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
    /// The domain's browse list: addresses or DNS names, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    browse: Vec<String>,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let req = pb::ChangeSiteControlRequest {
        site: a.site,
        add_domain: Some(pb::Domain {
            name: a.name,
            browse: a.browse,
            logon_servers: vec![],
        }),
        ..Default::default()
    };
    super::change::send(node, out, "add-domain", req).await
}
