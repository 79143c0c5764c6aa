//! Hierarchy Manager (primary sites): keeps the site list and each child's
//! site control copy, creates child sites, and turns reports from children
//! (phase status messages, CT2s) into their site status.

use std::sync::Arc;

use rand::Rng;
use sha2::{Digest, Sha256};

use sms_types::catalog;
use sms_types::link::NodeRole;
use sms_types::*;

use crate::core::Ctx;
pub use crate::error::Refused;
use sms_store::Inbox;

/// Free disk a secondary needs for its install (checked by its bootstrap).
pub const INSTALL_REQUIRED_FREE_BYTES: u64 = 64 * 1024 * 1024;

/// What an administrator asks for.
pub struct CreateSecondary {
    pub site_code: String,
    pub server: String,
    pub site_name: Option<String>,
    pub sever_link_mid_bootstrap: bool,
}

/// The install content a bootstrap verifies: the component manifest.
fn install_content(code: &SiteCode) -> Vec<u8> {
    use crate::site_component::*;
    let manifest = serde_json::json!({
        "site_code": code.to_string(),
        "version": SOFTWARE_VERSION,
        "components": [SCHEDULER, SENDER, DESPOOLER, SITE_CONFIG_MANAGER, STATUS_MANAGER, SITE_COMPONENT_MANAGER],
    });
    serde_json::to_vec_pretty(&manifest).expect("manifest serialises")
}

/// The bootstrap package for `code` on `server`: identity, `_INIT.CT1`,
/// parent address and link secret, and the install content with its digest.
fn build_package(
    ctx: &Ctx,
    me: &Identity,
    code: &SiteCode,
    server: &str,
    site_name: String,
    link_secret: String,
) -> Result<BootstrapPackage, Refused> {
    let ct0 = ctx
        .config()
        .ok_or_else(|| Refused::Internal("this site has no site control yet".into()))?;
    let mut up = Address::new(me.site_code.clone(), ctx.advertise.clone());
    if let Some(a) = ct0.addresses.iter().find(|a| &a.site_code == code) {
        up.retry_count = a.retry_count;
        up.retry_delay_ms = a.retry_delay_ms;
        // Both ends of a slow or costly link want the same probing.
        up.keepalive_secs = a.keepalive_secs;
    }
    let init_control = SiteControl {
        site_code: code.clone(),
        site_name: site_name.clone(),
        serial: 1,
        parent_site_code: Some(me.site_code.clone()),
        polling_interval_ms: ct0.polling_interval_ms,
        domains: vec![],
        addresses: vec![up],
        version: SOFTWARE_VERSION.to_string(),
        // A code used before (deleted, or being re-installed) continues its
        // SMS unique ID counter: IDs are never issued twice.
        next_unique_id: ctx
            .store
            .deleted_site(code)?
            .map(|d| d.next_unique_id)
            .unwrap_or(1)
            .max(
                ctx.store
                    .child_ct2(code)?
                    .map(|c| c.control.next_unique_id)
                    .unwrap_or(1),
            ),
        management_points: vec![],
        status_rules: vec![],
    };
    let content = install_content(code);
    Ok(BootstrapPackage {
        site_code: code.clone(),
        site_name,
        parent_site_code: me.site_code.clone(),
        parent_address: ctx.advertise.clone(),
        init_control,
        link_secret,
        content_sha256: Sha256::digest(&content).to_vec(),
        content,
        required_free_bytes: INSTALL_REQUIRED_FREE_BYTES,
        version: SOFTWARE_VERSION.to_string(),
        server: server.to_string(),
        ancestors: std::iter::once(me.site_code.clone())
            .chain(me.ancestors.iter().cloned())
            .collect(),
    })
}

/// A site directly below this one, by code, of either kind. The refusals
/// say what the site is instead and where to run the command; `verb` names
/// it (`delete-site`, `upgrade-site`).
fn direct_child(
    ctx: &Ctx,
    code: &str,
    verb: &str,
) -> Result<(Identity, SiteCode, SiteRecord), Refused> {
    let code: SiteCode = code
        .parse()
        .map_err(|e: SiteCodeError| Refused::Invalid(e.to_string()))?;
    let me = ctx.identity().ok_or_else(|| {
        Refused::Precondition("this node is bare: no site is installed here".into())
    })?;
    if code == me.site_code {
        return Err(Refused::Invalid(format!(
            "site {code} is this site; run {verb} at its parent{}",
            me.parent
                .as_ref()
                .map(|p| format!(" ({})", p.site_code))
                .unwrap_or_default()
        )));
    }
    let rec = ctx.store.site(&code)?.ok_or_else(|| {
        Refused::Invalid(format!(
            "site {code} is not in the site list of {}; `controller sites` lists the sites below it",
            me.site_code
        ))
    })?;
    match &rec.parent_site_code {
        Some(p) if p == &me.site_code => Ok((me, code, rec)),
        Some(p) => Err(Refused::Precondition(format!(
            "site {code} is not directly below {} (its parent is {p}); run {verb} at {p}",
            me.site_code
        ))),
        None => Err(Refused::Precondition(format!(
            "site {code} has no parent; it is not below {}",
            me.site_code
        ))),
    }
}

/// A secondary site directly below this one (upgrade-site re-runs the
/// install a parent gave; a primary installed itself).
fn child_secondary(ctx: &Ctx, code: &str) -> Result<(Identity, SiteCode, SiteRecord), Refused> {
    let (me, code, rec) = direct_child(ctx, code, "upgrade-site")?;
    if rec.kind == SiteKind::Primary {
        return Err(Refused::Precondition(format!(
            "site {code} is a primary site; upgrade-site re-runs the install of a secondary \
             site, and a primary is installed at its own server (sms-node --install-primary)"
        )));
    }
    Ok((me, code, rec))
}

