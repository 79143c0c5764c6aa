//! Tells systemd (`Type=notify`) how the node is: READY=1 once it serves,
//! WATCHDOG=1 at half the watchdog interval while it is healthy (the same
//! answer as gRPC health and `/ready`, [`crate::health`]), RELOADING=1 when
//! it restarts itself as a bare node and STOPPING=1 when it stops. Without
//! `NOTIFY_SOCKET` (not under systemd) every call does nothing.

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

/// Pings while healthy; an unhealthy node stops pinging, so systemd
/// restarts it once the watchdog interval has passed without one.
async fn watchdog(ctx: Arc<Ctx>, every: std::time::Duration) {
    let mut silent = false;
    loop {
        let why = crate::health::not_ready(&ctx);
        if why.is_empty() {
            if silent {
                tracing::info!("healthy again: systemd watchdog pings resume");
                silent = false;
            }
            send(&[NotifyState::Watchdog]);
        } else if !silent {
            tracing::error!(
                "not healthy, no systemd watchdog ping (systemd restarts the node if this lasts): {}",
                why.join("; ")
            );
            silent = true;
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
