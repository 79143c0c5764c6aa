//! Join tokens: how a node with no certificate gets one.
//!
//! An administrator asks a primary for a token for one site code (or one
//! member server name). The token carries the issuer's address, the
//! fingerprint of the hierarchy's root certificate and a secret. The
//! joining node refuses an issuer whose chain does not end in that root,
//! and proves it holds the secret with an HMAC over its signing request,
//! so the secret itself never crosses the wire and a captured request
//! cannot be replayed with another key. The issuer keeps the secret, the
//! expiry and whether the token was used: a token works once.

use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::names::Role;
use crate::TrustError;

const PREFIX: &str = "SMSJOIN1.";

/// What the joining node holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    pub id: [u8; 16],
    pub secret: [u8; 32],
    /// SHA-256 of the hierarchy's root certificate.
    pub ca_fingerprint: [u8; 32],
    /// Where the issuing primary's site server listens.
    pub issuer: String,
    /// The site code or member name the token is for.
    pub label: String,
    /// The role the certificate will carry (`primary`, `secondary`, `member`).
    pub role: String,
    /// When it stops working, seconds since the Unix epoch.
    pub expires_unix: i64,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("JoinToken")
            .field("id", &hex::encode(self.id))
            .field("issuer", &self.issuer)
            .field("label", &self.label)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl JoinToken {
    pub fn new(
        ca_fingerprint: [u8; 32],
        issuer: String,
        label: String,
        role: Role,
        expires_unix: i64,
    ) -> JoinToken {
        JoinToken {
            id: rand::random(),
            secret: rand::random(),
            ca_fingerprint,
            issuer,
            label,
            role: role.as_str().to_string(),
            expires_unix,
        }
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    pub fn role(&self) -> Option<Role> {
        Role::parse(&self.role)
    }

    /// The text an operator copies: a prefix and base64url.
    pub fn encode(&self) -> String {
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    pub fn decode(text: &str) -> Result<JoinToken, TrustError> {
        let text = text.trim();
        let body = text.strip_prefix(PREFIX).ok_or_else(|| {
            TrustError::Invalid(format!(
                "this is not a join token (a token starts with {PREFIX}); make one with `controller token create`"
            ))
        })?;
        if body.len() > 4096 {
            return Err(TrustError::Invalid("the join token is too long".into()));
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TrustError::Invalid("the join token is damaged (bad base64)".into()))?;
        let t: JoinToken = postcard::from_bytes(&bytes)
            .map_err(|_| TrustError::Invalid("the join token is damaged".into()))?;
        if t.role().is_none() {
            return Err(TrustError::Invalid(format!(
                "the join token names an unknown role {:?}",
                crate::clip(&t.role)
            )));
        }
        Ok(t)
    }

    /// The joining node's proof that it holds this token, bound to the
    /// signing request it sends.
    pub fn proof(&self, csr: &[u8]) -> Vec<u8> {
        proof(&self.secret, &self.id, csr)
    }
}

/// HMAC-SHA256 over the token id and the signing request.
pub fn proof(secret: &[u8; 32], id: &[u8; 16], csr: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"sms-join-v1");
    ctx.update(id);
    ctx.update(csr);
    ctx.sign().as_ref().to_vec()
}

/// Checks a proof in constant time.
pub fn verify_proof(secret: &[u8; 32], id: &[u8; 16], csr: &[u8], proof: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut msg = Vec::with_capacity(11 + 16 + csr.len());
    msg.extend_from_slice(b"sms-join-v1");
    msg.extend_from_slice(id);
    msg.extend_from_slice(csr);
    hmac::verify(&key, &msg, proof).is_ok()
}
