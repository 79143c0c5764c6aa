//! Site Component Manager: installs the site's components (as tasks of this
//! process) and keeps the record of what runs, which stage 3 of the watchdog
//! cycle verifies and CT2s report.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::{ComponentState, SiteKind};
use crate::node::Ctx;

pub const SCHEDULER: &str = "SMS_SCHEDULER";
pub const SENDER: &str = "SMS_SENDER";
pub const DESPOOLER: &str = "SMS_DESPOOLER";
pub const SITE_CONFIG_MANAGER: &str = "SMS_SITE_CONFIG_MANAGER";
pub const HIERARCHY_MANAGER: &str = "SMS_HIERARCHY_MANAGER";
pub const STATUS_MANAGER: &str = "SMS_STATUS_MANAGER";
pub const SITE_COMPONENT_MANAGER: &str = "SMS_SITE_COMPONENT_MANAGER";
pub const BOOTSTRAP: &str = "SMS_BOOTSTRAP";

/// Component name → state (`running`, `stopped`, `failed: ...`).
#[derive(Default)]
pub struct Components {
    states: Mutex<BTreeMap<&'static str, String>>,
}

impl Components {
    pub fn set(&self, name: &'static str, state: impl Into<String>) {
        self.states
            .lock()
            .expect("components lock")
            .insert(name, state.into());
    }

    pub fn remove(&self, name: &'static str) {
        self.states.lock().expect("components lock").remove(name);
    }

    pub fn state(&self, name: &str) -> Option<String> {
        self.states
            .lock()
            .expect("components lock")
            .get(name)
            .cloned()
    }

    pub fn is_running(&self, name: &str) -> bool {
        self.state(name).as_deref() == Some("running")
    }

    pub fn list(&self) -> Vec<ComponentState> {
        self.states
            .lock()
            .expect("components lock")
            .iter()
            .map(|(n, s)| ComponentState {
                name: n.to_string(),
                state: s.clone(),
            })
            .collect()
    }
}

/// Runs a component loop as a tracked, supervised task and records its
/// state: a loop that fails is logged, shown as restarting, and started
/// again after a growing pause. Only shutdown ends it.
pub fn spawn<F, Fut>(ctx: &Arc<Ctx>, name: &'static str, start: F)
where
    F: Fn(Arc<Ctx>) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    if ctx.components.is_running(name) {
        return;
    }
    ctx.components.set(name, "running");
    let c = ctx.clone();
    ctx.tasks.spawn(async move {
        let mut pause = Duration::from_millis(500);
        loop {
            match start(c.clone()).await {
                Ok(()) => {
                    c.components.set(name, "stopped");
                    return;
                }
                Err(e) => {
                    tracing::error!(
                        component = name,
                        "component failed, restarting in {pause:?}: {e:#}"
                    );
                    c.components
                        .set(name, format!("restarting after error: {e:#}"));
                }
            }
            tokio::select! {
                _ = c.cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            c.components.set(name, "running");
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    });
}

/// Phase 1 of an install: the transport (scheduler, sender, despooler).
/// From here on a path to the parent exists.
pub fn install_transport(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    ctx.components.set(SCHEDULER, "running");
    ctx.components.set(DESPOOLER, "running");
    ctx.components.set(SENDER, "running");
    crate::scheduler::start_links(ctx)?;
    tracing::info!("installed {SCHEDULER}, {SENDER} and {DESPOOLER}");
    Ok(())
}

/// Phase 2 of an install: every other component of the site.
pub fn install_components(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let kind = ctx.identity().map(|i| i.kind);
    spawn(ctx, STATUS_MANAGER, crate::status_manager::run);
    spawn(ctx, SITE_CONFIG_MANAGER, crate::site_config::run);
    if kind == Some(SiteKind::Primary) {
        spawn(ctx, HIERARCHY_MANAGER, crate::hierarchy::run);
    }
    ctx.components.set(SITE_COMPONENT_MANAGER, "running");
    let names: Vec<String> = ctx.components.list().into_iter().map(|c| c.name).collect();
    tracing::info!("components running: {}", names.join(", "));
    Ok(())
}

/// Starts an installed site from its store.
pub fn start_site(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    install_transport(ctx)?;
    install_components(ctx)
}
