//! (being written)

use serde_json::Value;

use crate::harness::Ctx;

pub async fn status_two_tiers(_ctx: &Ctx, _runs: usize) -> anyhow::Result<Value> {
    anyhow::bail!("not written yet")
}
