//! Status Manager: stores status messages at their site and replicates them
//! to the parent, batching many messages into one job.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::catalog::{self, MessageDef};
use crate::model::*;
use crate::node::Ctx;
use crate::store::Inbox;

/// Messages per replication job.
const BATCH: usize = 500;

/// How long status messages (and delivered job ids) are kept: SMS's default.
pub const RETENTION_MS: u64 = 7 * 24 * 3_600_000;

fn build(ctx: &Ctx, site: SiteCode, def: &MessageDef, args: &[String]) -> StatusMessage {
    StatusMessage {
        uid: Uuid::now_v7(),
        id: def.id,
        severity: def.severity,
        site_code: site,
        component: def.component.to_string(),
        machine: ctx.machine(),
        time_unix_ms: now_ms(),
        insertion_strings: args.to_vec(),
        text: catalog::render(def, args),
    }
}

/// Reports a status message at this site; it is replicated to the parent by
/// the Status Manager loop. A bare node has no site: the message is only logged.
pub fn emit(ctx: &Ctx, def: &MessageDef, args: &[String]) -> anyhow::Result<()> {
    let Some(id) = ctx.identity() else {
        tracing::info!(id = def.id, "{}", catalog::render(def, args));
        return Ok(());
    };
    let m = build(ctx, id.site_code, def, args);
    tracing::info!(id = m.id, severity = m.severity.as_str(), "{}", m.text);
    ctx.store.store_status(&[m], id.parent.is_some())?;
    ctx.status_wake.notify_one();
    Ok(())
}

/// Reports a message and queues it for the parent at once, as its own
/// high-priority job, ahead of anything queued after it. Used for install
/// phase reports, whose order relative to the CT2 matters.
///
/// `uid` makes a repeated report (after a crash) the same message, which
/// every site stores only once.
pub async fn emit_now(
    ctx: &Arc<Ctx>,
    def: &MessageDef,
    args: &[String],
    uid: Option<Uuid>,
) -> anyhow::Result<()> {
    let id = ctx
        .identity()
        .ok_or_else(|| anyhow::anyhow!("no site is installed to report from"))?;
    let mut m = build(ctx, id.site_code.clone(), def, args);
    if let Some(uid) = uid {
        m.uid = uid;
    }
    tracing::info!(id = m.id, severity = m.severity.as_str(), "{}", m.text);
    ctx.store.store_status(std::slice::from_ref(&m), false)?;
    match id.parent {
        Some(p) => {
            let job = Job::new(
                id.site_code,
                p.site_code,
                Priority::High,
                Payload::Status(vec![m]),
            );
            crate::scheduler::submit(ctx, &job).await?;
        }
        None => ctx.store.durable().await?,
    }
    Ok(())
}

/// The Status Manager loop: takes received batches from the status inbox,
/// stores them, and replicates what is queued for the parent.
pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let mut housekeeping = tokio::time::Instant::now();
    loop {
        despool_inbox(&ctx).await?;
        replicate(&ctx).await?;
        if tokio::time::Instant::now() >= housekeeping {
            let cutoff = now_ms().saturating_sub(RETENTION_MS);
            let (msgs, ids) = (
                ctx.store.prune_status(cutoff)?,
                ctx.store.prune_seen(cutoff)?,
            );
            if msgs + ids > 0 {
                tracing::info!(
                    msgs,
                    ids,
                    "housekeeping: dropped status messages and delivered job ids older than 7 days"
                );
            }
            housekeeping = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(()),
            _ = ctx.status_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Stores received status batches. Also called by the Hierarchy Manager
/// before it processes CT2s, so a child's phase reports are applied before a
/// CT2 that arrived after them.
pub async fn despool_inbox(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let _records = ctx.site_lock.lock().await;
    let replicate = ctx.identity().is_some_and(|i| i.parent.is_some());
    loop {
        let items = ctx.store.inbox_items(Inbox::Status, 64)?;
        if items.is_empty() {
            return Ok(());
        }
        for (key, job) in items {
            let Payload::Status(msgs) = job.payload else {
                tracing::warn!(job = %job.id, "a non-status job was in the status inbox; removed");
                ctx.store.inbox_remove(Inbox::Status, key)?;
                continue;
            };
            // Phase reports first: if we crash before the inbox removal below,
            // the batch is processed again and both steps are idempotent.
            crate::hierarchy::on_status(ctx, &msgs).await?;
            ctx.store.despool_status(key, &msgs, replicate)?;
            tracing::debug!(count = msgs.len(), from = %job.source, "stored status messages");
        }
    }
}

async fn replicate(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let Some(id) = ctx.identity() else {
        return Ok(());
    };
    let Some(parent) = id.parent else {
        return Ok(());
    };
    let mut sent = false;
    loop {
        let msgs = ctx.store.status_outq(BATCH)?;
        if msgs.is_empty() {
            break;
        }
        let urgent = msgs
            .iter()
            .any(|m| m.severity == Severity::Error || catalog::bootstrap_phase(m.id).is_some());
        let prio = if urgent {
            Priority::High
        } else {
            Priority::Medium
        };
        let job = Job::new(
            id.site_code.clone(),
            parent.site_code.clone(),
            prio,
            Payload::Status(msgs.clone()),
        );
        ctx.store.replicate_status(&parent.site_code, &job, &msgs)?;
        sent = true;
    }
    if sent {
        ctx.store.durable().await?;
        crate::scheduler::ensure_link(ctx, &parent.site_code)
            .wake
            .notify_one();
    }
    Ok(())
}
