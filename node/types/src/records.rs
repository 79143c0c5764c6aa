//! Records the store keeps that are not site control: what arrived, what
//! was refused, what an administrator cut.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::*;

/// A probe job recorded at its destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedProbe {
    pub job_id: Uuid,
    pub source: SiteCode,
    pub priority: Priority,
    pub arrival: u64,
    pub received_unix_us: u64,
}

/// A file package being received (or received) at this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedPackage {
    pub job_id: Uuid,
    pub package: FilePackage,
    pub source: SiteCode,
    pub dest: SiteCode,
    pub priority: Priority,
    pub created_unix_ms: u64,
    pub chunks_received: u32,
    pub complete: bool,
}

/// A CT1 that failed validation, kept rather than dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadCt1 {
    pub ct1: Ct1,
    pub reason: String,
    pub rejected_unix_ms: u64,
}

/// A severed link: persisted so it survives restarts until restored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFault {
    pub severed_unix_ms: u64,
}

/// The bootstrap package as received, with the id of the job that brought it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedBootstrap {
    pub job_id: Uuid,
    pub package: BootstrapPackage,
    pub received_unix_ms: u64,
}

/// What the store holds about a bootstrap when a new package arrives: the
/// Bootstrap component decides from it whether the package may be taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapSlot {
    /// A site is installed on this node.
    pub installed: bool,
    /// The package already recorded, if any.
    pub existing: Option<ReceivedBootstrap>,
    pub state: Option<BootstrapState>,
}

/// Why a bootstrap package is not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapRefusal {
    #[error("this node is already installed")]
    AlreadyInstalled,
    #[error("this node is already installing site {0}")]
    Installing(SiteCode),
}

/// Why a received frame is not stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DespoolRefusal {
    #[error("chunk frame without a file package")]
    ChunkWithoutPackage,
    #[error("chunk {index} of package {package} arrived before chunk {expected}")]
    ChunkOutOfOrder {
        package: Uuid,
        index: u32,
        expected: u32,
    },
    #[error("a probe delivery must carry a probe")]
    NotAProbe,
    /// Refused before it reached the store (routing, malformed frame).
    #[error("{0}")]
    Unroutable(String),
}

/// A key and certificate chain as the store keeps them (own certificate
/// first, root last). The trust crate gives them meaning.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredentials {
    pub key_pkcs8: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A join token as its issuer keeps it: the secret, what it is for, until
/// when, and whether it was used (a token works once).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: [u8; 16],
    pub secret: [u8; 32],
    /// Site code or member name.
    pub label: String,
    pub role: String,
    pub created_unix: i64,
    pub expires_unix: i64,
    /// When it was redeemed, and the serial of the certificate it bought.
    pub used: Option<(i64, String)>,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("label", &self.label)
            .field("role", &self.role)
            .field("expires_unix", &self.expires_unix)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

/// Why a token could not be redeemed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Used { at_unix: i64 },
    Expired { at_unix: i64 },
    BadProof,
    Other(String),
}

/// When a site below last reported to this ancestor (a CT2 or a status
/// message arriving here, by this site's clock), and whether it has been
/// declared stale (so the error and the clearing message are each reported
/// once, across restarts too).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteReport {
    pub last_report_unix_ms: u64,
    pub stale: bool,
}
