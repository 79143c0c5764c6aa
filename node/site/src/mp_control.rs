//! MP Control Manager (seed 001): verifies every installed management point
//! of the site each polling interval with the `mplist` request, logs the
//! result in `mpcontrol.log` in the seed's words, raises an error status
//! message when a management point stops answering and a clearing one when
//! it answers again.

use std::sync::Arc;

use sms_types::catalog;
use sms_types::mp::*;
use sms_types::*;

use crate::core::Ctx;

/// The verification request.
pub const MPLIST: &str = "/sms_mp/.sms_aut?mplist";

/// The reason phrase of the codes a management point answers.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Where a management point serves: its server's host and its port.
pub fn http_address(r: &MpRecord) -> String {
    let host = r
        .server
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&r.server);
    format!("{host}:{}", r.bound_port)
}

/// Verifies every active management point once.
pub async fn verify(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    if ctx.identity().is_none() {
        return Ok(());
    }
    for mut r in ctx
        .store
        .mp_records()?
        .into_iter()
        .filter(|r| r.state == MpState::Active)
    {
        let at = http_address(&r);
        let (ok, text) = match ctx.peers.http_get(&at, MPLIST).await {
            Ok((200, _, body)) if body.is_empty() => (true, "Http verification .sms_aut succeeded with status code 200, OK".to_string()),
            Ok((200, _, body)) => (
                false,
                format!("Http verification .sms_aut failed: status code 200 but a {}-byte body where the answer is empty", body.len()),
            ),
            Ok((code, phrase, _)) => (
                false,
                format!("Http verification .sms_aut failed with status code {code}, {}", if phrase.is_empty() { reason(code) } else { &phrase }),
            ),
            Err(e) => {
                tracing::error!("Failed to send http request {MPLIST} to {at}: {e}");
                (false, "Http verification .sms_aut failed with no header received".to_string())
            }
        };
        if ok {
            tracing::info!("{text} ({at})");
        } else {
            tracing::error!("{text} ({at})");
        }
        let was_failing = r.verification_failing;
        r.verified_unix_ms = now_ms();
        r.verification = text.clone();
        r.verification_failing = !ok;
        ctx.store.put_mp_record(&r)?;
        if ok && was_failing {
            ctx.store.durable().await?;
            crate::status::emit(ctx, &catalog::MP_VERIFY_OK, &[r.server.clone(), text])?;
        } else if !ok && !was_failing {
            ctx.store.durable().await?;
            crate::status::emit(ctx, &catalog::MP_VERIFY_FAILED, &[r.server.clone(), text])?;
        }
    }
    Ok(())
}
