//! The Site Component Manager's management point work (seed 001's
//! walkthrough), logged step by step in `sitecomp.log`: a role assigned in
//! site control is flagged for installation (1013), installed (1014: the
//! server's connectivity, the volume with the most free space, the install
//! directory, identification, the files, the site database's access group,
//! then setup on the server) and reported installed (1015) or failed with
//! the cause, and retried every polling interval until it succeeds or the
//! role is removed. A removed role is uninstalled.

use std::sync::Arc;
use std::time::Duration;

use sms_types::catalog::{self, MessageDef};
use sms_types::mp::*;
use sms_types::*;

use crate::core::Ctx;

/// The component as the seed names it.
pub const COMPONENT: &str = "SMS_MP_CONTROL_MANAGER";

fn interval(cfg: &SiteControl) -> String {
    humanize(Duration::from_millis(cfg.polling_interval_ms))
}

/// "60 minutes", "300 ms": the retry interval as 1013 words it.
pub fn humanize(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{} seconds", ms / 1000)
    } else {
        format!("{} minutes", ms / 60_000)
    }
}

/// The site control as shown and reported: each management point with its
/// install state, and roles being removed still listed.
pub fn control_view(ctx: &Ctx, mut ctl: SiteControl) -> SiteControl {
    let records = ctx.store.mp_records().unwrap_or_default();
    for m in &mut ctl.management_points {
        if let Some(r) = records
            .iter()
            .find(|r| r.server.eq_ignore_ascii_case(&m.server))
        {
            fill(m, r);
        }
    }
    for r in &records {
        if !ctl
            .management_points
            .iter()
            .any(|m| m.server.eq_ignore_ascii_case(&r.server))
        {
            let mut m = ManagementPoint::new(r.server.clone(), r.port, false);
            fill(&mut m, r);
            ctl.management_points.push(m);
        }
    }
    ctl
}

fn fill(m: &mut ManagementPoint, r: &MpRecord) {
    m.state = r.state;
    m.detail = r.detail.clone();
    m.verified_unix_ms = r.verified_unix_ms;
    m.verification = r.verification.clone();
    m.bound_port = r.bound_port;
}

/// Reports a failure: the record says why; the status message goes out
/// when the cause changes, and at most once a minute while it repeats.
fn report(ctx: &Ctx, r: &MpRecord, def: &MessageDef, args: &[String]) {
    let text = catalog::render(def, args);
    tracing::error!("{text}");
    let key = format!("mp:{}:{}:{}", def.id, r.server, r.detail);
    if ctx.links.should_report(&key) {
        let _ = crate::status::emit(ctx, def, args);
    }
}

/// Stage 3's management point pass.
pub async fn reconcile(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let (Some(id), Some(cfg)) = (ctx.identity(), ctx.config()) else {
        return Ok(());
    };
    let mut records = ctx.store.mp_records()?;
    // New roles: flagged for installation.
    for m in &cfg.management_points {
        if records
            .iter()
            .any(|r| r.server.eq_ignore_ascii_case(&m.server))
        {
            continue;
        }
        let mut r = MpRecord::new(m.server.clone(), m.port);
        r.changed_unix_ms = now_ms();
        ctx.store.put_mp_record(&r)?;
        ctx.store.durable().await?;
        tracing::info!(
            "Assigned the \"SMS Management Point\" role to server {}.",
            r.server
        );
        tracing::info!(
            "Component {COMPONENT} flagged for installation on {} (port {}).",
            r.server,
            r.port
        );
        crate::status::emit(
            ctx,
            &catalog::MP_FLAGGED,
            &[r.server.clone(), r.port.to_string(), interval(&cfg)],
        )?;
        records.push(r);
    }
    // Removed roles: pending uninstall.
    for r in records.iter_mut() {
        let listed = cfg
            .management_points
            .iter()
            .any(|m| m.server.eq_ignore_ascii_case(&r.server));
        if !listed && r.state != MpState::PendingUninstall {
            tracing::info!(
                "The management point role was removed from server {}: pending uninstall.",
                r.server
            );
            r.state = MpState::PendingUninstall;
            r.detail = "the role was removed from site control".into();
            r.changed_unix_ms = now_ms();
            ctx.store.put_mp_record(r)?;
            ctx.store.durable().await?;
        }
    }
    for mut r in records {
        match r.state {
            MpState::PendingInstall | MpState::Installing | MpState::Failed => {
                install(ctx, &id, &cfg, &mut r).await?
            }
            MpState::Active if r.policy_version != policy_version(ctx, &cfg) => {
                refresh(ctx, &id, &cfg, &mut r).await?
            }
            MpState::Active => {}
            MpState::PendingUninstall => uninstall(ctx, &id, &cfg, &r).await?,
        }
    }
    Ok(())
}

