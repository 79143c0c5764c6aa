//! Read models for the admin surface: what `status`, `sites`,
//! `site-control`, `status-messages`, `failed-jobs`, `bad-box`, `probe` and
//! `package` show. Assembled here so the gRPC edge only converts.

use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use sms_types::link::{LinkState, NodeProbe};
use sms_types::records::*;
use sms_types::views::*;
use sms_types::*;

use crate::core::Ctx;
use crate::error::{not_installed, Refused};

/// This site's identity, or the refusal every site-only call gives.
pub fn installed(ctx: &Ctx) -> Result<Identity, Refused> {
    ctx.identity().ok_or_else(not_installed)
}

/// One link as an administrator sees it. A link cut here shows as severed
/// even before its sender noticed.
pub fn link_view(ctx: &Ctx, to: &SiteCode) -> LinkView {
    let (state, detail, refused, chunk_bytes) = match ctx.links.link(to) {
        Some(l) => {
            let (s, d) = l.state();
            (
                s,
                d,
                l.refused.load(Ordering::Relaxed),
                l.chunk_bytes_sent.load(Ordering::Relaxed),
            )
        }
        None => (LinkState::Idle, "no sender started".to_string(), 0, 0),
    };
    let state = if ctx.store.link_fault(to).ok().flatten().is_some() {
        LinkState::Severed
    } else {
        state
    };
    let queued_jobs = ctx.store.outbox_len(to) as u64;
    // The sender words its detail when it last looked; work queued since
    // (or stuck behind a silent connection) must not read "nothing queued".
    let detail = match detail.strip_suffix("; nothing queued") {
        Some(server) if queued_jobs > 0 => server.to_string(),
        _ => detail,
    };
    let server = match ctx.identity().and_then(|i| i.parent) {
        Some(p) if &p.site_code == to => p.address,
        _ => ctx
            .store
            .site(to)
            .ok()
            .flatten()
            .map(|r| r.server)
            .unwrap_or_default(),
    };
    LinkView {
        to: to.clone(),
        state,
        queued_jobs,
        failed_jobs: ctx.store.failed_len(to) as u64,
        server,
        detail,
        refused_frames: refused,
        chunk_bytes_sent: chunk_bytes,
        clock_skew_ms: ctx.links.skew(to),
    }
}

/// What this node is and how its links stand.
pub fn node_view(ctx: &Ctx) -> NodeView {
    let (bootstrap_state, bootstrap_detail) = crate::bootstrap::describe(ctx);
    let mut components = ctx.components.list();
    if let Some(why) = ctx.store.write_failure() {
        // Shown only while it lasts: the node is not serving meanwhile.
        components.push(ComponentState {
            name: "SMS_STORE".into(),
            state: format!("failed: cannot write ({why}); reopening until it can"),
        });
    }
    NodeView {
        identity: ctx.identity(),
        logon: crate::logon::describe(ctx),
        components,
        links: ctx
            .links
            .links()
            .iter()
            .map(|l| link_view(ctx, &l.to))
            .collect(),
        address: ctx.advertise.clone(),
        node_id: ctx.node_id.to_string(),
        serial: ctx.config().map(|c| c.serial).unwrap_or(0),
        bootstrap_state,
        bootstrap_detail,
        duplicates_dropped: ctx.links.duplicates.load(Ordering::Relaxed),
        connections_refused: ctx.links.connections_refused.load(Ordering::Relaxed),
        calls_refused: ctx.links.calls_refused.load(Ordering::Relaxed),
    }
}

/// What a node answers to a probe of its bootstrap service.
pub fn node_probe(ctx: &Ctx) -> NodeProbe {
    let (state, detail) = crate::bootstrap::describe(ctx);
    let pkg_site = ctx
        .store
        .bootstrap_package()
        .ok()
        .flatten()
        .map(|b| b.package.site_code.to_string());
    NodeProbe {
        role: crate::logon::describe(ctx).role,
        site_code: ctx
            .identity()
            .map(|i| i.site_code.to_string())
            .or(pkg_site)
            .unwrap_or_default(),
        bootstrap_state: state,
        bootstrap_detail: detail,
        node_id: ctx.node_id.to_string(),
        domain: ctx.store.member_domain().ok().flatten().unwrap_or_default(),
    }
}

/// The row of a primary that is not in its own list (a central site that
/// has not yet taken its own CT2): made from its identity.
fn own_row(ctx: &Ctx, id: &Identity) -> SiteRecord {
    SiteRecord {
        site_code: id.site_code.clone(),
        parent_site_code: id.parent.as_ref().map(|p| p.site_code.clone()),
        kind: id.kind,
        server: ctx.advertise.clone(),
        status: SiteStatus::Active,
        status_changed_unix_ms: id.installed_unix_ms,
        serial: ctx.config().map(|c| c.serial).unwrap_or(0),
        link_secret: String::new(),
        sever_link_mid_bootstrap: false,
    }
}

