//! Reporting a status message at this site: the lowest layer every
//! component reports through. The message is stored (and queued for the
//! parent) in one write, watchers hear of it, and the Status Manager
//! (`status_manager`) is woken to replicate it.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;
use uuid::Uuid;

use sms_types::catalog::{self, MessageDef};
use sms_types::*;

use crate::core::{Ctx, Stored};
use crate::status_rules::Call;

pub(crate) fn build(ctx: &Ctx, site: SiteCode, def: &MessageDef, args: &[String]) -> StatusMessage {
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
    store(ctx, &[m], id.parent.is_some())?;
    ctx.status.wake();
    Ok(())
}

/// Reports many messages of one kind in one store transaction, each with
/// its own insertion strings. They are not logged one by one (a load test
/// reports thousands a second).
pub fn emit_many(ctx: &Ctx, def: &MessageDef, args: &[Vec<String>]) -> anyhow::Result<()> {
    let id = ctx
        .identity()
        .ok_or_else(|| anyhow::anyhow!("no site is installed to report from"))?;
    let msgs: Vec<StatusMessage> = args
        .iter()
        .map(|a| build(ctx, id.site_code.clone(), def, a))
        .collect();
    store(ctx, &msgs, id.parent.is_some())?;
    ctx.status.wake();
    Ok(())
}

/// Stores messages at this site under its status filter rules (queued for
/// the parent when `replicate`, unless a rule says otherwise), then acts on
/// those that were new here (see [`after_store`]).
pub(crate) fn store(ctx: &Ctx, msgs: &[StatusMessage], replicate: bool) -> anyhow::Result<()> {
    let (dispositions, calls) = ctx.status.rules().decide(msgs);
    let new = ctx
        .store
        .store_status_ruled(msgs, replicate, &dispositions)?;
    after_store(ctx, msgs, &new, calls);
    Ok(())
}

/// What follows storing a batch: the rules' calls go to the runner
/// (`status_actions`) and the messages to the counters and watchers, for
/// the messages that were new here only (`new`, one flag per message, from
/// the store). A batch resent after a lost acknowledgement, or a phase
/// report repeated after a crash, thus calls no webhook or program twice
/// and is not counted twice.
pub(crate) fn after_store(ctx: &Ctx, msgs: &[StatusMessage], new: &[bool], mut calls: Vec<Call>) {
    if new.iter().all(|&n| n) {
        ctx.status.actions.push(calls);
        publish(ctx, msgs);
        return;
    }
    calls.retain(|c| new.get(c.msg).copied().unwrap_or(false));
    ctx.status.actions.push(calls);
    let fresh: Vec<StatusMessage> = msgs
        .iter()
        .zip(new)
        .filter(|(_, &n)| n)
        .map(|(m, _)| m.clone())
        .collect();
    publish(ctx, &fresh);
}

/// Every batch of messages stored at this site from now on.
pub fn watch(ctx: &Ctx) -> broadcast::Receiver<Stored> {
    ctx.status.feed().subscribe()
}

/// Counts stored messages by severity and hands them to the watchers, if
/// any (nothing is copied otherwise).
fn publish(ctx: &Ctx, msgs: &[StatusMessage]) {
    for m in msgs {
        ctx.status.count_stored(m.severity);
    }
    if msgs.is_empty() || ctx.status.feed().receiver_count() == 0 {
        return;
    }
    let _ = ctx.status.feed().send(Stored {
        messages: msgs.into(),
        stored_unix_us: now_us(),
    });
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
