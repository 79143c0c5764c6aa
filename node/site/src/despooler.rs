//! Despooler: accepts a neighbour's link, then for every received frame
//! persists it, deduplicates it by job id and delivers it (to a local inbox
//! or one hop on) in one transaction, and only then lets the edge
//! acknowledge it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use uuid::Uuid;

use crate::core::Ctx;
use crate::scheduler::{self, Route};
use crate::site_component;
use sms_store::{Delivery, Despooled, Inbox};
use sms_types::catalog;
use sms_types::link::{LinkHello, Refusal};
use sms_types::records::DespoolRefusal;
use sms_types::*;

/// Accepts a link only from this site's parent or one of its direct
/// children, with the secret of that link, and not while it is severed.
pub async fn accept_link(ctx: &Arc<Ctx>, hello: &LinkHello) -> Result<SiteCode, Refusal> {
    let Some(id) = ctx.identity() else {
        return Err(Refusal::Unavailable(
            "this node is bare: no site is installed here yet".into(),
        ));
    };
    if !ctx.components.is_running(site_component::DESPOOLER) {
        return Err(Refusal::Unavailable(format!(
            "the despooler of site {} is not installed",
            id.site_code
        )));
    }
    let from = &hello.source_site;
    if hello.dest_site != id.site_code {
        return Err(refuse(
            ctx,
            from,
            format!(
                "this is site {}, not site {}",
                id.site_code, hello.dest_site
            ),
        )
        .await);
    }
    let parent = id.parent.as_ref().filter(|p| &p.site_code == from);
    let child = match ctx.store.site(from) {
        Ok(Some(rec)) if rec.parent_site_code.as_ref() == Some(&id.site_code) => Some(rec),
        _ => None,
    };
    let secret_ok = match (&parent, &child) {
        (Some(p), _) => p.link_secret == hello.link_secret,
        (None, Some(c)) => c.link_secret == hello.link_secret,
        (None, None) => {
            return Err(refuse(
                ctx,
                from,
                format!(
                    "site {from} is not a neighbour of site {} (only its parent and direct children may send to it)",
                    id.site_code
                ),
            )
            .await)
        }
    };
    if !secret_ok {
        return Err(refuse(
            ctx,
            from,
            format!("site {from} presented the wrong link secret"),
        )
        .await);
    }
    if let Some(why) = ctx.store.write_failure() {
        return Err(Refusal::Full(cannot_store(ctx, &why)));
    }
    if let Ok(Some(f)) = ctx.store.link_fault(from) {
        return Err(Refusal::Severed(format!(
            "site {} severed its link to site {from} at {}; waiting for restore-link",
            id.site_code,
            fmt_ms(f.severed_unix_ms)
        )));
    }
    follow_move(ctx, from, &hello.source_address, child).await;
    if hello.sent_unix_ms != 0 {
        ctx.links.record_skew(from, hello.sent_unix_ms, now_ms());
    }
    Ok(from.clone())
}

/// A neighbour that restarted on another address tells us in its Hello.
async fn follow_move(ctx: &Arc<Ctx>, from: &SiteCode, addr: &str, child: Option<SiteRecord>) {
    let usable = addr
        .parse::<std::net::SocketAddr>()
        .map(|a| !a.ip().is_unspecified())
        .unwrap_or(!addr.is_empty());
    if !usable {
        return;
    }
    if let Some(rec) = child {
        if rec.server != addr {
            tracing::info!(site = %from, old = %rec.server, new = %addr, "child site moved");
            // Under the records lock: a phase report or CT2 being applied
            // meanwhile must not write back the old address.
            let moved = ctx
                .sites
                .update(&ctx.store, from, |r| {
                    let changed = r.server != addr;
                    r.server = addr.to_string();
                    changed
                })
                .await;
            if let Err(e) = moved {
                tracing::warn!(site = %from, "could not record the new address: {e}");
            }
        }
    } else if let Some(mut id) = ctx.identity() {
        if let Some(p) = id
            .parent
            .as_mut()
            .filter(|p| &p.site_code == from && p.address != addr)
        {
            tracing::info!(site = %from, old = %p.address, new = %addr, "parent site moved");
            p.address = addr.to_string();
            let _ = ctx.set_identity(id);
        }
    }
}

