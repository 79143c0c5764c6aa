//! One error type for what the site refuses or fails to do: a kind the
//! edge maps to its own codes (once, in the server), and a message that
//! names the mistake and the fix.

use sms_store::StoreError;

/// Why an operation did not take effect. Nothing was changed unless the
/// message says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The request itself is wrong (a bad code, a value out of range).
    #[error("{0}")]
    Invalid(String),
    /// What it names does not exist here.
    #[error("{0}")]
    NotFound(String),
    /// It exists already.
    #[error("{0}")]
    Exists(String),
    /// Not now, or not on this node (bare, secondary, being deleted...).
    #[error("{0}")]
    Precondition(String),
    /// Another node that had to take part could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The caller may not do this (a neighbour check, a frozen counter).
    #[error("{0}")]
    Denied(String),
    /// A fault on this node (store, disk).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SiteExists(code) => {
                Refused::Exists(format!("site {code} already exists in the hierarchy"))
            }
            other => Refused::Internal(other.to_string()),
        }
    }
}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        Refused::Internal(format!("{e:#}"))
    }
}

/// The node must hold a site install for this.
pub fn not_installed() -> Refused {
    Refused::Precondition("this node is bare: no site is installed here".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_refusals_keep_their_meaning() {
        let e: Refused = StoreError::SiteExists("S01".parse().unwrap()).into();
        assert_eq!(
            e,
            Refused::Exists("site S01 already exists in the hierarchy".into())
        );
        let e: Refused = StoreError::Flush("disk".into()).into();
        assert!(matches!(e, Refused::Internal(m) if m.contains("disk")));
    }

    #[test]
    fn anyhow_errors_keep_their_chain() {
        let e: Refused = anyhow::anyhow!("inner").context("outer").into();
        assert_eq!(e, Refused::Internal("outer: inner".into()));
    }
}
