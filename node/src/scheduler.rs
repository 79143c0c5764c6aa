//! Scheduler: routes each job to its next hop, queues it durably in that
//! hop's outbox, and keeps one sender task per neighbouring site.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::*;
use crate::node::Ctx;

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

/// Link state as the sender sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkStatus {
    /// Nothing to send and no stream open.
    Idle,
    Connecting,
    Up,
    /// Waiting after a failure before the next attempt.
    Retrying,
    /// Cut by an administrator.
    Severed,
    /// The bootstrap was delivered; the child has not reported yet.
    AwaitingChild,
}

impl LinkStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkStatus::Idle => "idle",
            LinkStatus::Connecting => "connecting",
            LinkStatus::Up => "up",
            LinkStatus::Retrying => "retrying",
            LinkStatus::Severed => "severed",
            LinkStatus::AwaitingChild => "awaiting-child",
        }
    }
}

/// Shared state of one link: its wake-up signal and what the sender reports.
pub struct Link {
    pub to: SiteCode,
    pub wake: Notify,
    state: Mutex<(LinkStatus, String)>,
    /// Frames this node's despooler refused from this neighbour.
    pub refused: AtomicU64,
    /// Jobs delivered over this link since start.
    pub sent: AtomicU64,
    /// File chunk bytes handed to the stream since start, resends included.
    pub chunk_bytes_sent: AtomicU64,
}

impl Link {
    fn new(to: SiteCode) -> Self {
        Link {
            to,
            wake: Notify::new(),
            state: Mutex::new((LinkStatus::Idle, String::new())),
            refused: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            chunk_bytes_sent: AtomicU64::new(0),
        }
    }

    pub fn set_state(&self, s: LinkStatus, detail: impl Into<String>) {
        *self.state.lock().expect("link lock") = (s, detail.into());
    }

    pub fn state(&self) -> (LinkStatus, String) {
        self.state.lock().expect("link lock").clone()
    }
}

/// The per-node link registry.
#[derive(Default)]
pub struct Scheduler {
    links: Mutex<HashMap<SiteCode, Arc<Link>>>,
    /// Frames refused from sites that are not neighbours at all.
    pub refused_strangers: AtomicU64,
    /// Resent frames the despooler recognised and did not deliver again.
    pub duplicates: AtomicU64,
    /// When a refusal was last reported as a status message, by kind.
    reported: Mutex<HashMap<String, u64>>,
}

impl Scheduler {
    /// Every link this node has, sorted by site code.
    pub fn links(&self) -> Vec<Arc<Link>> {
        let mut v: Vec<Arc<Link>> = self
            .links
            .lock()
            .expect("links lock")
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.to.cmp(&b.to));
        v
    }

    pub fn link(&self, to: &SiteCode) -> Option<Arc<Link>> {
        self.links.lock().expect("links lock").get(to).cloned()
    }

    /// Rate-limits refusal reports to one a minute per `key`, so a
    /// misconfigured neighbour cannot flood the status system.
    pub fn should_report(&self, key: &str) -> bool {
        let now = now_ms();
        let mut r = self.reported.lock().expect("reported lock");
        match r.get(key) {
            Some(t) if now.saturating_sub(*t) < 60_000 => false,
            _ => {
                r.insert(key.to_string(), now);
                true
            }
        }
    }

    /// Wakes the sender of a link, if it exists.
    pub fn wake(&self, to: &SiteCode) {
        if let Some(l) = self.link(to) {
            l.wake.notify_one();
        }
    }
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
    if &id.site_code == dest {
        return Ok(Route::Local);
    }
    // Walk up from dest through the sites this Hierarchy Manager knows.
    let mut cur = dest.clone();
    for _ in 0..64 {
        match ctx.store.site(&cur).ok().flatten() {
            Some(rec) => match rec.parent_site_code {
                Some(p) if p == id.site_code => return Ok(Route::Hop(cur)),
                Some(p) => cur = p,
                None => break,
            },
            None => break,
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
    let mut links = ctx.scheduler.links.lock().expect("links lock");
    if let Some(l) = links.get(to) {
        return l.clone();
    }
    let link = Arc::new(Link::new(to.clone()));
    links.insert(to.clone(), link.clone());
    drop(links);
    tracing::info!(to = %to, "link created; sender started");
    let (c, l) = (ctx.clone(), link.clone());
    ctx.tasks.spawn(async move {
        // Supervised: a sender that hits an error (say, a full disk) logs it
        // and starts over after a pause; only shutdown ends it.
        let mut pause = Duration::from_millis(500);
        loop {
            match crate::sender::run(c.clone(), l.clone()).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(to = %l.to, "sender error, restarting in {pause:?}: {e:#}");
                    l.set_state(
                        LinkStatus::Retrying,
                        format!("sender error, restarting: {e:#}"),
                    );
                }
            }
            tokio::select! {
                _ = c.cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    });
    link
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
    for l in ctx.scheduler.links() {
        l.wake.notify_one();
    }
    Ok(())
}
