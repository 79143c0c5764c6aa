//! Domains, logon servers and SMS unique IDs (stages 2 and 3 of the watchdog
//! cycle, and the logon server component on member servers).
//!
//! A site's domains (name and browse list) are in its site control. The
//! logon servers it finds and installs, and its unique ID counter, are kept
//! beside the CT0 (not in it: discovery must not bump the serial and turn
//! every change made at an ancestor stale) and merged into every view of
//! the site control and into its CT2s.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::core::Ctx;
use sms_types::catalog;
use sms_types::link::{LogonInstallRequest, LogonScript, LogonView, NodeRole};
use sms_types::*;

/// IDs per range handed to a logon server.
pub const RANGE_SIZE: u64 = 1000;
/// A logon server asks for its next range when fewer IDs than this are left.
pub const LOW_WATER: u64 = 300;

/// A range past the eight-digit ID space is never handed out (the counter
/// has moved past it, so the refusal does not repeat a range later).
fn within_id_space(range: (u64, u64)) -> Result<(), String> {
    if range.1 > sms_types::limits::MAX_UNIQUE_ID + 1 {
        return Err(format!(
            "the site's SMS unique ID space is used up (the next range would end at {}, past {})",
            range.1 - 1,
            sms_types::limits::MAX_UNIQUE_ID
        ));
    }
    Ok(())
}
/// Port assumed for a browse entry given without one.
pub const DEFAULT_PORT: u16 = 8500;

/// The site control as the site reports it: CT0 plus its logon servers and
/// its unique ID counter.
pub fn control_view(ctx: &Ctx, mut ctl: SiteControl) -> SiteControl {
    let records = ctx.store.logon_records().unwrap_or_default();
    for d in &mut ctl.domains {
        d.logon_servers = records
            .iter()
            .filter(|r| r.domain.eq_ignore_ascii_case(&d.name))
            .map(|r| LogonServer {
                server: r.server.clone(),
                state: r.state,
            })
            .collect();
    }
    // A removed domain stays visible while its servers are being uninstalled.
    let listed: Vec<String> = ctl
        .domains
        .iter()
        .map(|d| d.name.to_ascii_lowercase())
        .collect();
    for r in records
        .iter()
        .filter(|r| !listed.contains(&r.domain.to_ascii_lowercase()))
    {
        let server = LogonServer {
            server: r.server.clone(),
            state: r.state,
        };
        match ctl.domains.iter_mut().find(|d| d.name == r.domain) {
            Some(d) => d.logon_servers.push(server),
            None => ctl.domains.push(Domain {
                name: r.domain.clone(),
                browse: vec![],
                logon_servers: vec![server],
            }),
        }
    }
    ctl.next_unique_id = ctx
        .store
        .next_unique_id(ctl.next_unique_id)
        .unwrap_or(ctl.next_unique_id);
    ctl
}

/// The logon script a site hands its logon servers.
fn script(site: &SiteCode, version: u64) -> String {
    format!("@echo off\r\nrem SMS logon script of site {site}, version {version}\r\nrem Registers the client with site {site} and runs its inventory.\r\n")
}

