//! Bootstrap: the part of a bare node that takes a site install from a
//! parent and performs it in four phases, reporting each phase as a status
//! message once a path to the parent exists.
//!
//! Progress is persisted after every phase, so a node killed mid-install
//! resumes where it stopped. A failure is written to `bootstrap.log` and the
//! bootstrap stops; nothing about it is sent to the parent (as in SMS, the
//! parent keeps showing the last phase it heard of).

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use sms_types::catalog;
use sms_types::*;

use crate::core::Ctx;
use crate::error::Refused;
use crate::site_component;
use sms_store::{Inbox, StoreError};
use sms_types::records::{BootstrapRefusal, BootstrapSlot, ReceivedBootstrap};

/// Whether a new package may take the bootstrap slot. A node with a site
/// installed takes one only when its parent runs the install again
/// (`reinstall`). A package already held may be replaced when its install
/// failed, or (on a reinstall) when it finished; never while it runs.
pub fn replaceable(slot: &BootstrapSlot, reinstall: bool) -> Result<(), BootstrapRefusal> {
    if slot.installed && !reinstall {
        return Err(BootstrapRefusal::AlreadyInstalled);
    }
    let Some(existing) = &slot.existing else {
        return Ok(());
    };
    let failed = matches!(slot.state, Some(BootstrapState::Failed { .. }));
    // A package with no recorded state never started: treat it as done.
    let complete = matches!(slot.state, None | Some(BootstrapState::Complete));
    if failed || (reinstall && complete) {
        Ok(())
    } else {
        Err(BootstrapRefusal::Installing(
            existing.package.site_code.clone(),
        ))
    }
}

/// Takes a bootstrap package: durable before this returns, then the phases
/// run in the background.
pub async fn accept(ctx: &Arc<Ctx>, job_id: Uuid, pkg: BootstrapPackage) -> Result<(), Refused> {
    let stored = ctx
        .store
        .bootstrap_package()
        .map_err(|e| Refused::Internal(e.to_string()))?;
    if stored.is_some_and(|b| b.job_id == job_id) {
        // The parent resends a job we already took (its acknowledgement was
        // lost): make sure it runs, whatever phase it has reached.
        ensure_running(ctx).map_err(|e| Refused::Internal(e.to_string()))?;
        return Ok(());
    }
    let reinstall = match ctx.identity() {
        None => false,
        // The parent runs this site's install again (upgrade-site).
        Some(id)
            if id.site_code == pkg.site_code
                && id.parent.as_ref().is_some_and(|p| {
                    p.site_code == pkg.parent_site_code && p.link_secret == pkg.link_secret
                }) =>
        {
            true
        }
        Some(id) => {
            return Err(Refused::Exists(format!(
                "this node is already installed as site {}",
                id.site_code
            )))
        }
    };
    if pkg.parent_address.trim().is_empty() {
        return Err(Refused::Invalid(
            "the package names no parent address".into(),
        ));
    }
    if pkg.init_control.site_code != pkg.site_code {
        return Err(Refused::Invalid(format!(
            "the initial site control is for site {}, not {}",
            pkg.init_control.site_code, pkg.site_code
        )));
    }
    let rec = ReceivedBootstrap {
        job_id,
        package: pkg,
        received_unix_ms: now_ms(),
    };
    let fresh = ctx
        .store
        .accept_bootstrap(&rec, |slot| replaceable(slot, reinstall))
        .map_err(|e| match e {
            StoreError::BootstrapRefused(r) => Refused::Exists(r.to_string()),
            other => Refused::Internal(other.to_string()),
        })?;
    ctx.store
        .durable()
        .await
        .map_err(|e| Refused::Internal(e.to_string()))?;
    if fresh {
        tracing::info!(site = %rec.package.site_code, parent = %rec.package.parent_site_code, parent_address = %rec.package.parent_address, job = %job_id, "bootstrap package received; install started");
    }
    ensure_running(ctx).map_err(|e| Refused::Internal(e.to_string()))?;
    Ok(())
}

