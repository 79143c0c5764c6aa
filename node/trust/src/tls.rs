//! The rustls configurations of every connection (ring only).
//!
//! Both ends verify the other's chain up to the hierarchy's root. Nodes are
//! dialled by address, not by a name a certificate could carry, so the
//! client does not match a host name: it checks the chain, then that the
//! certificate names the site it meant to reach ([`Expect`]). A server
//! accepts a connection without a client certificate only so that a
//! joining node can present its token; every other call refuses it.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use sms_types::SiteCode;

use crate::ca::{fingerprint, Credentials};
use crate::names::Identity;
use crate::TrustError;

/// The one crypto provider: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whom a client means to reach.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expect {
    /// Any node of the hierarchy (an administrator's view).
    Any,
    /// The site server of this site (a link, a bootstrap, a delete).
    Site(SiteCode),
    /// A joining node, which knows only the root's fingerprint from its
    /// token: the server's chain must end in that root.
    Root([u8; 32]),
    /// Anyone, unverified: only for `sms-node health`, which sends no
    /// credentials and reads nothing but a serving flag.
    Unverified,
}

fn roots(root: &[u8]) -> Result<Arc<RootCertStore>, TrustError> {
    let mut store = RootCertStore::empty();
    store
        .add(CertificateDer::from(root.to_vec()))
        .map_err(|e| TrustError::BadCertificate(format!("the root certificate: {e}")))?;
    Ok(Arc::new(store))
}

fn key(creds: &Credentials) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(creds.key_pkcs8.clone()))
}

fn chain(creds: &Credentials) -> Vec<CertificateDer<'static>> {
    creds
        .chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect()
}

fn tls(e: rustls::Error) -> TrustError {
    TrustError::Crypto(e.to_string())
}

/// A node's server side: its own chain (root included, so a joining node
/// can match the fingerprint), client certificates verified up to the
/// root when presented.
pub fn server_config(creds: &Credentials) -> Result<ServerConfig, TrustError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(creds.root())?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TrustError::Crypto(e.to_string()))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain(creds), key(creds))
        .map_err(tls)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// A client side. `creds` is the caller's own certificate (a node's or an
/// administrator's); `None` for a joining node, which has none yet.
/// `root` is the hierarchy's root; not needed with [`Expect::Root`].
pub fn client_config(
    creds: Option<&Credentials>,
    root: Option<&[u8]>,
    expect: Expect,
) -> Result<ClientConfig, TrustError> {
    let inner = match (&expect, root) {
        (Expect::Root(_) | Expect::Unverified, _) => None,
        (_, Some(r)) => Some(verifier(roots(r)?)?),
        (_, None) => {
            return Err(TrustError::Invalid(
                "no root certificate to verify the server with".into(),
            ))
        }
    };
    let v = Arc::new(HierarchyVerifier { inner, expect });
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(v);
    let mut cfg = match creds {
        Some(c) => b.with_client_auth_cert(chain(c), key(c)).map_err(tls)?,
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

fn verifier(roots: Arc<RootCertStore>) -> Result<Arc<WebPkiServerVerifier>, TrustError> {
    WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TrustError::Crypto(e.to_string()))
}

#[derive(Debug)]
struct HierarchyVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    expect: Expect,
}

fn general(msg: String) -> rustls::Error {
    rustls::Error::General(msg)
}

impl ServerCertVerifier for HierarchyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let inner = match (&self.expect, &self.inner) {
            (Expect::Unverified, _) => return Ok(ServerCertVerified::assertion()),
            (Expect::Root(fp), _) => {
                let root = intermediates
                    .iter()
                    .find(|c| &fingerprint(c) == fp)
                    .ok_or_else(|| {
                        general(
                            "the server's certificate chain does not end in the hierarchy root \
                             named by the join token (wrong hierarchy, or a server posing as the issuer)"
                                .into(),
                        )
                    })?;
                verifier(roots(root).map_err(|e| general(e.to_string()))?)
                    .map_err(|e| general(e.to_string()))?
            }
            (_, Some(v)) => v.clone(),
            (_, None) => return Err(general("no root to verify the server with".into())),
        };
        let id = Identity::from_der(end_entity).map_err(|e| general(e.to_string()))?;
        // The name checked is the one the certificate carries: what matters
        // is the chain and the identity, checked next.
        let dns = id.name.dns(id.role);
        let name = ServerName::try_from(dns).map_err(|e| general(e.to_string()))?;
        let ok = inner.verify_server_cert(end_entity, intermediates, &name, ocsp, now)?;
        match &self.expect {
            Expect::Site(code) if id.site().as_ref() != Some(code) => Err(general(format!(
                "the server presents a certificate for {} ({}), not for site {code}",
                id.name.label, id.role
            ))),
            Expect::Root(_) | Expect::Site(_) if !id.role.is_site() => Err(general(format!(
                "the server presents a certificate for a {}, not a site server",
                id.role
            ))),
            _ => Ok(ok),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
