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
    trust::install_root(&n.ctx.store, &code("PRI"), None, None).unwrap();
    n
}

#[test]
fn a_token_buys_one_certificate_for_its_site() {
    let n = root_node();
    let t = trust::create_token(&n.ctx, "S01", Role::Secondary, 600).unwrap();
    let (csr, proof) = csr_and_proof(&t);
    let chain = trust::redeem(&n.ctx, &t.id, &csr, &proof, "10.9.9.9:1").unwrap();
    let id = sms_trust::Identity::from_der(&chain[0]).unwrap();
    assert_eq!(id.site(), Some(code("S01")));
    assert_eq!(id.name.ancestors, vec![code("PRI")]);
    let again = trust::redeem(&n.ctx, &t.id, &csr, &proof, "10.9.9.9:1").unwrap_err();
    assert!(
        matches!(&again, Refused::Denied(m) if m.contains("already used")),
        "{again:?}"
    );
    // The issuing site reports the refused join, naming the site and why.
    let msgs = n.ctx.store.status_messages(None, Some(4806), 10).unwrap();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(
        msgs[0].text.contains("10.9.9.9:1")
            && msgs[0].text.contains("site S01")
            && msgs[0].text.contains("already used"),
        "{}",
        msgs[0].text
    );
}

#[test]
fn a_primary_token_buys_a_constrained_authority() {
    let n = root_node();
    let t = trust::create_token(&n.ctx, "P01", Role::Primary, 600).unwrap();
    let (csr, proof) = csr_and_proof(&t);
    let chain = trust::redeem(&n.ctx, &t.id, &csr, &proof, "10.9.9.9:1").unwrap();
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
    let e = trust::redeem(&n.ctx, &t.id, &csr, &proof, "10.9.9.9:1").unwrap_err();
    assert!(
        matches!(&e, Refused::Denied(m) if m.contains("expired")),
        "{e:?}"
    );

    // A proof made with another secret.
    let t2 = trust::create_token(&n.ctx, "S02", Role::Secondary, 600).unwrap();
    let mut forged = t2.clone();
    forged.secret = [1; 32];
    let (csr, proof) = csr_and_proof(&forged);
    let e = trust::redeem(&n.ctx, &t2.id, &csr, &proof, "10.9.9.9:1").unwrap_err();
    assert!(
        matches!(&e, Refused::Denied(m) if m.contains("proof")),
        "{e:?}"
    );
    // An unknown id.
    let e = trust::redeem(&n.ctx, &[9; 16], &csr, &proof, "10.9.9.9:1").unwrap_err();
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
    let chain = trust::redeem(&n.ctx, &t.id, &csr, &proof, "10.9.9.9:1").unwrap();
    let serial = sms_trust::Identity::from_der(&chain[0]).unwrap().serial;
    assert_eq!(
        trust::any_revoked(&n.ctx, std::slice::from_ref(&serial)).unwrap(),
        None
    );
    assert_eq!(trust::revoke_site(&n.ctx, &code("S01")).unwrap(), 1);
    assert_eq!(trust::revoke_site(&n.ctx, &code("S01")).unwrap(), 0, "once");
    assert_eq!(
        trust::any_revoked(&n.ctx, std::slice::from_ref(&serial)).unwrap(),
        Some(serial)
    );
    assert!(trust::revoke_serial(&n.ctx, "not hex!", "x").is_err());
}

/// PRI (with the root) and S01 below it holding a certificate from PRI.
fn signed_pair() -> (Node, Node, sms_trust::Authority) {
    let pri = root_node();
    let c = pri.ctx.store.ca_credentials().unwrap().unwrap();
    let ca = sms_trust::Authority::load(&sms_trust::Credentials {
        key_pkcs8: c.key_pkcs8,
        chain: c.chain,
    })
    .unwrap();
    let s01 = secondary("S01", "PRI");
    let creds = ca
        .issue_own(
            Role::Secondary,
            &sms_trust::Name::site(&code("S01"), &[code("PRI")]),
        )
        .unwrap();
    trust::set_node_credentials(&s01.ctx.store, &creds).unwrap();
    (pri, s01, ca)
}

fn ct1_for(site: &str, serial: u64, interval: u64) -> sms_types::Ct1 {
    let mut proposed = ct0(site, Some("PRI"));
    proposed.polling_interval_ms = interval;
    sms_types::Ct1 {
        base_serial: serial,
        proposed,
        origin: "test".into(),
        signature: None,
    }
}

#[test]
fn a_ct1_signed_by_an_ancestor_is_applied_from_its_signed_body() {
    let (pri, s01, _) = signed_pair();
    let mut ct1 = ct1_for("S01", 1, 5000);
    trust::sign_ct1(&pri.ctx, &mut ct1).unwrap();
    assert_eq!(
        trust::verified_ct1(&s01.ctx, &ct1)
            .unwrap()
            .proposed
            .polling_interval_ms,
        5000
    );
    // A hop that changes the fields beside the signature changes nothing:
    // what is applied is what PRI signed.
    let mut altered = ct1.clone();
    altered.proposed.polling_interval_ms = 99_000;
    assert_eq!(
        trust::verified_ct1(&s01.ctx, &altered)
            .unwrap()
            .proposed
            .polling_interval_ms,
        5000
    );
    // A changed body breaks the signature.
    let mut forged = ct1.clone();
    forged.signature.as_mut().unwrap().body[3] ^= 1;
    let e = trust::verified_ct1(&s01.ctx, &forged).unwrap_err();
    assert!(e.contains("signature is not valid"), "{e}");
}

