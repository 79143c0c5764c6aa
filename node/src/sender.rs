//! Sender: moves the jobs of one outbox to the neighbouring site's despooler
//! over one long-lived stream, many frames in flight.
//!
//! A job leaves the outbox only when the receiver has acknowledged it (after
//! making it durable). A broken stream charges an attempt to the jobs that
//! were in flight; a job out of attempts moves to the failed box, where it
//! stays visible and retryable. A link severed by an administrator (here or
//! at the peer) pauses the link without charging attempts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use uuid::Uuid;

use crate::catalog;
use crate::model::*;
use crate::node::Ctx;
use crate::rpc::client::{self, LinkConn, LinkError, LinkEvent, LinkHello};
use crate::scheduler::{Link, LinkStatus};
use crate::store::OutboxKey;

/// Bytes of file chunks in flight on one link at most (the resume window).
pub const MAX_INFLIGHT_BYTES: usize = 8 * 1024 * 1024;

/// Who is at the other end of a link.
enum Neighbour {
    Parent { server: String, secret: String },
    Child(SiteRecord),
    Unknown,
}

fn neighbour(ctx: &Ctx, to: &SiteCode) -> anyhow::Result<Neighbour> {
    let Some(id) = ctx.identity() else {
        return Ok(Neighbour::Unknown);
    };
    if let Some(p) = id.parent.filter(|p| &p.site_code == to) {
        return Ok(Neighbour::Parent {
            server: p.address,
            secret: p.link_secret,
        });
    }
    match ctx.store.site(to)? {
        Some(rec) if rec.parent_site_code.as_ref() == Some(&id.site_code) => {
            Ok(Neighbour::Child(rec))
        }
        _ => Ok(Neighbour::Unknown),
    }
}

/// Waits for a wake-up, cancellation, or a periodic re-check.
async fn pause(ctx: &Ctx, link: &Link, dur: Duration) {
    tokio::select! {
        _ = ctx.cancel.cancelled() => {}
        _ = link.wake.notified() => {}
        _ = tokio::time::sleep(dur) => {}
    }
}

fn new_backoff(addr: &Address) -> ExponentialBackoff {
    ExponentialBackoff {
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_millis(addr.retry_delay_ms.max(100)),
        multiplier: 2.0,
        randomization_factor: 0.3,
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    }
}

/// The sender loop of one link.
pub async fn run(ctx: Arc<Ctx>, link: Arc<Link>) -> anyhow::Result<()> {
    let mut backoff: Option<ExponentialBackoff> = None;
    loop {
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        let severed = ctx.store.link_fault(&link.to)?;
        let (server, secret, child) = match neighbour(&ctx, &link.to)? {
            Neighbour::Parent { server, secret } => (server, secret, None),
            Neighbour::Child(rec) => (rec.server.clone(), rec.link_secret.clone(), Some(rec)),
            Neighbour::Unknown => {
                link.set_state(LinkStatus::Idle, "not a neighbour of this site");
                pause(&ctx, &link, Duration::from_secs(5)).await;
                continue;
            }
        };
        let addr = ctx.address_for(&link.to, server.clone());

        // A child site is first reached through its bootstrap service. With
        // --sever-link-mid-bootstrap the link is cut durably just before the
        // handover, so nothing the child sends once started can get through.
        if let Some(rec) = &child {
            let boot = queued_bootstrap(&ctx, &link.to)?;
            if let Some((key, job)) =
                boot.filter(|_| severed.is_none() || rec.sever_link_mid_bootstrap)
            {
                if rec.sever_link_mid_bootstrap && severed.is_none() {
                    sever(&ctx, &link.to).await?;
                }
                match client::install_bootstrap(&ctx.connector, &server, &job).await {
                    Ok(()) => {
                        ctx.store.outbox_remove(&[key])?;
                        if rec.sever_link_mid_bootstrap {
                            // One-shot: a later bootstrap is not severed again.
                            let mut r = rec.clone();
                            r.sever_link_mid_bootstrap = false;
                            ctx.store.put_site(&r)?;
                        }
                        ctx.store.durable().await?;
                        backoff = None;
                        tracing::info!(to = %link.to, %server, "bootstrap started on the child; the link stays closed until the child reports");
                        continue;
                    }
                    Err(e) => {
                        let permanent = e.permanent;
                        tracing::warn!(to = %link.to, %server, "bootstrap delivery failed: {}", e.message);
                        charge(&ctx, &link, &addr, vec![(key, job)], &e.message, permanent).await?;
                        retry_pause(&ctx, &link, &addr, &mut backoff, &e.message).await;
                        continue;
                    }
                }
            }
        }
        if let Some(f) = severed {
            link.set_state(
                LinkStatus::Severed,
                format!(
                    "severed by an administrator at {} (unix ms)",
                    f.severed_unix_ms
                ),
            );
            pause(&ctx, &link, Duration::from_secs(5)).await;
            continue;
        }
        if let Some(rec) = &child {
            if rec.status == SiteStatus::Pending {
                link.set_state(
                    LinkStatus::AwaitingChild,
                    "bootstrap delivered; waiting for the child to report",
                );
                pause(&ctx, &link, Duration::from_secs(5)).await;
                continue;
            }
        }

        if ctx.store.outbox_len(&link.to) == 0 {
            link.set_state(LinkStatus::Idle, "nothing queued");
            pause(&ctx, &link, Duration::from_secs(30)).await;
            continue;
        }

        let hello = LinkHello {
            source_site: ctx.site_code().expect("installed"),
            dest_site: link.to.clone(),
            source_address: ctx.advertise.clone(),
            link_secret: secret,
        };
        let mut session = Session::new(&addr);
        match session
            .run(&ctx, &link, &server, &hello, &mut backoff)
            .await
        {
            Ok(()) => {}
            Err(LinkError::Severed(msg)) => {
                // The peer cut the link: wait, charging nothing.
                tracing::info!(to = %link.to, "peer refuses the link: {msg}");
                link.set_state(LinkStatus::Retrying, msg.clone());
                let addr_cap = Address {
                    retry_delay_ms: addr.retry_delay_ms.min(2_000),
                    ..addr.clone()
                };
                retry_pause(&ctx, &link, &addr_cap, &mut backoff, &msg).await;
            }
            Err(LinkError::Refused(msg)) | Err(LinkError::Failed(msg)) => {
                tracing::warn!(to = %link.to, %server, "link failed: {msg}");
                let charged = session.charge_list(&ctx, &link.to)?;
                charge(&ctx, &link, &addr, charged, &msg, false).await?;
                retry_pause(&ctx, &link, &addr, &mut backoff, &msg).await;
            }
        }
    }
}

