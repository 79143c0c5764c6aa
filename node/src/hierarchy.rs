//! Hierarchy Manager (primary sites): keeps the site list and each child's
//! site control copy, creates child sites, and turns reports from children
//! (phase status messages, CT2s) into their site status.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::catalog;
use crate::model::*;
use crate::node::Ctx;
use crate::rpc::client;
use crate::store::{Inbox, StoreError};

/// Free disk a secondary needs for its install (checked by its bootstrap).
pub const INSTALL_REQUIRED_FREE_BYTES: u64 = 64 * 1024 * 1024;

/// Why a create was refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for CreateError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(m) => CreateError::Exists(m),
            other => CreateError::Internal(other.to_string()),
        }
    }
}

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

/// Creates a secondary site under this primary: checks everything first,
/// then records the site as Pending and queues its bootstrap job together.
pub async fn create_secondary(
    ctx: &Arc<Ctx>,
    req: CreateSecondary,
) -> Result<SiteRecord, CreateError> {
    let code: SiteCode = req
        .site_code
        .parse()
        .map_err(|e: SiteCodeError| CreateError::Invalid(e.to_string()))?;
    let me = ctx.identity().ok_or_else(|| {
        CreateError::Precondition("this node is bare; create sites at a primary site server".into())
    })?;
    if me.kind != SiteKind::Primary {
        return Err(CreateError::Precondition(format!(
            "site {} is a secondary site and cannot have child sites",
            me.site_code
        )));
    }
    if code == me.site_code {
        return Err(CreateError::Invalid(format!(
            "{code} is this site's own code"
        )));
    }
    if me.parent.as_ref().is_some_and(|p| p.site_code == code) {
        return Err(CreateError::Invalid(format!(
            "{code} is the parent of site {}; a site cannot be its own ancestor",
            me.site_code
        )));
    }
    if let Some(existing) = ctx.store.site(&code)? {
        return Err(CreateError::Exists(format!(
            "site {code} already exists in the hierarchy (status {}, server {})",
            existing.status, existing.server
        )));
    }
    let server = req.server.trim().to_string();
    let valid_addr = server
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
    if !valid_addr {
        return Err(CreateError::Invalid(format!(
            "server {server:?} is not a HOST:PORT address"
        )));
    }
    let probe = client::probe(&ctx.connector, &server)
        .await
        .map_err(|e| CreateError::Unreachable(format!("cannot create site {code}: {e}")))?;
    if probe.role != "bare" {
        return Err(CreateError::Precondition(format!(
            "server {server} is already installed as site {} ({}); it cannot take site {code}",
            probe.site_code, probe.role
        )));
    }
    if probe.bootstrap_state == "running" {
        return Err(CreateError::Precondition(format!(
            "server {server} is already installing site {} ({})",
            probe.site_code, probe.bootstrap_detail
        )));
    }

    let ct0 = ctx
        .config()
        .ok_or_else(|| CreateError::Internal("this site has no site control yet".into()))?;
    let site_name = req
        .site_name
        .unwrap_or_else(|| format!("{code} secondary site"));
    let mut up = Address::new(me.site_code.clone(), ctx.advertise.clone());
    if let Some(a) = ct0.addresses.iter().find(|a| a.site_code == code) {
        up.retry_count = a.retry_count;
        up.retry_delay_ms = a.retry_delay_ms;
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
        next_unique_id: 1,
    };
    let content = install_content(&code);
    let secret: [u8; 16] = rand::rng().random();
    let link_secret = hex::encode(secret);
    let pkg = BootstrapPackage {
        site_code: code.clone(),
        site_name,
        parent_site_code: me.site_code.clone(),
        parent_address: ctx.advertise.clone(),
        init_control,
        link_secret: link_secret.clone(),
        content_sha256: Sha256::digest(&content).to_vec(),
        content,
        required_free_bytes: INSTALL_REQUIRED_FREE_BYTES,
        version: SOFTWARE_VERSION.to_string(),
        server: server.clone(),
    };
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
        .map_err(|e| CreateError::Internal(e.to_string()))?;
    tracing::info!(site = %code, %server, job = %job.id, "created secondary site; status Pending; bootstrap job queued");
    crate::status_manager::emit(ctx, &catalog::HM_SITE_CREATED, &[code.to_string(), server])
        .map_err(|e| CreateError::Internal(e.to_string()))?;
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
    crate::status_manager::emit(
        ctx,
        &catalog::HM_SITE_STATUS,
        &[rec.site_code.to_string(), from.to_string(), to.to_string()],
    )?;
    Ok(true)
}

/// Install phase reports from child sites move their status forward.
pub async fn on_status(ctx: &Arc<Ctx>, msgs: &[StatusMessage]) -> anyhow::Result<()> {
    for m in msgs {
        let Some(phase) = catalog::bootstrap_phase(m.id) else {
            continue;
        };
        let Some(mut rec) = ctx.store.site(&m.site_code)? else {
            continue;
        };
        if advance(ctx, &mut rec, SiteStatus::Phase(phase)).await? {
            ctx.store.put_site(&rec)?;
            ctx.store.durable().await?;
            ctx.scheduler.wake(&rec.site_code);
        }
    }
    Ok(())
}

/// The Hierarchy Manager loop: processes CT2s from the HM inbox.
pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    loop {
        loop {
            let items = ctx.store.inbox_items(Inbox::Hierarchy, 64)?;
            if items.is_empty() {
                break;
            }
            crate::status_manager::despool_inbox(&ctx).await?;
            let _records = ctx.site_lock.lock().await;
            for (key, job) in items {
                process(&ctx, key, job).await?;
            }
            ctx.store.durable().await?;
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(()),
            _ = ctx.hm_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

async fn process(ctx: &Arc<Ctx>, key: u64, job: Job) -> anyhow::Result<()> {
    let Payload::Ct2(ct2) = job.payload else {
        tracing::warn!(job = %job.id, kind = job.payload.kind(), "not a CT2; removed from the HM inbox");
        ctx.store.inbox_remove(Inbox::Hierarchy, key)?;
        return Ok(());
    };
    let Some(mut rec) = ctx.store.site(&ct2.site_code)? else {
        tracing::warn!(site = %ct2.site_code, "CT2 for a site this hierarchy does not know; set aside");
        crate::status_manager::emit(ctx, &catalog::HM_UNKNOWN_CT2, &[ct2.site_code.to_string()])?;
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
    ctx.store.accept_ct2(key, &rec, &ct2)?;
    tracing::info!(site = %ct2.site_code, serial = ct2.serial, "processed CT2");
    if changed {
        ctx.scheduler.wake(&rec.site_code);
    }
    Ok(())
}
