//! Status Manager: stores status messages at their site and replicates them
//! to the parent, batching many messages into one job.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::core::Ctx;
use sms_store::Inbox;
use sms_types::catalog::{self, MessageDef};
use sms_types::*;

/// Messages per replication job.
const BATCH: usize = 500;

/// How long status messages (and delivered job ids) are kept: SMS's
/// default (a status filter rule may keep matching messages longer or
/// shorter).
pub const RETENTION_MS: u64 = sms_types::status_rules::DEFAULT_RETENTION_MS;

/// What a load test did.
#[derive(Debug, Clone)]
pub struct LoadRun {
    pub tag: String,
    pub emitted: u32,
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
}

/// Load test: reports `count` test messages ([`catalog::STATUS_LOAD_TEST`])
/// at `per_second`, paced against the clock from the start (a late tick
/// catches up), each stored and queued for the parent like any message.
/// Returns when the last one is stored here.
/// Messages a load test stores in one transaction at most.
const MAX_PER_TICK: u32 = 10_000;

pub async fn generate_load(
    ctx: &Ctx,
    count: u32,
    per_second: u32,
    tag: String,
) -> anyhow::Result<LoadRun> {
    anyhow::ensure!(count > 0 && per_second > 0, "count and rate must be > 0");
    // One load test per node at a time: two would only measure each other.
    let _running = ctx.status.load_test().try_begin().ok_or_else(|| {
        anyhow::anyhow!("a load test is already running on this node; wait for it to finish")
    })?;
    let started_unix_ms = now_ms();
    tracing::info!(
        tag,
        count,
        per_second,
        "load test started: reporting test status messages"
    );
    let (total, rate) = (count.to_string(), per_second.to_string());
    // One tick per message at low rates, every 10 ms at high ones: each tick
    // is a store transaction, and sled seals and writes its log buffer for
    // every transaction (2 ms ticks from ten sites sharing two cores cost
    // more than the messages themselves).
    let period = Duration::from_micros((1_000_000 / per_second as u64).clamp(10_000, 100_000));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let t0 = tokio::time::Instant::now();
    let mut emitted = 0u32;
    while emitted < count {
        tokio::select! {
            _ = ctx.tasks.cancelled() => anyhow::bail!("the node is stopping; {emitted} of {count} test messages were reported"),
            _ = tick.tick() => {}
        }
        // A late tick catches up, but in bounded transactions.
        let due = (t0.elapsed().as_secs_f64() * per_second as f64).min(count as f64) as u32;
        let due = due.min(emitted + MAX_PER_TICK);
        if due <= emitted {
            continue;
        }
        let args: Vec<Vec<String>> = (emitted + 1..=due)
            .map(|i| vec![tag.clone(), i.to_string(), total.clone(), rate.clone()])
            .collect();
        crate::status::emit_many(ctx, &catalog::STATUS_LOAD_TEST, &args)?;
        emitted = due;
    }
    let finished_unix_ms = now_ms();
    tracing::info!(
        tag,
        emitted,
        secs = (finished_unix_ms - started_unix_ms) as f64 / 1000.0,
        "load test finished"
    );
    Ok(LoadRun {
        tag,
        emitted,
        started_unix_ms,
        finished_unix_ms,
    })
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
    let mut m = crate::status::build(ctx, id.site_code.clone(), def, args);
    if let Some(uid) = uid {
        m.uid = uid;
    }
    tracing::info!(id = m.id, severity = m.severity.as_str(), "{}", m.text);
    // The rules' keep period and calls apply; the replication is this
    // job's (phase reports always go up, ahead of the CT2).
    crate::status::store(ctx, std::slice::from_ref(&m), false)?;
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

/// How long queued messages may wait to be joined by more before they go up
/// as one job: each job costs a flush here and at the parent, and a site
/// reporting steadily would otherwise send a job per message or two.
const LINGER: Duration = Duration::from_millis(50);

/// The Status Manager loop: takes received batches from the status inbox,
/// stores them, and replicates what is queued for the parent, at most once
/// per [`LINGER`]. The inbox is taken a bounded pass at a time, replicating
/// after each, so a steady flow from the children never holds back what
/// goes up.
pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let mut housekeeping = tokio::time::Instant::now();
    let mut next_send = tokio::time::Instant::now();
    loop {
        let more = despool_some(&ctx).await?;
        if tokio::time::Instant::now() >= next_send && replicate(&ctx).await? {
            next_send = tokio::time::Instant::now() + LINGER;
        }
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
                    "housekeeping: dropped status messages past their retention and delivered job ids older than 7 days"
                );
            }
            if let Err(e) = crate::retention::apply(&ctx) {
                tracing::warn!("could not apply the package retention policy: {e:#}");
            }
            housekeeping = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
        }
        if more {
            continue;
        }
        // Messages held back by the linger go when it ends.
        let idle = tokio::time::Instant::now() + Duration::from_secs(5);
        let until = if ctx.store.status_queued()? {
            next_send.min(idle)
        } else {
            idle
        };
        tokio::select! {
            _ = ctx.tasks.cancelled() => return Ok(()),
            _ = ctx.status.woken() => {}
            _ = tokio::time::sleep_until(until) => {}
        }
    }
}