async fn retry_pause(
    ctx: &Ctx,
    link: &Link,
    addr: &Address,
    backoff: &mut Option<ExponentialBackoff>,
    msg: &str,
) {
    let b = backoff.get_or_insert_with(|| new_backoff(addr));
    let delay = b
        .next_backoff()
        .unwrap_or(Duration::from_millis(addr.retry_delay_ms));
    link.set_state(
        LinkStatus::Retrying,
        format!("{msg}; next attempt in {} ms", delay.as_millis()),
    );
    tokio::select! {
        _ = ctx.cancel.cancelled() => {}
        _ = tokio::time::sleep(delay) => {}
    }
}

fn queued_bootstrap(ctx: &Ctx, to: &SiteCode) -> anyhow::Result<Option<(OutboxKey, Job)>> {
    Ok(ctx
        .store
        .outbox_scan(to, Priority::High, None, 64)?
        .into_iter()
        .find(|(_, j)| matches!(j.payload, Payload::Bootstrap(_))))
}

/// Severs the link to `to` durably and records why.
pub async fn sever(ctx: &Arc<Ctx>, to: &SiteCode) -> anyhow::Result<()> {
    ctx.store.set_link_fault(
        to,
        Some(&crate::store::LinkFault {
            severed_unix_ms: now_ms(),
        }),
    )?;
    ctx.store.durable().await?;
    tracing::warn!(to = %to, "link severed by an administrator");
    crate::status_manager::emit(ctx, &catalog::LINK_SEVERED, &[to.to_string()])?;
    ctx.scheduler.wake(to);
    Ok(())
}

/// Charges one failed attempt to each job; a job out of attempts (or failing
/// permanently) moves to the failed box.
async fn charge(
    ctx: &Arc<Ctx>,
    link: &Link,
    addr: &Address,
    jobs: Vec<(OutboxKey, Job)>,
    reason: &str,
    permanent: bool,
) -> anyhow::Result<()> {
    let mut failed_any = false;
    for (key, mut job) in jobs {
        job.attempts += 1;
        if permanent || job.attempts >= addr.retry_count.max(1) {
            ctx.store.outbox_fail(
                key,
                &FailedJob {
                    job: job.clone(),
                    reason: reason.to_string(),
                    failed_unix_ms: now_ms(),
                },
            )?;
            failed_any = true;
            tracing::error!(job = %job.id, kind = job.payload.kind(), to = %link.to, attempts = job.attempts, "job failed: {reason}");
            crate::status_manager::emit(
                ctx,
                &catalog::JOB_FAILED,
                &[
                    job.id.to_string(),
                    job.payload.kind().to_string(),
                    job.dest.to_string(),
                    job.attempts.to_string(),
                    reason.to_string(),
                ],
            )?;
        } else {
            ctx.store.outbox_update(key, &job)?;
        }
    }
    if failed_any {
        ctx.store.durable().await?;
    }
    Ok(())
}