/// The component's files, as copied to the server's install directory.
fn component_files(
    site: &SiteCode,
    address: &str,
    port: u16,
    cert: &[u8],
    policies: &[Policy],
) -> Vec<MpFile> {
    let mut files = vec![MpFile {
        name: "mp.conf".into(),
        bytes: format!(
            "# Management point of site {site}\nsite_code = \"{site}\"\nsite_server = \"{address}\"\nport = {port}\nversion = \"{MP_VERSION}\"\n"
        )
        .into_bytes(),
    }];
    if !cert.is_empty() {
        files.push(MpFile {
            name: "site.cer".into(),
            bytes: cert.to_vec(),
        });
    }
    for p in policies {
        files.push(MpFile {
            name: format!("{}.{}.xml", p.id, p.version),
            bytes: p.body.clone().into_bytes(),
        });
    }
    files
}

/// The policies this site's management points serve. Their version moves
/// with the site control's serial and with the set of serving management
/// points they list, so a client never sees two bodies under one version.
fn policies(ctx: &Ctx, cfg: &SiteControl) -> Vec<Policy> {
    let records = ctx.store.mp_records().unwrap_or_default();
    let mut mps: Vec<(bool, String)> = records
        .iter()
        .filter(|r| r.state == MpState::Active && r.bound_port != 0)
        .filter_map(|r| {
            let m = cfg
                .management_points
                .iter()
                .find(|m| m.server.eq_ignore_ascii_case(&r.server))?;
            let host = m
                .server
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(&m.server);
            let tag = if m.is_default { " (default)" } else { "" };
            Some((
                !m.is_default,
                format!("http://{host}:{}{tag}", r.bound_port),
            ))
        })
        .collect();
    mps.sort();
    let list: Vec<String> = mps.into_iter().map(|(_, m)| m).collect();
    let version = cfg.serial.saturating_mul(1000) + list.len() as u64;
    vec![machine_policy(
        cfg.site_code.as_str(),
        version,
        cfg.polling_interval_ms,
        &list,
    )]
}

fn policy_version(ctx: &Ctx, cfg: &SiteControl) -> u64 {
    policies(ctx, cfg)
        .iter()
        .map(|p| p.version)
        .max()
        .unwrap_or(0)
}

fn site_certificate(ctx: &Ctx) -> Vec<u8> {
    crate::trust::node_credentials(&ctx.store)
        .ok()
        .flatten()
        .and_then(|c| c.chain.into_iter().next())
        .unwrap_or_default()
}

/// An install step that failed for a cause no check names: recorded and
/// reported (1016) with the retry interval.
fn install_failed(
    ctx: &Ctx,
    r: &mut MpRecord,
    server: &str,
    why: String,
    every: &str,
) -> anyhow::Result<()> {
    fail(ctx, r, why.clone())?;
    report(
        ctx,
        r,
        &catalog::MP_INSTALL_FAILED,
        &[server.to_string(), why, every.to_string()],
    );
    Ok(())
}

fn fail(ctx: &Ctx, r: &mut MpRecord, why: String) -> anyhow::Result<()> {
    r.state = MpState::Failed;
    r.detail = why;
    r.changed_unix_ms = now_ms();
    ctx.store.put_mp_record(r)?;
    Ok(())
}

