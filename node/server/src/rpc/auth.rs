//! Who may call what. The caller's identity comes from the verified TLS
//! client certificate (see [`crate::security`]), never from anything a
//! request says. Each handler names what it needs with one call here.

use sms_trust::{AdminRole, Identity, Role};
use sms_types::SiteCode;
use tonic::{Request, Status};

use super::relay::Relayed;
use crate::security::PeerInfo;

/// The caller of one request.
#[derive(Clone, Debug)]
pub enum Caller {
    /// A plaintext node (`--insecure`): nobody is authenticated and every
    /// call is allowed, as before TLS.
    Insecure,
    /// TLS without a client certificate (a joining node).
    Anonymous,
    /// A verified certificate.
    Known(Identity),
    /// An administrator whose call neighbouring site servers relayed here
    /// (`controller --site`), through `via` (first relay first). Checked
    /// as a direct caller with that certificate would be.
    Relayed { id: Identity, via: Vec<SiteCode> },
}

impl Caller {
    pub fn of<T>(req: &Request<T>) -> Caller {
        if let Some(r) = req.extensions().get::<Relayed>() {
            return match &r.caller {
                Some(c) => Caller::Relayed {
                    id: c.identity(),
                    via: r.via.clone(),
                },
                None => Caller::Insecure,
            };
        }
        match req.extensions().get::<PeerInfo>() {
            Some(PeerInfo { tls: false, .. }) | None => Caller::Insecure,
            Some(PeerInfo {
                identity: Some(id), ..
            }) => Caller::Known(id.clone()),
            Some(_) => Caller::Anonymous,
        }
    }

    /// The certificate subject for logs and the audit trail.
    pub fn subject(&self) -> String {
        match self {
            Caller::Insecure => "an unauthenticated caller (--insecure)".into(),
            Caller::Anonymous => "a caller without a certificate".into(),
            Caller::Known(id) => format!("{} ({})", id.name.label, id.role),
            Caller::Relayed { id, via } => format!(
                "{} ({}) via {}",
                id.name.label,
                id.role,
                sms_site::relay::path_text(via)
            ),
        }
    }
}

fn no_cert() -> Status {
    Status::unauthenticated(
        "this call needs a client certificate of this hierarchy: controller takes an administrator \
         certificate with --tls-dir (or SMS_TLS_DIR); `controller up` writes one",
    )
}

/// An administrator whose role is at least `need` and whose certificate
/// was issued at this site or one of its ancestors. `here` is this site's
/// path (own code first); empty on a bare node.
pub fn admin<T>(req: &Request<T>, need: AdminRole, here: &[SiteCode]) -> Result<Caller, Status> {
    let caller = Caller::of(req);
    match &caller {
        Caller::Insecure => Ok(caller),
        Caller::Anonymous => Err(no_cert()),
        Caller::Known(id) | Caller::Relayed { id, .. } => {
            let Some(role) = id.admin_role() else {
                return Err(Status::permission_denied(format!(
                    "{} is a {} certificate, not an administrator's",
                    id.name.label, id.role
                )));
            };
            if role < need {
                return Err(Status::permission_denied(format!(
                    "administrator {} has role {role}; this needs {need} (issue a certificate with \
                     that role: `controller admin issue --role {need}`)",
                    id.name.label
                )));
            }
            if !here.is_empty() && !id.covers(here) {
                return Err(Status::permission_denied(format!(
                    "administrator {}'s certificate was issued at {}, which is not this site or one \
                     of its ancestors",
                    id.name.label,
                    id.name
                        .ancestors
                        .first()
                        .map(|c| c.to_string())
                        .unwrap_or_default()
                )));
            }
            Ok(caller)
        }
    }
}

/// A site server's certificate; returns its site code (`None` on a
/// plaintext node, where nothing can be checked).
pub fn site<T>(req: &Request<T>) -> Result<Option<SiteCode>, Status> {
    match Caller::of(req) {
        Caller::Insecure => Ok(None),
        Caller::Anonymous => Err(no_cert()),
        Caller::Known(id) => match id.site() {
            Some(code) => Ok(Some(code)),
            None => Err(Status::permission_denied(format!(
                "{} is a {} certificate; only a site server may make this call",
                id.name.label, id.role
            ))),
        },
        Caller::Relayed { id, .. } => Err(Status::permission_denied(format!(
            "{} ({}) called through the relay; only a site server itself may make this call",
            id.name.label, id.role
        ))),
    }
}

/// The site server of `expected` only.
pub fn site_is<T>(req: &Request<T>, expected: &SiteCode, what: &str) -> Result<(), Status> {
    match site(req)? {
        None => Ok(()),
        Some(code) if &code == expected => Ok(()),
        Some(code) => Err(Status::permission_denied(format!(
            "the caller's certificate is for site {code}; only site {expected} may {what}"
        ))),
    }
}

/// Whether the caller is the site server of `parent`, this site's parent
/// (its certificate says so; never on a plaintext node, where nobody is
/// known). Such a caller may read this node's status: its console shows
/// the edges one tier below it.
pub fn is_site_server_of<T>(req: &Request<T>, parent: Option<&SiteCode>) -> bool {
    matches!((site(req), parent), (Ok(Some(caller)), Some(p)) if &caller == p)
}

/// Any certificate of the hierarchy (site, member or administrator).
pub fn member<T>(req: &Request<T>) -> Result<Caller, Status> {
    match Caller::of(req) {
        Caller::Anonymous => Err(no_cert()),
        other => Ok(other),
    }
}

/// A site server or member server (not a person): logon servers asking for
/// ID ranges.
pub fn node<T>(req: &Request<T>) -> Result<Caller, Status> {
    let caller = member(req)?;
    if let Caller::Known(id) | Caller::Relayed { id, .. } = &caller {
        if !(id.role.is_site() || id.role == Role::Member) {
            return Err(Status::permission_denied(format!(
                "{} is a {} certificate; only a site or member server may make this call",
                id.name.label, id.role
            )));
        }
    }
    Ok(caller)
}

/// Refuses a caller whose certificate (or an issuer of it) this node
/// revoked: a deleted site, a revoked administrator (a relayed one too,
/// and the site servers that relayed the call).
pub fn not_revoked<T>(req: &Request<T>, ctx: &sms_site::Ctx) -> Result<(), Status> {
    let Some(info) = req.extensions().get::<PeerInfo>() else {
        return Ok(());
    };
    let mut serials = info.chain_serials.clone();
    if let Some(Relayed {
        caller: Some(c), ..
    }) = req.extensions().get::<Relayed>()
    {
        serials.extend(c.serials.iter().cloned());
    }
    match sms_site::trust::any_revoked(ctx, &serials) {
        Ok(None) => Ok(()),
        Ok(Some(serial)) => Err(Status::permission_denied(format!(
            "certificate {serial} was revoked here (its site was deleted, or an administrator \
             revoked it); a deleted site's node joins again with a new token"
        ))),
        Err(e) => Err(Status::internal(e.to_string())),
    }
}