/// A primary directly below this site that attached but never reported (its
/// record is still Pending), if `code` names one.
fn pending_child_primary(ctx: &Ctx, code: &str) -> Result<Option<SiteRecord>, Refused> {
    let (Ok(code), Some(me)) = (code.parse::<SiteCode>(), ctx.identity()) else {
        return Ok(None);
    };
    Ok(ctx.store.site(&code)?.filter(|r| {
        r.kind == SiteKind::Primary
            && r.status == SiteStatus::Pending
            && r.parent_site_code.as_ref() == Some(&me.site_code)
    }))
}

/// `upgrade-site`: runs the install of a child secondary again (article
/// 002's "activate the site and force another upgrade"), with this parent's
/// software version. A site whose bootstrap failed gets a fresh one; an
/// installed site keeps its identity and control and re-runs its phases.
pub async fn upgrade_site(ctx: &Arc<Ctx>, code: &str) -> Result<SiteRecord, Refused> {
    let _records = ctx.sites.lock().await;
    let (me, code, mut rec) = child_secondary(ctx, code)?;
    if rec.status == SiteStatus::Deleting {
        return Err(Refused::Precondition(format!(
            "site {code} is being deleted"
        )));
    }
    let name = ctx
        .store
        .child_ct2(&code)?
        .map(|c| c.control.site_name)
        .unwrap_or_else(|| format!("{code} secondary site"));
    let pkg = build_package(ctx, &me, &code, &rec.server, name, rec.link_secret.clone())?;
    if matches!(rec.status, SiteStatus::Active | SiteStatus::Phase(_)) {
        rec.status = SiteStatus::Upgrading;
        rec.status_changed_unix_ms = now_ms();
    }
    let job = Job::new(
        me.site_code.clone(),
        code.clone(),
        Priority::High,
        Payload::Bootstrap(Box::new(pkg)),
    );
    ctx.store.put_site(&rec)?;
    ctx.store.enqueue(&code, &job)?;
    ctx.store
        .durable()
        .await
        .map_err(|e| Refused::Internal(e.to_string()))?;
    tracing::info!(site = %code, server = %rec.server, job = %job.id, "install queued again (upgrade-site)");
    crate::status::emit(
        ctx,
        &catalog::HM_SITE_UPGRADE,
        &[
            code.to_string(),
            rec.server.clone(),
            SOFTWARE_VERSION.to_string(),
        ],
    )
    .map_err(|e| Refused::Internal(e.to_string()))?;
    crate::scheduler::ensure_link(ctx, &code).wake.notify_one();
    Ok(rec)
}

/// `delete-site`: removes a direct child site, and everything below it,
/// from this site's hierarchy.
///
/// - A Pending primary (attached, never installed) goes at once: nothing
///   runs there to tell.
/// - A secondary on a bare server (an install that never got going) is
///   released at once; otherwise it is marked Deleting and a deinstall job
///   tells it to remove its install (its node restarts bare).
/// - An installed primary is detached, not deinstalled: a primary is
///   administered at its own server and may have sites of its own below
///   it, which a removed install would strand. It is marked Deleting and
///   the same deinstall job tells it to carry on as a central site with its
///   subtree (`site_config` does that on its side).
///
/// Either way the site leaves the list (with its subtree, its control
/// copies, its link secret, and its queued jobs by [`leftover_job`]) when
/// that job is acknowledged, or as orphaned when it fails for good; from
/// then on its link is refused as not a neighbour.
pub async fn delete_site(ctx: &Arc<Ctx>, code: &str) -> Result<SiteRecord, Refused> {
    if let Some(rec) = pending_child_primary(ctx, code)? {
        // Attached but never installed (a mistyped parent, an install that
        // was given up): nothing runs there to tell, so it goes at once.
        let code = rec.site_code.clone();
        finish_delete(ctx, &code, false)
            .await
            .map_err(|e| Refused::Internal(format!("{e:#}")))?;
        tracing::info!(site = %code, server = %rec.server, "pending primary removed from the site list");
        return Ok(SiteRecord {
            status: SiteStatus::Deleting,
            ..rec
        });
    }
    let (me, code, mut rec) = direct_child(ctx, code, "delete-site")?;
    if rec.kind == SiteKind::Primary {
        return detach_primary(ctx, &me, &code).await;
    }
    let bare = ctx
        .peers
        .probe(&rec.server)
        .await
        .is_ok_and(|p| p.role == NodeRole::Bare && p.bootstrap_state != "running");
    if bare {
        finish_delete(ctx, &code, false)
            .await
            .map_err(|e| Refused::Internal(format!("{e:#}")))?;
        rec.status = SiteStatus::Deleting;
        return Ok(rec);
    }
    // The child's counter may have moved since its last CT2: freeze it and
    // keep the final value now, so a site re-created with this code (or a
    // failed delete) never hands out an ID twice.
    let live = ctx.peers.prepare_delete(&rec.server, &code).await.ok();
    let copy = ctx
        .store
        .child_ct2(&code)?
        .map(|c| c.control.next_unique_id);
    ctx.store.keep_deleted(&DeletedSite {
        site_code: code.clone(),
        next_unique_id: live.unwrap_or(1).max(copy.unwrap_or(1)),
        deleted_unix_ms: now_ms(),
        orphaned: false,
        server: rec.server.clone(),
    })?;
    let rec = queue_deinstall(ctx, &me, &code).await?;
    tracing::info!(site = %code, server = %rec.server, "deleting site; deinstall job queued");
    crate::status::emit(
        ctx,
        &catalog::HM_SITE_DELETING,
        &[code.to_string(), rec.server.clone()],
    )
    .map_err(|e| Refused::Internal(e.to_string()))?;
    crate::scheduler::ensure_link(ctx, &code).wake.notify_one();
    Ok(rec)
}

