//! Reaching any site by its code (`controller --site S11 ...`): an
//! administrator's request travels hop by hop between neighbouring site
//! servers (parent to child, child to parent), the way jobs do, instead of
//! the administrator dialling the far site's server. These are the rules
//! of that walk; the server's gRPC edge carries the request's bytes.

use sms_types::*;

use crate::core::Ctx;
use crate::error::Refused;
use crate::scheduler::{route_from, Route, RouteError};

/// Sites a request may pass through before it is refused: deeper than any
/// real hierarchy, so only a routing loop reaches it.
pub const MAX_HOPS: usize = 16;

/// The site server a request for another site goes to next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub site: SiteCode,
    /// Its server's address (HOST:PORT), as the links use it.
    pub server: String,
}

/// What this node does with a request addressed to a site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The request is for this site: serve it here.
    Here,
    /// Pass it on.
    Forward(NextHop),
}

/// `a > b > c`, or `(none)`, for messages.
pub fn path_text(path: &[SiteCode]) -> String {
    if path.is_empty() {
        return "(none)".into();
    }
    path.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" > ")
}

/// The checks on the sites a request passed before it got here, `path`
/// (first relay first), at site `here`.
pub fn check_path(here: &SiteCode, dest: &SiteCode, path: &[SiteCode]) -> Result<(), Refused> {
    if path.contains(here) {
        return Err(Refused::Precondition(format!(
            "routing loop: the request for site {dest} came back to site {here} (relayed by {}); \
             the sites' records of the hierarchy disagree (compare `controller sites` at each)",
            path_text(path)
        )));
    }
    if path.len() >= MAX_HOPS {
        return Err(Refused::Precondition(format!(
            "the request for site {dest} was relayed {} times (by {}), the most a request may \
             be; no hierarchy is that deep, so the sites' records loop",
            path.len(),
            path_text(path)
        )));
    }
    Ok(())
}

/// Where a request for `dest` goes from this node, having been relayed by
/// `path` (first relay first; empty when the administrator called this
/// node). `certified_as` is the site this node's certificate names (`None`
/// on a plaintext node): a node that is not installed yet, but was reached
/// through the relay as its site, answers for it (so `diagnose` can see a
/// site whose install failed).
pub fn step(
    ctx: &Ctx,
    dest: &SiteCode,
    path: &[SiteCode],
    certified_as: Option<&SiteCode>,
) -> Result<Step, Refused> {
    let Some(id) = ctx.identity() else {
        let relayed_here = !path.is_empty() && certified_as.is_none_or(|c| c == dest);
        if relayed_here {
            return Ok(Step::Here);
        }
        return Err(Refused::Precondition(format!(
            "this node is bare (no site is installed here), so it cannot reach site {dest}; \
             address a site server of the hierarchy with --node"
        )));
    };
    check_path(&id.site_code, dest, path)?;
    let hop = match route_from(ctx, &id, dest) {
        Ok(Route::Local) => return Ok(Step::Here),
        Ok(Route::Hop(h)) => h,
        Err(RouteError::NoRoute { from, to }) => {
            return Err(Refused::NotFound(format!(
                "site {to} is not below or above site {from}: {from} is the central site and \
                 knows no site {to} (`controller sites` there lists the sites it knows)"
            )))
        }
        Err(RouteError::NotInstalled) => return Err(crate::error::not_installed()),
    };
    let server = match id.parent.as_ref().filter(|p| p.site_code == hop) {
        Some(p) => p.address.clone(),
        None => match ctx.store.site(&hop)? {
            Some(rec) => rec.server,
            None => {
                return Err(Refused::NotFound(format!(
                    "no route to site {dest}: site {} has no record of site {hop}, its next hop",
                    id.site_code
                )))
            }
        },
    };
    if ctx.store.link_fault(&hop)?.is_some() {
        return Err(Refused::Unreachable(format!(
            "no route to site {dest}: the link from {here} to {hop} is severed (restore it at \
             {here}: restore-link --to {hop})",
            here = id.site_code
        )));
    }
    Ok(Step::Forward(NextHop { site: hop, server }))
}

/// Whether site `peer` (from its certificate) may hand this site a request
/// it relays, with the caller it relays for: only this site's parent or a
/// direct child, as for the links. A node with no site installed yet has
/// no neighbours; it takes a relayed request from any site server of the
/// hierarchy (the administrator's role is still checked here as for a
/// direct caller).
pub fn accept_from(ctx: &Ctx, peer: &SiteCode) -> Result<(), Refused> {
    let Some(id) = ctx.identity() else {
        return Ok(());
    };
    let is_parent = id.parent.as_ref().is_some_and(|p| &p.site_code == peer);
    let is_child = ctx
        .store
        .site(peer)?
        .is_some_and(|r| r.parent_site_code.as_ref() == Some(&id.site_code));
    if is_parent || is_child {
        Ok(())
    } else {
        Err(Refused::Denied(format!(
            "site {peer} is not a neighbour of site {} (only its parent and direct children may \
             relay a request to it)",
            id.site_code
        )))
    }
}
