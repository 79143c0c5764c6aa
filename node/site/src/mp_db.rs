//! The site database as management points use it (at the site server): its
//! access group, client registration (SMS unique IDs from the site's one
//! counter, so never a duplicate with a logon server's range or another
//! management point), and clients' status messages, which enter this site's
//! status system and replicate up at low priority.

use std::sync::Arc;

use sms_types::limits::clip;
use sms_types::mp::ClientMessage;
use sms_types::*;

use crate::core::Ctx;
use crate::error::Refused;

/// Refuses a node the site database does not accept: one not in its access
/// group, or a caller whose certificate (`caller`, its label; None without
/// TLS) is not the one the management point was granted with, so another
/// node of the hierarchy cannot act as a management point by naming its id.
pub fn check_access(ctx: &Ctx, node_id: &str, caller: Option<&str>) -> Result<SiteCode, Refused> {
    let id = ctx.identity().ok_or_else(|| {
        Refused::Precondition("this node is not a site server: it has no site database".into())
    })?;
    if ctx.store.faults()?.contains(&Fault::MpDbAccessRefused) {
        return Err(Refused::Precondition(format!(
            "the site database of site {} refuses management points (fault mp-db-access-refused; clear it at the site server)",
            id.site_code
        )));
    }
    let Some(granted) = ctx.store.mp_access_label(node_id)? else {
        return Err(Refused::Precondition(format!(
            "node {} is not in the access group of the site database of site {}: the Site Component Manager adds a \
             management point while it installs it (remove and add the management point again)",
            clip(node_id),
            id.site_code
        )));
    };
    if let Some(caller) = caller {
        if !granted.is_empty() && caller != granted {
            return Err(Refused::Denied(format!(
                "the caller's certificate is for {}, not for {granted}, the management point granted as node {}",
                clip(caller),
                clip(node_id)
            )));
        }
    }
    Ok(id.site_code)
}

/// A client's SMS unique ID: new from the site's counter, or the one it
/// was given before. Durable before it is answered.
pub async fn register_client(
    ctx: &Arc<Ctx>,
    node_id: &str,
    caller: Option<&str>,
    name: &str,
    hardware_id: &str,
) -> Result<(SiteCode, u64, bool), Refused> {
    let site = check_access(ctx, node_id, caller)?;
    if ctx.store.ids_frozen()? {
        return Err(Refused::Precondition(format!(
            "site {site} is being deleted; it registers no clients"
        )));
    }
    let floor = ctx.config().map(|c| c.next_unique_id).unwrap_or(1);
    let (id, new) = ctx.store.register_client(hardware_id, floor)?;
    if id > limits::MAX_UNIQUE_ID {
        return Err(Refused::Precondition(format!(
            "the SMS unique ID space of site {site} is used up (next ID {id})"
        )));
    }
    ctx.store.durable().await?;
    if new {
        tracing::info!(client = %clip(name), sms_id = id, "client registered through a management point");
    }
    Ok((site, id, new))
}

/// Stores clients' status messages as messages of this site (machine: the
/// client), in one write; they replicate like any other, at low priority,
/// and the site's status filter rules apply to them.
pub async fn client_status(
    ctx: &Arc<Ctx>,
    node_id: &str,
    caller: Option<&str>,
    client: &str,
    messages: &[ClientMessage],
) -> Result<u32, Refused> {
    let site = check_access(ctx, node_id, caller)?;
    let parent = ctx.identity().and_then(|i| i.parent).is_some();
    let mut msgs = Vec::with_capacity(messages.len());
    for m in messages {
        crate::mp_agent::check_client_message(m).map_err(Refused::Invalid)?;
        msgs.push(StatusMessage {
            uid: uuid::Uuid::now_v7(),
            id: m.id,
            severity: m.severity.parse().map_err(Refused::Invalid)?,
            site_code: site.clone(),
            component: m.component.clone(),
            machine: client.to_string(),
            time_unix_ms: now_ms(),
            insertion_strings: vec![],
            text: m.text.clone(),
        });
    }
    // Under the site's status filter rules, as every message stored here.
    crate::status::store(ctx, &msgs, parent)?;
    ctx.store.durable().await?;
    ctx.status.wake();
    Ok(msgs.len() as u32)
}