/// Marks a child `Deleting` and queues its deinstall job, durably, in one
/// step under the site-records lock (the record is read again there: the
/// one read before may be stale by now).
async fn queue_deinstall(
    ctx: &Arc<Ctx>,
    me: &Identity,
    code: &SiteCode,
) -> Result<SiteRecord, Refused> {
    let _records = ctx.sites.lock().await;
    let rec = crate::site_records::update_locked(&ctx.store, code, |r| {
        r.status = SiteStatus::Deleting;
        r.status_changed_unix_ms = now_ms();
        true
    })?
    .ok_or_else(|| Refused::Precondition(format!("site {code} was removed meanwhile")))?;
    let job = Job::new(
        me.site_code.clone(),
        code.clone(),
        Priority::High,
        Payload::Deinstall(code.clone()),
    );
    ctx.store.enqueue(code, &job)?;
    ctx.store
        .durable()
        .await
        .map_err(|e| Refused::Internal(e.to_string()))?;
    Ok(rec)
}

/// `delete-site` of an installed child primary (see [`delete_site`]): no
/// `prepare_delete`, since it keeps handing out its SMS unique IDs as a
/// central site; the counter its last CT2 reported is kept here.
async fn detach_primary(
    ctx: &Arc<Ctx>,
    me: &Identity,
    code: &SiteCode,
) -> Result<SiteRecord, Refused> {
    let rec = queue_deinstall(ctx, me, code).await?;
    tracing::info!(site = %code, server = %rec.server, "detaching child primary; it is told to carry on as a central site");
    crate::status::emit(
        ctx,
        &catalog::HM_PRIMARY_DETACHING,
        &[code.to_string(), rec.server.clone()],
    )
    .map_err(|e| Refused::Internal(e.to_string()))?;
    crate::scheduler::ensure_link(ctx, code).wake.notify_one();
    Ok(rec)
}

/// Every site below `code` in this site's list (its children, theirs, ...).
fn subtree(ctx: &Ctx, code: &SiteCode) -> anyhow::Result<Vec<SiteRecord>> {
    let all = ctx.store.sites()?;
    let mut below: Vec<SiteRecord> = vec![];
    let mut frontier = vec![code.clone()];
    // Bounded by the list: a corrupt loop of records cannot hang it.
    while let Some(c) = frontier.pop() {
        for r in all
            .iter()
            .filter(|r| r.parent_site_code.as_ref() == Some(&c))
        {
            if &r.site_code != code && !below.iter().any(|b| b.site_code == r.site_code) {
                frontier.push(r.site_code.clone());
                below.push(r.clone());
            }
        }
    }
    Ok(below)
}

/// Takes the sites below a removed site out of this site's list too (a
/// detached primary leaves with its subtree), each with the counter its
/// last CT2 reported kept. Returns how many.
fn forget_subtree(ctx: &Ctx, code: &SiteCode, when: u64) -> anyhow::Result<usize> {
    let below = subtree(ctx, code)?;
    for r in &below {
        let next_unique_id = ctx
            .store
            .child_ct2(&r.site_code)?
            .map(|c| c.control.next_unique_id)
            .unwrap_or(1);
        ctx.store.remove_site(
            &DeletedSite {
                site_code: r.site_code.clone(),
                next_unique_id,
                deleted_unix_ms: when,
                orphaned: false,
                server: r.server.clone(),
            },
            leftover_job,
        )?;
    }
    Ok(below.len())
}

/// What becomes of a job still queued for a site being removed: a deinstall
/// or bootstrap is dropped (meaningless now, and harmful if retried later
/// against a site re-created with this code); anything else moves to the
/// failed box, visible and retryable, with the reason.
pub fn leftover_job(job: &Job) -> Option<String> {
    match job.payload {
        Payload::Deinstall(_) | Payload::Bootstrap(_) | Payload::Revocations(_) => None,
        _ => Some(format!("site {} was deleted", job.dest)),
    }
}

/// Takes a deleted site out of the list (called when its deinstall job is
/// acknowledged, failed for good, or was not needed).
pub async fn finish_delete(ctx: &Arc<Ctx>, code: &SiteCode, orphaned: bool) -> anyhow::Result<()> {
    let _records = ctx.sites.lock().await;
    let Some(rec) = ctx.store.site(code)? else {
        return Ok(());
    };
    // The certificates this site issued for it (its site server's, or a
    // child primary's CA) are revoked: its connections are refused from
    // now on, whatever it still holds.
    let revoked = crate::trust::revoke_site(ctx, code)?;
    if revoked > 0 {
        tracing::info!(site = %code, revoked, "revoked the deleted site's certificates");
        crate::trust::send_revocations_down(ctx, None)?;
    }
    let kept = ctx
        .store
        .child_ct2(code)?
        .map(|c| c.control.next_unique_id)
        .unwrap_or(1);
    let earlier = ctx
        .store
        .deleted_site(code)?
        .map(|d| d.next_unique_id)
        .unwrap_or(1);
    let next_unique_id = kept.max(earlier);
    let gone = DeletedSite {
        site_code: code.clone(),
        next_unique_id,
        deleted_unix_ms: now_ms(),
        orphaned,
        server: rec.server.clone(),
    };
    let below = forget_subtree(ctx, code, gone.deleted_unix_ms)?;
    let moved = ctx.store.remove_site(&gone, leftover_job)?;
    ctx.store.durable().await?;
    let args = [
        code.to_string(),
        rec.server.clone(),
        next_unique_id.to_string(),
        below.to_string(),
    ];
    if orphaned {
        tracing::warn!(site = %code, server = %rec.server, below, "site removed; its server could not be told (orphaned)");
        crate::status::emit(ctx, &catalog::HM_SITE_ORPHANED, &args)?;
    } else if rec.kind == SiteKind::Primary && rec.status != SiteStatus::Pending {
        tracing::info!(site = %code, server = %rec.server, moved, below, "primary detached from the hierarchy with the sites below it");
        crate::status::emit(ctx, &catalog::HM_PRIMARY_DETACHED, &args)?;
    } else {
        tracing::info!(site = %code, server = %rec.server, moved, "site removed from the hierarchy");
        crate::status::emit(ctx, &catalog::HM_SITE_DELETED, &args)?;
    }
    Ok(())
}

