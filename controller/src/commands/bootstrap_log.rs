//! `controller bootstrap-log`

use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only the last N lines.
    #[arg(long, default_value_t = 0)]
    tail: u32,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    super::log::read(node, out, "bootstrap", a.tail).await
}
