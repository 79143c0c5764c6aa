use crate::*;

fn token(id: u8, expires: i64) -> TokenRecord {
    TokenRecord {
        id: [id; 16],
        secret: [9; 32],
        label: "S02".into(),
        role: "secondary".into(),
        created_unix: 1,
        expires_unix: expires,
        used: None,
    }
}

fn unused(t: &TokenRecord) -> std::result::Result<(), TokenRefusal> {
    match t.used {
        Some((at, _)) => Err(TokenRefusal::Used { at_unix: at }),
        None => Ok(()),
    }
}

#[tokio::test]
async fn a_token_is_redeemed_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        s.insert_token(&token(1, 100)).unwrap();
        let r = s
            .redeem_token(&[1; 16], 50, unused, |_| Ok(("abcd".into(), 7)))
            .unwrap();
        assert_eq!(r, Ok(7));
        let again = s
            .redeem_token(&[1; 16], 51, unused, |_| Ok(("ef".into(), 8)))
            .unwrap();
        assert_eq!(again, Err(TokenRefusal::Used { at_unix: 50 }));
        let missing = s
            .redeem_token(&[2; 16], 51, unused, |_| Ok(("ef".into(), 8)))
            .unwrap();
        assert_eq!(missing, Err(TokenRefusal::Unknown));
        s.durable().await.unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    let all = s.tokens().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].used, Some((50, "abcd".to_string())));
}

#[tokio::test]
async fn a_refused_issue_leaves_the_token_unused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    s.insert_token(&token(3, 100)).unwrap();
    let r: std::result::Result<(), _> = s
        .redeem_token(&[3; 16], 50, unused, |_| Err(TokenRefusal::BadProof))
        .unwrap();
    assert_eq!(r, Err(TokenRefusal::BadProof));
    assert_eq!(s.tokens().unwrap()[0].used, None);
}

#[tokio::test]
async fn credentials_and_revocations_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.node_credentials().unwrap(), None);
    let c = StoredCredentials {
        key_pkcs8: vec![1, 2],
        chain: vec![vec![3], vec![4]],
    };
    s.set_node_credentials(&c).unwrap();
    s.set_ca_credentials(&c).unwrap();
    assert_eq!(s.node_credentials().unwrap(), Some(c.clone()));
    assert_eq!(s.ca_credentials().unwrap(), Some(c));
    assert!(!s.is_revoked("0a").unwrap());
    s.revoke("0a", "site deleted").unwrap();
    assert!(s.is_revoked("0a").unwrap());
}

#[test]
fn a_held_lock_is_recognised_in_both_of_sleds_forms() {
    use std::io::{Error, ErrorKind};
    assert!(crate::is_lock_held(&Error::from(ErrorKind::WouldBlock)));
    assert!(crate::is_lock_held(&Error::other(
        "could not acquire lock on \"/tmp/x/db\": Os { code: 11, kind: WouldBlock }"
    )));
    assert!(!crate::is_lock_held(&Error::from(
        ErrorKind::PermissionDenied
    )));
}

#[tokio::test]
async fn every_certificate_issued_to_a_holder_is_listed_for_its_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    s.insert_token(&token(1, 100)).unwrap();
    s.redeem_token(&[1; 16], 50, unused, |_| Ok(("aa".into(), ())))
        .unwrap()
        .unwrap();
    s.record_issued("S02", "bb", 60).unwrap();
    s.record_issued("S021", "cc", 60).unwrap();
    let mut got = s.issued_serials("S02").unwrap();
    got.sort();
    assert_eq!(got, vec!["aa".to_string(), "bb".to_string()], "not S021's");
    assert!(s.issued_serials("S03").unwrap().is_empty());
}
