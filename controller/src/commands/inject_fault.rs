//! `controller inject-fault`

use sms_proto::v1 as pb;

use super::print_faults;
use crate::client::{admin, node_addr, status_err};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// ct2-job-failure or bootstrap-failure.
    name: String,
    /// For bootstrap-failure: the phase (1-4) that fails.
    #[arg(long)]
    phase: Option<u32>,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    if a.name == "bootstrap-failure" && a.phase.is_none() {
        anyhow::bail!("bootstrap-failure needs --phase N (1-4)");
    }
    let f = admin(&addr)
        .await?
        .inject_fault(pb::FaultRequest {
            name: a.name,
            phase: a.phase.unwrap_or(0),
        })
        .await
        .map_err(|e| status_err("inject-fault", e))?
        .into_inner();
    print_faults(out, &f);
    Ok(())
}
