//! The installed management point's agent (seed 001's SMS Agent Host): what
//! it answers clients. The HTTP edge (`sms-server`) maps requests to these
//! calls and their refusals to status codes.

use std::sync::Arc;

use sms_types::limits::clip;
use sms_types::mp::*;

use crate::core::Ctx;

/// A refusal with the HTTP status it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentError {
    pub status: u16,
    pub message: String,
}

impl AgentError {
    fn new(status: u16, message: impl Into<String>) -> AgentError {
        AgentError {
            status,
            message: message.into(),
        }
    }
}

type R<T> = Result<T, AgentError>;

/// The install, if the agent is up; 503 when it is stopped, 404 when there
/// is no management point here.
fn installed(ctx: &Ctx) -> R<std::sync::Arc<MpInstall>> {
    let install = ctx
        .mp
        .installed()
        .ok_or_else(|| AgentError::new(404, "no management point is installed on this server"))?;
    if crate::mp_setup::agent_stopped(ctx) {
        return Err(AgentError::new(
            503,
            "the management point's agent (policy service) is stopped; start it again (clear-fault mp-agent-stopped)",
        ));
    }
    Ok(install)
}

/// `.sms_aut?mplist`: an empty answer when the management point works.
pub fn mplist(ctx: &Ctx) -> R<()> {
    installed(ctx).map(|_| ())
}

/// `.sms_aut?mpcert`: the site's certificate as one long hex string.
pub fn mpcert(ctx: &Ctx) -> R<String> {
    let i = installed(ctx)?;
    if i.site_certificate.is_empty() {
        return Err(AgentError::new(
            404,
            format!(
                "site {} has no certificate (its nodes run --insecure)",
                i.site_code
            ),
        ));
    }
    Ok(hex::encode_upper(&i.site_certificate))
}

/// `.sms_pol?<PolicyID>.<Version>`: one policy document.
pub fn policy(ctx: &Ctx, reference: &str) -> R<String> {
    let (id, version) = parse_policy_ref(reference).map_err(|e| AgentError::new(400, e))?;
    let i = installed(ctx)?;
    let same: Vec<&Policy> = i
        .policies
        .iter()
        .filter(|p| p.id.eq_ignore_ascii_case(&id))
        .collect();
    match same.iter().find(|p| p.version == version) {
        Some(p) => Ok(p.body.clone()),
        None if same.is_empty() => Err(AgentError::new(
            404,
            format!("no policy {} here", clip(&id)),
        )),
        None => {
            Err(AgentError::new(
                404,
                format!(
                "policy {} version {version} is not here; this management point holds version {}",
                same[0].id,
                same.iter().map(|p| p.version.to_string()).collect::<Vec<_>>().join(", ")
            ),
            ))
        }
    }
}

/// One policy assignment: (policy id, version, path to fetch it).
pub type Assignment = (String, u64, String);

/// A client's machine policy assignments, with the site code.
pub fn machine_policy(ctx: &Ctx) -> R<(String, Vec<Assignment>)> {
    let i = installed(ctx)?;
    // The latest version of each policy (older ones are kept for clients
    // that asked just before a refresh).
    let mut latest: Vec<&Policy> = vec![];
    for p in &i.policies {
        match latest.iter_mut().find(|l| l.id == p.id) {
            Some(l) if l.version < p.version => *l = p,
            Some(_) => {}
            None => latest.push(p),
        }
    }
    let list = latest
        .into_iter()
        .map(|p| {
            (
                p.id.clone(),
                p.version,
                format!("/sms_mp/.sms_pol?{}.{}", p.id, p.version),
            )
        })
        .collect();
    Ok((i.site_code.clone(), list))
}

/// A name or id a client gives: 1 to 255 characters, no control characters.
fn check_client_field(what: &str, v: &str) -> R<()> {
    if v.trim().is_empty() || v.chars().count() > 255 || v.chars().any(char::is_control) {
        return Err(AgentError::new(
            400,
            format!(
                "the client's {what} {:?} must be 1 to 255 characters without control characters",
                clip(v)
            ),
        ));
    }
    Ok(())
}

/// Registers a client at the site database: its SMS unique ID, the same
/// one every time it registers again. Answers only once the site stored it.
pub async fn register(ctx: &Arc<Ctx>, name: &str, hardware_id: &str) -> R<(String, u64, bool)> {
    check_client_field("name", name)?;
    check_client_field("hardware id", hardware_id)?;
    let i = installed(ctx)?;
    let (id, new) = ctx
        .peers
        .mp_register_client(&i.site_address, &ctx.node_id.to_string(), name, hardware_id)
        .await
        .map_err(|e| {
            AgentError::new(
                503,
                format!(
                    "the site database of site {} did not register the client: {e}",
                    i.site_code
                ),
            )
        })?;
    if new {
        tracing::info!(client = %clip(name), sms_id = id, "client registered with site {}", i.site_code);
    }
    Ok((i.site_code.clone(), id, new))
}

/// Most status messages in one post.
pub const MAX_CLIENT_MESSAGES: usize = 100;

/// Posts a client's status messages to the site; answers once the site
/// stored them (they then replicate up at low priority).
pub async fn client_status(ctx: &Arc<Ctx>, client: &str, messages: Vec<ClientMessage>) -> R<u32> {
    check_client_field("name", client)?;
    if messages.is_empty() || messages.len() > MAX_CLIENT_MESSAGES {
        return Err(AgentError::new(
            400,
            format!(
                "post 1 to {MAX_CLIENT_MESSAGES} messages, not {}",
                messages.len()
            ),
        ));
    }
    for m in &messages {
        check_client_message(m).map_err(|e| AgentError::new(400, e))?;
    }
    let i = installed(ctx)?;
    ctx.peers
        .mp_client_status(&i.site_address, &ctx.node_id.to_string(), client, messages)
        .await
        .map_err(|e| {
            AgentError::new(
                503,
                format!("site {} did not take the status messages: {e}", i.site_code),
            )
        })
}

/// One client message: an id in the client range, a known severity, a
/// component name and a text of sane size.
pub fn check_client_message(m: &ClientMessage) -> Result<(), String> {
    if !CLIENT_MESSAGE_IDS.contains(&m.id) {
        return Err(format!(
            "client status message id {} is outside {}..={}",
            m.id,
            CLIENT_MESSAGE_IDS.start(),
            CLIENT_MESSAGE_IDS.end()
        ));
    }
    m.severity
        .parse::<sms_types::Severity>()
        .map_err(|e| e.to_string())?;
    if m.component.is_empty()
        || m.component.len() > 64
        || m.component.chars().any(|c| c.is_control())
    {
        return Err(format!(
            "component {:?} must be 1 to 64 characters without control characters",
            clip(&m.component)
        ));
    }
    if m.text.len() > 4096 {
        return Err(format!(
            "a status message text is at most 4096 bytes, not {}",
            m.text.len()
        ));
    }
    Ok(())
}
