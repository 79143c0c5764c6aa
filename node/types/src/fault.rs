//! Faults injected on demand: named and parsed in one place, so the admin
//! surface, the controller and the components agree on every name.

use serde::{Deserialize, Serialize};

/// A fault injected on demand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The job carrying this site's CT2 fails every attempt.
    Ct2JobFailure,
    /// The bootstrap fails at the given phase.
    BootstrapFailure { phase: u8 },
    /// The node's next certificate renewal stops the process (as a power
    /// cut or `kill -9` would) after the issuer answered and before the new
    /// certificate is stored. The fault clears itself first, so the node
    /// restarts with its old certificate and renews again.
    RenewalCrash,
    /// The node's links present a certificate from an authority outside the
    /// hierarchy, as if its certificate exchange with its neighbours had
    /// failed (SMS 2003: a site whose public key its parent lacked): every
    /// neighbour refuses them, and a site being installed stays Pending.
    CertExchangeFailure,
    /// At a site server: its site database refuses management points, as
    /// when the site server cannot add a server to the database's access
    /// group (seed 001: status messages 4908 and 5414).
    MpDbAccessRefused,
    /// At a management point: its agent (the policy service) stops
    /// answering clients while the HTTP listener stays up, as when the SMS
    /// Agent Host stopped; the MP Control Manager's verification fails.
    MpAgentStopped,
    /// At a management point server: a management point of a later version
    /// is left on its first allowed volume (a real version file), so setup
    /// refuses to install over it.
    MpLaterVersion,
}

/// The fault names an operator can give.
pub const FAULT_NAMES: [&str; 7] = [
    "ct2-job-failure",
    "bootstrap-failure",
    "renewal-crash",
    "cert-exchange-failure",
    "mp-db-access-refused",
    "mp-agent-stopped",
    "mp-later-version",
];

/// Why a fault request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error(
        "unknown fault {0:?}; faults are ct2-job-failure, bootstrap-failure, renewal-crash, \
         cert-exchange-failure, mp-db-access-refused, mp-agent-stopped and mp-later-version"
    )]
    Unknown(String),
    #[error("bootstrap-failure needs a phase from 1 to 4, not {0}")]
    Phase(u32),
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Ct2JobFailure => "ct2-job-failure",
            Fault::BootstrapFailure { .. } => "bootstrap-failure",
            Fault::RenewalCrash => "renewal-crash",
            Fault::CertExchangeFailure => "cert-exchange-failure",
            Fault::MpDbAccessRefused => "mp-db-access-refused",
            Fault::MpAgentStopped => "mp-agent-stopped",
            Fault::MpLaterVersion => "mp-later-version",
        }
    }

    /// The bootstrap phase a fault is bound to (0 for faults without one).
    pub fn phase(&self) -> u32 {
        match self {
            Fault::BootstrapFailure { phase } => *phase as u32,
            _ => 0,
        }
    }

    /// Parses an injection request: a name and, for `bootstrap-failure`, the
    /// phase (1 to 4) at which the install fails.
    pub fn parse(name: &str, phase: u32) -> Result<Fault, FaultError> {
        match name {
            "ct2-job-failure" => Ok(Fault::Ct2JobFailure),
            "renewal-crash" => Ok(Fault::RenewalCrash),
            "cert-exchange-failure" => Ok(Fault::CertExchangeFailure),
            "mp-db-access-refused" => Ok(Fault::MpDbAccessRefused),
            "mp-agent-stopped" => Ok(Fault::MpAgentStopped),
            "mp-later-version" => Ok(Fault::MpLaterVersion),
            "bootstrap-failure" => match phase {
                1..=4 => Ok(Fault::BootstrapFailure { phase: phase as u8 }),
                p => Err(FaultError::Phase(p)),
            },
            other => Err(FaultError::Unknown(other.to_string())),
        }
    }

    /// Checks a fault name given on its own (to clear it).
    pub fn check_name(name: &str) -> Result<&'static str, FaultError> {
        FAULT_NAMES
            .iter()
            .find(|n| **n == name)
            .copied()
            .ok_or_else(|| FaultError::Unknown(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault_and_refuses_the_rest() {
        assert_eq!(Fault::parse("ct2-job-failure", 0), Ok(Fault::Ct2JobFailure));
        assert_eq!(
            Fault::parse("bootstrap-failure", 3),
            Ok(Fault::BootstrapFailure { phase: 3 })
        );
        assert_eq!(
            Fault::parse("bootstrap-failure", 0),
            Err(FaultError::Phase(0))
        );
        assert_eq!(
            Fault::parse("bootstrap-failure", 5),
            Err(FaultError::Phase(5))
        );
        assert!(matches!(
            Fault::parse("disk-full", 0),
            Err(FaultError::Unknown(n)) if n == "disk-full"
        ));
    }

    #[test]
    fn names_round_trip() {
        for f in [Fault::Ct2JobFailure, Fault::BootstrapFailure { phase: 2 }] {
            assert_eq!(Fault::parse(f.name(), f.phase()), Ok(f.clone()));
            assert_eq!(Fault::check_name(f.name()), Ok(f.name()));
        }
        assert!(Fault::check_name("CT2-JOB-FAILURE").is_err());
    }

    #[test]
    fn refusals_name_the_fix() {
        let e = Fault::parse("nope", 0).unwrap_err().to_string();
        assert!(e.contains("ct2-job-failure") && e.contains("bootstrap-failure"));
    }
}
