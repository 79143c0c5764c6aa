//! The outside calls status filter rules ask for: a webhook POST of the
//! message as JSON, or a program run with the message as JSON on its
//! stdin. They run here, after the message is stored, a few at a time and
//! each bounded in time, so a slow or dead receiver never holds up storing
//! or replication. A call that fails is logged and counted; a webhook is
//! tried again a bounded number of times, a program is not (it may have
//! acted before it failed).

use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::core::Ctx;
use crate::status_rules::{Action, Call};
use sms_types::status_rules::WebhookUrl;

/// Calls running at once on a node.
pub const CONCURRENCY: usize = 4;
/// One webhook request, from connecting to the end of the answer.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per webhook call (a refusal, 4xx, is not tried again).
pub const WEBHOOK_ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled before each next one.
const WEBHOOK_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// A program's whole run; it is killed after that.
pub const PROGRAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the runner that makes the calls queued by the rules (once per
/// node; a second call does nothing).
pub fn start(ctx: &Arc<Ctx>) {
    let Some(mut rx) = ctx.status.actions.take_receiver() else {
        return;
    };
    let (weak, tasks) = (Arc::downgrade(ctx), ctx.tasks.clone());
    ctx.tasks
        .spawn_until_shutdown("status rule actions", async move {
            let limit = Arc::new(Semaphore::new(CONCURRENCY));
            while let Some(call) = rx.recv().await {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let weak: Weak<Ctx> = weak.clone();
                tasks.spawn_until_shutdown("status rule call", async move {
                    let _permit = permit;
                    if let Some(ctx) = weak.upgrade() {
                        run(&ctx, call).await;
                    }
                });
            }
        });
}

/// Makes one call and records how it went.
pub async fn run(ctx: &Ctx, call: Call) {
    let result = match &call.action {
        Action::Webhook(url) => webhook(ctx, url, &call.body).await,
        Action::Program(argv) => program(argv, &call.body).await,
    };
    match result {
        Ok(()) => {
            ctx.status.actions.done.fetch_add(1, Relaxed);
            tracing::debug!(rule = %call.rule, "status rule action done");
        }
        Err(e) => {
            ctx.status.actions.failed.fetch_add(1, Relaxed);
            tracing::warn!(rule = %call.rule, "status rule action failed: {e}");
        }
    }
}

async fn webhook(ctx: &Ctx, url: &WebhookUrl, body: &[u8]) -> Result<(), String> {
    let mut pause = WEBHOOK_RETRY_PAUSE;
    let mut last = String::new();
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        match ctx
            .peers
            .http_post_json(&url.host_port, &url.path, body.to_vec(), WEBHOOK_TIMEOUT)
            .await
        {
            Ok((status, _, _)) if (200..300).contains(&status) => return Ok(()),
            Ok((status, reason, _)) if (400..500).contains(&status) => {
                return Err(format!(
                    "webhook http://{}{} refused the message: {status} {reason}",
                    url.host_port, url.path
                ))
            }
            Ok((status, reason, _)) => last = format!("answered {status} {reason}"),
            Err(e) => last = e,
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    Err(format!(
        "webhook http://{}{} failed {WEBHOOK_ATTEMPTS} times; last: {last}",
        url.host_port, url.path
    ))
}

/// Runs `argv` (no shell) with `body` on its stdin; success is exit 0
/// within [`PROGRAM_TIMEOUT`].
pub async fn program(argv: &[String], body: &[u8]) -> Result<(), String> {
    let (exe, args) = argv
        .split_first()
        .ok_or_else(|| "the rule names no program".to_string())?;
    let mut child = tokio::process::Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {exe}: {e}"))?;
    let mut stdin = child.stdin.take();
    let finished = tokio::time::timeout(PROGRAM_TIMEOUT, async {
        if let Some(mut s) = stdin.take() {
            // A program that exits without reading all of it is judged by
            // its exit status, not by the broken pipe.
            let _ = s.write_all(body).await;
        }
        child.wait().await
    })
    .await;
    match finished {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{exe} exited with {status}")),
        Ok(Err(e)) => Err(format!("waiting for {exe}: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "{exe} ran longer than {} s and was killed",
                PROGRAM_TIMEOUT.as_secs()
            ))
        }
    }
}