async fn refuse(ctx: &Arc<Ctx>, from: &SiteCode, reason: String) -> Refusal {
    ctx.links.refused_strangers.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(from = %from, "refused a link: {reason}");
    if ctx.links.should_report(&format!("link:{from}")) {
        let _ = crate::status::emit(
            ctx,
            &catalog::DESPOOL_REFUSED,
            &[from.to_string(), reason.clone()],
        );
    }
    Refusal::NotNeighbour(reason)
}

/// Why a link session ends while receiving.
#[derive(Debug)]
pub enum ReceiveError {
    /// The link was cut here meanwhile: the sender must wait, not retry.
    Severed(String),
    /// This site cannot store anything now (its disk is full, or its store
    /// is reopening after a failed write); nothing in the batch was
    /// acknowledged. Not the jobs' fault: the sender backs off.
    CannotStore(String),
    /// Storing failed; nothing in the batch was acknowledged.
    Failed(anyhow::Error),
}

/// The words a sender sees when this site cannot store.
fn cannot_store(ctx: &Ctx, why: &str) -> String {
    let me = ctx.site_code().map(|c| c.to_string()).unwrap_or_default();
    format!("site {me} cannot store jobs now ({why}); it takes them again once it can write")
}

/// One batch received on an accepted link: refused if the link was cut
/// since, otherwise despooled (durable on return), with duplicates counted.
pub async fn receive(
    ctx: &Arc<Ctx>,
    from: &SiteCode,
    frames: Vec<Frame>,
) -> Result<Vec<(Uuid, u32, Despooled)>, ReceiveError> {
    if let Ok(Some(f)) = ctx.store.link_fault(from) {
        return Err(ReceiveError::Severed(format!(
            "the link from site {from} was severed at {}",
            fmt_ms(f.severed_unix_ms)
        )));
    }
    let out = despool(ctx, from, frames).await.map_err(|e| {
        let storage = e
            .downcast_ref::<sms_store::StoreError>()
            .is_some_and(|s| s.is_storage_fault());
        if storage {
            ReceiveError::CannotStore(cannot_store(ctx, &format!("{e:#}")))
        } else {
            ReceiveError::Failed(e)
        }
    })?;
    let dups = out
        .iter()
        .filter(|(_, _, o)| *o == Despooled::Duplicate)
        .count() as u64;
    if dups > 0 {
        ctx.links.duplicates.fetch_add(dups, Ordering::Relaxed);
    }
    Ok(out)
}

/// A received frame: the job and, for file packages, its chunk.
pub type Frame = (Job, Option<Chunk>);