/// Stage 2: probe each domain's browse list (every address a DNS name
/// resolves to) and record new member servers as pending-install.
/// Logon servers of domains no longer in site control become pending-uninstall.
pub async fn discover(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let (Some(id), Some(cfg)) = (ctx.identity(), ctx.config()) else {
        return Ok(());
    };
    let mut records = ctx.store.logon_records()?;
    for r in records.iter_mut() {
        let listed = cfg
            .domains
            .iter()
            .any(|d| d.name.eq_ignore_ascii_case(&r.domain));
        if !listed && r.state != LogonState::PendingUninstall {
            tracing::info!(server = %r.server, domain = %r.domain, "domain removed from site control: logon server pending-uninstall");
            r.state = LogonState::PendingUninstall;
            r.changed_unix_ms = now_ms();
            ctx.store.put_logon_record(r)?;
        }
    }
    for d in &cfg.domains {
        let mut found = 0;
        for entry in &d.browse {
            let target = if entry.contains(':') {
                entry.clone()
            } else {
                format!("{entry}:{DEFAULT_PORT}")
            };
            let addrs: BTreeSet<String> = match tokio::net::lookup_host(target.as_str()).await {
                Ok(a) => a.map(|a| a.to_string()).collect(),
                Err(e) => {
                    report(
                        ctx,
                        &catalog::LOGON_UNRESOLVED,
                        &[entry.clone(), d.name.clone(), e.to_string()],
                    );
                    continue;
                }
            };
            if addrs.is_empty() {
                report(
                    ctx,
                    &catalog::LOGON_UNRESOLVED,
                    &[entry.clone(), d.name.clone(), "no address".into()],
                );
            }
            for addr in addrs {
                let known = records
                    .iter()
                    .any(|r| r.server == addr && r.domain.eq_ignore_ascii_case(&d.name));
                match ctx.peers.logon_describe(&addr).await {
                    Err(e) => report(
                        ctx,
                        &catalog::LOGON_UNREACHABLE,
                        &[addr.clone(), d.name.clone(), e],
                    ),
                    Ok(v)
                        if v.role == NodeRole::LogonServer
                            && v.site_code != id.site_code.as_str() =>
                    {
                        report(
                            ctx,
                            &catalog::LOGON_OTHER_SITE,
                            &[addr.clone(), d.name.clone(), v.site_code],
                        )
                    }
                    Ok(v)
                        if !v.domain.eq_ignore_ascii_case(&d.name)
                            || v.role == NodeRole::SiteServer =>
                    {
                        let what = if v.role == NodeRole::SiteServer {
                            format!("a site server of site {}", v.site_code)
                        } else if v.domain.is_empty() {
                            "a member of no domain".into()
                        } else {
                            format!("a member of domain {}", v.domain)
                        };
                        report(
                            ctx,
                            &catalog::LOGON_NOT_MEMBER,
                            &[addr.clone(), d.name.clone(), what],
                        );
                    }
                    Ok(v) => {
                        found += 1;
                        if !known {
                            let r = LogonRecord {
                                domain: d.name.clone(),
                                server: addr.clone(),
                                state: LogonState::PendingInstall,
                                node_id: v.node_id.clone(),
                                range: (0, 0),
                                changed_unix_ms: now_ms(),
                            };
                            ctx.store.put_logon_record(&r)?;
                            records.push(r);
                            tracing::info!(server = %addr, domain = %d.name, "new member server: pending-install");
                            crate::status::emit(
                                ctx,
                                &catalog::LOGON_FOUND,
                                &[addr.clone(), d.name.clone()],
                            )?;
                        }
                    }
                }
            }
        }
        tracing::info!(domain = %d.name, members = found, "domain enumerated");
    }
    ctx.store.durable().await?;
    Ok(())
}

/// Reports a discovery problem at most once a minute per server and kind.
fn report(ctx: &Ctx, def: &catalog::MessageDef, args: &[String]) {
    tracing::warn!("{}", catalog::render(def, args));
    let key = format!(
        "logon:{}:{}",
        def.id,
        args.first().cloned().unwrap_or_default()
    );
    if ctx.links.should_report(&key) {
        let _ = crate::status::emit(ctx, def, args);
    }
}

