//! Scheduler: routes each job to its next hop, queues it durably in that
//! hop's outbox, and keeps one sender task per neighbouring site.

use std::sync::Arc;

use sms_types::*;

use crate::core::Ctx;
use crate::links::{Link, LinkStatus};

/// Why a job cannot be routed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("this node is not installed as a site")]
    NotInstalled,
    #[error("no route from site {from} to site {to}: it is not in this part of the hierarchy")]
    NoRoute { from: SiteCode, to: SiteCode },
}

/// Where a job for some site goes from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Local,
    Hop(SiteCode),
}

/// The next hop from this site towards `dest`: a child whose subtree holds
/// it, else the parent.
pub fn route(ctx: &Ctx, dest: &SiteCode) -> Result<Route, RouteError> {
    let id = ctx.identity().ok_or(RouteError::NotInstalled)?;
    route_from(ctx, &id, dest)
}

/// [`route`] for a caller that already holds this site's identity (the
/// despooler routes a whole batch against one copy).
pub fn route_from(ctx: &Ctx, id: &Identity, dest: &SiteCode) -> Result<Route, RouteError> {
    next_hop(id, dest, |code| {
        ctx.store
            .site(code)
            .ok()
            .flatten()
            .map(|r| r.parent_site_code)
    })
}

/// The routing rule on its own: walk up from `dest` through the sites this
/// Hierarchy Manager knows (`parent_of` answers None for a site it does not
/// know, Some(None) for a site with no parent); the first one whose parent
/// is this site is the hop. Anything else goes to the parent.
pub fn next_hop(
    id: &Identity,
    dest: &SiteCode,
    parent_of: impl Fn(&SiteCode) -> Option<Option<SiteCode>>,
) -> Result<Route, RouteError> {
    if &id.site_code == dest {
        return Ok(Route::Local);
    }
    let mut cur = dest.clone();
    // Bounded: a corrupt record that loops cannot hang the router.
    for _ in 0..64 {
        match parent_of(&cur) {
            Some(Some(p)) if p == id.site_code => return Ok(Route::Hop(cur)),
            Some(Some(p)) => cur = p,
            _ => break,
        }
    }
    match &id.parent {
        Some(p) => Ok(Route::Hop(p.site_code.clone())),
        None => Err(RouteError::NoRoute {
            from: id.site_code.clone(),
            to: dest.clone(),
        }),
    }
}

/// Routes and queues a job durably, then wakes its sender. Returns the hop.
pub async fn submit(ctx: &Arc<Ctx>, job: &Job) -> anyhow::Result<SiteCode> {
    let hop = match route(ctx, &job.dest)? {
        Route::Hop(h) => h,
        Route::Local => anyhow::bail!(
            "job {} is addressed to this site; deliver it locally",
            job.id
        ),
    };
    ctx.store.enqueue(&hop, job)?;
    ctx.store.durable().await?;
    tracing::debug!(job = %job.id, kind = job.payload.kind(), dest = %job.dest, hop = %hop, "queued");
    ensure_link(ctx, &hop).wake.notify_one();
    Ok(hop)
}

/// Returns the link to `to`, starting its sender if it has none yet.
pub fn ensure_link(ctx: &Arc<Ctx>, to: &SiteCode) -> Arc<Link> {
    let mut links = ctx.links.links.lock().expect("links lock");
    if let Some(l) = links.get(to) {
        return l.clone();
    }
    let link = Arc::new(Link::new(to.clone()));
    links.insert(to.clone(), link.clone());
    drop(links);
    tracing::info!(to = %to, "link created; sender started");
    // Supervised: a sender that hits an error (say, a full disk) logs it
    // and starts over after a pause; only shutdown ends it.
    let (c, l, state) = (ctx.clone(), link.clone(), link.clone());
    sms_runtime::Worker::new(format!("sender {to}")).start(
        &ctx.tasks,
        move || crate::sender::run(c.clone(), l.clone()),
        move |s| {
            if let sms_runtime::WorkerState::Restarting(e) = s {
                state
                    .sender_restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                state.set_state(
                    LinkStatus::Retrying,
                    format!("sender error, restarting: {e}"),
                );
            }
        },
    );
    link
}

/// Severs the link to `to` durably and records why.
pub async fn sever(ctx: &Arc<Ctx>, to: &SiteCode) -> anyhow::Result<()> {
    let link = ensure_link(ctx, to);
    crate::sender::sever_link(ctx, &link).await
}

/// Starts a sender for the parent, every child, and any hop with queued work.
pub fn start_links(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let Some(id) = ctx.identity() else {
        return Ok(());
    };
    if let Some(p) = &id.parent {
        ensure_link(ctx, &p.site_code);
    }
    for rec in ctx.store.sites()? {
        if rec.parent_site_code.as_ref() == Some(&id.site_code) {
            ensure_link(ctx, &rec.site_code);
        }
    }
    for hop in ctx.store.outbox_hops()? {
        ensure_link(ctx, &hop);
    }
    for l in ctx.links.links() {
        l.wake.notify_one();
    }
    Ok(())
}