/// Despools a batch of frames from `from`; the result is durable on return.
/// Returns, per frame, (job id, chunk index, outcome).
pub async fn despool(
    ctx: &Arc<Ctx>,
    from: &SiteCode,
    frames: Vec<Frame>,
) -> anyhow::Result<Vec<(Uuid, u32, Despooled)>> {
    let id = ctx.identity();
    // Frames that can be stored, in order, and for every frame either its
    // place among them or why it was refused (jobs are moved, never copied).
    let mut accepted: Vec<(Job, Delivery)> = Vec::with_capacity(frames.len());
    let mut order: Vec<Result<usize, (Job, String)>> = Vec::with_capacity(frames.len());
    for (job, chunk) in frames {
        let delivery = match &id {
            Some(id) => delivery_for(ctx, id, from, &job, chunk),
            None => Err("this node has no site installed".to_string()),
        };
        match delivery {
            Ok(d) => {
                order.push(Ok(accepted.len()));
                accepted.push((job, d));
            }
            Err(reason) => order.push(Err((job, reason))),
        }
    }
    let stored = if accepted.is_empty() {
        vec![]
    } else {
        // A multi-tree transaction can wait on sled's global lock while a
        // flush runs: keep that wait off the async worker threads.
        tokio::task::block_in_place(|| ctx.store.despool(&accepted))?
    };
    ctx.store.durable().await?;
    let despooled = &ctx.links.despooled;
    despooled.batch_frames.observe(order.len() as f64);
    despooled.stored.fetch_add(
        stored.iter().filter(|o| **o == Despooled::Stored).count() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    ctx.store.probes_durable(
        accepted
            .iter()
            .zip(&stored)
            .filter(|((_, d), o)| matches!(d, Delivery::Probe) && **o == Despooled::Stored)
            .count(),
    );

    let mut out = Vec::with_capacity(order.len());
    let (mut scm, mut hm, mut st) = (false, false, false);
    let mut completed_here = vec![];
    for entry in order {
        let (job, delivery, outcome) = match entry {
            Ok(i) => {
                let (job, delivery) = &accepted[i];
                (job, Some(delivery), stored[i].clone())
            }
            Err((job, reason)) => {
                refused_job(ctx, from, &job, &reason);
                out.push((
                    job.id,
                    0,
                    Despooled::Refused(DespoolRefusal::Unroutable(reason)),
                ));
                continue;
            }
        };
        let chunk = match delivery {
            Some(Delivery::Chunk { index, .. }) => *index,
            _ => 0,
        };
        match (&outcome, delivery) {
            (Despooled::Stored, Some(Delivery::Inbox(Inbox::SiteControl))) => scm = true,
            (Despooled::Stored, Some(Delivery::Inbox(Inbox::Hierarchy))) => hm = true,
            (Despooled::Stored, Some(Delivery::Inbox(Inbox::Status))) => st = true,
            (Despooled::Stored, Some(Delivery::Forward(hop)))
            | (
                Despooled::Stored,
                Some(Delivery::Chunk {
                    forward: Some(hop), ..
                }),
            ) => {
                scheduler::ensure_link(ctx, hop).wake.notify_one();
            }
            (
                Despooled::Stored,
                Some(Delivery::Chunk {
                    index,
                    forward: None,
                    ..
                }),
            ) if matches!(&job.payload, Payload::File(p) if index + 1 == p.chunk_count) => {
                completed_here.push(job.clone());
            }
            (Despooled::Refused(reason), _) => refused_job(ctx, from, job, &reason.to_string()),
            _ => {}
        }
        out.push((job.id, chunk, outcome));
    }
    if scm {
        ctx.scm.wake();
    }
    if hm {
        ctx.hm.wake();
    }
    if st {
        ctx.status.wake();
    }
    if !completed_here.is_empty() {
        // A package completed here: make room by the retention policy.
        if let Err(e) = crate::retention::apply(ctx) {
            tracing::warn!("could not apply the package retention policy: {e:#}");
        }
        // Hashing a large package takes a while: off the acknowledgement's
        // path (the chunks are durable already).
        let task_ctx = ctx.clone();
        ctx.tasks.spawn("verify received packages", async move {
            tokio::task::block_in_place(|| {
                for job in completed_here {
                    verify_package(&task_ctx, &job);
                }
            });
        });
    }
    Ok(out)
}

/// Checks a package completed here against the SHA-256 its sender
/// computed; a damaged copy is reported and removed rather than kept as if
/// it were the package.
fn verify_package(ctx: &Ctx, job: &Job) {
    let Payload::File(pkg) = &job.payload else {
        return;
    };
    let digest = match crate::queries::package_digest(ctx, &job.id) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(package = %job.id, "could not verify a received package: {e}");
            return;
        }
    };
    if digest == pkg.sha256 {
        tracing::info!(package = %job.id, from = %job.source, "package arrived complete and verified");
        let _ = crate::status::emit(
            ctx,
            &catalog::PACKAGE_RECEIVED,
            &[
                job.id.to_string(),
                pkg.name.clone(),
                pkg.total_size.to_string(),
                job.source.to_string(),
                hex::encode(&digest),
            ],
        );
        return;
    }
    tracing::error!(
        package = %job.id,
        from = %job.source,
        "package arrived damaged: SHA-256 {} instead of {}",
        hex::encode(&digest),
        hex::encode(&pkg.sha256)
    );
    if let Err(e) = ctx.store.expire_package(&job.id) {
        tracing::warn!(package = %job.id, "could not remove a damaged package: {e}");
    }
    let _ = crate::status::emit(
        ctx,
        &catalog::PACKAGE_DAMAGED,
        &[
            job.id.to_string(),
            pkg.name.clone(),
            job.source.to_string(),
            hex::encode(&digest),
            hex::encode(&pkg.sha256),
        ],
    );
}

/// Counts, logs and (rate-limited) reports a job this site would not take.
fn refused_job(ctx: &Ctx, from: &SiteCode, job: &Job, reason: &str) {
    if let Some(l) = ctx.links.link(from) {
        l.refused.fetch_add(1, Ordering::Relaxed);
    }
    tracing::warn!(job = %job.id, from = %from, dest = %job.dest, "refused a job: {reason}");
    if ctx.links.should_report(&format!("job:{from}:{}", job.dest)) {
        let _ = crate::status::emit(
            ctx,
            &catalog::DESPOOL_UNROUTABLE,
            &[
                job.id.to_string(),
                from.to_string(),
                job.dest.to_string(),
                reason.to_string(),
            ],
        );
    }
}