/// Restarts an unfinished bootstrap after the node restarted.
pub fn resume(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    if let Some(BootstrapState::Running { completed_phase }) = ctx.store.bootstrap_state()? {
        tracing::info!(completed_phase, "resuming the bootstrap after a restart");
        ensure_running(ctx)?;
    }
    Ok(())
}

/// Starts the bootstrap task if the store says an install is running and no
/// task runs it yet (exactly one task per node ever runs the phases).
fn ensure_running(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    if !matches!(
        ctx.store.bootstrap_state()?,
        Some(BootstrapState::Running { .. })
    ) {
        return Ok(());
    }
    let Some(flight) = ctx.bootstrap.runner().try_begin() else {
        return Ok(());
    };
    ctx.components.set(site_component::BOOTSTRAP, "running");
    let c = ctx.clone();
    ctx.tasks.spawn("bootstrap", async move {
        let _flight = flight;
        if let Err(e) = run(&c).await {
            // Store or shutdown trouble, not an install failure.
            tracing::error!("bootstrap interrupted: {e:#}");
        }
    });
    Ok(())
}

/// (state, detail) for status displays.
pub fn describe(ctx: &Ctx) -> (String, String) {
    match ctx.store.bootstrap_state() {
        Ok(None) => ("none".into(), String::new()),
        Ok(Some(BootstrapState::Running { completed_phase })) => (
            "running".into(),
            format!("phase {completed_phase} of 4 complete"),
        ),
        Ok(Some(BootstrapState::Failed { phase, reason })) => (
            "failed".into(),
            format!("failed in phase {phase}: {reason}"),
        ),
        Ok(Some(BootstrapState::Complete)) => ("complete".into(), String::new()),
        Err(e) => ("unknown".into(), e.to_string()),
    }
}

async fn run(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let Some(rb) = ctx.store.bootstrap_package()? else {
        return Ok(());
    };
    let pkg = rb.package;
    let Some(BootstrapState::Running { completed_phase }) = ctx.store.bootstrap_state()? else {
        return Ok(());
    };
    tracing::info!(site = %pkg.site_code, completed_phase, "bootstrap running");
    for phase in completed_phase + 1..=4 {
        if ctx.tasks.is_cancelled() {
            return Ok(());
        }
        let injected = ctx
            .store
            .faults()?
            .contains(&Fault::BootstrapFailure { phase });
        let result = if injected {
            Err(format!("injected fault bootstrap-failure at phase {phase}"))
        } else {
            tracing::info!(phase, "phase {phase} begins");
            match phase {
                1 => phase1(ctx, &pkg).await,
                2 => phase2(ctx, &pkg).await,
                3 => phase3(ctx, &pkg).await,
                _ => phase4(ctx).await,
            }
        };
        if let Err(reason) = result {
            if ctx.tasks.is_cancelled() {
                return Ok(());
            }
            tracing::error!(phase, "bootstrap failed in phase {phase}: {reason}. The bootstrap stops; no status message is sent to the parent.");
            ctx.store
                .set_bootstrap_state(&BootstrapState::Failed { phase, reason })?;
            ctx.store.durable().await?;
            ctx.components.set(site_component::BOOTSTRAP, "failed");
            ctx.bootstrap.changed();
            return Ok(());
        }
    }
    ctx.components.remove(site_component::BOOTSTRAP);
    tracing::info!(site = %pkg.site_code, "install complete; the bootstrap removed itself");
    Ok(())
}

async fn mark(ctx: &Arc<Ctx>, phase: u8) -> Result<(), String> {
    ctx.store
        .set_bootstrap_state(&BootstrapState::Running {
            completed_phase: phase,
        })
        .map_err(|e| e.to_string())?;
    ctx.store.durable().await.map_err(|e| e.to_string())?;
    ctx.bootstrap.changed();
    tracing::info!(phase, "phase {phase} complete");
    Ok(())
}

