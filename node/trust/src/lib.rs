//! The hierarchy's trust: one certificate authority per hierarchy (the
//! central site's root, an intermediate per primary), certificates that
//! name a site or person and a role, join tokens for nodes that have no
//! certificate yet, and the TLS configurations every connection uses.
//! Pure: no I/O, no store. The site keeps the material; the server runs the
//! handshakes.

pub mod ca;
pub mod names;
pub mod sign;
pub mod tls;
pub mod token;

pub use ca::{Authority, Credentials};
pub use names::{AdminRole, Identity, Name, Role};
pub use token::JoinToken;

/// Why a trust operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    #[error("crypto: {0}")]
    Crypto(String),
}

pub use sms_types::limits::clip;

#[cfg(test)]
mod tests;