/// The site list of a primary, with health at a glance: recent errors and
/// warnings, link state, reported version.
pub fn sites(ctx: &Ctx) -> Result<Vec<SiteRow>, Refused> {
    let id = installed(ctx)?;
    if id.kind == SiteKind::Secondary {
        let p = id.parent.expect("a secondary has a parent");
        return Err(Refused::Precondition(format!(
            "site {} is a secondary site and keeps no site list; ask its parent {} at {}",
            id.site_code, p.site_code, p.address
        )));
    }
    let mut sites = ctx.store.sites()?;
    if !sites.iter().any(|s| s.site_code == id.site_code) {
        sites.insert(0, own_row(ctx, &id));
    }
    let now = now_ms();
    let counts = ctx
        .store
        .recent_severity_counts(now.saturating_sub(3_600_000))?;
    Ok(sites
        .into_iter()
        .map(|s| {
            let (recent_errors, recent_warnings) =
                counts.get(&s.site_code).copied().unwrap_or_default();
            let link_state = ctx
                .links
                .link(&s.site_code)
                .map(|_| link_view(ctx, &s.site_code).state);
            let version = match ctx.store.child_ct2(&s.site_code) {
                Ok(Some(c)) => c.version,
                _ => String::new(),
            };
            let report = crate::stale::report_of(ctx, &s.site_code);
            let last_report_unix_ms = report.as_ref().map(|r| r.last_report_unix_ms);
            SiteRow {
                stale: report.is_some_and(|r| r.stale) && s.status == SiteStatus::Active,
                record: s,
                recent_errors,
                recent_warnings,
                link_state,
                version,
                last_report_unix_ms,
                report_age_ms: last_report_unix_ms.map(|t| now.saturating_sub(t)),
            }
        })
        .collect())
}

/// A site control image: this site's (current, with its logon servers and
/// ID counter, or a serial from its history), or a descendant's as its last
/// CT2 reported it.
pub fn site_control(
    ctx: &Ctx,
    site: Option<SiteCode>,
    serial: u64,
) -> Result<SiteControl, Refused> {
    let id = installed(ctx)?;
    if let Some(s) = site.filter(|s| s != &id.site_code) {
        let ct2 = ctx.store.child_ct2(&s)?.ok_or_else(|| {
            Refused::NotFound(format!(
                "site {} holds no site control report (CT2) from site {s}",
                id.site_code
            ))
        })?;
        if serial != 0 && serial != ct2.serial {
            return Err(Refused::NotFound(format!(
                "site {} holds only serial {} of site {s}'s control (its last CT2)",
                id.site_code, ct2.serial
            )));
        }
        return Ok(ct2.control);
    }
    let ct0 = if serial == 0 {
        ctx.config()
            .map(|c| crate::mp_install::control_view(ctx, crate::logon::control_view(ctx, c)))
    } else {
        ctx.store.ct0_at(serial)?
    };
    ct0.ok_or_else(|| {
        let serials = ctx.store.ct0_serials().unwrap_or_default();
        match (serials.first(), serials.last()) {
            (Some(a), Some(b)) => Refused::NotFound(format!(
                "site {} has no site control serial {serial}; it keeps serials {a}..{b}",
                id.site_code
            )),
            _ => Refused::NotFound(format!("site {} has no site control yet", id.site_code)),
        }
    })
}

/// Status messages, newest last (or those stored after `after`), filtered.
pub fn status_messages(
    ctx: &Ctx,
    site: Option<&SiteCode>,
    id: Option<u32>,
    limit: usize,
    after: Option<Uuid>,
) -> Result<Vec<StatusMessage>, Refused> {
    let limit = if limit == 0 { 1000 } else { limit };
    Ok(match after {
        None => ctx.store.status_messages(site, id, limit)?,
        Some(a) => ctx.store.status_after(&a, site, id, limit)?,
    })
}

/// What the web console's status message viewer asks for: every field
/// that is set must match (component case-insensitively, text as a
/// case-insensitive part of the message text, times inclusive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusQuery {
    pub site: Option<SiteCode>,
    pub id: Option<u32>,
    pub severity: Option<Severity>,
    pub component: Option<String>,
    pub text: Option<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
}

impl StatusQuery {
    pub fn matches(&self, m: &StatusMessage) -> bool {
        self.site.as_ref().is_none_or(|s| &m.site_code == s)
            && self.id.is_none_or(|i| m.id == i)
            && self.severity.is_none_or(|s| m.severity == s)
            && self
                .component
                .as_ref()
                .is_none_or(|c| m.component.eq_ignore_ascii_case(c))
            && self
                .text
                .as_ref()
                .is_none_or(|t| m.text.to_lowercase().contains(&t.to_lowercase()))
            && self.since_ms.is_none_or(|t| m.time_unix_ms >= t)
            && self.until_ms.is_none_or(|t| m.time_unix_ms <= t)
    }
}

