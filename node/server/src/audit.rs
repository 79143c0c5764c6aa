//! The audit trail: every state-changing administrator action that took
//! effect, whether it came over the gRPC admin service or the web console,
//! is one log line and one status message (`AUDIT_ADMIN_ACTION`, replicated
//! up like any other). Both edges call [`record`], so the trail reads the
//! same whichever way an action came.

use sms_site::Ctx;

/// Records `action` by `subject` (a certificate subject as
/// `Caller::subject` words it) with what the request asked for.
pub fn record(ctx: &Ctx, subject: &str, action: &str, detail: String) {
    let site = ctx
        .identity()
        .map(|id| id.site_code.to_string())
        .unwrap_or_else(|| "(bare node)".into());
    tracing::info!(caller = %subject, action, %detail, "audit");
    if ctx.identity().is_some() {
        if let Err(e) = sms_site::status::emit(
            ctx,
            &sms_types::catalog::AUDIT_ADMIN_ACTION,
            &[subject.to_string(), action.to_string(), site, detail],
        ) {
            tracing::warn!("cannot record the audit message: {e:#}");
        }
    }
}