/// A frame that is out and not yet acknowledged.
struct InFlight {
    key: OutboxKey,
    bytes: usize,
}

/// A file package being streamed chunk by chunk.
struct FileSend {
    key: OutboxKey,
    job: Job,
    next_chunk: u32,
    chunk_count: u32,
}

/// One connected stream's bookkeeping.
struct Session {
    window: usize,
    inflight: HashMap<(Uuid, u32), InFlight>,
    inflight_bytes: usize,
    /// Per priority: seq of the last job handed to the stream.
    cursors: [Option<u64>; 3],
    /// Per priority: the file package being chunked out.
    files: [Option<FileSend>; 3],
    /// Acknowledged-chunk progress of file packages, by job id.
    file_acked: HashMap<Uuid, (OutboxKey, Job)>,
    /// The job an injected fault stopped; only it is charged.
    faulted: Option<(OutboxKey, Job)>,
}

impl Session {
    fn new(addr: &Address) -> Self {
        Session {
            window: addr.concurrent_sendings.clamp(1, 4096) as usize,
            inflight: HashMap::new(),
            inflight_bytes: 0,
            cursors: [None; 3],
            files: [None, None, None],
            file_acked: HashMap::new(),
            faulted: None,
        }
    }

    fn room(&self) -> bool {
        self.inflight.len() < self.window && self.inflight_bytes < MAX_INFLIGHT_BYTES
    }

