//! Console sessions: how a browser, which holds no administrator
//! certificate, acts for an administrator who does.
//!
//! An authenticated administrator asks the node for a sign-in ticket (the
//! `CreateConsoleSession` RPC, `controller console-url`): a random token
//! bound to their certificate subject, role and chain, valid at this node
//! only and for a short time. The console URL carries it once; the node
//! trades it for a session id (set as an HttpOnly, SameSite=Strict cookie)
//! and a CSRF token (which the page sends in a header with every action),
//! so the ticket in the browser's history is spent. Sessions live in
//! memory: a restarted node forgets them, and the administrator asks again.
//!
//! Tokens are kept by their SHA-256, so a lookup's timing says nothing
//! about a stored token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use sha2::{Digest, Sha256};
use sms_trust::AdminRole;

/// How long a session lasts when the administrator does not say.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// The longest session a ticket may buy.
pub const MAX_TTL: Duration = Duration::from_secs(8 * 3600);
/// Tickets and sessions a node keeps at once (each a few hundred bytes);
/// expired ones are dropped first.
pub const MAX_LIVE: usize = 256;

/// Who a ticket (and the session bought with it) acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The certificate subject, as the audit trail words it.
    pub subject: String,
    pub role: AdminRole,
    /// Serials of the certificate chain: a revoked one ends the session.
    pub chain_serials: Vec<String>,
}

/// A ticket as handed to the administrator.
#[derive(Clone, Debug)]
pub struct Ticket {
    pub token: String,
    pub expires_unix: u64,
}

/// A session as the page sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub grant: Grant,
    pub csrf: String,
    pub expires_unix: u64,
}

/// Why a ticket, session or action was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("this sign-in link is unknown or was already used; ask for a new one with `controller console-url`")]
    UnknownTicket,
    #[error("not signed in: open the link `controller console-url` prints")]
    NoSession,
    #[error("the console session expired; sign in again with `controller console-url`")]
    Expired,
    #[error("the request lacks the session's CSRF token (header x-sms-csrf)")]
    Csrf,
    #[error("administrator {subject} has role {have}; this needs {need}")]
    Role {
        subject: String,
        have: AdminRole,
        need: AdminRole,
    },
    #[error("this node already keeps {MAX_LIVE} console sessions and sign-in links; try again when some expire")]
    Full,
    #[error("a session lasts at most {} s", MAX_TTL.as_secs())]
    TooLong,
}

struct Entry {
    grant: Grant,
    csrf: String,
    expires: Instant,
    expires_unix: u64,
}

#[derive(Default)]
struct Inner {
    tickets: HashMap<[u8; 32], Entry>,
    sessions: HashMap<[u8; 32], Entry>,
}

