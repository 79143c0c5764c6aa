//! `controller sever-link`

use sms_proto::v1 as pb;

use super::print_link;
use crate::client::{admin, node_addr, status_err};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The neighbouring site to cut off.
    #[arg(long)]
    to: String,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let l = admin(&addr)
        .await?
        .sever_link(pb::LinkRequest { to: a.to })
        .await
        .map_err(|e| status_err("sever-link", e))?
        .into_inner();
    print_link(out, &l);
    Ok(())
}
