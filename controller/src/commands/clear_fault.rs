//! `controller clear-fault`

use sms_proto::v1 as pb;

use super::print_faults;
use crate::client::{admin, node_addr, status_err};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// ct2-job-failure or bootstrap-failure.
    name: String,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let f = admin(&addr)
        .await?
        .clear_fault(pb::FaultRequest {
            name: a.name,
            phase: 0,
        })
        .await
        .map_err(|e| status_err("clear-fault", e))?
        .into_inner();
    print_faults(out, &f);
    Ok(())
}
