//! The wiring: the one module that knows every component. It starts them
//! (what the Site Component Manager installs) and registers the calls that
//! go up the layers ([`Upcalls`]), so no component imports one above it.

use std::future::Future;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use sms_runtime::{Worker, WorkerState};
use sms_types::*;

use crate::core::Ctx;
use crate::ports::Upcalls;
use crate::site_component::*;

/// Registers the upcalls on a freshly built core. Call once, before any
/// component runs.
pub fn wire(ctx: &Arc<Ctx>) {
    ctx.set_upcalls(Arc::new(Wired {
        ctx: Arc::downgrade(ctx),
    }));
}

/// Starts an installed site from its store.
pub fn start_site(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    install_transport(ctx)?;
    install_components(ctx)
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
    supervise(ctx, STATUS_MANAGER, crate::status_manager::run);
    crate::status_actions::start(ctx);
    supervise(ctx, SITE_CONFIG_MANAGER, crate::site_config::run);
    if kind == Some(SiteKind::Primary) {
        supervise(ctx, HIERARCHY_MANAGER, crate::hierarchy::run);
    }
    ctx.components.set(SITE_COMPONENT_MANAGER, "running");
    let names: Vec<String> = ctx.components.list().into_iter().map(|c| c.name).collect();
    tracing::info!("components running: {}", names.join(", "));
    Ok(())
}

/// Runs a component loop under supervision and records its state: a loop
/// that fails is shown as restarting and started again after a growing
/// pause. Only shutdown ends it. A component already running is left alone.
fn supervise<F, Fut>(ctx: &Arc<Ctx>, name: &'static str, start: F)
where
    F: Fn(Arc<Ctx>) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    if ctx.components.is_running(name) {
        return;
    }
    ctx.components.set(name, "running");
    let (c, observer) = (ctx.clone(), Arc::downgrade(ctx));
    Worker::new(name).start(
        &ctx.tasks,
        move || start(c.clone()),
        move |state| {
            let Some(ctx) = observer.upgrade() else {
                return;
            };
            match state {
                WorkerState::Running => ctx.components.set(name, "running"),
                WorkerState::Stopped => ctx.components.set(name, "stopped"),
                WorkerState::Restarting(e) => ctx.components.restarting(name, &e),
            }
        },
    );
}

/// The upcalls, bound to the node they serve (weakly: the core owns them).
struct Wired {
    ctx: Weak<Ctx>,
}

impl Wired {
    fn ctx(&self) -> anyhow::Result<Arc<Ctx>> {
        self.ctx
            .upgrade()
            .ok_or_else(|| anyhow::anyhow!("the node has stopped"))
    }
}

#[async_trait]
impl Upcalls for Wired {
    async fn status_stored(&self, msgs: &[StatusMessage]) -> anyhow::Result<()> {
        crate::hierarchy::on_status(&self.ctx()?, msgs).await
    }

    async fn deinstall_done(&self, site: &SiteCode, orphaned: bool) -> anyhow::Result<()> {
        crate::hierarchy::finish_delete(&self.ctx()?, site, orphaned).await
    }

    fn install_transport(&self) -> anyhow::Result<()> {
        install_transport(&self.ctx()?)
    }

    fn install_components(&self) -> anyhow::Result<()> {
        install_components(&self.ctx()?)
    }
}
