//! What a certificate says about its holder, and how it is written.
//!
//! Every certificate of a hierarchy carries one DNS name that spells the
//! holder's place in the tree, nearest first:
//! `s11.p01.cen.sms.invalid` is site S11 below P01 below the central site
//! CEN. A primary's CA certificate is constrained to its own name's
//! subtree, so the TLS library itself refuses a certificate that a child
//! primary issued for a site outside its subtree. The role sits in the
//! subject's organizational unit.

use std::fmt;

use sms_types::SiteCode;
use x509_parser::prelude::*;

use crate::TrustError;

/// The private suffix every name of the hierarchy ends in (`.invalid` is
/// reserved, so no public certificate can ever carry it).
pub const SUFFIX: &str = "sms.invalid";

/// What an administrator may do. Ordered: each role includes the ones below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminRole {
    /// Status, sites, site control, status messages, logs, diagnose.
    ReadOnly,
    /// Also links, retries, faults and force-ct2; no deletes, no site
    /// control changes.
    Operator,
    /// Everything.
    Full,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::ReadOnly => "read-only",
            AdminRole::Operator => "operator",
            AdminRole::Full => "full",
        }
    }
}

impl std::str::FromStr for AdminRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(AdminRole::Full),
            "operator" => Ok(AdminRole::Operator),
            "read-only" | "readonly" => Ok(AdminRole::ReadOnly),
            other => Err(format!(
                "{:?} is not an administrator role; use full, operator or read-only",
                crate::clip(other)
            )),
        }
    }
}

impl fmt::Display for AdminRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who holds a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A primary site's certificate authority (the central site's is the root).
    Ca,
    /// A primary site's server.
    Primary,
    /// A secondary site's server (or a bare node joining as one).
    Secondary,
    /// A member server (logon server, site system) of the hierarchy.
    Member,
    /// An administrator, for `controller`.
    Admin(AdminRole),
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ca => "ca",
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Member => "member",
            Role::Admin(AdminRole::Full) => "admin-full",
            Role::Admin(AdminRole::Operator) => "admin-operator",
            Role::Admin(AdminRole::ReadOnly) => "admin-read-only",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "ca" => Role::Ca,
            "primary" => Role::Primary,
            "secondary" => Role::Secondary,
            "member" => Role::Member,
            "admin-full" => Role::Admin(AdminRole::Full),
            "admin-operator" => Role::Admin(AdminRole::Operator),
            "admin-read-only" => Role::Admin(AdminRole::ReadOnly),
            _ => return None,
        })
    }

    /// A site server's role (as opposed to a person or a member server).
    pub fn is_site(self) -> bool {
        matches!(self, Role::Primary | Role::Secondary)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A place in the tree: the holder's own label, then its ancestors'
/// site codes, nearest first (empty for the central site).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    /// A site code (`S11`), or a person's or member server's name.
    pub label: String,
    pub ancestors: Vec<SiteCode>,
}

impl Name {
    pub fn site(code: &SiteCode, ancestors: &[SiteCode]) -> Name {
        Name {
            label: code.to_string(),
            ancestors: ancestors.to_vec(),
        }
    }

    /// The DNS name written in the certificate. Admins and members get a
    /// prefix so their names can never collide with a site code.
    pub fn dns(&self, role: Role) -> String {
        let mut parts = vec![match role {
            Role::Admin(_) => format!("a-{}", self.label.to_ascii_lowercase()),
            Role::Member => format!("m-{}", self.label.to_ascii_lowercase()),
            _ => self.label.to_ascii_lowercase(),
        }];
        parts.extend(
            self.ancestors
                .iter()
                .map(|c| c.to_string().to_ascii_lowercase()),
        );
        parts.push(SUFFIX.to_string());
        parts.join(".")
    }

    /// The subtree a CA at this name may issue in: its own DNS name.
    pub fn subtree(&self) -> String {
        self.dns(Role::Ca)
    }

    /// The sites this name lies below or at, nearest first, as a site
    /// path: for a site its own code then its ancestors; for a person or
    /// member only the issuing site's path.
    pub fn site_path(&self, role: Role) -> Vec<SiteCode> {
        let mut path = Vec::new();
        if matches!(role, Role::Primary | Role::Secondary | Role::Ca) {
            if let Ok(c) = self.label.parse() {
                path.push(c);
            }
        }
        path.extend(self.ancestors.iter().cloned());
        path
    }