/// The id of the report of `phase`: the same on every attempt, so a report
/// repeated after a crash is stored once. Time-ordered like any status
/// message (the bootstrap's start, plus the phase).
fn report_uid(rb: &ReceivedBootstrap, phase: u8) -> Uuid {
    let digest = Sha256::digest([rb.job_id.as_bytes().as_slice(), &[phase]].concat());
    let mut rand = [0u8; 10];
    rand.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(rb.received_unix_ms + phase as u64, &rand).into_uuid()
}

async fn report(ctx: &Arc<Ctx>, def: &catalog::MessageDef, args: &[String]) -> Result<(), String> {
    let phase = catalog::bootstrap_phase(def.id).unwrap_or(0);
    let uid = ctx
        .store
        .bootstrap_package()
        .map_err(|e| e.to_string())?
        .map(|rb| report_uid(&rb, phase));
    crate::status_manager::emit_now(ctx, def, args, uid)
        .await
        .map_err(|e| format!("could not queue the phase report: {e:#}"))
}

/// Phase 1: package integrity, free disk, store and identity, transport.
async fn phase1(ctx: &Arc<Ctx>, pkg: &BootstrapPackage) -> Result<(), String> {
    let digest = Sha256::digest(&pkg.content);
    if digest.as_slice() != pkg.content_sha256.as_slice() {
        return Err(format!(
            "package integrity check failed: content digest {} does not match the expected {}",
            hex::encode(digest),
            hex::encode(&pkg.content_sha256)
        ));
    }
    tracing::info!(bytes = pkg.content.len(), "package integrity verified");
    let free = fs4::available_space(&ctx.data_dir)
        .map_err(|e| format!("cannot read free disk space: {e}"))?;
    if free < pkg.required_free_bytes {
        return Err(format!(
            "not enough free disk space in {}: {} bytes available, {} required",
            ctx.data_dir.display(),
            free,
            pkg.required_free_bytes
        ));
    }
    tracing::info!(
        free,
        required = pkg.required_free_bytes,
        "free disk space verified"
    );
    if let Some(mut id) = ctx.identity().filter(|i| i.version != pkg.version) {
        tracing::info!(from = %id.version, to = %pkg.version, "installing version {}", pkg.version);
        id.version = pkg.version.clone();
        ctx.set_identity(id).map_err(|e| e.to_string())?;
    }
    if ctx.identity().is_none() {
        let id = Identity {
            site_code: pkg.site_code.clone(),
            site_name: pkg.site_name.clone(),
            kind: SiteKind::Secondary,
            parent: Some(ParentLink {
                site_code: pkg.parent_site_code.clone(),
                address: pkg.parent_address.clone(),
                link_secret: pkg.link_secret.clone(),
            }),
            installed_unix_ms: now_ms(),
            version: pkg.version.clone(),
            ancestors: pkg.ancestors.clone(),
        };
        ctx.set_identity(id).map_err(|e| e.to_string())?;
        ctx.store.durable().await.map_err(|e| e.to_string())?;
        crate::witness::record(ctx, 0).map_err(|e| format!("writing the site witness: {e}"))?;
        tracing::info!(site = %pkg.site_code, "site identity created");
    }
    ctx.upcalls()
        .and_then(|u| u.install_transport())
        .map_err(|e| e.to_string())?;
    // Report, then record the phase: a crash in between repeats the report
    // (harmless at the parent) instead of losing it.
    report(
        ctx,
        &catalog::BOOTSTRAP_PHASE1,
        &[pkg.site_code.to_string(), pkg.content.len().to_string()],
    )
    .await?;
    mark(ctx, 1).await
}

/// Phase 2: the remaining components.
async fn phase2(ctx: &Arc<Ctx>, pkg: &BootstrapPackage) -> Result<(), String> {
    ctx.upcalls()
        .and_then(|u| u.install_components())
        .map_err(|e| e.to_string())?;
    report(
        ctx,
        &catalog::BOOTSTRAP_PHASE2,
        &[pkg.site_code.to_string()],
    )
    .await?;
    mark(ctx, 2).await
}

