//! Join tokens at the issuer: once, not after expiry, only with the secret,
//! only at a primary; certificates revoked when their site is deleted.

use sms_store::TokenRecord;
use sms_trust::{ca, JoinToken, Role};

use super::support::*;
use crate::error::Refused;
use crate::trust;

fn csr_and_proof(t: &JoinToken) -> (Vec<u8>, Vec<u8>) {
    let key = ca::new_key().unwrap();
    let csr = ca::signing_request(&key).unwrap();
    let proof = t.proof(&csr);
    (csr, proof)
}

fn root_node() -> Node {
    let n = central("PRI");
    trust::install_root(&n.ctx.store, &code("PRI"), None).unwrap();
    n
}

#[test]
fn a_token_buys_one_certificate_for_its_site() {
    let n = root_node();
    let t = trust::create_token(&n.ctx, "S01", Role::Secondary, 600).unwrap();
    let (csr, proof) = csr_and_proof(&t);
    let chain = trust::redeem(&n.ctx, &t.id, &csr, &proof).unwrap();
    let id = sms_trust::Identity::from_der(&chain[0]).unwrap();
    assert_eq!(id.site(), Some(code("S01")));
    assert_eq!(id.name.ancestors, vec![code("PRI")]);
    let again = trust::redeem(&n.ctx, &t.id, &csr, &proof).unwrap_err();
    assert!(
        matches!(&again, Refused::Denied(m) if m.contains("already used")),
        "{again:?}"
    );
}

#[test]
fn a_primary_token_buys_a_constrained_authority() {
    let n = root_node();
    let t = trust::create_token(&n.ctx, "P01", Role::Primary, 600).unwrap();
    let (csr, proof) = csr_and_proof(&t);
    let chain = trust::redeem(&n.ctx, &t.id, &csr, &proof).unwrap();
    let id = sms_trust::Identity::from_der(&chain[0]).unwrap();
    assert_eq!(id.role, Role::Ca);
    assert_eq!(id.name.label, "P01");
}

#[test]
fn an_expired_or_forged_token_is_refused_and_stays_unused() {
    let n = root_node();
    let t = trust::create_token(&n.ctx, "S01", Role::Secondary, 600).unwrap();
    // The same token, expired at the issuer.
    let mut rec: TokenRecord = n
        .ctx
        .store
        .tokens()
        .unwrap()
        .into_iter()
        .find(|r| r.id == t.id)
        .unwrap();
    rec.expires_unix = 1;
    n.ctx.store.insert_token(&rec).unwrap();
    let (csr, proof) = csr_and_proof(&t);
    let e = trust::redeem(&n.ctx, &t.id, &csr, &proof).unwrap_err();
    assert!(
        matches!(&e, Refused::Denied(m) if m.contains("expired")),
        "{e:?}"
    );

    // A proof made with another secret.
    let t2 = trust::create_token(&n.ctx, "S02", Role::Secondary, 600).unwrap();
    let mut forged = t2.clone();
    forged.secret = [1; 32];
    let (csr, proof) = csr_and_proof(&forged);
    let e = trust::redeem(&n.ctx, &t2.id, &csr, &proof).unwrap_err();
    assert!(
        matches!(&e, Refused::Denied(m) if m.contains("proof")),
        "{e:?}"
    );
    // An unknown id.
    let e = trust::redeem(&n.ctx, &[9; 16], &csr, &proof).unwrap_err();
    assert!(
        matches!(&e, Refused::Denied(m) if m.contains("not issued here")),
        "{e:?}"
    );
    assert!(n
        .ctx
        .store
        .tokens()
        .unwrap()
        .iter()
        .all(|r| r.used.is_none()));
}

#[test]
fn tokens_are_checked_when_made() {
    let n = root_node();
    for (label, role, ttl) in [
        ("S0", Role::Secondary, 600),
        ("PRI", Role::Secondary, 600),
        ("Web 1", Role::Member, 600),
        ("S01", Role::Admin(sms_trust::AdminRole::Full), 600),
        ("S01", Role::Secondary, 10),
        ("S01", Role::Secondary, 30 * 24 * 3600),
    ] {
        let e = trust::create_token(&n.ctx, label, role, ttl).unwrap_err();
        assert!(
            matches!(e, Refused::Invalid(_)),
            "{label} {role} {ttl}: {e:?}"
        );
    }
    assert!(
        n.ctx.store.tokens().unwrap().is_empty(),
        "nothing was recorded"
    );
    // A secondary holds no authority: it cannot issue.
    let s = secondary("S01", "PRI");
    let e = trust::create_token(&s.ctx, "S11", Role::Secondary, 600).unwrap_err();
    assert!(matches!(e, Refused::Precondition(_)), "{e:?}");
}

#[test]
fn deleting_a_site_revokes_what_its_token_bought() {
    let n = root_node();
    let t = trust::create_token(&n.ctx, "S01", Role::Secondary, 600).unwrap();
    let (csr, proof) = csr_and_proof(&t);
    let chain = trust::redeem(&n.ctx, &t.id, &csr, &proof).unwrap();
    let serial = sms_trust::Identity::from_der(&chain[0]).unwrap().serial;
    assert_eq!(
        trust::any_revoked(&n.ctx, std::slice::from_ref(&serial)).unwrap(),
        None
    );
    assert_eq!(trust::revoke_site(&n.ctx, &code("S01")).unwrap(), 1);
    assert_eq!(trust::revoke_site(&n.ctx, &code("S01")).unwrap(), 0, "once");
    assert_eq!(
        trust::any_revoked(&n.ctx, &[serial.clone()]).unwrap(),
        Some(serial)
    );
    assert!(trust::revoke_serial(&n.ctx, "not hex!", "x").is_err());
}