/// The tickets and sessions of one node.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// 32 random bytes from the thread's CSPRNG (seeded by the OS), in hex.
fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Equal strings, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn unix_after(ttl: Duration) -> u64 {
    (SystemTime::now() + ttl)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A single-use sign-in ticket for `grant`; the session it buys ends
    /// `ttl` from now (zero: [`DEFAULT_TTL`]).
    pub fn issue(&self, grant: Grant, ttl: Duration) -> Result<Ticket, SessionError> {
        self.issue_at(grant, ttl, Instant::now())
    }

    fn issue_at(&self, grant: Grant, ttl: Duration, now: Instant) -> Result<Ticket, SessionError> {
        let ttl = if ttl.is_zero() { DEFAULT_TTL } else { ttl };
        if ttl > MAX_TTL {
            return Err(SessionError::TooLong);
        }
        let mut inner = self.lock();
        inner.tickets.retain(|_, e| e.expires > now);
        inner.sessions.retain(|_, e| e.expires > now);
        if inner.tickets.len() + inner.sessions.len() >= MAX_LIVE {
            return Err(SessionError::Full);
        }
        let token = random_token();
        let expires_unix = unix_after(ttl);
        inner.tickets.insert(
            key(&token),
            Entry {
                grant,
                csrf: String::new(),
                expires: now + ttl,
                expires_unix,
            },
        );
        Ok(Ticket {
            token,
            expires_unix,
        })
    }

    /// Spends a ticket: returns the new session's id (for the cookie) and
    /// what the page may know of it. The session ends when the ticket would
    /// have.
    pub fn redeem(&self, ticket: &str) -> Result<(String, SessionView), SessionError> {
        self.redeem_at(ticket, Instant::now())
    }

    fn redeem_at(&self, ticket: &str, now: Instant) -> Result<(String, SessionView), SessionError> {
        let mut inner = self.lock();
        let mut entry = inner
            .tickets
            .remove(&key(ticket))
            .ok_or(SessionError::UnknownTicket)?;
        if entry.expires <= now {
            return Err(SessionError::Expired);
        }
        entry.csrf = random_token();
        let id = random_token();
        let view = SessionView {
            grant: entry.grant.clone(),
            csrf: entry.csrf.clone(),
            expires_unix: entry.expires_unix,
        };
        inner.sessions.insert(key(&id), entry);
        Ok((id, view))
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Result<SessionView, SessionError> {
        self.get_at(id, Instant::now())
    }

    fn get_at(&self, id: &str, now: Instant) -> Result<SessionView, SessionError> {
        let mut inner = self.lock();
        let k = key(id);
        let e = inner.sessions.get(&k).ok_or(SessionError::NoSession)?;
        if e.expires <= now {
            inner.sessions.remove(&k);
            return Err(SessionError::Expired);
        }
        Ok(SessionView {
            grant: e.grant.clone(),
            csrf: e.csrf.clone(),
            expires_unix: e.expires_unix,
        })
    }

    /// The session may take an action that needs `need`: it is live, the
    /// request carries its CSRF token, and its role suffices.
    pub fn authorize(
        &self,
        id: Option<&str>,
        csrf: Option<&str>,
        need: AdminRole,
    ) -> Result<Grant, SessionError> {
        self.authorize_at(id, csrf, need, Instant::now())
    }

    fn authorize_at(
        &self,
        id: Option<&str>,
        csrf: Option<&str>,
        need: AdminRole,
        now: Instant,
    ) -> Result<Grant, SessionError> {
        let s = self.get_at(id.ok_or(SessionError::NoSession)?, now)?;
        if !csrf.is_some_and(|c| same(c, &s.csrf)) {
            return Err(SessionError::Csrf);
        }
        if s.grant.role < need {
            return Err(SessionError::Role {
                subject: s.grant.subject,
                have: s.grant.role,
                need,
            });
        }
        Ok(s.grant)
    }

    /// Ends a session (sign out).
    pub fn end(&self, id: &str) {
        self.lock().sessions.remove(&key(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(role: AdminRole) -> Grant {
        Grant {
            subject: "alice (administrator)".into(),
            role,
            chain_serials: vec!["01".into()],
        }
    }

    #[test]
    fn a_ticket_buys_one_session_once() {
        let s = Sessions::default();
        let t = s.issue(grant(AdminRole::Operator), Duration::ZERO).unwrap();
        assert_eq!(t.token.len(), 64);
        let (id, view) = s.redeem(&t.token).unwrap();
        assert_ne!(id, t.token);
        assert_ne!(view.csrf, id);
        assert_eq!(view.grant, grant(AdminRole::Operator));
        assert_eq!(s.get(&id).unwrap(), view);
        // The link in the browser's history is spent.
        assert_eq!(s.redeem(&t.token), Err(SessionError::UnknownTicket));
        // The ticket is not a session id.
        assert_eq!(s.get(&t.token), Err(SessionError::NoSession));
        s.end(&id);
        assert_eq!(s.get(&id), Err(SessionError::NoSession));
    }

    #[test]
    fn sessions_and_tickets_expire() {
        let s = Sessions::default();
        let now = Instant::now();
        let ttl = Duration::from_secs(60);
        let t = s.issue_at(grant(AdminRole::Full), ttl, now).unwrap();
        assert_eq!(
            s.redeem_at(&t.token, now + ttl).unwrap_err(),
            SessionError::Expired
        );
        let t = s.issue_at(grant(AdminRole::Full), ttl, now).unwrap();
        let (id, v) = s.redeem_at(&t.token, now).unwrap();
        let csrf = Some(v.csrf.as_str());
        assert!(s
            .authorize_at(Some(&id), csrf, AdminRole::Full, now + ttl / 2)
            .is_ok());
        assert_eq!(
            s.authorize_at(Some(&id), csrf, AdminRole::Full, now + ttl),
            Err(SessionError::Expired)
        );
        // And it is gone after that.
        assert_eq!(s.get_at(&id, now), Err(SessionError::NoSession));
    }

    #[test]
    fn an_action_needs_the_csrf_token_and_the_role() {
        let s = Sessions::default();
        let t = s.issue(grant(AdminRole::Operator), Duration::ZERO).unwrap();
        let (id, v) = s.redeem(&t.token).unwrap();
        assert_eq!(
            s.authorize(None, Some(&v.csrf), AdminRole::ReadOnly),
            Err(SessionError::NoSession)
        );
        assert_eq!(
            s.authorize(Some(&id), None, AdminRole::ReadOnly),
            Err(SessionError::Csrf)
        );
        let mut wrong = v.csrf.clone();
        wrong.replace_range(0..1, if wrong.starts_with('0') { "1" } else { "0" });
        assert_eq!(
            s.authorize(Some(&id), Some(&wrong), AdminRole::ReadOnly),
            Err(SessionError::Csrf)
        );
        assert_eq!(
            s.authorize(Some(&id), Some(&v.csrf), AdminRole::Operator),
            Ok(grant(AdminRole::Operator))
        );
        let e = s
            .authorize(Some(&id), Some(&v.csrf), AdminRole::Full)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "administrator alice (administrator) has role operator; this needs full"
        );
    }

    #[test]
    fn the_number_of_live_sessions_and_their_length_are_bounded() {
        let s = Sessions::default();
        assert_eq!(
            s.issue(grant(AdminRole::Full), MAX_TTL + Duration::from_secs(1))
                .unwrap_err(),
            SessionError::TooLong
        );
        let now = Instant::now();
        let short = Duration::from_secs(1);
        for _ in 0..MAX_LIVE {
            s.issue_at(grant(AdminRole::Full), short, now).unwrap();
        }
        assert_eq!(
            s.issue_at(grant(AdminRole::Full), short, now).unwrap_err(),
            SessionError::Full
        );
        // Expired ones make room.
        assert!(s
            .issue_at(grant(AdminRole::Full), short, now + short)
            .is_ok());
    }

    #[test]
    fn tokens_differ_and_compare_whole() {
        assert_ne!(random_token(), random_token());
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
