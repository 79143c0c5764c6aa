//! How long a file package whose destination is this site is kept.
//!
//! A package passing through is freed by the sender as soon as the next hop
//! has acknowledged its last chunk (it is durable there). A package that
//! arrived here has no next hop: it is kept, as SMS kept received packages,
//! until the retention policy lets it go. The policy goes by when the
//! package was completed here, by this site's clock (never the sender's):
//!
//! - a package older than `keep` is removed;
//! - while the kept packages together exceed `max_bytes`,
//!   the oldest are removed first;
//! - but never one completed less than `min_keep` ago:
//!   its sender may still resend a chunk whose acknowledgement it missed,
//!   and that chunk must find the package.
//!
//! It is applied each time a package completes here and hourly.

use uuid::Uuid;

use crate::core::Ctx;

pub use sms_types::PackageRetention;

/// Which of the packages completed here (id, completed at, bytes; oldest
/// first) the policy removes at `now_ms`.
pub fn to_expire(policy: &PackageRetention, kept: &[(Uuid, u64, u64)], now_ms: u64) -> Vec<Uuid> {
    let expired_before = now_ms.saturating_sub(policy.keep.as_millis() as u64);
    let protected_after = now_ms.saturating_sub(policy.min_keep.as_millis() as u64);
    let mut total: u64 = kept.iter().map(|(_, _, b)| *b).sum();
    let mut out = vec![];
    for (id, at, bytes) in kept {
        if *at >= protected_after {
            break;
        }
        if *at < expired_before || total > policy.max_bytes {
            out.push(*id);
            total -= bytes;
        }
    }
    out
}

/// Applies the node's retention policy now; returns the packages removed.
pub fn apply(ctx: &Ctx) -> anyhow::Result<Vec<Uuid>> {
    let policy = *ctx.package_retention.lock().expect("retention lock");
    let kept: Vec<(Uuid, u64, u64)> = ctx
        .store
        .completed_packages()?
        .into_iter()
        .map(|(id, at)| (id, at, ctx.store.package_bytes(&id)))
        .collect();
    let gone = to_expire(&policy, &kept, sms_types::now_ms());
    for id in &gone {
        ctx.store.expire_package(id)?;
        tracing::info!(package = %id, "package removed by the retention policy");
    }
    Ok(gone)
}