/// Stage 3: install what is pending-install, verify what is active
/// (reinstalling a server that lost its install), remove what is
/// pending-uninstall.
pub async fn reconcile(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let (Some(id), Some(cfg)) = (ctx.identity(), ctx.config()) else {
        return Ok(());
    };
    for mut r in ctx.store.logon_records()? {
        match r.state {
            LogonState::PendingInstall => install(ctx, &id, &cfg, &mut r).await?,
            LogonState::Active => match ctx.peers.logon_describe(&r.server).await {
                Ok(v)
                    if v.role == NodeRole::LogonServer && v.site_code == id.site_code.as_str() => {}
                Ok(v) if v.role != NodeRole::Bare || !v.domain.eq_ignore_ascii_case(&r.domain) => {
                    // Taken by another site, or no longer a member: report, leave alone.
                    report(
                        ctx,
                        &catalog::LOGON_OTHER_SITE,
                        &[r.server.clone(), r.domain.clone(), v.site_code],
                    );
                }
                Ok(_) => {
                    tracing::warn!(server = %r.server, "logon server lost its install; reinstalling");
                    crate::status::emit(
                        ctx,
                        &catalog::LOGON_REINSTALL,
                        &[r.server.clone(), r.domain.clone()],
                    )?;
                    install(ctx, &id, &cfg, &mut r).await?;
                }
                Err(e) => report(
                    ctx,
                    &catalog::LOGON_UNREACHABLE,
                    &[r.server.clone(), r.domain.clone(), e],
                ),
            },
            LogonState::PendingUninstall => {
                match ctx.peers.logon_uninstall(&r.server, &id.site_code).await {
                    Ok(_) => {
                        ctx.store.remove_logon_record(&r.domain, &r.server)?;
                        ctx.store.durable().await?;
                        tracing::info!(server = %r.server, domain = %r.domain, "logon server uninstalled");
                        crate::status::emit(
                            ctx,
                            &catalog::LOGON_UNINSTALLED,
                            &[r.server.clone(), r.domain.clone()],
                        )?;
                    }
                    Err(e) => report(
                        ctx,
                        &catalog::LOGON_UNREACHABLE,
                        &[r.server.clone(), r.domain.clone(), e],
                    ),
                }
            }
        }
    }
    Ok(())
}

async fn install(
    ctx: &Arc<Ctx>,
    id: &Identity,
    cfg: &SiteControl,
    r: &mut LogonRecord,
) -> anyhow::Result<()> {
    if ctx.store.ids_frozen()? {
        tracing::info!(server = %r.server, "site being deleted: no install");
        return Ok(());
    }
    // The range is taken (durably) before it is handed out: if the install
    // fails, the range is abandoned, never given twice.
    let range = ctx.store.allocate_range(RANGE_SIZE, cfg.next_unique_id)?;
    ctx.store.durable().await?;
    if let Err(e) = within_id_space(range) {
        tracing::error!(server = %r.server, "no logon server install: {e}");
        return Ok(());
    }
    let req = LogonInstallRequest {
        site_code: id.site_code.to_string(),
        site_address: ctx.advertise.clone(),
        domain: r.domain.clone(),
        script_version: cfg.serial,
        script: script(&id.site_code, cfg.serial),
        range_start: range.0,
        range_end: range.1,
    };
    match ctx.peers.logon_install(&r.server, req).await {
        Ok(v) => {
            r.state = LogonState::Active;
            r.node_id = v.node_id;
            r.range = range;
            r.changed_unix_ms = now_ms();
            ctx.store.put_logon_record(r)?;
            ctx.store.durable().await?;
            tracing::info!(server = %r.server, domain = %r.domain, start = range.0, end = range.1, "logon server installed");
            crate::status::emit(
                ctx,
                &catalog::LOGON_INSTALLED,
                &[
                    r.server.clone(),
                    r.domain.clone(),
                    range.0.to_string(),
                    (range.1 - 1).to_string(),
                ],
            )?;
        }
        Err(e) => report(
            ctx,
            &catalog::LOGON_INSTALL_FAILED,
            &[r.server.clone(), r.domain.clone(), e],
        ),
    }
    Ok(())
}

/// Stage 1's logon-script timer: push the current script to every active
/// logon server. Returns how many took it.
pub async fn refresh_scripts(ctx: &Arc<Ctx>) -> anyhow::Result<usize> {
    let (Some(id), Some(cfg)) = (ctx.identity(), ctx.config()) else {
        return Ok(0);
    };
    let mut n = 0;
    for r in ctx
        .store
        .logon_records()?
        .into_iter()
        .filter(|r| r.state == LogonState::Active)
    {
        let update = LogonScript {
            site_code: id.site_code.to_string(),
            version: cfg.serial,
            script: script(&id.site_code, cfg.serial),
        };
        match ctx.peers.logon_refresh(&r.server, update).await {
            Ok(_) => n += 1,
            Err(e) => tracing::warn!(server = %r.server, "logon script refresh failed: {e}"),
        }
    }
    Ok(n)
}

