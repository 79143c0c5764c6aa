use super::*;
use crate::tls::Expect;
use sms_types::SiteCode;

fn code(s: &str) -> SiteCode {
    s.parse().unwrap()
}

/// CEN (root) → P01 (intermediate) → S11 (secondary leaf).
struct Tree {
    root: Authority,
    p01: Authority,
    s11: Credentials,
}

/// The central site server's own certificate in `t`'s hierarchy.
fn cen_of(t: &Tree) -> Credentials {
    t.root
        .issue_own(Role::Primary, &Name::site(&code("CEN"), &[]))
        .unwrap()
}

fn tree() -> Tree {
    let root = Authority::new_root(&code("CEN")).unwrap();
    let key = ca::new_key().unwrap();
    let chain = root
        .issue(
            &ca::signing_request(&key).unwrap(),
            Role::Ca,
            &Name::site(&code("P01"), &[code("CEN")]),
        )
        .unwrap();
    let p01 = Authority::load(&Credentials::new(&key, chain)).unwrap();
    let s11 = p01
        .issue_own(
            Role::Secondary,
            &Name::site(&code("S11"), &[code("P01"), code("CEN")]),
        )
        .unwrap();
    Tree { root, p01, s11 }
}

#[test]
fn certificates_name_site_role_and_place() {
    let t = tree();
    let id = t.s11.identity().unwrap();
    assert_eq!(id.role, Role::Secondary);
    assert_eq!(id.site(), Some(code("S11")));
    assert_eq!(id.name.ancestors, vec![code("P01"), code("CEN")]);
    assert_eq!(t.s11.chain.len(), 3, "leaf, P01's CA, root");
    assert_eq!(t.s11.root(), t.root.root());
    let ca = Identity::from_der(&t.p01.credentials().chain[0]).unwrap();
    assert_eq!(ca.role, Role::Ca);
    assert_eq!(ca.name.label, "P01");
    assert!(id.not_after > id.not_before);
}

#[test]
fn the_issuer_decides_the_name_not_the_request() {
    // A request carrying a name of its own still gets the issuer's name.
    let t = tree();
    let key = ca::new_key().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["cen.sms.invalid".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationalUnitName, "admin-full");
    let csr = params.serialize_request(&key).unwrap().der().to_vec();
    let chain = t
        .p01
        .issue(
            &csr,
            Role::Member,
            &Name {
                label: "web1".into(),
                ancestors: vec![code("P01"), code("CEN")],
            },
        )
        .unwrap();
    let id = Identity::from_der(&chain[0]).unwrap();
    assert_eq!(id.role, Role::Member);
    assert_eq!(id.name.label, "web1");
}

#[test]
fn a_bad_signing_request_is_refused() {
    let t = tree();
    let err = t.root.issue(
        b"not a csr",
        Role::Secondary,
        &Name::site(&code("S02"), &[code("CEN")]),
    );
    assert!(matches!(err, Err(TrustError::Invalid(_))), "{err:?}");
}

#[test]
fn admin_scope_is_the_issuing_sites_subtree() {
    let t = tree();
    let admin = t
        .p01
        .issue_own(
            Role::Admin(AdminRole::Operator),
            &Name {
                label: "bob".into(),
                ancestors: vec![code("P01"), code("CEN")],
            },
        )
        .unwrap()
        .identity()
        .unwrap();
    assert_eq!(admin.admin_role(), Some(AdminRole::Operator));
    assert!(admin.covers(&[code("P01"), code("CEN")]));
    assert!(admin.covers(&[code("S11"), code("P01"), code("CEN")]));
    assert!(!admin.covers(&[code("CEN")]), "not above its issuer");
    assert!(
        !admin.covers(&[code("P02"), code("CEN")]),
        "not a sibling subtree"
    );
    assert!(AdminRole::Full > AdminRole::Operator && AdminRole::Operator > AdminRole::ReadOnly);
}

#[test]
fn credentials_round_trip_through_pem() {
    let t = tree();
    let back = Credentials::from_pem(&t.s11.chain_pem(), &t.s11.key_pem()).unwrap();
    assert_eq!(back, t.s11);
    assert!(Credentials::from_pem("", "").is_err());
    assert!(
        !format!("{:?}", t.s11).contains("key_pkcs8"),
        "a key is never printed"
    );
}