/// The newest messages (site and id filtered by the store) a status query
/// looks through: a query for rare messages in a large store sees only
/// this many of the newest.
pub const STATUS_QUERY_SCAN: usize = 20_000;

/// Status messages matching `q`, newest last, at most `limit` (0: 1000),
/// among the newest [`STATUS_QUERY_SCAN`] of the site and id asked for.
pub fn status_query(
    ctx: &Ctx,
    q: &StatusQuery,
    limit: usize,
) -> Result<Vec<StatusMessage>, Refused> {
    let limit = if limit == 0 { 1000 } else { limit };
    let mut found: Vec<StatusMessage> = ctx
        .store
        .status_messages(q.site.as_ref(), q.id, STATUS_QUERY_SCAN)?
        .into_iter()
        .filter(|m| q.matches(m))
        .collect();
    let cut = found.len().saturating_sub(limit);
    found.drain(..cut);
    Ok(found)
}

/// The serials of this site's control history, oldest first.
pub fn site_control_serials(ctx: &Ctx) -> Result<Vec<u64>, Refused> {
    installed(ctx)?;
    Ok(ctx.store.ct0_serials()?)
}

/// A site's components with their state: this node's own, or a
/// descendant's as its last CT2 reported them.
pub fn site_components(ctx: &Ctx, site: &SiteCode) -> Result<Vec<ComponentState>, Refused> {
    let id = installed(ctx)?;
    if site == &id.site_code {
        return Ok(node_view(ctx).components);
    }
    let ct2 = ctx.store.child_ct2(site)?.ok_or_else(|| {
        Refused::NotFound(format!(
            "site {} holds no site control report (CT2) from site {site}",
            id.site_code
        ))
    })?;
    Ok(ct2.components)
}

/// Jobs for `to` whose retries are exhausted.
pub fn failed_jobs(ctx: &Ctx, to: &SiteCode) -> Result<Vec<FailedJob>, Refused> {
    Ok(ctx.store.failed_jobs(to)?)
}

/// CT1s this site refused, with the reasons.
pub fn bad_ct1s(ctx: &Ctx) -> Result<Vec<BadCt1>, Refused> {
    Ok(ctx.store.bad_ct1s()?)
}

/// Faults injected on this node.
pub fn faults(ctx: &Ctx) -> Result<Vec<Fault>, Refused> {
    Ok(ctx.store.faults()?)
}

/// The number of probes received (from memory: counting the tree walks it).
pub fn probe_count(ctx: &Ctx) -> u64 {
    ctx.store.probe_count() as u64
}

/// Every probe received, with its payload's size.
pub fn probes(ctx: &Ctx) -> Result<Vec<(ReceivedProbe, usize)>, Refused> {
    Ok(ctx.store.probes()?)
}

/// File packages received (or passing through). A complete package at its
/// destination is verified: the digest is of the chunks actually stored.
pub fn packages(ctx: &Ctx) -> Result<Vec<PackageView>, Refused> {
    let me = ctx.site_code();
    let mut out = Vec::new();
    for p in ctx.store.packages()? {
        let sha256_hex = if p.complete && Some(&p.dest) == me.as_ref() {
            hex::encode(package_digest(ctx, &p.job_id)?)
        } else {
            String::new()
        };
        out.push(PackageView {
            package: p,
            sha256_hex,
        });
    }
    Ok(out)
}

/// SHA-256 of a package as the package store holds it, read in 1 MiB
/// steps (a missing file hashes as empty, which never matches).
pub fn package_digest(ctx: &Ctx, id: &uuid::Uuid) -> Result<Vec<u8>, Refused> {
    use std::io::Read;
    let mut h = Sha256::new();
    if let Some(mut f) = ctx.store.package_file(id)? {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| Refused::Internal(format!("reading package {id}: {e}")))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.finalize().to_vec())
}

/// What one child primary said of its own links.
pub type ChildLinks = (SiteCode, Result<Vec<LinkView>, String>);

/// Asks each child primary of this site, at once and each within
/// `within`, for its links: the edges one tier below this site's own,
/// which it holds no link for. A secondary or a site without child
/// primaries asks nobody.
pub async fn child_primaries_links(ctx: &Ctx, within: std::time::Duration) -> Vec<ChildLinks> {
    let Some(me) = ctx.identity() else {
        return Vec::new();
    };
    let Ok(sites) = ctx.store.sites() else {
        return Vec::new();
    };
    let asks = sites
        .into_iter()
        .filter(|s| {
            s.kind == SiteKind::Primary && s.parent_site_code.as_ref() == Some(&me.site_code)
        })
        .map(|s| async move {
            let links = tokio::time::timeout(within, ctx.peers.site_links(&s.server, &s.site_code))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} ms", within.as_millis())));
            (s.site_code, links)
        });
    futures::future::join_all(asks).await
}
