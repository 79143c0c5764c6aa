//! Certificate authorities and the certificates they issue.
//!
//! The central site's authority is the hierarchy's root; every other
//! primary holds an intermediate issued by its parent. A node makes its own
//! key and sends only a signing request; the issuer decides everything the
//! certificate says (name, role, validity) and takes nothing from the
//! request but its public key.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use sms_types::SiteCode;
use time::{Duration, OffsetDateTime};

use crate::names::{Identity, Name, Role};
use crate::TrustError;

/// How long what we issue is valid by default. Holders renew at two thirds
/// of a certificate's life (see `sms-site`'s `trust::renewal_due`); an
/// issuer may be told to issue shorter lives (`--cert-lifetime`).
pub const ROOT_DAYS: i64 = 3650;
pub const CA_DAYS: i64 = 1825;
pub const LEAF_DAYS: i64 = 397;

/// Tolerated clock difference between an issuer and a holder.
const BACKDATE: Duration = Duration::minutes(10);

/// A fresh ECDSA P-256 key (fast handshakes, small certificates).
pub fn new_key() -> Result<KeyPair, TrustError> {
    KeyPair::generate().map_err(crypto)
}

/// A signing request for `key`. It carries nothing but the public key and
/// its proof of possession: the issuer names the holder.
pub fn signing_request(key: &KeyPair) -> Result<Vec<u8>, TrustError> {
    let params = CertificateParams::new(Vec::<String>::new()).map_err(crypto)?;
    Ok(params
        .serialize_request(key)
        .map_err(crypto)?
        .der()
        .to_vec())
}

/// SHA-256 of a certificate, the fingerprint join tokens carry.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn crypto(e: rcgen::Error) -> TrustError {
    TrustError::Crypto(e.to_string())
}

/// A key and its certificate chain (own certificate first, root last).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub key_pkcs8: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a private key.
        f.debug_struct("Credentials")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn new(key: &KeyPair, chain: Vec<Vec<u8>>) -> Credentials {
        Credentials {
            key_pkcs8: key.serialize_der(),
            chain,
        }
    }

    /// What the own certificate says.
    pub fn identity(&self) -> Result<Identity, TrustError> {
        let leaf = self
            .chain
            .first()
            .ok_or_else(|| TrustError::BadCertificate("the chain is empty".into()))?;
        Identity::from_der(leaf)
    }

    /// The hierarchy's root certificate.
    pub fn root(&self) -> &[u8] {
        self.chain.last().map(Vec::as_slice).unwrap_or_default()
    }

    pub fn key_pair(&self) -> Result<KeyPair, TrustError> {
        let der = PrivatePkcs8KeyDer::from(self.key_pkcs8.as_slice());
        KeyPair::try_from(&der).map_err(crypto)
    }

    /// PEM text of the chain (for files an operator handles).
    pub fn chain_pem(&self) -> String {
        self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect()
    }

    pub fn key_pem(&self) -> String {
        pem("PRIVATE KEY", &self.key_pkcs8)
    }

    /// Reads a key and chain from PEM text.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Credentials, TrustError> {
        let chain = parse_pem(chain_pem, "CERTIFICATE")?;
        if chain.is_empty() {
            return Err(TrustError::Invalid("no certificate in the PEM text".into()));
        }
        let key = parse_pem(key_pem, "PRIVATE KEY")?
            .into_iter()
            .next()
            .ok_or_else(|| TrustError::Invalid("no PKCS#8 private key in the PEM text".into()))?;
        let creds = Credentials {
            key_pkcs8: key,
            chain,
        };
        creds.key_pair()?;
        Ok(creds)
    }
}

/// PEM-encodes one DER object.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every `label` object in PEM text, in order.
pub fn parse_pem(text: &str, label: &str) -> Result<Vec<Vec<u8>>, TrustError> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let body = &rest[start + begin.len()..];
        let stop = body
            .find(&end)
            .ok_or_else(|| TrustError::Invalid(format!("unterminated {label} block")))?;
        let b64: String = body[..stop].split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| TrustError::Invalid(format!("bad base64 in a {label} block: {e}")))?;
        out.push(der);
        rest = &body[stop + end.len()..];
    }
    Ok(out)
}

/// A certificate authority: a primary site's, or the hierarchy's root.
pub struct Authority {
    key: KeyPair,
    /// This authority's certificate first, the root last.
    chain: Vec<Vec<u8>>,
    name: Name,
}

impl Authority {
    /// Creates the hierarchy's root, named for the central site.
    pub fn new_root(central: &SiteCode) -> Result<Authority, TrustError> {
        let key = new_key()?;
        let name = Name::site(central, &[]);
        let mut params = ca_params(&name)?;
        params.name_constraints = None;
        params.not_after = OffsetDateTime::now_utc() + Duration::days(ROOT_DAYS);
        let cert = params.self_signed(&key).map_err(crypto)?;
        Ok(Authority {
            key,
            chain: vec![cert.der().to_vec()],
            name,
        })
    }

    /// An authority from its stored key and chain.
    pub fn load(creds: &Credentials) -> Result<Authority, TrustError> {
        let id = creds.identity()?;
        if id.role != Role::Ca {
            return Err(TrustError::BadCertificate(format!(
                "{} is not a certificate authority",
                id.subject
            )));
        }
        Ok(Authority {
            key: creds.key_pair()?,
            chain: creds.chain.clone(),
            name: id.name,
        })
    }

    pub fn credentials(&self) -> Credentials {
        Credentials::new(&self.key, self.chain.clone())
    }

    pub fn name(&self) -> &Name {
        &self.name
    }