#[test]
fn tokens_round_trip_and_prove_possession() {
    let t = tree();
    let tok = JoinToken::new(
        t.root.root_fingerprint(),
        "127.0.0.1:1".into(),
        "S02".into(),
        Role::Secondary,
        99,
    );
    let back = JoinToken::decode(&tok.encode()).unwrap();
    assert_eq!(back, tok);
    let p = back.proof(b"csr");
    assert!(token::verify_proof(&tok.secret, &tok.id, b"csr", &p));
    assert!(
        !token::verify_proof(&tok.secret, &tok.id, b"other csr", &p),
        "bound to the request"
    );
    assert!(!token::verify_proof(&[0; 32], &tok.id, b"csr", &p));
    assert!(JoinToken::decode("hello").is_err());
    assert!(JoinToken::decode("SMSJOIN1.!!!").is_err());
    assert!(!format!("{tok:?}").contains("secret"));
}

#[test]
fn names_are_checked() {
    assert!(names::check_label("alice").is_ok());
    assert!(names::check_label("web-1").is_ok());
    for bad in ["", "Alice", "-a", "a-", "a.b", &"x".repeat(33), "a\u{202e}"] {
        assert!(names::check_label(bad).is_err(), "{bad:?}");
    }
    assert_eq!(clip(&"x".repeat(100)).chars().count(), 65);
}

mod handshake {
    use super::*;
    use std::sync::Arc;