#[test]
fn unsigned_and_sibling_signed_ct1s_are_refused() {
    let (_pri, s01, ca) = signed_pair();
    let e = trust::verified_ct1(&s01.ctx, &ct1_for("S01", 1, 5000)).unwrap_err();
    assert!(e.contains("no signature"), "{e}");
    // S02, a sibling with a valid certificate of the same hierarchy.
    let s02 = ca
        .issue_own(
            Role::Secondary,
            &sms_trust::Name::site(&code("S02"), &[code("PRI")]),
        )
        .unwrap();
    let mut ct1 = ct1_for("S01", 1, 5000);
    let body = postcard::to_allocvec(&ct1).unwrap();
    let signature = sms_trust::sign::sign(&s02, &body).unwrap();
    ct1.signature = Some(sms_types::SignedBody {
        body,
        signature,
        chain: s02.chain.clone(),
    });
    let e = trust::verified_ct1(&s01.ctx, &ct1).unwrap_err();
    assert!(e.contains("signed by site S02, which is neither"), "{e}");
    // Another hierarchy's PRI.
    let other = sms_trust::Authority::new_root(&code("PRI")).unwrap();
    let theirs = other
        .issue_own(Role::Primary, &sms_trust::Name::site(&code("PRI"), &[]))
        .unwrap();
    let mut ct1 = ct1_for("S01", 1, 5000);
    let body = postcard::to_allocvec(&ct1).unwrap();
    let signature = sms_trust::sign::sign(&theirs, &body).unwrap();
    ct1.signature = Some(sms_types::SignedBody {
        body,
        signature,
        chain: theirs.chain.clone(),
    });
    let e = trust::verified_ct1(&s01.ctx, &ct1).unwrap_err();
    assert!(e.contains("root"), "{e}");
}

#[test]
fn an_insecure_site_takes_ct1s_as_they_are() {
    let s = secondary("S01", "PRI");
    let ct1 = ct1_for("S01", 1, 5000);
    assert_eq!(trust::verified_ct1(&s.ctx, &ct1).unwrap(), ct1);
}

#[test]
fn a_ct2_counts_only_when_signed_by_the_site_it_reports_on() {
    let (pri, s01, ca) = signed_pair();
    let ct2 = |site: &str| sms_types::Ct2 {
        signature: None,
        site_code: code(site),
        parent_site_code: Some(code("PRI")),
        serial: 1,
        control: ct0(site, Some("PRI")),
        components: vec![],
        version: "v".into(),
        reported_unix_ms: 1,
        server: "10.0.0.9:8500".into(),
        kind: sms_types::SiteKind::Secondary,
    };
    let mut good = ct2("S01");
    trust::sign_ct2(&s01.ctx, &mut good).unwrap();
    assert_eq!(
        trust::verified_ct2(&pri.ctx, &good).unwrap().server,
        "10.0.0.9:8500"
    );
    // S02 reporting on S01 (to move S01's address, say) is refused.
    let s02 = ca
        .issue_own(
            Role::Secondary,
            &sms_trust::Name::site(&code("S02"), &[code("PRI")]),
        )
        .unwrap();
    let mut forged = ct2("S01");
    let body = postcard::to_allocvec(&forged).unwrap();
    let signature = sms_trust::sign::sign(&s02, &body).unwrap();
    forged.signature = Some(sms_types::SignedBody {
        body,
        signature,
        chain: s02.chain.clone(),
    });
    let e = trust::verified_ct2(&pri.ctx, &forged).unwrap_err();
    assert!(
        e.contains("reports on site S01 but was signed by S02"),
        "{e}"
    );
    let e = trust::verified_ct2(&pri.ctx, &ct2("S01")).unwrap_err();
    assert!(e.contains("no signature"), "{e}");
}

/// A revocation list from the parent is recorded and passed on to the tier
/// below; one claiming any other source is ignored.
#[tokio::test]
async fn revocations_from_the_parent_are_kept_and_passed_down() {
    use sms_store::Inbox;
    use sms_types::*;
    let node = primary_below("P01", "PRI");
    put_site(&node.ctx, "S11", Some("P01"), SiteKind::Secondary);
    let list = |serial: &str| Payload::Revocations(vec![(serial.into(), "left".into())]);
    let stranger = job("S09", "P01", Priority::High, list("0b"));
    let parent = job("PRI", "P01", Priority::High, list("0a"));
    for j in [&stranger, &parent] {
        node.ctx.store.put_inbox(Inbox::SiteControl, j).unwrap();
    }
    crate::site_config::stage1_site_control(&node.ctx)
        .await
        .unwrap();
    assert!(node.ctx.store.is_revoked("0a").unwrap());
    assert!(
        !node.ctx.store.is_revoked("0b").unwrap(),
        "not from the parent"
    );
    assert_eq!(node.ctx.store.inbox_len(Inbox::SiteControl), 0);
    let down = node
        .ctx
        .store
        .outbox_scan(&code("S11"), Priority::High, None, 10)
        .unwrap();
    assert_eq!(down.len(), 1, "passed on to S11");
    assert_eq!(down[0].1.payload, list("0a"));
    // The same list again changes nothing and is not passed on again.
    node.ctx
        .store
        .put_inbox(Inbox::SiteControl, &parent)
        .unwrap();
    crate::site_config::stage1_site_control(&node.ctx)
        .await
        .unwrap();
    assert_eq!(node.ctx.store.outbox_len(&code("S11")), 1);
}