/// Phase 3: the SCM processes `_INIT.CT1` into CT0 serial 1.
async fn phase3(ctx: &Arc<Ctx>, pkg: &BootstrapPackage) -> Result<(), String> {
    let mut cfg = ctx.watch_config();
    if ctx.store.ct0().map_err(|e| e.to_string())?.is_none()
        && ctx.store.inbox_len(Inbox::SiteControl) == 0
    {
        let mut ct1 = Ct1 {
            signature: None,
            base_serial: 0,
            proposed: pkg.init_control.clone(),
            origin: "bootstrap (_INIT.CT1)".into(),
        };
        // Signed by this node itself: it came from the parent over mutual
        // TLS inside the bootstrap package.
        crate::trust::sign_ct1(ctx, &mut ct1).map_err(|e| e.to_string())?;
        let job = Job::new(
            pkg.parent_site_code.clone(),
            pkg.site_code.clone(),
            Priority::High,
            Payload::Ct1(ct1),
        );
        ctx.store
            .put_inbox(Inbox::SiteControl, &job)
            .map_err(|e| e.to_string())?;
        ctx.store.durable().await.map_err(|e| e.to_string())?;
        tracing::info!("_INIT.CT1 placed in the site control inbox");
    }
    ctx.scm.wake();
    let serial = loop {
        if let Some(c) = ctx.store.ct0().map_err(|e| e.to_string())? {
            break c.serial;
        }
        if let Some(bad) = ctx.store.bad_ct1s().map_err(|e| e.to_string())?.last() {
            return Err(format!(
                "the initial site control was rejected: {}",
                bad.reason
            ));
        }
        tokio::select! {
            _ = ctx.tasks.cancelled() => return Err("node shutting down".into()),
            _ = cfg.changed() => {}
            _ = ctx.bootstrap.progress() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    report(
        ctx,
        &catalog::BOOTSTRAP_PHASE3,
        &[pkg.site_code.to_string(), serial.to_string()],
    )
    .await?;
    mark(ctx, 3).await?;
    ctx.scm.wake();
    Ok(())
}

/// Phase 4: wait for the SCM's first CT2 (see [`report_phase4`]).
async fn phase4(ctx: &Arc<Ctx>) -> Result<(), String> {
    ctx.scm.wake();
    loop {
        let waiter = ctx.bootstrap.progress();
        if matches!(
            ctx.store.bootstrap_state(),
            Ok(Some(BootstrapState::Complete))
        ) {
            return Ok(());
        }
        tokio::select! {
            _ = ctx.tasks.cancelled() => return Err("node shutting down".into()),
            _ = waiter => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Called by the SCM's stage 4 just before it queues the site's first CT2:
/// the phase 4 report goes out ahead of the CT2, then the install is complete.
/// Returns false when phase 4 must fail instead (the CT2 is then not sent).
pub async fn report_phase4(ctx: &Arc<Ctx>) -> anyhow::Result<bool> {
    let Some(rb) = ctx.store.bootstrap_package()? else {
        return Ok(true);
    };
    if ctx
        .store
        .faults()?
        .contains(&Fault::BootstrapFailure { phase: 4 })
    {
        return Ok(false);
    }
    crate::status_manager::emit_now(
        ctx,
        &catalog::BOOTSTRAP_PHASE4,
        &[
            rb.package.site_code.to_string(),
            rb.package.parent_site_code.to_string(),
        ],
        Some(report_uid(&rb, 4)),
    )
    .await?;
    ctx.store.set_bootstrap_state(&BootstrapState::Complete)?;
    ctx.store.durable().await?;
    ctx.bootstrap.changed();
    tracing::info!("phase 4 complete: first CT2 going to the parent");
    Ok(true)
}