    /// Runs a TLS handshake in memory; returns the client's error, if any,
    /// and the certificates the server saw.
    fn handshake(
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
    ) -> Result<Option<Vec<Vec<u8>>>, String> {
        let mut c = rustls::ClientConnection::new(
            Arc::new(client),
            rustls_pki_types::ServerName::try_from("node.sms.invalid").unwrap(),
        )
        .unwrap();
        let mut s = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).map_err(|e| e.to_string())?;
            s.read_tls(&mut &buf[..]).map_err(|e| e.to_string())?;
            s.process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).map_err(|e| e.to_string())?;
            c.read_tls(&mut &buf[..]).map_err(|e| e.to_string())?;
            c.process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(s
                    .peer_certificates()
                    .map(|cs| cs.iter().map(|c| c.to_vec()).collect()));
            }
        }
        Err("no handshake".into())
    }

    #[test]
    fn mutual_tls_within_the_hierarchy() {
        let t = tree();
        let cen = cen_of(&t);
        let server = tls::server_config(&cen).unwrap();
        let client =
            tls::client_config(Some(&t.s11), Some(t.root.root()), Expect::Site(code("CEN")))
                .unwrap();
        let seen = handshake(server, client)
            .unwrap()
            .expect("a client certificate");
        assert_eq!(
            Identity::from_der(&seen[0]).unwrap().site(),
            Some(code("S11"))
        );
    }

    #[test]
    fn the_wrong_site_is_refused() {
        let t = tree();
        let cen = cen_of(&t);
        let client =
            tls::client_config(Some(&t.s11), Some(t.root.root()), Expect::Site(code("P01")))
                .unwrap();
        let err = handshake(tls::server_config(&cen).unwrap(), client).unwrap_err();
        assert!(err.contains("not for site P01"), "{err}");
    }

    #[test]
    fn another_hierarchy_is_refused_both_ways() {
        let t = tree();
        let other = Authority::new_root(&code("CEN")).unwrap();
        let theirs = other
            .issue_own(Role::Primary, &Name::site(&code("CEN"), &[]))
            .unwrap();
        let ours = cen_of(&t);
        // Our client, their server.
        let client = tls::client_config(Some(&t.s11), Some(t.root.root()), Expect::Any).unwrap();
        assert!(handshake(tls::server_config(&theirs).unwrap(), client).is_err());
        // Their client (which trusts our root), our server.
        let client = tls::client_config(Some(&theirs), Some(t.root.root()), Expect::Any).unwrap();
        let err = handshake(tls::server_config(&ours).unwrap(), client).unwrap_err();
        assert!(err.starts_with("server:"), "{err}");
    }

    #[test]
    fn a_joining_node_checks_the_root_fingerprint() {
        let t = tree();
        let cen = cen_of(&t);
        let ok = tls::client_config(None, None, Expect::Root(t.root.root_fingerprint())).unwrap();
        assert_eq!(
            handshake(tls::server_config(&cen).unwrap(), ok).unwrap(),
            None
        );
        let wrong = tls::client_config(None, None, Expect::Root([7; 32])).unwrap();
        let err = handshake(tls::server_config(&cen).unwrap(), wrong).unwrap_err();
        assert!(err.contains("join token"), "{err}");
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let t = tree();
        let cen = cen_of(&t);
        let key = ca::new_key().unwrap();
        let now = time::OffsetDateTime::now_utc();
        let chain = t
            .root
            .issue_with(
                &ca::signing_request(&key).unwrap(),
                Role::Secondary,
                &Name::site(&code("S02"), &[code("CEN")]),
                Some((
                    now - time::Duration::days(30),
                    now - time::Duration::days(1),
                )),
            )
            .unwrap();
        let old = Credentials::new(&key, chain);
        let client = tls::client_config(Some(&old), Some(t.root.root()), Expect::Any).unwrap();
        let err = handshake(tls::server_config(&cen).unwrap(), client).unwrap_err();
        assert!(err.to_lowercase().contains("expired"), "{err}");
        // And as a server, to a client that checks it.
        let client = tls::client_config(Some(&t.s11), Some(t.root.root()), Expect::Any).unwrap();
        let err = handshake(tls::server_config(&old).unwrap(), client).unwrap_err();
        assert!(err.to_lowercase().contains("expired"), "{err}");
    }

    #[test]
    fn a_renewed_certificate_keeps_its_name_and_role_and_never_outlives_its_issuer() {
        let t = tree();
        let cen = cen_of(&t);
        let key = ca::new_key().unwrap();
        let name = Name::site(&code("S11"), &[code("P01"), code("CEN")]);
        let chain = t
            .p01
            .issue_lasting(
                &ca::signing_request(&key).unwrap(),
                Role::Secondary,
                &name,
                Some(std::time::Duration::from_secs(90)),
            )
            .unwrap();
        let id = Identity::from_der(&chain[0]).unwrap();
        assert_eq!((id.role, id.name.clone()), (Role::Secondary, name.clone()));
        // Backdated by a tenth of its life (at most ten minutes), then 90 s
        // ahead.
        assert!((id.not_after - id.not_before - 99).abs() <= 2, "{id:?}");
        assert!(!id.renewal_due(id.not_before + 60));
        assert!(id.renewal_due(id.not_before + 67));
        // Asked for more than the issuer has left: capped at the issuer's end.
        let issuer_end = Identity::from_der(&t.p01.credentials().chain[0])
            .unwrap()
            .not_after;
        let long = t
            .p01
            .issue_lasting(
                &ca::signing_request(&key).unwrap(),
                Role::Secondary,
                &name,
                Some(std::time::Duration::from_secs(100 * 365 * 86_400)),
            )
            .unwrap();
        assert_eq!(Identity::from_der(&long[0]).unwrap().not_after, issuer_end);
        // A CA renewed for the same key still vouches for what it issued.
        let p01 = t.p01.credentials();
        let renewed = t
            .root
            .issue_lasting(
                &ca::signing_request(&p01.key_pair().unwrap()).unwrap(),
                Role::Ca,
                &Name::site(&code("P01"), &[code("CEN")]),
                None,
            )
            .unwrap();
        assert_ne!(renewed[0], p01.chain[0]);
        let old_leaf = Credentials::new(&key, chain);
        let with_new_ca =
            Credentials::new(&key, [vec![old_leaf.chain[0].clone()], renewed].concat());
        let client =
            tls::client_config(Some(&with_new_ca), Some(t.root.root()), Expect::Any).unwrap();
        handshake(tls::server_config(&cen).unwrap(), client).unwrap();
    }

    #[test]
    fn a_child_ca_cannot_issue_outside_its_subtree() {
        // P01's CA signs a certificate claiming to be CEN: the name
        // constraint makes every verifier refuse it.
        let t = tree();
        let forged = t
            .p01
            .issue_own(Role::Primary, &Name::site(&code("CEN"), &[]))
            .unwrap();
        let cen = cen_of(&t);
        let client = tls::client_config(Some(&forged), Some(t.root.root()), Expect::Any).unwrap();
        assert!(handshake(tls::server_config(&cen).unwrap(), client).is_err());
    }
}

#[test]
fn signatures_verify_against_the_root_and_only_for_the_signed_body() {
    let t = tree();
    let sig = sign::sign(&t.s11, b"body").unwrap();
    let who = sign::verify(t.root.root(), &t.s11.chain, b"body", &sig).unwrap();
    assert_eq!(who.site(), Some(code("S11")));
    assert!(sign::verify(t.root.root(), &t.s11.chain, b"other body", &sig).is_err());
    let other = Authority::new_root(&code("CEN")).unwrap();
    assert!(sign::verify(other.root(), &t.s11.chain, b"body", &sig).is_err());
    assert!(sign::verify(t.root.root(), &[], b"body", &sig).is_err());
}
