//! Sender: moves the jobs of one outbox to the neighbouring site's despooler
//! over one long-lived stream, many frames in flight.
//!
//! A job leaves the outbox only when the receiver has acknowledged it (after
//! making it durable). A broken stream charges an attempt to the jobs that
//! were in flight; a job out of attempts moves to the failed box, where it
//! stays visible and retryable. A link severed by an administrator (here or
//! at the peer), or a receiver that cannot store (its disk is full), pauses
//! the link without charging attempts. A file package's chunks are freed
//! here when the receiver acknowledges its last chunk, not before, so a
//! broken stream resumes after the last acknowledged one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sms_runtime::retry::Backoff;
use uuid::Uuid;

use crate::core::Ctx;
use crate::links::{Link, LinkStatus};
use crate::ports::LinkStream;
use sms_store::OutboxKey;
use sms_types::catalog;
use sms_types::link::{LinkError, LinkEvent, LinkHello, LinkOptions};
use sms_types::*;

/// The stall watchdog: with frames out, a session that hears nothing back
/// for this many times its usual acknowledgement latency (at least
/// [`STALL_FLOOR`], at most [`STALL_CEILING`]) replaces its connection.
const STALL_FACTOR: u32 = 8;
const STALL_FLOOR: Duration = Duration::from_secs(2);
const STALL_CEILING: Duration = Duration::from_secs(30);

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
/// How long a session may sit idle before it closes (and how often a
/// busy one re-scans its queue).
const IDLE_SESSION: Duration = Duration::from_secs(10);

async fn pause(ctx: &Ctx, link: &Link, dur: Duration) {
    tokio::select! {
        _ = ctx.tasks.cancelled() => {}
        _ = link.wake.notified() => {}
        _ = tokio::time::sleep(dur) => {}
    }
}

/// Retry pacing of a link: from 100 ms, doubling, up to the address's
/// retry delay, with 30 % jitter so many links do not retry in step.
fn new_backoff(addr: &Address) -> Backoff {
    Backoff::new(
        Duration::from_millis(100),
        Duration::from_millis(addr.retry_delay_ms.max(100)),
        2.0,
        0.3,
    )
}

