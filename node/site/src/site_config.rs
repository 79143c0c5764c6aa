//! Site Configuration Manager: the four-stage watchdog cycle, run when a CT1
//! arrives and on the polling interval of the site control.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bootstrap;
use crate::core::Ctx;
use crate::site_component;
use sms_store::{BadCt1, Inbox};
use sms_types::catalog;
use sms_types::*;

/// Shortest polling interval a site control may ask for.
pub const MIN_POLLING_INTERVAL_MS: u64 = 100;

struct Timers {
    logon_scripts: Option<Instant>,
    site_status_file: Option<Instant>,
    user_groups: Option<Instant>,
}

const LOGON_SCRIPT_INTERVAL: Duration = Duration::from_secs(600);
const SITE_STATUS_INTERVAL: Duration = Duration::from_secs(60);
const USER_GROUP_INTERVAL: Duration = Duration::from_secs(3600);

fn due(last: &mut Option<Instant>, every: Duration) -> bool {
    if last.is_none_or(|t| t.elapsed() >= every) {
        *last = Some(Instant::now());
        true
    } else {
        false
    }
}

/// The watchdog loop.
pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let mut timers = Timers {
        logon_scripts: None,
        site_status_file: None,
        user_groups: None,
    };
    loop {
        cycle(&ctx, &mut timers).await?;
        let interval = ctx
            .config()
            .map(|c| c.polling_interval_ms)
            .unwrap_or(DEFAULT_POLLING_INTERVAL_MS)
            .max(MIN_POLLING_INTERVAL_MS);
        tokio::select! {
            _ = ctx.tasks.cancelled() => return Ok(()),
            _ = ctx.scm.woken() => {}
            _ = tokio::time::sleep(Duration::from_millis(interval)) => {}
        }
    }
}

async fn cycle(ctx: &Arc<Ctx>, timers: &mut Timers) -> anyhow::Result<()> {
    tracing::info!("watchdog cycle: stage 1 begins");
    stage1_timers(ctx, timers).await?;
    let applied = stage1_site_control(ctx).await?;
    if ctx.restart_pending() {
        // Deleted by the parent: no discovery, installs or reports any more.
        tracing::info!("the site is being removed; the cycle stops here");
        return Ok(());
    }
    tracing::info!(applied, "stage 1 done");
    tracing::info!("stage 2 begins");
    stage2(ctx);
    crate::logon::discover(ctx).await?;
    tracing::info!("stage 3 begins");
    stage3(ctx)?;
    crate::logon::reconcile(ctx).await?;
    // A management point that cannot be installed or verified is reported
    // by its own messages; it never stops the cycle.
    if let Err(e) = crate::mp_install::reconcile(ctx).await {
        tracing::error!("management point installs: {e:#}");
    }
    if let Err(e) = crate::mp_control::verify(ctx).await {
        tracing::error!("management point verification: {e:#}");
    }
    tracing::info!("stage 4 begins");
    stage4(ctx).await?;
    tracing::info!("watchdog cycle complete");
    Ok(())
}

