//! Tells systemd (`Type=notify`) how the node is: READY=1 once it serves,
//! WATCHDOG=1 at half the watchdog interval while its runtime runs,
//! RELOADING=1 when it restarts itself as a bare node and STOPPING=1 when
//! it stops. Without `NOTIFY_SOCKET` (not under systemd) every call does
//! nothing.
//!
//! The watchdog answers "is the process alive and scheduling work", not
//! "is it healthy": an unhealthy node (a full disk, a component restarting)
//! mends itself without a restart (the store reopens once space is freed),
//! and a restart by systemd every 30 s would only add churn. Its health
//! goes into the status line `systemctl status` shows instead.

use std::sync::Arc;

use sd_notify::NotifyState;
use sms_site::Ctx;

/// The node serves: READY=1 with a status line, and the watchdog pings
/// start if systemd asked for them (`WatchdogSec=`).
pub fn ready(ctx: &Arc<Ctx>, status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (interval / 2).max(std::time::Duration::from_millis(10));
    let ctx2 = ctx.clone();
    ctx.tasks
        .spawn_until_shutdown("systemd watchdog", watchdog(ctx2, every));
}

/// Pings as long as the runtime runs this task (a hung runtime stops the
/// pings, and systemd restarts the node); the status line follows health.
async fn watchdog(ctx: Arc<Ctx>, every: std::time::Duration) {
    let mut was_healthy = true;
    loop {
        let why = crate::health::not_ready(&ctx);
        let healthy = why.is_empty();
        if healthy != was_healthy {
            let status = if healthy {
                tracing::info!("healthy again");
                "serving".to_string()
            } else {
                let why = why.join("; ");
                tracing::error!("not healthy (the node mends this itself, no restart): {why}");
                format!("not serving: {why}")
            };
            send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
            was_healthy = healthy;
        } else {
            send(&[NotifyState::Watchdog]);
        }
        tokio::time::sleep(every).await;
    }
}

/// The node restarts itself in place (same pid) as a bare node.
pub fn reloading() {
    send(&[
        NotifyState::Reloading,
        NotifyState::Status("restarting as a bare node"),
    ]);
}

/// The node is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd through NOTIFY_SOCKET: {e}");
    }
}
