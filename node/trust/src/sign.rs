//! Signatures over site control: a CT1 is signed by the site that made the
//! change and verified by the site that applies it, against the
//! hierarchy's root, whatever hops it took.

use rustls_pki_types::{CertificateDer, UnixTime};

use crate::ca::Credentials;
use crate::names::Identity;
use crate::TrustError;

/// Signs `msg` with this node's key (ECDSA P-256, SHA-256).
pub fn sign(creds: &Credentials, msg: &[u8]) -> Result<Vec<u8>, TrustError> {
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &creds.key_pkcs8, &rng)
        .map_err(|e| TrustError::Crypto(format!("this node's key cannot sign: {e}")))?;
    let sig = kp
        .sign(&rng, msg)
        .map_err(|e| TrustError::Crypto(format!("signing failed: {e}")))?;
    Ok(sig.as_ref().to_vec())
}

/// Verifies that `chain` leads to `root` (valid now, the signer's
/// certificate usable for client authentication, name constraints held),
/// and that its first certificate signed `msg`. Returns the signer.
pub fn verify(
    root: &[u8],
    chain: &[Vec<u8>],
    msg: &[u8],
    signature: &[u8],
) -> Result<Identity, TrustError> {
    let bad = |what: &str, e: webpki::Error| TrustError::BadCertificate(format!("{what}: {e}"));
    let first = chain
        .first()
        .ok_or_else(|| TrustError::BadCertificate("no signer certificate".into()))?;
    let root_der = CertificateDer::from(root);
    let anchor = webpki::anchor_from_trusted_cert(&root_der).map_err(|e| bad("the root", e))?;
    let ee_der = CertificateDer::from(first.as_slice());
    let ee = webpki::EndEntityCert::try_from(&ee_der).map_err(|e| bad("the signer", e))?;
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| {
        bad(
            "the signer's certificate does not lead to this hierarchy's root",
            e,
        )
    })?;
    ee.verify_signature(webpki::ring::ECDSA_P256_SHA256, msg, signature)
        .map_err(|e| bad("the signature does not match the signed body", e))?;
    Identity::from_der(first)
}
