//! (being written)

use serde_json::Value;

use crate::harness::Ctx;

pub async fn fan_out(_ctx: &Ctx, _runs: usize) -> anyhow::Result<Value> {
    anyhow::bail!("not written yet")
}