/// The checks every new child site passes at its parent: a valid code, a
/// primary parent, and not the parent itself nor any of its ancestors.
fn check_new_child(ctx: &Ctx, code: &str) -> Result<(Identity, SiteCode), Refused> {
    let code: SiteCode = code
        .parse()
        .map_err(|e: SiteCodeError| Refused::Invalid(e.to_string()))?;
    let me = ctx.identity().ok_or_else(|| {
        Refused::Precondition(
            "this node is bare; child sites are created at a primary site server".into(),
        )
    })?;
    if me.kind != SiteKind::Primary {
        return Err(Refused::Precondition(format!(
            "site {} is a secondary site and cannot have child sites",
            me.site_code
        )));
    }
    if code == me.site_code {
        return Err(Refused::Invalid(format!("{code} is this site's own code")));
    }
    if me.ancestors.contains(&code) {
        return Err(Refused::Invalid(format!(
            "{code} is an ancestor of site {}; a site cannot be its own ancestor",
            me.site_code
        )));
    }
    Ok((me, code))
}

/// Creates a secondary site under this primary: checks everything first,
/// then records the site as Pending and queues its bootstrap job together.
pub async fn create_secondary(ctx: &Arc<Ctx>, req: CreateSecondary) -> Result<SiteRecord, Refused> {
    let (me, code) = check_new_child(ctx, &req.site_code)?;
    if let Some(existing) = ctx.store.site(&code)? {
        return Err(Refused::Exists(format!(
            "site {code} already exists in the hierarchy (status {}, server {})",
            existing.status, existing.server
        )));
    }
    let server = req.server.trim().to_string();
    let valid_addr = server
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
    if !valid_addr {
        return Err(Refused::Invalid(format!(
            "server {server:?} is not a HOST:PORT address"
        )));
    }
    let probe = ctx
        .peers
        .probe(&server)
        .await
        .map_err(|e| Refused::Unreachable(format!("cannot create site {code}: {e}")))?;
    if probe.role != NodeRole::Bare {
        return Err(Refused::Precondition(format!(
            "server {server} is already installed as site {} ({}); it cannot take site {code}",
            probe.site_code, probe.role
        )));
    }
    if probe.bootstrap_state == "running" {
        return Err(Refused::Precondition(format!(
            "server {server} is already installing site {} ({})",
            probe.site_code, probe.bootstrap_detail
        )));
    }

    let site_name = req
        .site_name
        .unwrap_or_else(|| format!("{code} secondary site"));
    let secret: [u8; 16] = rand::rng().random();
    let link_secret = hex::encode(secret);
    let pkg = build_package(ctx, &me, &code, &server, site_name, link_secret.clone())?;
    if ctx.store.deleted_site(&code)?.is_some() {
        // Article 002's rebuild: same code, same unique ID counter.
        tracing::info!(site = %code, next_unique_id = pkg.init_control.next_unique_id, "re-creating a deleted site; its SMS unique ID counter is kept");
    }
    let rec = SiteRecord {
        site_code: code.clone(),
        parent_site_code: Some(me.site_code.clone()),
        kind: SiteKind::Secondary,
        server: server.clone(),
        status: SiteStatus::Pending,
        status_changed_unix_ms: now_ms(),
        serial: 0,
        link_secret,
        sever_link_mid_bootstrap: req.sever_link_mid_bootstrap,
    };
    let job = Job::new(
        me.site_code.clone(),
        code.clone(),
        Priority::High,
        Payload::Bootstrap(Box::new(pkg)),
    );
    ctx.store.create_child(&rec, &job)?;
    ctx.store
        .durable()
        .await
        .map_err(|e| Refused::Internal(e.to_string()))?;
    tracing::info!(site = %code, %server, job = %job.id, "created secondary site; status Pending; bootstrap job queued");
    crate::status::emit(ctx, &catalog::HM_SITE_CREATED, &[code.to_string(), server])
        .map_err(|e| Refused::Internal(e.to_string()))?;
    crate::scheduler::ensure_link(ctx, &code).wake.notify_one();
    Ok(rec)
}

/// Moves a site's status forward (never backwards through install progress).
async fn advance(ctx: &Arc<Ctx>, rec: &mut SiteRecord, to: SiteStatus) -> anyhow::Result<bool> {
    let forward = match (rec.status.progress(), to.progress()) {
        (Some(a), Some(b)) => b > a,
        (None, _) => rec.status == SiteStatus::Upgrading && to == SiteStatus::Active,
        _ => false,
    };
    if !forward {
        return Ok(false);
    }
    let from = rec.status;
    rec.status = to;
    rec.status_changed_unix_ms = now_ms();
    tracing::info!(site = %rec.site_code, %from, %to, "site status changed");
    crate::status::emit(
        ctx,
        &catalog::HM_SITE_STATUS,
        &[rec.site_code.to_string(), from.to_string(), to.to_string()],
    )?;
    Ok(true)
}

/// A CT2 from below a child site (a grandchild, passed up by a child
/// primary) adds that site to this site's list, under its reported parent.
fn learn_descendant(ctx: &Ctx, ct2: &Ct2) -> anyhow::Result<Option<SiteRecord>> {
    let Some(parent) = &ct2.parent_site_code else {
        return Ok(None);
    };
    // Not a direct child (those are created here), a site deleted here, or
    // one of this site's ancestors.
    let me = ctx.identity();
    if Some(parent) == me.as_ref().map(|i| &i.site_code)
        || ctx.store.deleted_site(&ct2.site_code)?.is_some()
        || me.is_some_and(|i| i.ancestors.contains(&ct2.site_code))
    {
        return Ok(None);
    }
    if ctx.store.site(parent)?.is_none() {
        return Ok(None);
    }
    let rec = SiteRecord {
        site_code: ct2.site_code.clone(),
        parent_site_code: Some(parent.clone()),
        kind: ct2.kind,
        server: ct2.server.clone(),
        status: SiteStatus::Pending,
        status_changed_unix_ms: now_ms(),
        serial: 0,
        link_secret: String::new(),
        sever_link_mid_bootstrap: false,
    };
    tracing::info!(site = %rec.site_code, parent = %parent, "learned of a site below a child site");
    Ok(Some(rec))
}