/// A logon server of this site asks for a new ID range.
pub async fn grant_range(ctx: &Arc<Ctx>, node_id: &str) -> Result<(u64, u64), String> {
    if ctx.store.ids_frozen().map_err(|e| e.to_string())? {
        return Err("this site is being deleted; it grants no more ID ranges".into());
    }
    let cfg = ctx.config().ok_or("this site has no site control yet")?;
    let _records = ctx.sites.lock().await;
    let mut rec = ctx
        .store
        .logon_records()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|r| r.node_id == node_id && r.state == LogonState::Active)
        .ok_or_else(|| format!("node {node_id} is not an active logon server of this site"))?;
    let range = ctx
        .store
        .allocate_range(RANGE_SIZE, cfg.next_unique_id)
        .map_err(|e| e.to_string())?;
    within_id_space(range)?;
    rec.range = range;
    ctx.store
        .put_logon_record(&rec)
        .map_err(|e| e.to_string())?;
    ctx.store.durable().await.map_err(|e| e.to_string())?;
    tracing::info!(server = %rec.server, start = range.0, end = range.1, "new unique ID range granted");
    Ok(range)
}

// ---- the member server side ---------------------------------------------------

/// What this node is, as a (potential) logon server.
pub fn describe(ctx: &Ctx) -> LogonView {
    let install = ctx.store.logon_install().ok().flatten();
    let role = if ctx.identity().is_some() {
        NodeRole::SiteServer
    } else if install.is_some() {
        NodeRole::LogonServer
    } else {
        NodeRole::Bare
    };
    let (start, end) = install
        .as_ref()
        .and_then(|l| l.ranges.first().copied())
        .unwrap_or((0, 0));
    LogonView {
        role,
        domain: ctx.store.member_domain().ok().flatten().unwrap_or_default(),
        site_code: match (&install, ctx.identity()) {
            (_, Some(i)) => i.site_code.to_string(),
            (Some(l), None) => l.site_code.to_string(),
            _ => String::new(),
        },
        site_address: install
            .as_ref()
            .map(|l| l.site_address.clone())
            .unwrap_or_default(),
        script_version: install.as_ref().map(|l| l.script_version).unwrap_or(0),
        range_start: start,
        range_end: end,
        next_id: install.as_ref().map(|l| l.next_id.max(start)).unwrap_or(0),
        remaining: install.as_ref().map(|l| l.remaining()).unwrap_or(0),
        node_id: ctx.node_id.to_string(),
    }
}

/// Installs the logon server component for a site on this member server.
pub async fn install_here(ctx: &Arc<Ctx>, req: LogonInstallRequest) -> Result<(), String> {
    if ctx.identity().is_some() {
        return Err("this node is a site server, not a member server".into());
    }
    let domain = ctx.store.member_domain().map_err(|e| e.to_string())?;
    if !domain
        .as_deref()
        .is_some_and(|d| d.eq_ignore_ascii_case(&req.domain))
    {
        return Err(format!(
            "this node is not a member server of domain {}",
            req.domain
        ));
    }
    let site: SiteCode = req
        .site_code
        .parse()
        .map_err(|e: SiteCodeError| e.to_string())?;
    let _lock = ctx.logon.lock().await;
    if let Some(cur) = ctx.store.logon_install().map_err(|e| e.to_string())? {
        if cur.site_code != site {
            return Err(format!(
                "this node is already a logon server of site {}",
                cur.site_code
            ));
        }
    }
    if req.range_end <= req.range_start {
        return Err("the unique ID range is empty".into());
    }
    let l = LogonInstall {
        site_code: site,
        site_address: req.site_address,
        domain: req.domain,
        script_version: req.script_version,
        script: req.script,
        ranges: vec![(req.range_start, req.range_end)],
        next_id: req.range_start,
    };
    ctx.store
        .set_logon_install(Some(&l))
        .map_err(|e| e.to_string())?;
    ctx.store.durable().await.map_err(|e| e.to_string())?;
    tracing::info!(site = %l.site_code, start = req.range_start, end = req.range_end, "logon server component installed");
    Ok(())
}