async fn install(
    ctx: &Arc<Ctx>,
    id: &Identity,
    cfg: &SiteControl,
    r: &mut MpRecord,
) -> anyhow::Result<()> {
    let server = r.server.clone();
    let every = interval(cfg);
    r.attempts += 1;
    r.state = MpState::Installing;
    r.detail = "installing".into();
    r.changed_unix_ms = now_ms();
    ctx.store.put_mp_record(r)?;
    ctx.store.durable().await?;
    crate::status::emit(
        ctx,
        &catalog::MP_INSTALLING,
        &[server.clone(), r.attempts.to_string()],
    )?;
    tracing::info!("Installing server {server} (attempt {})...", r.attempts);
    tracing::info!("Testing connectivity to server {server}...");
    let target = match ctx.peers.mp_describe(&server).await {
        Ok(t) => t,
        Err(e) => {
            fail(ctx, r, format!("cannot reach {server}: {e}"))?;
            report(ctx, r, &catalog::MP_UNREACHABLE, &[server.clone(), e]);
            tracing::info!("The install will be retried in {every}.");
            return Ok(());
        }
    };
    tracing::info!(
        "Server {server} is accessible: node {}, {}.",
        target.node_id,
        target.role
    );
    let refusal = if target.role == "site-server" && target.site_code != id.site_code.as_str() {
        Some(format!(
            "{server} is the site server of site {}",
            target.site_code
        ))
    } else if !target.mp_site.is_empty() && target.mp_site != id.site_code.as_str() {
        Some(format!(
            "{server} is already a management point of site {}",
            target.mp_site
        ))
    } else {
        None
    };
    if let Some(why) = refusal {
        return install_failed(ctx, r, &server, why, &every);
    }
    tracing::info!("Enumerating the server's allowed data volumes for the supported one with the most free space.");
    for v in &target.volumes {
        if v.supported {
            tracing::info!(
                "Volume {}: {}, {} MB free.",
                v.path,
                v.fs_type,
                v.free_bytes / 1_000_000
            );
        } else {
            tracing::info!("Volume {}: {}, not usable: {}.", v.path, v.fs_type, v.why);
        }
    }
    let Some(best) = target
        .volumes
        .iter()
        .filter(|v| v.supported)
        .max_by_key(|v| v.free_bytes)
    else {
        let why = if target.volumes.is_empty() {
            "the server allows no data volumes".to_string()
        } else {
            format!(
                "no allowed data volume is usable ({})",
                target
                    .volumes
                    .iter()
                    .map(|v| format!("{}: {}", v.path, v.why))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        fail(ctx, r, why.clone())?;
        report(ctx, r, &catalog::MP_BAD_FILESYSTEM, &[server.clone(), why]);
        tracing::info!("The install will be retried in {every}.");
        return Ok(());
    };
    tracing::info!(
        "Volume {} is the best volume for the installation directory.",
        best.path
    );
    let cert = site_certificate(ctx);
    let pols = policies(ctx, cfg);
    let files = component_files(&id.site_code, &ctx.advertise, r.port, &cert, &pols);
    let bytes: usize = files.iter().map(|f| f.bytes.len()).sum();
    tracing::info!("{bytes} bytes are required for this component's files.");
    let prep = MpPrepare {
        site_code: id.site_code.to_string(),
        site_address: ctx.advertise.clone(),
        volume: best.path.clone(),
        files,
    };
    let install_dir = match ctx.peers.mp_prepare(&server, prep).await {
        Ok((dir, lines)) => {
            for l in lines {
                tracing::info!("{l}");
            }
            tracing::info!("All files installed.");
            dir
        }
        Err(e) => {
            let why = format!("copying the component's files failed: {e}");
            return install_failed(ctx, r, &server, why, &every);
        }
    };
    tracing::info!(
        "Adding server {server} to the access group of the site database of site {}...",
        id.site_code
    );
    let denied = ctx.store.faults()?.contains(&Fault::MpDbAccessRefused);
    if denied {
        let why =
            "the site database refused the change to its access group (fault mp-db-access-refused)"
                .to_string();
        report(
            ctx,
            r,
            &catalog::MP_ACCESS_GROUP,
            &[
                server.clone(),
                target.node_id.clone(),
                id.site_code.to_string(),
                why,
            ],
        );
    } else {
        ctx.store
            .grant_mp_access(&target.node_id, &target.cert_label)?;
        ctx.store.durable().await?;
        tracing::info!(
            "Server {server} (node {}) is in the site database's access group.",
            target.node_id
        );
    }
    tracing::info!(
        "Starting management point setup on {server} (its mpsetup.log tells the details)..."
    );
    let setup = MpSetup {
        site_code: id.site_code.to_string(),
        site_address: ctx.advertise.clone(),
        port: r.port,
        version: MP_VERSION.to_string(),
        install_dir: install_dir.clone(),
        site_certificate: cert,
        policies: pols.clone(),
    };
    let result = match ctx.peers.mp_setup(&server, setup).await {
        Ok(res) => res,
        Err(e) => {
            let why = format!("setup did not answer: {e}");
            return install_failed(ctx, r, &server, why, &every);
        }
    };
    r.node_id = target.node_id.clone();
    r.install_dir = install_dir.clone();
    match result.outcome {
        Ok(port) => {
            r.state = MpState::Active;
            r.bound_port = port;
            r.detail = format!("installed in {install_dir}, serving on port {port}");
            r.policy_version = pols.iter().map(|p| p.version).max().unwrap_or(0);
            r.changed_unix_ms = now_ms();
            ctx.store.put_mp_record(r)?;
            ctx.store.durable().await?;
            tracing::info!(
                "Setup on {server} succeeded: the management point serves on port {port}."
            );
            tracing::info!("Installation successful.");
            crate::status::emit(
                ctx,
                &catalog::MP_INSTALLED,
                &[server.clone(), port.to_string(), install_dir],
            )?;
        }
        Err((check, detail)) => {
            fail(ctx, r, format!("{} check: {detail}", check.as_str()))?;
            tracing::error!(
                "Setup on {server} failed on its {} check: {detail}",
                check.as_str()
            );
            let (def, args) = match check {
                MpCheck::Filesystem => (&catalog::MP_BAD_FILESYSTEM, vec![server.clone(), detail]),
                MpCheck::Space => (&catalog::MP_LOW_SPACE, vec![server.clone(), detail]),
                MpCheck::Port => (&catalog::MP_PORT_TAKEN, vec![server.clone(), detail]),
                MpCheck::Version => (&catalog::MP_LATER_VERSION, vec![server.clone(), detail]),
                MpCheck::Database => (
                    &catalog::MP_DB_REFUSED,
                    vec![server.clone(), id.site_code.to_string(), detail],
                ),
                MpCheck::Other => (
                    &catalog::MP_INSTALL_FAILED,
                    vec![server.clone(), detail, every.clone()],
                ),
            };
            report(ctx, r, def, &args);
            tracing::info!("The install will be retried in {every}.");
        }
    }
    Ok(())
}

/// Site control changed: the management point gets the new policies.
async fn refresh(
    ctx: &Arc<Ctx>,
    id: &Identity,
    cfg: &SiteControl,
    r: &mut MpRecord,
) -> anyhow::Result<()> {
    let pols = policies(ctx, cfg);
    let setup = MpSetup {
        site_code: id.site_code.to_string(),
        site_address: ctx.advertise.clone(),
        port: r.bound_port,
        version: MP_VERSION.to_string(),
        install_dir: r.install_dir.clone(),
        site_certificate: site_certificate(ctx),
        policies: pols.clone(),
    };
    match ctx.peers.mp_setup(&r.server, setup).await {
        Ok(MpSetupResult { outcome: Ok(_), .. }) => {
            r.policy_version = pols.iter().map(|p| p.version).max().unwrap_or(0);
            ctx.store.put_mp_record(r)?;
            ctx.store.durable().await?;
            tracing::info!(
                "Management point {} now holds policy version {}.",
                r.server,
                r.policy_version
            );
        }
        Ok(MpSetupResult {
            outcome: Err((_, e)),
            ..
        })
        | Err(e) => {
            tracing::warn!(
                "Could not refresh the policies of management point {}: {e}",
                r.server
            )
        }
    }
    Ok(())
}

async fn uninstall(
    ctx: &Arc<Ctx>,
    id: &Identity,
    cfg: &SiteControl,
    r: &MpRecord,
) -> anyhow::Result<()> {
    tracing::info!(
        "Removing the management point component from {}...",
        r.server
    );
    match ctx.peers.mp_uninstall(&r.server, &id.site_code).await {
        Ok(_) => {
            if !r.node_id.is_empty() {
                ctx.store.revoke_mp_access(&r.node_id)?;
            }
            ctx.store.remove_mp_record(&r.server)?;
            ctx.store.durable().await?;
            tracing::info!(
                "Deinstallation of the management point on {} successful.",
                r.server
            );
            crate::status::emit(
                ctx,
                &catalog::MP_UNINSTALLED,
                &[r.server.clone(), r.bound_port.to_string()],
            )?;
        }
        Err(e) => {
            let _ = cfg;
            report(
                ctx,
                r,
                &catalog::MP_UNINSTALL_FAILED,
                &[r.server.clone(), e],
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_the_seed_words_them() {
        assert_eq!(humanize(Duration::from_millis(300)), "300 ms");
        assert_eq!(humanize(Duration::from_secs(60)), "60 seconds");
        assert_eq!(humanize(Duration::from_secs(3600)), "60 minutes");
    }

    #[test]
    fn component_files_carry_config_certificate_and_policies() {
        let site: SiteCode = "S01".parse().unwrap();
        let pol = machine_policy("S01", 4, 60_000, &["http://h:80 (default)".into()]);
        let f = component_files(
            &site,
            "10.0.0.1:8500",
            8080,
            b"DER",
            std::slice::from_ref(&pol),
        );
        let names: Vec<_> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["mp.conf", "site.cer", "S01-MACHINE.4.xml"]);
        assert!(String::from_utf8_lossy(&f[0].bytes).contains("port = 8080"));
        // Without a certificate (an --insecure site) there is no site.cer.
        assert_eq!(component_files(&site, "a:1", 0, b"", &[]).len(), 1);
    }
}