/// A job's claimed source must lie behind the link it arrived on: the link
/// proves only who the neighbour is (its certificate), so a neighbour may
/// pass on jobs from its own side of the hierarchy and no others. Without
/// this a child could forge a Deinstall "from" the parent, or a status
/// message from a sibling's subtree. A source this site does not know yet is
/// taken from a child (a site below it not yet reported up) and refused
/// from anyone else.
fn source_behind_link(
    ctx: &Ctx,
    id: &Identity,
    from: &SiteCode,
    source: &SiteCode,
) -> Result<(), String> {
    if source == from {
        return Ok(());
    }
    // This site's ancestors are known too, even with no record here.
    let known = id.ancestors.contains(source)
        || id.parent.as_ref().is_some_and(|p| &p.site_code == source)
        || ctx.store.site(source).ok().flatten().is_some();
    match scheduler::route_from(ctx, id, source) {
        Ok(Route::Hop(h)) if &h == from => Ok(()),
        Ok(Route::Local) => Err(format!(
            "the job claims to come from this site ({source}) but arrived from site {from}"
        )),
        _ if !known && is_child(ctx, id, from) => Ok(()),
        Ok(Route::Hop(h)) => Err(format!(
            "the job claims to come from site {source}, which lies behind site {h}, not behind {from}"
        )),
        Err(_) => Err(format!(
            "the job claims to come from site {source}, which this site does not know"
        )),
    }
}

fn is_child(ctx: &Ctx, id: &Identity, site: &SiteCode) -> bool {
    ctx.store
        .site(site)
        .ok()
        .flatten()
        .is_some_and(|r| r.parent_site_code.as_ref() == Some(&id.site_code))
}

/// Decides where a received job goes, or why it cannot be accepted.
pub(crate) fn delivery_for(
    ctx: &Ctx,
    id: &Identity,
    from: &SiteCode,
    job: &Job,
    chunk: Option<Chunk>,
) -> Result<Delivery, String> {
    source_behind_link(ctx, id, from, &job.source)?;
    let route = scheduler::route_from(ctx, id, &job.dest).map_err(|e| e.to_string())?;
    if let Some((index, data)) = chunk {
        if !matches!(job.payload, Payload::File(_)) {
            return Err("a chunk frame must carry a file package".into());
        }
        let forward = match route {
            Route::Local => None,
            Route::Hop(h) if &h == from => {
                return Err(format!("site {} routes back to {from}", job.dest))
            }
            Route::Hop(h) => Some(h),
        };
        return Ok(Delivery::Chunk {
            index,
            data,
            forward,
        });
    }
    // Whatever the destination: a package without its chunks, forwarded,
    // would sit in the next outbox with nothing to send and stall that link;
    // a bootstrap is handed over by a parent's sender, never relayed.
    match &job.payload {
        Payload::File(_) => return Err("a file package must arrive as chunks".into()),
        Payload::Bootstrap(_) => {
            return Err("bootstrap packages go to a bare node's bootstrap service".into())
        }
        _ => {}
    }
    match route {
        Route::Hop(h) if &h == from => Err(format!(
            "no route to site {} except back through {from}",
            job.dest
        )),
        Route::Hop(h) => Ok(Delivery::Forward(h)),
        Route::Local => match &job.payload {
            Payload::Ct1(_) => Ok(Delivery::Inbox(Inbox::SiteControl)),
            Payload::Ct2(_) => {
                if id.kind == SiteKind::Primary {
                    Ok(Delivery::Inbox(Inbox::Hierarchy))
                } else {
                    Err("a secondary site has no Hierarchy Manager to take a CT2".into())
                }
            }
            Payload::Status(_) => Ok(Delivery::Inbox(Inbox::Status)),
            Payload::Probe(_) => Ok(Delivery::Probe),
            // Refused above, before routing.
            Payload::File(_) | Payload::Bootstrap(_) => Err(format!(
                "a {} job cannot be delivered to a site's inbox",
                job.payload.kind()
            )),
            Payload::Deinstall(_) | Payload::Revocations(_) => {
                Ok(Delivery::Inbox(Inbox::SiteControl))
            }
        },
    }
}