/// Removes the logon server component (the unused IDs are abandoned).
pub async fn uninstall_here(ctx: &Arc<Ctx>, site: &str) -> Result<(), String> {
    let _lock = ctx.logon.lock().await;
    match ctx.store.logon_install().map_err(|e| e.to_string())? {
        Some(l) if l.site_code.as_str() != site => Err(format!(
            "this node is a logon server of site {}, not {site}",
            l.site_code
        )),
        Some(l) => {
            ctx.store
                .set_logon_install(None)
                .map_err(|e| e.to_string())?;
            ctx.store.durable().await.map_err(|e| e.to_string())?;
            tracing::info!(site = %l.site_code, abandoned = l.remaining(), "logon server component uninstalled");
            Ok(())
        }
        None => Ok(()),
    }
}

pub async fn refresh_here(ctx: &Arc<Ctx>, req: LogonScript) -> Result<(), String> {
    let _lock = ctx.logon.lock().await;
    let mut l = ctx
        .store
        .logon_install()
        .map_err(|e| e.to_string())?
        .ok_or("this node is not a logon server")?;
    if l.site_code.as_str() != req.site_code {
        return Err(format!(
            "this node is a logon server of site {}",
            l.site_code
        ));
    }
    if l.script_version != req.version || l.script != req.script {
        l.script_version = req.version;
        l.script = req.script;
        ctx.store
            .set_logon_install(Some(&l))
            .map_err(|e| e.to_string())?;
        ctx.store.durable().await.map_err(|e| e.to_string())?;
        tracing::info!(version = l.script_version, "logon script refreshed");
    }
    Ok(())
}

/// Hands out `count` SMS unique IDs. They are recorded as used (durably)
/// before they are returned, so none is ever issued twice; when the ranges
/// run low, a new one is requested from the site in the background, and
/// when they run out, this waits for it.
pub async fn allocate(ctx: &Arc<Ctx>, count: usize) -> Result<Vec<u64>, String> {
    let mut out = Vec::with_capacity(count);
    let mut waited = 0;
    while out.len() < count {
        let low = {
            let _lock = ctx.logon.lock().await;
            let mut l = ctx
                .store
                .logon_install()
                .map_err(|e| e.to_string())?
                .ok_or("this node is not a logon server (no site installed the logon server component here)")?;
            let got = l.take(count - out.len());
            if !got.is_empty() {
                ctx.store
                    .set_logon_install(Some(&l))
                    .map_err(|e| e.to_string())?;
                ctx.store.durable().await.map_err(|e| e.to_string())?;
                out.extend(got);
            }
            l.remaining() < LOW_WATER
        };
        if low {
            refill(ctx);
        }
        if out.len() < count {
            waited += 1;
            if waited > 100 {
                return Err("the site did not grant a new ID range in time; IDs already taken are not reissued".into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    Ok(out)
}

/// Asks the site for one more range, once at a time.
fn refill(ctx: &Arc<Ctx>) {
    let Some(flight) = ctx.logon.refill().try_begin() else {
        return;
    };
    let c = ctx.clone();
    ctx.tasks.spawn("logon range refill", async move {
        let _flight = flight;
        let result = async {
            let l = c
                .store
                .logon_install()
                .map_err(|e| e.to_string())?
                .ok_or("not a logon server")?;
            let site = l.site_code.clone();
            let range = c
                .peers
                .request_id_range(&l.site_address, &site, &c.node_id.to_string())
                .await?;
            let _lock = c.logon.lock().await;
            let mut l = c
                .store
                .logon_install()
                .map_err(|e| e.to_string())?
                .ok_or("not a logon server")?;
            if l.site_code != site {
                return Err(format!(
                    "the install changed to site {} meanwhile; the range of {site} is dropped",
                    l.site_code
                ));
            }
            if !l.ranges.contains(&range) {
                l.ranges.push(range);
            }
            c.store
                .set_logon_install(Some(&l))
                .map_err(|e| e.to_string())?;
            c.store.durable().await.map_err(|e| e.to_string())?;
            tracing::info!(
                start = range.0,
                end = range.1,
                "received a new unique ID range"
            );
            Ok::<_, String>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!("could not get a new unique ID range: {e}");
        }
    });
}