/// A child primary reports that it created a site (3100) or that a primary
/// attached below it (3103): record it here too, so the central site's list
/// shows the whole tree from the start of each install.
fn learn_from_report(ctx: &Ctx, m: &StatusMessage) -> anyhow::Result<()> {
    let kind = match m.id {
        3100 => SiteKind::Secondary,
        3103 => SiteKind::Primary,
        _ => return Ok(()),
    };
    let (Some(code), Some(server)) = (m.insertion_strings.first(), m.insertion_strings.get(1))
    else {
        return Ok(());
    };
    let Ok(code) = code.parse::<SiteCode>() else {
        return Ok(());
    };
    if ctx.identity().is_some_and(|i| i.ancestors.contains(&code)) {
        return Ok(());
    }
    if Some(&m.site_code) == ctx.site_code().as_ref() || ctx.store.site(&m.site_code)?.is_none() {
        return Ok(());
    }
    if ctx.store.site(&code)?.is_some() {
        return Ok(());
    }
    ctx.store.put_site(&SiteRecord {
        site_code: code.clone(),
        parent_site_code: Some(m.site_code.clone()),
        kind,
        server: server.clone(),
        status: SiteStatus::Pending,
        status_changed_unix_ms: m.time_unix_ms,
        serial: 0,
        link_secret: String::new(),
        sever_link_mid_bootstrap: false,
    })?;
    tracing::info!(site = %code, parent = %m.site_code, "learned of a new site below a child site");
    Ok(())
}

/// A child primary reports that it deleted one of its sites (3106, 3107):
/// take it out of this site's list as well.
fn forget_deleted(ctx: &Ctx, m: &StatusMessage) -> anyhow::Result<()> {
    if ![
        catalog::HM_SITE_DELETED.id,
        catalog::HM_SITE_ORPHANED.id,
        catalog::HM_PRIMARY_DETACHED.id,
    ]
    .contains(&m.id)
    {
        return Ok(());
    }
    let Some(code) = m
        .insertion_strings
        .first()
        .and_then(|c| c.parse::<SiteCode>().ok())
    else {
        return Ok(());
    };
    if let Some(rec) = ctx.store.site(&code)? {
        if rec.parent_site_code.as_ref() == Some(&m.site_code)
            && Some(&m.site_code) != ctx.site_code().as_ref()
        {
            let next = m
                .insertion_strings
                .get(2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let below = forget_subtree(ctx, &code, m.time_unix_ms)?;
            ctx.store.remove_site(
                &DeletedSite {
                    site_code: code.clone(),
                    next_unique_id: next,
                    deleted_unix_ms: m.time_unix_ms,
                    orphaned: m.id == catalog::HM_SITE_ORPHANED.id,
                    server: rec.server,
                },
                leftover_job,
            )?;
            tracing::info!(site = %code, parent = %m.site_code, below, "a site below was deleted");
        }
    }
    Ok(())
}

/// Install phase reports from child sites move their status forward.
pub async fn on_status(ctx: &Arc<Ctx>, msgs: &[StatusMessage]) -> anyhow::Result<()> {
    crate::stale::reported_messages(ctx, msgs)?;
    for m in msgs {
        learn_from_report(ctx, m)?;
        forget_deleted(ctx, m)?;
        if m.id == catalog::CT1_REJECTED.id {
            // The site refused a change: the next one starts from its real control.
            ctx.store.set_pending_ct1(&m.site_code, None)?;
        }
        let Some(phase) = catalog::bootstrap_phase(m.id) else {
            continue;
        };
        let Some(mut rec) = ctx.store.site(&m.site_code)? else {
            continue;
        };
        if advance(ctx, &mut rec, SiteStatus::Phase(phase)).await? {
            ctx.store.put_site(&rec)?;
            ctx.store.durable().await?;
            ctx.links.wake(&rec.site_code);
        }
    }
    Ok(())
}

/// The Hierarchy Manager loop: processes CT2s from the HM inbox.
pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    // A delete cut short by a crash: its deinstall job was acknowledged (or
    // failed for good) but the site is still listed as Deleting.
    for rec in ctx
        .store
        .sites()?
        .into_iter()
        .filter(|r| r.status == SiteStatus::Deleting)
    {
        if !ctx.store.deinstall_queued(&rec.site_code, false)? {
            let orphaned = ctx.store.deinstall_queued(&rec.site_code, true)?;
            finish_delete(&ctx, &rec.site_code, orphaned).await?;
        }
    }
    loop {
        loop {
            let items = ctx.store.inbox_items(Inbox::Hierarchy, 64)?;
            if items.is_empty() {
                break;
            }
            crate::status_manager::despool_inbox(&ctx).await?;
            let _records = ctx.sites.lock().await;
            for (key, job) in items {
                process(&ctx, key, job).await?;
            }
            ctx.store.durable().await?;
        }
        let next_check = {
            let _records = ctx.sites.lock().await;
            crate::stale::check(&ctx)?
        };
        tokio::select! {
            _ = ctx.tasks.cancelled() => return Ok(()),
            _ = ctx.hm.woken() => {}
            _ = tokio::time::sleep(next_check) => {}
        }
    }
}

