//! Whether the node serves: one answer for gRPC health and HTTP `/ready`.
//! Not while the store cannot write (a full disk: what arrives could not
//! be kept) nor while a supervised component is restarting after a
//! failure (the site is not doing its work).

use sms_site::Ctx;

/// Why the node does not serve now; empty when it does.
pub fn not_ready(ctx: &Ctx) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(f) = ctx.store.write_failure() {
        why.push(format!("the store cannot write ({f})"));
    }
    for (name, e) in ctx.components.restarting_now() {
        why.push(format!("{name} is restarting after an error ({e})"));
    }
    why
}