/// Messages stored per store transaction when despooling (several received
/// batches go into one transaction: per-transaction cost dominates).
const DESPOOL_GROUP: usize = 2_000;

/// Stores received status batches until the inbox is empty. Also called by
/// the Hierarchy Manager before it processes CT2s, so a child's phase
/// reports are applied before a CT2 that arrived after them.
pub async fn despool_inbox(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    while despool_some(ctx).await? {}
    Ok(())
}

/// Stores up to 64 received batches from the status inbox; true if more
/// are waiting.
async fn despool_some(ctx: &Arc<Ctx>) -> anyhow::Result<bool> {
    const JOBS: usize = 64;
    let _records = ctx.sites.lock().await;
    let replicate = ctx.identity().is_some_and(|i| i.parent.is_some());
    let items = ctx.store.inbox_items(Inbox::Status, JOBS)?;
    let more = items.len() == JOBS;
    let mut keys = Vec::new();
    let mut group: Vec<StatusMessage> = Vec::new();
    for (key, job) in items {
        let Payload::Status(msgs) = job.payload else {
            tracing::warn!(job = %job.id, "a non-status job was in the status inbox; removed");
            ctx.store.inbox_remove(Inbox::Status, key)?;
            continue;
        };
        // Phase reports first: if we crash before the group is stored, the
        // batches are processed again, and both steps are idempotent.
        ctx.upcalls()?.status_stored(&msgs).await?;
        tracing::debug!(count = msgs.len(), from = %job.source, "storing status messages");
        group.extend(msgs);
        keys.push(key);
        if group.len() >= DESPOOL_GROUP {
            store_group(ctx, &mut group, &mut keys, replicate)?;
        }
    }
    store_group(ctx, &mut group, &mut keys, replicate)?;
    Ok(more)
}

/// Stores received messages and takes their batches out of the inbox, in
/// one transaction.
fn store_group(
    ctx: &Ctx,
    group: &mut Vec<StatusMessage>,
    keys: &mut Vec<u64>,
    replicate: bool,
) -> anyhow::Result<()> {
    let (dispositions, calls) = ctx.status.rules().decide(group);
    let new = ctx
        .store
        .despool_status(keys, group, replicate, &dispositions)?;
    crate::status::after_store(ctx, group, &new, calls);
    group.clear();
    keys.clear();
    Ok(())
}

/// The priority the Status Manager gives a batch no rule chose one for.
fn default_priority(msgs: &[StatusMessage]) -> Priority {
    let urgent = msgs
        .iter()
        .any(|m| m.severity == Severity::Error || catalog::bootstrap_phase(m.id).is_some());
    // Clients' messages (from management points) go up at low
    // priority, unless the batch carries the site's own messages too.
    let clients_only = msgs
        .iter()
        .all(|m| sms_types::mp::CLIENT_MESSAGE_IDS.contains(&m.id));
    if clients_only {
        Priority::Low
    } else if urgent {
        Priority::High
    } else {
        Priority::Medium
    }
}

/// Sends everything queued for the parent; true if anything went.
pub(crate) async fn replicate(ctx: &Arc<Ctx>) -> anyhow::Result<bool> {
    let Some(id) = ctx.identity() else {
        return Ok(false);
    };
    let Some(parent) = id.parent else {
        return Ok(false);
    };
    let mut sent = false;
    loop {
        let queued = ctx.store.status_outq_prio(BATCH)?;
        if queued.is_empty() {
            break;
        }
        // One job per priority: the Status Manager's choice for most, the
        // one a status filter rule chose for the others.
        let mut chosen: [Vec<StatusMessage>; 3] = Default::default();
        let mut msgs = Vec::with_capacity(queued.len());
        for (m, prio) in queued {
            match prio {
                Some(p) => chosen[p as usize].push(m),
                None => msgs.push(m),
            }
        }
        let mut jobs: Vec<(Priority, Vec<StatusMessage>)> = Priority::ALL
            .into_iter()
            .zip(chosen)
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if !msgs.is_empty() {
            jobs.push((default_priority(&msgs), msgs));
        }
        for (prio, msgs) in jobs {
            let job = Job::new(
                id.site_code.clone(),
                parent.site_code.clone(),
                prio,
                Payload::Status(msgs.clone()),
            );
            ctx.store.replicate_status(&parent.site_code, &job, &msgs)?;
        }
        sent = true;
    }
    if sent {
        ctx.store.durable().await?;
        crate::scheduler::ensure_link(ctx, &parent.site_code)
            .wake
            .notify_one();
    }
    Ok(sent)
}