async fn process(ctx: &Arc<Ctx>, key: u64, job: Job) -> anyhow::Result<()> {
    let Payload::Ct2(ct2) = job.payload else {
        tracing::warn!(job = %job.id, kind = job.payload.kind(), "not a CT2; removed from the HM inbox");
        ctx.store.inbox_remove(Inbox::Hierarchy, key)?;
        return Ok(());
    };
    // On a secure site only a CT2 signed by the site it reports on counts,
    // and its signed body is what is recorded.
    let ct2 = match crate::trust::verified_ct2(ctx, &ct2) {
        Ok(c) => c,
        Err(reason) => {
            tracing::warn!(site = %ct2.site_code, "CT2 refused and set aside: {reason}");
            crate::status::emit(
                ctx,
                &catalog::CT2_REFUSED,
                &[ct2.site_code.to_string(), reason],
            )?;
            ctx.store.inbox_remove(Inbox::Hierarchy, key)?;
            return Ok(());
        }
    };
    let known = match ctx.store.site(&ct2.site_code)? {
        Some(r) => Some(r),
        None => learn_descendant(ctx, &ct2)?,
    };
    let Some(mut rec) = known else {
        tracing::warn!(site = %ct2.site_code, "CT2 for a site this hierarchy does not know; set aside");
        crate::status::emit(ctx, &catalog::HM_UNKNOWN_CT2, &[ct2.site_code.to_string()])?;
        ctx.store.inbox_remove(Inbox::Hierarchy, key)?;
        return Ok(());
    };
    rec.serial = ct2.serial;
    if !ct2.server.is_empty() && rec.parent_site_code.is_some() {
        rec.server = ct2.server.clone();
    }
    // Pass a child's report on up the tree first: if we crash before the
    // inbox removal below, the CT2 is processed (and passed up) again, which
    // is harmless; the other order could lose it.
    let me = ctx.site_code().expect("installed");
    let me_code = me.clone();
    if let Some(parent) = ctx.identity().and_then(|i| i.parent) {
        if ct2.site_code != parent.site_code && ct2.site_code != me {
            let up = Job::new(
                me,
                parent.site_code,
                Priority::High,
                Payload::Ct2(ct2.clone()),
            );
            crate::scheduler::submit(ctx, &up).await?;
        }
    }
    let changed = advance(ctx, &mut rec, SiteStatus::Active).await?;
    if ctx
        .store
        .pending_ct1(&ct2.site_code)?
        .is_some_and(|p| ct2.serial > p.base_serial)
    {
        ctx.store.set_pending_ct1(&ct2.site_code, None)?;
    }
    ctx.store.accept_ct2(key, &rec, &ct2)?;
    crate::stale::reported(ctx, &ct2.site_code)?;
    tracing::info!(site = %ct2.site_code, serial = ct2.serial, "processed CT2");
    if changed {
        ctx.links.wake(&rec.site_code);
        // A child that just became Active (new, or back) gets what was
        // revoked here.
        if rec.status == SiteStatus::Active && rec.parent_site_code.as_ref() == Some(&me_code) {
            crate::trust::send_revocations_down(ctx, Some(&rec.site_code))?;
            ctx.store.durable().await?;
        }
    }
    Ok(())
}

/// A change to an address's settings.
#[derive(Debug, Clone, Default)]
pub struct AddressChange {
    pub to: String,
    pub retry_count: Option<u32>,
    pub retry_delay_ms: Option<u64>,
    pub concurrent_sendings: Option<u32>,
    pub rate_limit_bytes_per_sec: Option<u64>,
    /// Replaces the schedule when set (empty: no restriction).
    pub schedule: Option<Vec<ScheduleRule>>,
    /// Sets the keepalive when set: `Some(None)` goes back to the node's
    /// default, `Some(Some(s))` probes after `s` idle seconds.
    pub keepalive_secs: Option<Option<u32>>,
}

/// What an administrator changes in a site's control.
#[derive(Debug, Clone, Default)]
pub struct ControlChange {
    pub polling_interval_ms: Option<u64>,
    pub site_name: Option<String>,
    pub address: Option<AddressChange>,
    pub add_domain: Option<(String, Vec<String>)>,
    pub remove_domain: Option<String>,
    /// Assign the management point role: (server, port, make it the default).
    pub add_management_point: Option<(String, u16, bool)>,
    /// Take the management point role from a server.
    pub remove_management_point: Option<String>,
    /// Add a status filter rule: at this 1-based position (None: last).
    pub add_status_rule: Option<(sms_types::status_rules::StatusRule, Option<usize>)>,
    /// Remove a status filter rule: by name, or by 1-based position.
    pub remove_status_rule: Option<String>,
}