    async fn run(
        &mut self,
        ctx: &Arc<Ctx>,
        link: &Arc<Link>,
        server: &str,
        hello: &LinkHello,
        backoff: &mut Option<ExponentialBackoff>,
    ) -> Result<(), LinkError> {
        link.set_state(LinkStatus::Connecting, format!("connecting to {server}"));
        let mut conn = LinkConn::open(&ctx.connector, server, hello, self.window).await?;
        link.set_state(LinkStatus::Up, server.to_string());
        *backoff = None;
        tracing::info!(to = %link.to, %server, "link up");
        loop {
            self.fill(ctx, link, &conn).await?;
            if self.inflight.is_empty() && ctx.store.outbox_len(&link.to) == 0 {
                link.set_state(LinkStatus::Up, format!("{server}; nothing queued"));
            }
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(()),
                _ = link.wake.notified() => {
                    if ctx.store.link_fault(&link.to).map_err(fail)?.is_some() {
                        return Ok(());
                    }
                }
                ev = conn.next() => match ev? {
                    LinkEvent::Acks(acks) => self.acked(ctx, link, acks)?,
                    LinkEvent::Refused { job_id, reason } => self.refused(ctx, link, job_id, reason).await?,
                },
            }
        }
    }

    /// Hands queued frames to the stream until the window is full: high
    /// priority first, oldest first within a priority.
    async fn fill(
        &mut self,
        ctx: &Arc<Ctx>,
        link: &Link,
        conn: &LinkConn,
    ) -> Result<(), LinkError> {
        let ct2_fault = ctx
            .store
            .faults()
            .map_err(fail)?
            .contains(&Fault::Ct2JobFailure);
        'prio: for p in Priority::ALL {
            let pi = p as usize;
            while self.room() {
                if let Some(f) = &mut self.files[pi] {
                    let idx = f.next_chunk;
                    let data = ctx
                        .store
                        .chunk(&f.job.id, idx)
                        .map_err(fail)?
                        .ok_or_else(|| {
                            LinkError::Failed(format!(
                                "chunk {idx} of package {} is missing",
                                f.job.id
                            ))
                        })?;
                    let bytes = data.len();
                    conn.send(&f.job, Some((idx, data))).await?;
                    self.inflight
                        .insert((f.job.id, idx), InFlight { key: f.key, bytes });
                    self.inflight_bytes += bytes;
                    f.next_chunk += 1;
                    if f.next_chunk >= f.chunk_count {
                        self.cursors[pi] = Some(f.key.seq);
                        self.files[pi] = None;
                    }
                    continue;
                }
                let budget = self.window - self.inflight.len();
                let batch = ctx
                    .store
                    .outbox_scan(&link.to, p, self.cursors[pi], budget.min(256))
                    .map_err(fail)?;
                if batch.is_empty() {
                    continue 'prio;
                }
                for (key, job) in batch {
                    if matches!(job.payload, Payload::Bootstrap(_)) {
                        // Bootstraps go to the bootstrap service, never the stream.
                        self.cursors[pi] = Some(key.seq);
                        continue;
                    }
                    if ct2_fault && matches!(job.payload, Payload::Ct2(_)) {
                        self.faulted = Some((key, job));
                        return Err(LinkError::Failed(
                            "injected fault ct2-job-failure: the CT2 job could not be delivered"
                                .into(),
                        ));
                    }
                    if let Payload::File(pkg) = &job.payload {
                        let start = job.acked_chunks;
                        if start >= pkg.chunk_count {
                            self.cursors[pi] = Some(key.seq);
                            continue;
                        }
                        self.files[pi] = Some(FileSend {
                            key,
                            next_chunk: start,
                            chunk_count: pkg.chunk_count,
                            job: job.clone(),
                        });
                        self.file_acked.insert(job.id, (key, job));
                        break;
                    }
                    conn.send(&job, None).await?;
                    self.inflight
                        .insert((job.id, 0), InFlight { key, bytes: 0 });
                    self.cursors[pi] = Some(key.seq);
                    if !self.room() {
                        break;
                    }
                }
            }
            break;
        }
        Ok(())
    }

    fn acked(
        &mut self,
        ctx: &Ctx,
        link: &Link,
        acks: Vec<(Uuid, u32, bool)>,
    ) -> Result<(), LinkError> {
        let mut done = Vec::with_capacity(acks.len());
        let mut files_done = Vec::new();
        for (id, chunk, _dup) in acks {
            let Some(f) = self.inflight.remove(&(id, chunk)) else {
                continue;
            };
            self.inflight_bytes -= f.bytes;
            if let Some((key, job)) = self.file_acked.get_mut(&id) {
                job.acked_chunks = chunk + 1;
                let count = match &job.payload {
                    Payload::File(p) => p.chunk_count,
                    _ => 0,
                };
                if job.acked_chunks >= count {
                    done.push(*key);
                    files_done.push(id);
                } else {
                    ctx.store.outbox_update(*key, job).map_err(fail)?;
                }
            } else {
                done.push(f.key);
            }
        }
        link.sent
            .fetch_add(done.len() as u64, std::sync::atomic::Ordering::Relaxed);
        ctx.store.outbox_remove(&done).map_err(fail)?;
        for id in files_done {
            self.file_acked.remove(&id);
            ctx.store.drop_chunks(&id).map_err(fail)?;
        }
        Ok(())
    }

    async fn refused(
        &mut self,
        ctx: &Arc<Ctx>,
        link: &Link,
        id: Uuid,
        reason: String,
    ) -> Result<(), LinkError> {
        let keys: Vec<(Uuid, u32)> = self
            .inflight
            .keys()
            .filter(|(j, _)| *j == id)
            .copied()
            .collect();
        let mut key = None;
        for k in keys {
            if let Some(f) = self.inflight.remove(&k) {
                self.inflight_bytes -= f.bytes;
                key = Some(f.key);
            }
        }
        let Some(key) = key else { return Ok(()) };
        let Some(job) = ctx
            .store
            .outbox_scan(&link.to, prio_of(key), Some(key.seq.saturating_sub(1)), 1)
            .map_err(fail)?
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, j)| j)
        else {
            return Ok(());
        };
        self.file_acked.remove(&id);
        for f in self.files.iter_mut() {
            if f.as_ref().is_some_and(|f| f.job.id == id) {
                *f = None;
            }
        }
        let addr = ctx.address_for(&link.to, String::new());
        charge(
            ctx,
            link,
            &addr,
            vec![(key, job)],
            &format!("refused by the receiver: {reason}"),
            true,
        )
        .await
        .map_err(fail)
    }

    /// Jobs to charge an attempt after a failure: those in flight, or the job
    /// that would have gone first when nothing got out.
    fn charge_list(&self, ctx: &Ctx, to: &SiteCode) -> anyhow::Result<Vec<(OutboxKey, Job)>> {
        if let Some(f) = &self.faulted {
            return Ok(vec![f.clone()]);
        }
        let mut keys: Vec<OutboxKey> = self.inflight.values().map(|f| f.key).collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        if keys.is_empty() {
            for p in Priority::ALL {
                if let Some(first) = ctx.store.outbox_scan(to, p, None, 1)?.into_iter().next() {
                    out.push(first);
                    break;
                }
            }
            return Ok(out);
        }
        for k in keys {
            if let Some(j) = ctx
                .store
                .outbox_scan(to, prio_of(k), Some(k.seq.saturating_sub(1)), 1)?
                .into_iter()
                .find(|(kk, _)| *kk == k)
            {
                out.push(j);
            }
        }
        Ok(out)
    }
}

fn prio_of(k: OutboxKey) -> Priority {
    match k.priority {
        0 => Priority::High,
        1 => Priority::Medium,
        _ => Priority::Low,
    }
}

fn fail(e: impl std::fmt::Display) -> LinkError {
    LinkError::Failed(e.to_string())
}