/// Stage 1a: the interval jobs.
async fn stage1_timers(ctx: &Arc<Ctx>, t: &mut Timers) -> anyhow::Result<()> {
    let cfg = ctx.config();
    if due(&mut t.logon_scripts, LOGON_SCRIPT_INTERVAL) {
        let n = crate::logon::refresh_scripts(ctx).await?;
        tracing::info!(
            servers = n,
            "logon script refresh: current script pushed to {n} logon servers"
        );
    }
    if due(&mut t.site_status_file, SITE_STATUS_INTERVAL) {
        let links: Vec<_> = ctx
            .links
            .links()
            .iter()
            .map(|l| {
                let (s, d) = l.state();
                serde_json::json!({
                    "to": l.to.to_string(),
                    "state": s.as_str(),
                    "detail": d,
                    "queued_jobs": ctx.store.outbox_len(&l.to),
                    "failed_jobs": ctx.store.failed_len(&l.to),
                })
            })
            .collect();
        let summary = serde_json::json!({
            "site_code": ctx.site_code().map(|c| c.to_string()),
            "serial": cfg.as_ref().map(|c| c.serial),
            "written_unix_ms": now_ms(),
            "components": ctx.components.list().iter().map(|c| serde_json::json!({"name": c.name, "state": c.state})).collect::<Vec<_>>(),
            "links": links,
        });
        let path = ctx.data_dir.join("site_status.json");
        let tmp = ctx.data_dir.join("site_status.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&summary)?)?;
        std::fs::rename(&tmp, &path)?;
        tracing::info!(path = %path.display(), "site status file written");
        // ...and sent up: the summary travels as a status message.
        if let Some(code) = ctx.site_code() {
            let comps = ctx.components.list();
            let running = comps.iter().filter(|c| c.state == "running").count();
            let links = ctx
                .links
                .links()
                .iter()
                .map(|l| {
                    format!(
                        "{} {} ({} queued, {} failed)",
                        l.to,
                        l.state().0.as_str(),
                        ctx.store.outbox_len(&l.to),
                        ctx.store.failed_len(&l.to)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let links = if links.is_empty() {
                "none".to_string()
            } else {
                links
            };
            crate::status::emit(
                ctx,
                &catalog::SITE_STATUS_SUMMARY,
                &[
                    code.to_string(),
                    running.to_string(),
                    comps.len().to_string(),
                    links,
                ],
            )?;
        }
    }
    if due(&mut t.user_groups, USER_GROUP_INTERVAL) {
        let domains: Vec<String> = cfg
            .iter()
            .flat_map(|c| &c.domains)
            .map(|d| d.name.clone())
            .collect();
        let path = ctx.data_dir.join("user_groups.json");
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&serde_json::json!({ "domains": domains }))?,
        )?;
        tracing::info!(domains = domains.len(), "user group inventory written");
    }
    Ok(())
}

/// Stage 1b-e: validate each CT1 and make it the new CT0, in arrival order.
pub(crate) async fn stage1_site_control(ctx: &Arc<Ctx>) -> anyhow::Result<usize> {
    let mut applied = 0;
    loop {
        let items = ctx.store.inbox_items(Inbox::SiteControl, 32)?;
        if items.is_empty() {
            return Ok(applied);
        }
        for (key, job) in items {
            let current = ctx.store.ct0()?;
            if let Payload::Revocations(list) = &job.payload {
                let from_parent = ctx
                    .identity()
                    .and_then(|i| i.parent)
                    .is_some_and(|p| p.site_code == job.source);
                if from_parent {
                    if crate::trust::accept_revocations(ctx, list)? {
                        // Passed on to the tier below, in the same commit.
                        crate::trust::send_revocations_down(ctx, None)?;
                    }
                } else {
                    tracing::warn!(job = %job.id, from = %job.source, "a revocation list from a site that is not this site's parent; ignored");
                }
                ctx.store.inbox_remove(Inbox::SiteControl, key)?;
                ctx.store.durable().await?;
                continue;
            }
            if let Payload::Deinstall(site) = &job.payload {
                let id = ctx.identity();
                let from_parent = id
                    .as_ref()
                    .and_then(|i| i.parent.as_ref())
                    .is_some_and(|p| p.site_code == job.source);
                let is_primary = id.as_ref().is_some_and(|i| i.kind == SiteKind::Primary);
                // A detach cut short by a crash: the parent is forgotten
                // but the site control still names it.
                let detaching = is_primary
                    && id.as_ref().is_some_and(|i| i.parent.is_none())
                    && current
                        .as_ref()
                        .is_some_and(|c| c.parent_site_code.as_ref() == Some(&job.source));
                if Some(site) == ctx.site_code().as_ref()
                    && is_primary
                    && (from_parent || detaching)
                {
                    detach(ctx, key, &job.source).await?;
                    applied += 1;
                    continue;
                }
                if Some(site) == ctx.site_code().as_ref() && from_parent {
                    let parent = job.source.to_string();
                    tracing::warn!(parent = %parent, "site deleted by its parent: removing the install; the node restarts bare");
                    crate::status::emit(ctx, &catalog::SITE_DEINSTALLING, &[parent])?;
                    ctx.request_deinstall()?;
                    return Ok(applied);
                }
                tracing::warn!(job = %job.id, site = %site, "deinstall for another site; ignored");
                ctx.store.inbox_remove(Inbox::SiteControl, key)?;
                continue;
            }
            let Payload::Ct1(ct1) = job.payload else {
                tracing::warn!(job = %job.id, "not a CT1; removed from the site control inbox");
                ctx.store.inbox_remove(Inbox::SiteControl, key)?;
                continue;
            };
            // On a secure site only a CT1 signed by this site or an
            // ancestor is applied, and from its signed body.
            let checked = crate::trust::verified_ct1(ctx, &ct1)
                .and_then(|signed| validate(ctx, &signed, current.as_ref()));
            match checked {
                Ok(new) => {
                    ctx.store.apply_ct1(key, &new)?;
                    ctx.store.durable().await?;
                    crate::witness::record(ctx, new.serial)?;
                    let from = current.map(|c| c.serial).unwrap_or(0);
                    tracing::info!(from, to = new.serial, origin = %ct1.origin, "CT1 applied: site identification, domains, addresses and site settings written");
                    crate::status::emit(
                        ctx,
                        &catalog::CT1_APPLIED,
                        &[
                            new.site_code.to_string(),
                            from.to_string(),
                            new.serial.to_string(),
                            ct1.origin.clone(),
                        ],
                    )?;
                    if let Some(p) = ctx.store.pending_ct1(&new.site_code)? {
                        if new.serial > p.base_serial {
                            ctx.store.set_pending_ct1(&new.site_code, None)?;
                        }
                    }
                    ctx.publish_config(new);
                    applied += 1;
                }
                Err(reason) => {
                    ctx.store.reject_ct1(
                        key,
                        &BadCt1 {
                            ct1: ct1.clone(),
                            reason: reason.clone(),
                            rejected_unix_ms: now_ms(),
                        },
                    )?;
                    ctx.store.durable().await?;
                    tracing::error!(origin = %ct1.origin, "CT1 rejected and kept in the bad box: {reason}");
                    crate::status::emit(
                        ctx,
                        &catalog::CT1_REJECTED,
                        &[ct1.proposed.site_code.to_string(), reason],
                    )?;
                    ctx.bootstrap.changed();
                }
            }
        }
    }
}

/// A primary removed from its parent's hierarchy (`delete-site` there)
/// detaches instead of removing its install: it is administered here and
/// may have sites of its own below it, which a removed install would
/// strand. It forgets its parent (the despooler then refuses the parent's
/// link as not a neighbour's, and nothing is reported up any more), becomes
/// a central site (its site control moves on one serial, without a parent;
/// stage 4 reports to its own Hierarchy Manager), and sets aside what was
/// queued for the parent: reports are dropped, anything else goes to the
/// failed box with the reason. Each step is idempotent, so a crash part way
/// resumes from the deinstall job still in the inbox.
async fn detach(ctx: &Arc<Ctx>, key: u64, parent: &SiteCode) -> anyhow::Result<()> {
    let Some(mut id) = ctx.identity() else {
        return Ok(());
    };
    let me = id.site_code.clone();
    tracing::warn!(parent = %parent, "removed from its parent's hierarchy: detaching; this site carries on as a central site");
    if id.parent.is_some() {
        id.parent = None;
        id.ancestors.clear();
        ctx.set_identity(id)?;
    }
    ctx.sites
        .update(&ctx.store, &me, |r| r.parent_site_code.take().is_some())
        .await?;
    let reason =
        format!("site {me} left the hierarchy of site {parent}; nothing goes to {parent} any more");
    let mut set_aside = 0;
    for p in Priority::ALL {
        loop {
            let batch = ctx.store.outbox_scan(parent, p, None, 256)?;
            if batch.is_empty() {
                break;
            }
            for (k, job) in batch {
                set_aside += 1;
                match job.payload {
                    Payload::Ct2(_) | Payload::Status(_) => ctx.store.outbox_remove(&[k])?,
                    _ => ctx.store.outbox_fail(
                        k,
                        &FailedJob {
                            job,
                            reason: reason.clone(),
                            failed_unix_ms: now_ms(),
                        },
                    )?,
                }
            }
        }
    }
    let Some(mut new) = ctx.store.ct0()? else {
        ctx.store.inbox_remove(Inbox::SiteControl, key)?;
        return Ok(());
    };
    new.serial += 1;
    new.parent_site_code = None;
    // The deinstall job leaves the inbox with the new control, in one step.
    ctx.store.apply_ct1(key, &new)?;
    ctx.store.durable().await?;
    crate::witness::record(ctx, new.serial)?;
    crate::status::emit(
        ctx,
        &catalog::SITE_DETACHED,
        &[parent.to_string(), set_aside.to_string()],
    )?;
    ctx.publish_config(new);
    ctx.links.wake(parent);
    Ok(())
}

/// `force-ct2` (article 002's workaround of renaming CT0 to a CT1): the
/// current CT0 goes back into the inbox as a CT1, the cycle processes it into
/// a new serial and stage 4 sends a fresh CT2 whatever is already queued.
/// Returns the serial it becomes.
pub async fn force_ct2(ctx: &Arc<Ctx>) -> anyhow::Result<(SiteCode, u64)> {
    let id = ctx
        .identity()
        .ok_or_else(|| anyhow::anyhow!("this node is bare: no site is installed here"))?;
    let ct0 = ctx.config().ok_or_else(|| {
        anyhow::anyhow!(
            "site {} has no site control (CT0) to re-process yet",
            id.site_code
        )
    })?;
    let serial = ct0.serial;
    let mut ct1 = Ct1 {
        signature: None,
        base_serial: serial,
        proposed: ct0,
        origin: "force-ct2 (CT0 re-processed as a CT1)".into(),
    };
    crate::trust::sign_ct1(ctx, &mut ct1).map_err(|e| anyhow::anyhow!("{e}"))?;
    queue_own_ct1(ctx, &id, ct1).await?;
    ctx.scm.request_ct2();
    tracing::info!(serial, "force-ct2: CT0 placed in the inbox as a CT1");
    crate::status::emit(
        ctx,
        &catalog::CT2_FORCED,
        &[id.site_code.to_string(), serial.to_string()],
    )?;
    ctx.scm.wake();
    Ok((id.site_code, serial + 1))
}

/// Puts a CT1 in this site's own inbox, durably, as if it had arrived (the
/// next cycle validates it like any other; `submit-ct1` and `force-ct2`).
pub async fn queue_own_ct1(ctx: &Ctx, id: &Identity, ct1: Ct1) -> anyhow::Result<()> {
    let job = Job::new(
        id.site_code.clone(),
        id.site_code.clone(),
        Priority::High,
        Payload::Ct1(ct1),
    );
    ctx.store.put_inbox(Inbox::SiteControl, &job)?;
    ctx.store.durable().await?;
    Ok(())
}

/// Checks a CT1 against the current CT0; returns the CT0 it becomes.
pub fn validate(
    ctx: &Ctx,
    ct1: &Ct1,
    current: Option<&SiteControl>,
) -> Result<SiteControl, String> {
    let id = ctx.identity().ok_or("no site is installed")?;
    let p = &ct1.proposed;
    if p.site_code != id.site_code {
        return Err(format!(
            "it is for site {}, but this is site {}",
            p.site_code, id.site_code
        ));
    }
    let serial = current.map(|c| c.serial).unwrap_or(0);
    if ct1.base_serial != serial {
        return Err(format!(
            "it is stale: it was made against serial {} but the site control is at serial {serial}",
            ct1.base_serial
        ));
    }
    if p.polling_interval_ms < MIN_POLLING_INTERVAL_MS {
        return Err(format!(
            "polling interval {} ms is below the minimum of {MIN_POLLING_INTERVAL_MS} ms",
            p.polling_interval_ms
        ));
    }
    if p.site_name.trim().is_empty() {
        return Err("the site name is empty".into());
    }
    if let Some(c) = current.filter(|c| p.next_unique_id < c.next_unique_id) {
        return Err(format!(
            "it would move the next SMS unique ID back from {} to {}, and IDs must never be issued twice",
            c.next_unique_id, p.next_unique_id
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for d in &p.domains {
        if d.name.trim().is_empty() {
            return Err("a domain has an empty name".into());
        }
        if !names.insert(d.name.to_ascii_lowercase()) {
            return Err(format!("domain {} is listed twice", d.name));
        }
    }
    let mut codes = std::collections::BTreeSet::new();
    for a in &p.addresses {
        if !codes.insert(a.site_code.clone()) {
            return Err(format!("site {} has two addresses", a.site_code));
        }
        if a.retry_count == 0 {
            return Err(format!(
                "the address of site {} allows no attempts",
                a.site_code
            ));
        }
    }
    sms_types::limits::check_site_control(p)?;
    let mut new = p.clone();
    new.serial = serial + 1;
    // Logon servers are the site's own business (kept beside CT0).
    for d in &mut new.domains {
        d.logon_servers.clear();
    }
    new.parent_site_code = id.parent.map(|p| p.site_code);
    new.version = SOFTWARE_VERSION.to_string();
    Ok(new)
}

/// Stage 2: enumerate each domain's servers.
fn stage2(ctx: &Ctx) {
    let Some(cfg) = ctx.config() else { return };
    for d in &cfg.domains {
        tracing::info!(domain = %d.name, browse = ?d.browse, logon_servers = d.logon_servers.len(), "domain in site control");
    }
    tracing::info!(domains = cfg.domains.len(), "stage 2 done");
}

/// Stage 3: make the running components match the site definition.
fn stage3(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    if ctx.tasks.is_cancelled() {
        return Ok(());
    }
    let Some(id) = ctx.identity() else {
        return Ok(());
    };
    let mut required = vec![
        site_component::SCHEDULER,
        site_component::SENDER,
        site_component::DESPOOLER,
        site_component::SITE_CONFIG_MANAGER,
        site_component::STATUS_MANAGER,
        site_component::SITE_COMPONENT_MANAGER,
    ];
    if id.kind == SiteKind::Primary {
        required.push(site_component::HIERARCHY_MANAGER);
    }
    let mut reinstall = false;
    for name in required {
        match ctx.components.state(name) {
            Some(s) if s == "running" => {}
            Some(s) if s.starts_with("restarting") => {
                tracing::warn!(component = name, state = %s, "component is restarting after an error");
            }
            other => {
                tracing::warn!(component = name, state = ?other, "component missing or stopped; reinstalling it");
                ctx.components.remove(name);
                reinstall = true;
            }
        }
    }
    if reinstall {
        ctx.upcalls()?.install_transport()?;
        ctx.upcalls()?.install_components()?;
    }
    tracing::info!(
        components = ctx.components.list().len(),
        "stage 3 done: components verified"
    );
    Ok(())
}

/// Stage 4: report the installed state (CT2) to the parent's Hierarchy
/// Manager, or to this central site's own.
async fn stage4(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let (Some(id), Some(cfg)) = (ctx.identity(), ctx.config()) else {
        tracing::info!("no site control yet; no CT2");
        return Ok(());
    };
    match ctx.store.bootstrap_state()? {
        None | Some(BootstrapState::Complete) => {}
        Some(BootstrapState::Running { completed_phase: 3 }) => {
            if !bootstrap::report_phase4(ctx).await? {
                tracing::info!("the install is failing in phase 4; no CT2");
                return Ok(());
            }
        }
        Some(other) => {
            tracing::info!(bootstrap = ?other, "the install is not complete; no CT2 yet");
            return Ok(());
        }
    }
    let forced = ctx.scm.take_ct2_request();
    if let Some(p) = id.parent.as_ref().filter(|_| !forced) {
        // One report in the outbox is enough: while the parent is out of
        // reach, cycles must not pile up CT2s (the next cycle after the queue
        // drains reports the then current state).
        if ctx.store.ct2_queued(&p.site_code, &id.site_code)? {
            tracing::info!(parent = %p.site_code, "a CT2 is still queued for the parent; not adding another");
            return Ok(());
        }
    }
    let mut ct2 = Ct2 {
        signature: None,
        site_code: id.site_code.clone(),
        parent_site_code: id.parent.as_ref().map(|p| p.site_code.clone()),
        serial: cfg.serial,
        control: crate::mp_install::control_view(ctx, crate::logon::control_view(ctx, cfg.clone())),
        components: ctx.components.list(),
        version: id.version.clone(),
        reported_unix_ms: now_ms(),
        server: ctx.advertise.clone(),
        kind: id.kind,
    };
    crate::trust::sign_ct2(ctx, &mut ct2).map_err(|e| anyhow::anyhow!("{e}"))?;
    match &id.parent {
        Some(p) => {
            let job = Job::new(
                id.site_code.clone(),
                p.site_code.clone(),
                Priority::High,
                Payload::Ct2(ct2),
            );
            crate::scheduler::submit(ctx, &job).await?;
            tracing::info!(job = %job.id, serial = cfg.serial, parent = %p.site_code, "CT2 written and queued for the parent's Hierarchy Manager");
        }
        None => {
            let job = Job::new(
                id.site_code.clone(),
                id.site_code.clone(),
                Priority::High,
                Payload::Ct2(ct2),
            );
            ctx.store.put_inbox(Inbox::Hierarchy, &job)?;
            ctx.store.durable().await?;
            ctx.hm.wake();
            tracing::info!(
                serial = cfg.serial,
                "CT2 written to this site's own Hierarchy Manager"
            );
        }
    }
    Ok(())
}