impl ControlChange {
    /// Applies the change to a copy of a site control, checking it.
    pub fn apply(&self, ctl: &mut SiteControl) -> Result<(), String> {
        let mut changed = false;
        if let Some(ms) = self.polling_interval_ms {
            if ms < crate::site_config::MIN_POLLING_INTERVAL_MS {
                return Err(format!(
                    "polling interval {ms} ms is below the minimum of {} ms",
                    crate::site_config::MIN_POLLING_INTERVAL_MS
                ));
            }
            ctl.polling_interval_ms = ms;
            changed = true;
        }
        if let Some(name) = &self.site_name {
            if name.trim().is_empty() {
                return Err("the site name cannot be empty".into());
            }
            ctl.site_name = name.trim().to_string();
            changed = true;
        }
        if let Some(a) = &self.address {
            let to: SiteCode =
                a.to.parse()
                    .map_err(|e: SiteCodeError| format!("address: {e}"))?;
            if a.retry_count == Some(0) {
                return Err("an address needs at least 1 attempt per job".into());
            }
            if a.concurrent_sendings == Some(0) {
                return Err("an address needs at least 1 concurrent sending".into());
            }
            if let Some(Some(secs)) = a.keepalive_secs {
                sms_types::limits::check_keepalive_secs(secs)
                    .map_err(|e| format!("the address of site {to}: {e}"))?;
            }
            let idx = match ctl.addresses.iter().position(|x| x.site_code == to) {
                Some(i) => i,
                None => {
                    ctl.addresses.push(Address::new(to.clone(), String::new()));
                    ctl.addresses.len() - 1
                }
            };
            let addr = &mut ctl.addresses[idx];
            if let Some(v) = a.retry_count {
                addr.retry_count = v;
            }
            if let Some(v) = a.retry_delay_ms {
                addr.retry_delay_ms = v;
            }
            if let Some(v) = a.concurrent_sendings {
                addr.concurrent_sendings = v;
            }
            if let Some(v) = a.rate_limit_bytes_per_sec {
                addr.rate_limit_bytes_per_sec = v;
            }
            if let Some(s) = &a.schedule {
                addr.schedule = s.clone();
            }
            if let Some(k) = a.keepalive_secs {
                addr.keepalive_secs = k;
            }
            changed = true;
        }
        if let Some((name, browse)) = &self.add_domain {
            let name = name.trim();
            if name.is_empty() {
                return Err("the domain name cannot be empty".into());
            }
            if ctl
                .domains
                .iter()
                .any(|d| d.name.eq_ignore_ascii_case(name))
            {
                return Err(format!(
                    "domain {name} is already in the site control of {}",
                    ctl.site_code
                ));
            }
            let browse: Vec<String> = browse
                .iter()
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty())
                .collect();
            if browse.is_empty() {
                return Err(format!(
                    "domain {name} needs a browse list (at least one address or DNS name)"
                ));
            }
            ctl.domains.push(Domain {
                name: name.to_string(),
                browse,
                logon_servers: vec![],
            });
            changed = true;
        }
        if let Some(name) = &self.remove_domain {
            let before = ctl.domains.len();
            ctl.domains
                .retain(|d| !d.name.eq_ignore_ascii_case(name.trim()));
            if ctl.domains.len() == before {
                return Err(format!(
                    "there is no domain {name} in the site control of {}",
                    ctl.site_code
                ));
            }
            changed = true;
        }
        if let Some((server, port, is_default)) = &self.add_management_point {
            let server = server.trim();
            sms_types::limits::check_server_name(server)
                .map_err(|e| format!("management point: {e}"))?;
            if !server.contains(':') {
                return Err(format!(
                    "management point server {server} needs the port of its sms-node (HOST:PORT)"
                ));
            }
            if ctl
                .management_points
                .iter()
                .any(|m| m.server.eq_ignore_ascii_case(server))
            {
                return Err(format!(
                    "{server} is already a management point of site {}",
                    ctl.site_code
                ));
            }
            // The first management point is the default; asking for a
            // default moves it.
            let make_default = *is_default || ctl.management_points.is_empty();
            if make_default {
                for m in &mut ctl.management_points {
                    m.is_default = false;
                }
            }
            ctl.management_points
                .push(sms_types::mp::ManagementPoint::new(
                    server.to_string(),
                    *port,
                    make_default,
                ));
            changed = true;
        }
        if let Some(server) = &self.remove_management_point {
            let server = server.trim();
            let Some(i) = ctl
                .management_points
                .iter()
                .position(|m| m.server.eq_ignore_ascii_case(server))
            else {
                return Err(format!(
                    "{server} is not a management point of site {} (controller mp list --site {0})",
                    ctl.site_code
                ));
            };
            let was_default = ctl.management_points.remove(i).is_default;
            if was_default {
                if let Some(first) = ctl.management_points.first_mut() {
                    first.is_default = true;
                }
            }
            changed = true;
        }
        if let Some((rule, position)) = &self.add_status_rule {
            sms_types::status_rules::check_rule(rule)?;
            let rules = &mut ctl.status_rules;
            if rules
                .iter()
                .any(|r| r.name.eq_ignore_ascii_case(&rule.name))
            {
                return Err(format!(
                    "site {} already has a status rule named {}",
                    ctl.site_code, rule.name
                ));
            }
            let at = match position {
                None => rules.len(),
                Some(p) if (1..=rules.len() + 1).contains(p) => p - 1,
                Some(p) => {
                    return Err(format!(
                        "position {p} is outside 1..={} (site {} has {} status rules)",
                        rules.len() + 1,
                        ctl.site_code,
                        rules.len()
                    ))
                }
            };
            rules.insert(at, rule.clone());
            changed = true;
        }
        if let Some(which) = &self.remove_status_rule {
            let which = which.trim();
            let rules = &mut ctl.status_rules;
            let at = match which.parse::<usize>() {
                Ok(p) if (1..=rules.len()).contains(&p) => p - 1,
                Ok(p) => {
                    return Err(format!(
                        "site {} has no status rule at position {p} (it has {})",
                        ctl.site_code,
                        rules.len()
                    ))
                }
                Err(_) => rules
                    .iter()
                    .position(|r| r.name.eq_ignore_ascii_case(which))
                    .ok_or_else(|| {
                        format!(
                            "site {} has no status rule named {which} (controller status-rules list --site {0})",
                            ctl.site_code
                        )
                    })?,
            };
            rules.remove(at);
            changed = true;
        }
        if !changed {
            return Err("nothing to change".into());
        }
        Ok(())
    }
}