    pub fn root(&self) -> &[u8] {
        self.chain.last().map(Vec::as_slice).unwrap_or_default()
    }

    /// The fingerprint a join token carries.
    pub fn root_fingerprint(&self) -> [u8; 32] {
        fingerprint(self.root())
    }

    /// Issues a certificate for the public key in `csr`, naming `name` in
    /// `role`. Returns the holder's chain: the new certificate, then this
    /// authority's chain up to the root.
    pub fn issue(&self, csr: &[u8], role: Role, name: &Name) -> Result<Vec<Vec<u8>>, TrustError> {
        self.issue_with(csr, role, name, None)
    }

    /// [`Authority::issue`] valid for `lifetime` from now (the defaults when
    /// None), and never past this authority's own expiry: a certificate
    /// cannot outlive the chain that vouches for it.
    pub fn issue_lasting(
        &self,
        csr: &[u8],
        role: Role,
        name: &Name,
        lifetime: Option<std::time::Duration>,
    ) -> Result<Vec<Vec<u8>>, TrustError> {
        let now = OffsetDateTime::now_utc();
        let default = if role == Role::Ca {
            Duration::days(CA_DAYS)
        } else {
            Duration::days(LEAF_DAYS)
        };
        let life = lifetime
            .and_then(|l| Duration::try_from(l).ok())
            .unwrap_or(default);
        let mut until = now + life;
        if let Ok(own) = Identity::from_der(&self.chain[0]) {
            if let Ok(own_end) = OffsetDateTime::from_unix_timestamp(own.not_after) {
                until = until.min(own_end);
            }
        }
        // Backdated for clock skew, but by no more than a tenth of a short
        // life (as capped): renewal is due at two thirds of the life as
        // written.
        let back = BACKDATE.min((until - now) / 10);
        self.issue_with(csr, role, name, Some((now - back, until)))
    }

    /// [`Authority::issue_own`] valid for `lifetime` (see
    /// [`Authority::issue_lasting`]).
    pub fn issue_own_lasting(
        &self,
        role: Role,
        name: &Name,
        lifetime: Option<std::time::Duration>,
    ) -> Result<Credentials, TrustError> {
        let key = new_key()?;
        let chain = self.issue_lasting(&signing_request(&key)?, role, name, lifetime)?;
        Ok(Credentials::new(&key, chain))
    }

    /// Replaces this authority's certificate chain (a renewed certificate
    /// for the same key): what it issues from now on carries the new chain.
    pub fn with_chain(mut self, chain: Vec<Vec<u8>>) -> Authority {
        self.chain = chain;
        self
    }

    /// [`Authority::issue`] with an explicit validity (tests of expiry).
    pub(crate) fn issue_with(
        &self,
        csr: &[u8],
        role: Role,
        name: &Name,
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> Result<Vec<Vec<u8>>, TrustError> {
        let der = CertificateSigningRequestDer::from(csr);
        let mut req = CertificateSigningRequestParams::from_der(&der).map_err(|e| {
            TrustError::Invalid(format!("the certificate signing request is not valid: {e}"))
        })?;
        req.params = match role {
            Role::Ca => {
                let mut p = ca_params(name)?;
                p.not_after = OffsetDateTime::now_utc() + Duration::days(CA_DAYS);
                p
            }
            _ => leaf_params(role, name)?,
        };
        if let Some((from, to)) = validity {
            req.params.not_before = from;
            req.params.not_after = to;
        }
        let issuer_cert = CertificateDer::from(self.chain[0].as_slice());
        let issuer = Issuer::from_ca_cert_der(&issuer_cert, &self.key).map_err(crypto)?;
        let cert = req.signed_by(&issuer).map_err(crypto)?;
        let mut chain = vec![cert.der().to_vec()];
        chain.extend(self.chain.iter().cloned());
        Ok(chain)
    }

    /// Issues this node's own certificate with a key made here.
    pub fn issue_own(&self, role: Role, name: &Name) -> Result<Credentials, TrustError> {
        let key = new_key()?;
        let chain = self.issue(&signing_request(&key)?, role, name)?;
        Ok(Credentials::new(&key, chain))
    }
}

fn base_params(role: Role, name: &Name, cn: String) -> Result<CertificateParams, TrustError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationalUnitName, role.as_str());
    dn.push(DnType::OrganizationName, "SMS hierarchy");
    p.distinguished_name = dn;
    let dns = name.dns(role);
    p.subject_alt_names =
        vec![SanType::DnsName(dns.clone().try_into().map_err(|_| {
            TrustError::Invalid(format!("{dns:?} is not a valid DNS name"))
        })?)];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - BACKDATE;
    p.not_after = now + Duration::days(LEAF_DAYS);
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(p)
}

fn ca_params(name: &Name) -> Result<CertificateParams, TrustError> {
    let mut p = base_params(Role::Ca, name, format!("SMS CA {}", name.label))?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(name.subtree())],
        excluded_subtrees: vec![],
    });
    Ok(p)
}

fn leaf_params(role: Role, name: &Name) -> Result<CertificateParams, TrustError> {
    let cn = match role {
        Role::Primary | Role::Secondary => format!("{} site server", name.label),
        Role::Member => format!("{} member server", name.label),
        Role::Admin(r) => format!("{} ({r} administrator)", name.label),
        Role::Ca => unreachable!("CA certificates use ca_params"),
    };
    let mut p = base_params(role, name, cn)?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = match role {
        Role::Admin(_) => vec![ExtendedKeyUsagePurpose::ClientAuth],
        _ => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    Ok(p)
}