/// The sender loop of one link.
pub async fn run(ctx: Arc<Ctx>, link: Arc<Link>) -> anyhow::Result<()> {
    let mut backoff: Option<Backoff> = None;
    let mut cautious = false;
    // Carried across sessions: the link's usual acknowledgement latency,
    // and the watchdog's floor, doubled after each stall (a receiver that is
    // slow rather than gone gets ever longer to answer) and reset by progress.
    let mut ack_latency: Option<Duration> = None;
    let mut stall_floor = STALL_FLOOR;
    loop {
        if ctx.tasks.is_cancelled() {
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
                    sever_link(&ctx, &link).await?;
                }
                match ctx.peers.install_bootstrap(&server, &job).await {
                    Ok(()) => {
                        ctx.store.outbox_remove(&[key])?;
                        if rec.sever_link_mid_bootstrap {
                            // One-shot: a later bootstrap is not severed again.
                            ctx.sites
                                .update(&ctx.store, &link.to, |r| {
                                    std::mem::replace(&mut r.sever_link_mid_bootstrap, false)
                                })
                                .await?;
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
                    "severed by an administrator at {}",
                    fmt_ms(f.severed_unix_ms)
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

        if !ctx.store.outbox_has(&link.to) {
            link.set_state(LinkStatus::Idle, "nothing queued");
            pause(&ctx, &link, Duration::from_secs(30)).await;
            continue;
        }

        let hello = LinkHello {
            source_site: ctx.site_code().expect("installed"),
            dest_site: link.to.clone(),
            source_address: ctx.advertise.clone(),
            link_secret: secret,
            sent_unix_ms: now_ms(),
        };
        let mut session = Session::new(&addr);
        session.cautious = cautious;
        session.ack_latency = ack_latency;
        session.stall_floor = stall_floor;
        let result = session.run(&ctx, &link, &server, &hello).await;
        if let Err(e) = session.free_acked(&ctx).await {
            // Freed at the next start instead (see drop_orphan_chunks).
            tracing::warn!(to = %link.to, "could not free acknowledged packages yet: {e}");
        }
        cautious = session.died_without_progress(&result);
        ack_latency = session.ack_latency;
        stall_floor = match &result {
            Err(LinkError::Stalled(_)) => (stall_floor * 2).min(STALL_CEILING),
            _ if session.progress => STALL_FLOOR,
            _ => stall_floor,
        };
        if session.progress {
            // The link delivered something: start the backoff over.
            backoff = None;
        }
        match result {
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
            Err(LinkError::ReceiverFull(msg)) => {
                // The receiver cannot store now (a full disk): nothing is
                // wrong with the jobs, so none is charged; wait and retry,
                // at most a couple of seconds apart so delivery resumes soon
                // after space returns.
                tracing::warn!(to = %link.to, %server, "receiver cannot store: {msg}");
                let addr_cap = Address {
                    retry_delay_ms: addr.retry_delay_ms.min(2_000),
                    ..addr.clone()
                };
                retry_pause(&ctx, &link, &addr_cap, &mut backoff, &msg).await;
            }
            Err(LinkError::Stalled(msg)) => {
                // A connection, not a job, went wrong: a new one at once
                // (the receiver drops what it already has).
                tracing::warn!(to = %link.to, %server, "link stalled: {msg}");
                link.set_state(LinkStatus::Retrying, msg);
            }
            Err(LinkError::Refused(msg))
            | Err(LinkError::Failed(msg))
            | Err(LinkError::TooLarge(msg)) => {
                tracing::warn!(to = %link.to, %server, "link failed: {msg}");
                let charged = session.charge_list(&ctx, &link.to)?;
                if !charged.is_empty() {
                    charge(&ctx, &link, &addr, charged, &msg, false).await?;
                }
                retry_pause(&ctx, &link, &addr, &mut backoff, &msg).await;
            }
        }
    }
}

async fn retry_pause(
    ctx: &Ctx,
    link: &Link,
    addr: &Address,
    backoff: &mut Option<Backoff>,
    msg: &str,
) {
    let b = backoff.get_or_insert_with(|| new_backoff(addr));
    let delay = b.next_delay();
    link.set_state(
        LinkStatus::Retrying,
        format!("{msg}; next attempt in {} ms", delay.as_millis()),
    );
    tokio::select! {
        _ = ctx.tasks.cancelled() => {}
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

/// Severs a link durably, shows it on the link, and reports it.
pub async fn sever_link(ctx: &Ctx, link: &Link) -> anyhow::Result<()> {
    ctx.store.set_link_fault(
        &link.to,
        Some(&sms_types::records::LinkFault {
            severed_unix_ms: now_ms(),
        }),
    )?;
    ctx.store.durable().await?;
    tracing::warn!(to = %link.to, "link severed by an administrator");
    link.set_state(
        LinkStatus::Severed,
        format!("severed by an administrator at {}", fmt_ms(now_ms())),
    );
    crate::status::emit(ctx, &catalog::LINK_SEVERED, &[link.to.to_string()])?;
    link.wake.notify_one();
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
            // Say which: refused for good, or the retry policy spent.
            let why = if permanent {
                reason.to_string()
            } else {
                format!(
                    "{reason} (attempt {} of the {} the address's retry count allows)",
                    job.attempts,
                    addr.retry_count.max(1)
                )
            };
            ctx.store.outbox_fail(
                key,
                &FailedJob {
                    job: job.clone(),
                    reason: why,
                    failed_unix_ms: now_ms(),
                },
            )?;
            failed_any = true;
            tracing::error!(job = %job.id, kind = job.payload.kind(), to = %link.to, attempts = job.attempts, "job failed: {reason}");
            if let Payload::Deinstall(site) = &job.payload {
                ctx.upcalls()?.deinstall_done(site, true).await?;
            }
            crate::status::emit(
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
pub(crate) struct InFlight {
    key: OutboxKey,
    bytes: usize,
    /// When it went out, for the acknowledgement latency.
    sent: Instant,
    /// A deinstall job: its acknowledgement completes a delete-site.
    deinstall: bool,
}

/// A file package being streamed chunk by chunk.
struct FileSend {
    key: OutboxKey,
    job: Job,
    next_chunk: u32,
    chunk_count: u32,
}

/// One connected stream's bookkeeping.
pub(crate) struct Session {
    addr: Address,
    window: usize,
    inflight: HashMap<(Uuid, u32), InFlight>,
    /// Frames in flight per outbox entry (a file has one per chunk).
    inflight_keys: HashMap<OutboxKey, u32>,
    inflight_bytes: usize,
    /// Per priority: seq of the last job looked at. Reset on every wake-up,
    /// so a job inserted behind the cursor (a concurrent writer, a retried
    /// failed job) is found on the next fill.
    cursors: [Option<u64>; 3],
    /// Per priority: the file package being chunked out.
    files: [Option<FileSend>; 3],
    /// Acknowledged-chunk progress of file packages, by job id.
    file_acked: HashMap<Uuid, (OutboxKey, Job)>,
    /// Packages wholly acknowledged whose jobs left the outbox: their chunks
    /// are freed once that removal is durable (see [`Session::free_acked`]).
    to_free: Vec<Uuid>,
    /// The receiver acknowledged something: the link works (resets backoff).
    progress: bool,
    /// The previous session died with frames out and none acknowledged.
    pub(crate) cautious: bool,
    /// The last acknowledgement (or the moment frames went out after none
    /// were): the stall watchdog measures from here.
    last_activity: Instant,
    /// Smoothed time from a frame going out to its acknowledgement.
    pub(crate) ack_latency: Option<Duration>,
    /// The stall watchdog's floor (tests shorten it).
    pub(crate) stall_floor: Duration,
    /// The stream was opened (a failure after this is not a connection failure).
    opened: bool,
    /// Spacing of attempts on a CT2 held back by the injected fault.
    fault_backoff: Backoff,
    fault_next: Option<Instant>,
    /// Rate limit: when the next frame may leave.
    next_free: Instant,
}

impl Session {
    pub(crate) fn new(addr: &Address) -> Self {
        Session {
            addr: addr.clone(),
            window: addr.concurrent_sendings.clamp(1, 4096) as usize,
            inflight: HashMap::new(),
            inflight_keys: HashMap::new(),
            inflight_bytes: 0,
            cursors: [None; 3],
            files: [None, None, None],
            file_acked: HashMap::new(),
            to_free: Vec::new(),
            progress: false,
            cautious: false,
            opened: false,
            last_activity: Instant::now(),
            ack_latency: None,
            stall_floor: STALL_FLOOR,
            fault_backoff: new_backoff(addr),
            fault_next: None,
            next_free: Instant::now(),
        }
    }

    pub(crate) fn room(&self) -> bool {
        // After a stream died with frames out and nothing acknowledged, one
        // frame at a time until something is: a job that kills streams is
        // then alone in flight when it does, and only it is charged.
        let window = if self.cautious && !self.progress {
            1
        } else {
            self.window
        };
        self.inflight.len() < window && self.inflight_bytes < MAX_INFLIGHT_BYTES
    }

    pub(crate) fn track(
        &mut self,
        id: Uuid,
        chunk: u32,
        key: OutboxKey,
        bytes: usize,
        deinstall: bool,
    ) {
        self.inflight.insert(
            (id, chunk),
            InFlight {
                key,
                bytes,
                sent: Instant::now(),
                deinstall,
            },
        );
        if self.inflight.len() == 1 {
            // Waiting starts now, not at the last acknowledgement.
            self.last_activity = Instant::now();
        }
        *self.inflight_keys.entry(key).or_default() += 1;
        self.inflight_bytes += bytes;
    }

    pub(crate) fn untrack(&mut self, id: Uuid, chunk: u32) -> Option<InFlight> {
        let f = self.inflight.remove(&(id, chunk))?;
        self.inflight_bytes -= f.bytes;
        if let Some(n) = self.inflight_keys.get_mut(&f.key) {
            *n -= 1;
            if *n == 0 {
                self.inflight_keys.remove(&f.key);
            }
        }
        Some(f)
    }

    /// Already handed to the stream (or being chunked out): skip on a rescan.
    pub(crate) fn busy(&self, key: &OutboxKey) -> bool {
        self.inflight_keys.contains_key(key) || self.files.iter().flatten().any(|f| &f.key == key)
    }

    pub(crate) async fn run(
        &mut self,
        ctx: &Arc<Ctx>,
        link: &Arc<Link>,
        server: &str,
        hello: &LinkHello,
    ) -> Result<(), LinkError> {
        link.set_state(LinkStatus::Connecting, format!("connecting to {server}"));
        let opts = LinkOptions {
            keepalive: self
                .addr
                .keepalive_secs
                .map(|s| Duration::from_secs(s.into())),
            foreign_certificate: ctx
                .store
                .faults()
                .map_err(fail)?
                .contains(&Fault::CertExchangeFailure),
        };
        let mut conn = ctx
            .peers
            .open_link(server, hello, self.window, &opts)
            .await?;
        self.opened = true;
        link.set_state(LinkStatus::Up, server.to_string());
        tracing::info!(to = %link.to, %server, "link up");
        loop {
            self.fill(ctx, link, conn.as_mut()).await?;
            if self.inflight.is_empty() && !ctx.store.outbox_has(&link.to) {
                link.set_state(LinkStatus::Up, format!("{server}; nothing queued"));
            }
            let stall_at = self.stall_deadline();
            tokio::select! {
                // Answers first: a long fill (a rate limit) leaves acks
                // waiting, and they must count before the watchdog does.
                biased;
                ev = conn.next() => match ev? {
                    LinkEvent::Acks(acks) => {
                        self.acked(ctx, link, acks)?;
                        self.free_acked(ctx).await?;
                    }
                    LinkEvent::Refused { job_id, reason } => self.refused(ctx, link, job_id, reason).await?,
                },
                _ = ctx.tasks.cancelled() => return Ok(()),
                _ = sleep_until_opt(stall_at) => {
                    let quiet = self.last_activity.elapsed();
                    return Err(LinkError::Stalled(format!(
                        "{} frames out and nothing acknowledged for {} ms (usually {} ms); reconnecting",
                        self.inflight.len(),
                        quiet.as_millis(),
                        self.ack_latency.unwrap_or_default().as_millis()
                    )));
                }
                _ = link.wake.notified() => {
                    if ctx.store.link_fault(&link.to).map_err(fail)?.is_some() {
                        return Ok(());
                    }
                    self.cursors = [None; 3];
                }
                // Re-scan now and then: a schedule window may have opened.
                // A session with nothing to do for that long ends, and its
                // connection with it: a central site with a hundred idle
                // children keeps no hundred connections and their buffers.
                _ = tokio::time::sleep(IDLE_SESSION) => {
                    if self.inflight.is_empty() && !ctx.store.outbox_has(&link.to) {
                        tracing::info!(to = %link.to, "link idle; closing the session until there is work");
                        return Ok(());
                    }
                    self.cursors = [None; 3];
                }
            }
        }
    }

    /// When the watchdog fires if nothing is acknowledged meanwhile (None:
    /// nothing is out).
    fn stall_deadline(&self) -> Option<tokio::time::Instant> {
        if self.inflight.is_empty() {
            return None;
        }
        let usual = self.ack_latency.unwrap_or_default() * STALL_FACTOR;
        let allowed = usual.clamp(self.stall_floor, STALL_CEILING.max(self.stall_floor));
        Some((self.last_activity + allowed).into())
    }

    /// Hands queued frames to the stream until the window is full: high
    /// priority first, oldest first within a priority.
    pub(crate) async fn fill(
        &mut self,
        ctx: &Arc<Ctx>,
        link: &Arc<Link>,
        conn: &mut dyn LinkStream,
    ) -> Result<(), LinkError> {
        // Follow the working configuration: a session can outlive the site
        // control it started under (the first one predates the CT0).
        self.addr = ctx.address_for(&link.to, self.addr.server.clone());
        self.window = self.addr.concurrent_sendings.clamp(1, 4096) as usize;
        let ct2_fault = ctx
            .store
            .faults()
            .map_err(fail)?
            .contains(&Fault::Ct2JobFailure);
        let hour = utc_hour();
        'prio: for p in Priority::ALL {
            let pi = p as usize;
            if !self.addr.allows(p, hour) {
                // The address schedule holds this priority back for now.
                continue 'prio;
            }
            while self.room() {
                if let Some((id, idx)) = self.files[pi].as_ref().map(|f| (f.job.id, f.next_chunk)) {
                    let read = match &self.files[pi]
                        .as_ref()
                        .expect("file being sent")
                        .job
                        .payload
                    {
                        Payload::File(pkg) => ctx.store.chunk(&id, pkg, idx).map_err(fail)?,
                        _ => None,
                    };
                    let Some(data) = read else {
                        // This package can never be sent: it alone fails,
                        // visibly, and the link goes on with the rest.
                        let f = self.files[pi].take().expect("file being sent");
                        self.file_acked.remove(&id);
                        self.cursors[pi] = Some(f.key.seq);
                        let reason = format!(
                            "chunk {idx} of package {id} is missing from this site's package store"
                        );
                        charge(ctx, link, &self.addr, vec![(f.key, f.job)], &reason, true)
                            .await
                            .map_err(fail)?;
                        continue;
                    };
                    let bytes = data.len();
                    self.throttle(bytes).await;
                    let f = self.files[pi].as_mut().expect("file being sent");
                    let key = f.key;
                    conn.send(&f.job, Some((idx, data))).await?;
                    link.chunk_bytes_sent
                        .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
                    link.sent_frame(bytes);
                    f.next_chunk += 1;
                    if f.next_chunk >= f.chunk_count {
                        self.cursors[pi] = Some(key.seq);
                        self.files[pi] = None;
                    }
                    self.track(id, idx, key, bytes, false);
                    continue;
                }
                let budget = self.window - self.inflight.len() + self.inflight_keys.len();
                let batch = ctx
                    .store
                    .outbox_scan(&link.to, p, self.cursors[pi], budget.min(1024))
                    .map_err(fail)?;
                if batch.is_empty() {
                    continue 'prio;
                }
                for (key, job) in batch {
                    self.cursors[pi] = Some(key.seq);
                    if self.busy(&key) || matches!(job.payload, Payload::Bootstrap(_)) {
                        // Bootstraps go to the bootstrap service, never the stream.
                        continue;
                    }
                    if ct2_fault && matches!(job.payload, Payload::Ct2(_)) {
                        self.fault_ct2(ctx, link, key, job).await?;
                        continue;
                    }
                    if let Payload::File(pkg) = &job.payload {
                        let start = self
                            .file_acked
                            .get(&job.id)
                            .map_or(job.acked_chunks, |(_, j)| {
                                j.acked_chunks.max(job.acked_chunks)
                            });
                        if start >= pkg.chunk_count {
                            // Fully acknowledged before a restart removed it.
                            ctx.store.outbox_remove(&[key]).map_err(fail)?;
                            self.to_free.push(job.id);
                            self.free_acked(ctx).await?;
                            continue;
                        }
                        self.files[pi] = Some(FileSend {
                            key,
                            next_chunk: start,
                            chunk_count: pkg.chunk_count,
                            job: job.clone(),
                        });
                        self.file_acked.entry(job.id).or_insert((key, job));
                        break;
                    }
                    self.throttle(approx_size(&job)).await;
                    match conn.send(&job, None).await {
                        Ok(()) => {}
                        Err(LinkError::TooLarge(why)) => {
                            // A poison job: it alone fails, for good.
                            let reason = format!("it cannot be sent: {why}");
                            charge(ctx, link, &self.addr, vec![(key, job)], &reason, true)
                                .await
                                .map_err(fail)?;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                    link.sent_frame(approx_size(&job));
                    let deinstall = matches!(job.payload, Payload::Deinstall(_));
                    self.track(job.id, 0, key, 0, deinstall);
                    if !self.room() {
                        break;
                    }
                }
            }
            break;
        }
        Ok(())
    }

    /// Paces frames to the address's rate limit (bytes per second).
    async fn throttle(&mut self, bytes: usize) {
        let rate = self.addr.rate_limit_bytes_per_sec;
        if rate == 0 {
            return;
        }
        let now = Instant::now();
        if self.next_free > now {
            tokio::time::sleep_until(self.next_free.into()).await;
        }
        self.next_free = self.next_free.max(Instant::now())
            + Duration::from_secs_f64(bytes as f64 / rate as f64);
    }

    /// The injected ct2-job-failure: the CT2 job fails one attempt per retry
    /// interval, without disturbing the rest of the stream, until its
    /// retries are exhausted (or the fault is cleared).
    async fn fault_ct2(
        &mut self,
        ctx: &Arc<Ctx>,
        link: &Arc<Link>,
        key: OutboxKey,
        job: Job,
    ) -> Result<(), LinkError> {
        let now = Instant::now();
        if self.fault_next.is_some_and(|t| now < t) {
            return Ok(());
        }
        let reason = "injected fault ct2-job-failure: the CT2 job could not be delivered";
        charge(ctx, link, &self.addr, vec![(key, job)], reason, false)
            .await
            .map_err(fail)?;
        let delay = self.fault_backoff.next_delay();
        self.fault_next = Some(now + delay);
        let l = link.clone();
        ctx.tasks
            .spawn_until_shutdown(format!("ct2 fault retry {}", link.to), async move {
                tokio::time::sleep(delay).await;
                l.wake.notify_one();
            });
        Ok(())
    }

    pub(crate) fn acked(
        &mut self,
        ctx: &Arc<Ctx>,
        link: &Link,
        acks: Vec<(Uuid, u32, bool)>,
    ) -> Result<(), LinkError> {
        let mut done = Vec::with_capacity(acks.len());
        let mut files_done = Vec::new();
        for (id, chunk, _dup) in acks {
            let Some(f) = self.untrack(id, chunk) else {
                continue;
            };
            self.progress = true;
            self.last_activity = Instant::now();
            let sample = f.sent.elapsed();
            self.ack_latency = Some(match self.ack_latency {
                // Smoothed like TCP's round-trip estimate (7/8 old, 1/8 new).
                Some(l) => (l * 7 + sample) / 8,
                None => sample,
            });
            link.acked_frame(self.ack_latency.unwrap_or(sample));
            if let Some((key, job)) = self.file_acked.get_mut(&id) {
                job.acked_chunks = job.acked_chunks.max(chunk + 1);
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
                if f.deinstall {
                    let (c, to) = (ctx.clone(), link.to.clone());
                    ctx.tasks.spawn(format!("finish delete {to}"), async move {
                        let done = match c.upcalls() {
                            Ok(up) => up.deinstall_done(&to, false).await,
                            Err(e) => Err(e),
                        };
                        if let Err(e) = done {
                            tracing::error!(site = %to, "could not finish deleting the site: {e:#}");
                        }
                    });
                }
            }
        }
        link.sent
            .fetch_add(done.len() as u64, std::sync::atomic::Ordering::Relaxed);
        ctx.store.outbox_remove(&done).map_err(fail)?;
        for id in files_done {
            self.file_acked.remove(&id);
            self.to_free.push(id);
        }
        Ok(())
    }

    /// Frees the chunks of packages the receiver has wholly acknowledged,
    /// after making their jobs' removal from the outbox durable: a chunk
    /// file's removal is durable at once, and a crash that kept the job but
    /// not its chunks would leave a job that can never be sent.
    pub(crate) async fn free_acked(&mut self, ctx: &Ctx) -> Result<(), LinkError> {
        if self.to_free.is_empty() {
            return Ok(());
        }
        ctx.store.durable().await.map_err(fail)?;
        for id in std::mem::take(&mut self.to_free) {
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
        let frames: Vec<(Uuid, u32)> = self
            .inflight
            .keys()
            .filter(|(j, _)| *j == id)
            .copied()
            .collect();
        let mut key = None;
        for (j, c) in frames {
            if let Some(f) = self.untrack(j, c) {
                key = Some(f.key);
            }
        }
        let Some(key) = key else { return Ok(()) };
        self.file_acked.remove(&id);
        for f in self.files.iter_mut() {
            if f.as_ref().is_some_and(|f| f.job.id == id) {
                *f = None;
            }
        }
        let Some(job) = ctx.store.outbox_get(key).map_err(fail)? else {
            return Ok(());
        };
        charge(
            ctx,
            link,
            &self.addr,
            vec![(key, job)],
            &format!("refused by the receiver: {reason}"),
            true,
        )
        .await
        .map_err(fail)
    }

    /// Jobs to charge an attempt after the session failed. A connection
    /// failure (nothing opened, or refused) is the link's problem: the link
    /// backs off and no job's retry budget is spent, except a deinstall's,
    /// whose budget is how long a delete-site keeps trying to reach that
    /// server before it records the site as orphaned. A stream that died
    /// with frames out and nothing acknowledged charges those frames (one
    /// of them may be what kills it; the next session sends one at a time,
    /// see [`Session::room`]). A stream that made progress charges nothing.
    fn charge_list(&self, ctx: &Ctx, to: &SiteCode) -> anyhow::Result<Vec<(OutboxKey, Job)>> {
        if !self.opened {
            let head = Priority::ALL.iter().find_map(|p| {
                ctx.store
                    .outbox_scan(to, *p, None, 16)
                    .ok()?
                    .into_iter()
                    .find(|(_, j)| !matches!(j.payload, Payload::Bootstrap(_)))
            });
            return Ok(head
                .filter(|(_, j)| matches!(j.payload, Payload::Deinstall(_)))
                .into_iter()
                .collect());
        }
        if self.progress {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        for k in self.inflight_keys.keys() {
            if let Some(j) = ctx.store.outbox_get(*k)? {
                out.push((*k, j));
            }
        }
        Ok(out)
    }

    /// Whether this session ended as a suspect one: opened, frames out,
    /// failed, nothing acknowledged.
    fn died_without_progress(&self, result: &Result<(), LinkError>) -> bool {
        matches!(result, Err(LinkError::Failed(_)))
            && self.opened
            && !self.progress
            && !self.inflight_keys.is_empty()
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Rough size of a job on the wire, for the rate limit.
fn approx_size(job: &Job) -> usize {
    256 + match &job.payload {
        Payload::Probe(d) => d.len(),
        Payload::Status(m) => m.len() * 256,
        _ => 1024,
    }
}

fn fail(e: impl std::fmt::Display) -> LinkError {
    LinkError::Failed(e.to_string())
}