/// Turns an administrator's change into a CT1 for `site` (this site, or a
/// descendant, reached hop by hop). The CT1 carries the serial it was made
/// against: if the site changed meanwhile, it is rejected as stale and kept
/// in the site's bad box, never applied over a newer control.
/// Returns (site, base serial, the serial it becomes).
pub async fn change_site_control(
    ctx: &Arc<Ctx>,
    site: Option<SiteCode>,
    change: &ControlChange,
) -> Result<(SiteCode, u64, u64), Refused> {
    let internal = |e: anyhow::Error| Refused::Internal(format!("{e:#}"));
    let me = ctx.identity().ok_or_else(|| {
        Refused::Precondition("this node is bare: no site is installed here".into())
    })?;
    let target = site.unwrap_or_else(|| me.site_code.clone());
    let (base, proposed) = if target == me.site_code {
        let ct0 = ctx.config().ok_or_else(|| {
            Refused::Precondition(format!("site {target} has no site control yet"))
        })?;
        (ct0.serial, ct0)
    } else {
        match crate::scheduler::route(ctx, &target) {
            Ok(crate::scheduler::Route::Hop(h)) if me.parent.as_ref().is_none_or(|p| p.site_code != h) => {}
            _ => {
                return Err(Refused::NotFound(format!(
                    "site {target} is not below site {}; change it at {target} or at one of its ancestors",
                    me.site_code
                )))
            }
        }
        let copy = ctx.store.child_ct2(&target).map_err(|e| internal(e.into()))?.ok_or_else(|| {
            Refused::Precondition(format!(
                "site {target} has not reported its site control to {} yet; wait until it is Active",
                me.site_code
            ))
        })?;
        (copy.serial, copy.control)
    };
    // A change sent earlier and not yet confirmed: build on it, one serial on.
    let _records = ctx.sites.lock().await;
    let (base, mut proposed) = match ctx
        .store
        .pending_ct1(&target)
        .map_err(|e| internal(e.into()))?
    {
        Some(p) if p.base_serial >= base => (p.base_serial + 1, p.proposed),
        _ => (base, proposed),
    };
    // Only the control itself: not the logon servers the site tracks, nor a
    // removed domain still shown while its servers are uninstalled.
    proposed.domains.retain(|d| !d.browse.is_empty());
    for d in &mut proposed.domains {
        d.logon_servers.clear();
    }
    // Only assignments: not install state, nor roles still being removed.
    proposed.management_points = proposed
        .management_points
        .iter()
        .filter(|m| m.state != sms_types::mp::MpState::PendingUninstall)
        .map(|m| m.assignment())
        .collect();
    change.apply(&mut proposed).map_err(Refused::Invalid)?;
    // Refused here, at the call, rather than in the target's bad box.
    sms_types::limits::check_site_control(&proposed).map_err(Refused::Invalid)?;
    let mut ct1 = Ct1 {
        signature: None,
        base_serial: base,
        proposed,
        origin: format!("an administrator at site {}", me.site_code),
    };
    crate::trust::sign_ct1(ctx, &mut ct1)?;
    ctx.store
        .set_pending_ct1(&target, Some(&ct1))
        .map_err(|e| internal(e.into()))?;
    let job = Job::new(
        me.site_code.clone(),
        target.clone(),
        Priority::High,
        Payload::Ct1(ct1),
    );
    if target == me.site_code {
        ctx.store
            .put_inbox(Inbox::SiteControl, &job)
            .map_err(|e| internal(e.into()))?;
        ctx.store.durable().await.map_err(|e| internal(e.into()))?;
        ctx.scm.wake();
    } else {
        crate::scheduler::submit(ctx, &job)
            .await
            .map_err(internal)?;
    }
    tracing::info!(site = %target, base, job = %job.id, "site control change queued as a CT1");
    Ok((target, base, base + 1))
}

/// Registers a new primary site installing itself under this primary.
/// Returns the link secret it must present. Repeating the call for the same
/// site and server (its first start was interrupted) returns the same secret.
pub async fn attach_primary(
    ctx: &Arc<Ctx>,
    code: &str,
    server: &str,
) -> Result<SiteRecord, Refused> {
    let (me, code) = check_new_child(ctx, code)?;
    if let Some(existing) = ctx.store.site(&code)? {
        if existing.server == server
            && existing.kind == SiteKind::Primary
            && existing.status == SiteStatus::Pending
        {
            return Ok(existing);
        }
        return Err(Refused::Exists(format!(
            "site {code} already exists in the hierarchy (status {}, server {})",
            existing.status, existing.server
        )));
    }
    let secret: [u8; 16] = rand::rng().random();
    let rec = SiteRecord {
        site_code: code.clone(),
        parent_site_code: Some(me.site_code.clone()),
        kind: SiteKind::Primary,
        server: server.to_string(),
        status: SiteStatus::Pending,
        status_changed_unix_ms: now_ms(),
        serial: 0,
        link_secret: hex::encode(secret),
        sever_link_mid_bootstrap: false,
    };
    {
        let _records = ctx.sites.lock().await;
        ctx.store.put_site(&rec)?;
        ctx.store
            .durable()
            .await
            .map_err(|e| Refused::Internal(e.to_string()))?;
    }
    tracing::info!(site = %code, %server, "primary site attached as a child; Pending until its first CT2");
    crate::status::emit(
        ctx,
        &catalog::HM_PRIMARY_ATTACHED,
        &[code.to_string(), server.to_string()],
    )
    .map_err(|e| Refused::Internal(e.to_string()))?;
    crate::scheduler::ensure_link(ctx, &code);
    Ok(rec)
}

/// `attach_primary` as the new child needs the answer: this site's code and
/// address, the link secret, and every site above the child (this one
/// first), none of which it may itself become the parent of.
pub async fn attach(ctx: &Arc<Ctx>, code: &str, server: &str) -> Result<link::Attached, Refused> {
    let rec = attach_primary(ctx, code, server).await?;
    Ok(link::Attached {
        parent_site_code: rec
            .parent_site_code
            .map(|c| c.to_string())
            .unwrap_or_default(),
        parent_address: ctx.advertise.clone(),
        link_secret: rec.link_secret,
        ancestors: ctx
            .identity()
            .map(|i| {
                std::iter::once(i.site_code.clone())
                    .chain(i.ancestors)
                    .map(|c| c.to_string())
                    .collect()
            })
            .unwrap_or_default(),
    })
}