    fn from_dns(dns: &str, role: Role) -> Result<Name, TrustError> {
        let bad = || {
            TrustError::BadCertificate(format!(
                "its name {:?} is not a hierarchy name",
                crate::clip(dns)
            ))
        };
        let rest = dns
            .strip_suffix(SUFFIX)
            .and_then(|r| r.strip_suffix('.'))
            .ok_or_else(bad)?;
        let mut labels = rest.split('.');
        let first = labels.next().ok_or_else(bad)?;
        let label = match role {
            Role::Admin(_) => first.strip_prefix("a-").ok_or_else(bad)?.to_string(),
            Role::Member => first.strip_prefix("m-").ok_or_else(bad)?.to_string(),
            _ => first
                .to_ascii_uppercase()
                .parse::<SiteCode>()
                .map_err(|_| bad())?
                .to_string(),
        };
        let ancestors = labels
            .map(|l| {
                l.to_ascii_uppercase()
                    .parse::<SiteCode>()
                    .map_err(|_| bad())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Name { label, ancestors })
    }
}

/// Checks a person's or member server's name: it becomes a DNS label.
pub fn check_label(name: &str) -> Result<(), TrustError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(TrustError::Invalid(format!(
            "{:?} is not a valid name: use 1 to 32 lowercase letters, digits or inner hyphens",
            crate::clip(name)
        )))
    }
}

/// What a certificate says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub role: Role,
    pub name: Name,
    /// The certificate's serial number, hex.
    pub serial: String,
    /// When it expires, seconds since the Unix epoch.
    pub not_after: i64,
    pub not_before: i64,
    /// Subject, as printed in logs and the audit trail.
    pub subject: String,
}

impl Identity {
    /// Whether a holder should renew this certificate at `now_unix`: from
    /// two thirds of its life on, which leaves a third of it (and of a
    /// short test lifetime, still a few rounds of the check) for an issuer
    /// that is down for a while.
    pub fn renewal_due(&self, now_unix: i64) -> bool {
        let life = (self.not_after - self.not_before).max(0);
        now_unix >= self.not_before + life * 2 / 3
    }

    /// Reads a certificate this hierarchy issued. It does not verify it:
    /// the TLS handshake did that.
    pub fn from_der(der: &[u8]) -> Result<Identity, TrustError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| TrustError::BadCertificate(format!("it does not parse: {e}")))?;
        let role = cert
            .subject()
            .iter_organizational_unit()
            .next()
            .and_then(|ou| ou.as_str().ok())
            .and_then(Role::parse)
            .ok_or_else(|| TrustError::BadCertificate("it names no hierarchy role".into()))?;
        let dns = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|g| match g {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
            });
        let name = match (role, dns) {
            (_, Some(d)) => Name::from_dns(&d, role)?,
            (Role::Ca, None) => {
                // The root has no name constraint and no DNS name: its
                // common name carries the central site's code.
                let cn = cert
                    .subject()
                    .iter_common_name()
                    .next()
                    .and_then(|c| c.as_str().ok())
                    .unwrap_or_default();
                let code = cn.rsplit(' ').next().unwrap_or_default();
                Name {
                    label: code.to_string(),
                    ancestors: Vec::new(),
                }
            }
            (_, None) => {
                return Err(TrustError::BadCertificate(
                    "it carries no hierarchy name".into(),
                ))
            }
        };
        Ok(Identity {
            role,
            name,
            serial: cert.raw_serial_as_string().replace(':', ""),
            not_after: cert.validity().not_after.timestamp(),
            not_before: cert.validity().not_before.timestamp(),
            subject: cert.subject().to_string(),
        })
    }

    /// The site code, for a site server's certificate.
    pub fn site(&self) -> Option<SiteCode> {
        if self.role.is_site() {
            self.name.label.parse().ok()
        } else {
            None
        }
    }

    /// The administrator role, for a person's certificate.
    pub fn admin_role(&self) -> Option<AdminRole> {
        match self.role {
            Role::Admin(r) => Some(r),
            _ => None,
        }
    }

    /// Whether an administrator issued at `self` may act on the site whose
    /// path (own code first, then ancestors) is `site_path`: only within
    /// the subtree of the site that issued the certificate.
    pub fn covers(&self, site_path: &[SiteCode]) -> bool {
        let scope = &self.name.ancestors;
        scope.len() <= site_path.len() && site_path.ends_with(scope)
    }
}
