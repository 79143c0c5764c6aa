//! The hierarchy with TLS on, nodes in one process over loopback: a
//! secondary joins with a token and is installed over mutual TLS; then the
//! edge refuses what an attacker on the network tries: no TLS, no
//! certificate, a certificate from another hierarchy, a site's certificate
//! used as an administrator's, and a valid site certificate posing as
//! another site on a link.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sms_proto::v1 as pb;
use sms_server::{Node, NodeConfig};
use sms_trust::tls::Expect;
use sms_trust::{Authority, Credentials, Name, Role};
use tonic::transport::{Channel, Endpoint};

mod common;

use common::*;

fn secure(cfg: NodeConfig) -> NodeConfig {
    NodeConfig {
        insecure: false,
        ..cfg
    }
}

/// A channel to `node` with these TLS settings (`None`: plaintext).
async fn dial(node: &Node, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Channel, String> {
    let addr = node.local_addr.to_string();
    let ep = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    sms_connect::channel(ep, &addr, tls, Duration::from_secs(10))
        .await
        .map_err(|e| format!("{e:?}"))
}

fn admin_creds(pri: &Node) -> Credentials {
    sms_connect::load_admin(&pri.ctx.data_dir.join("admin"))
        .expect("the central site's admin files")
}

async fn secure_admin(pri: &Node) -> Admin {
    let tls = sms_connect::admin_tls(&admin_creds(pri)).unwrap();
    Admin::new(dial(pri, Some(tls)).await.expect("admin channel"))
}

/// A secondary's certificate for `site`, made with PRI's own authority
/// directly (no token): what a thief of PRI's issuing code could make.
fn made_by_pri(pri: &Node, site: &str) -> Credentials {
    let c = pri.ctx.store.ca_credentials().unwrap().unwrap();
    Authority::load(&Credentials {
        key_pkcs8: c.key_pkcs8,
        chain: c.chain,
    })
    .unwrap()
    .issue_own(Role::Secondary, &Name::site(&code(site), &[code("PRI")]))
    .unwrap()
}

/// PRI (TLS) and S01 joined with a token and installed by PRI.
async fn pri_and_s01(dir: &Path) -> (Node, Node) {
    pri_and_s01_lasting(dir, None).await
}

/// [`pri_and_s01`] with PRI issuing certificates that last `lifetime`.
async fn pri_and_s01_lasting(dir: &Path, lifetime: Option<Duration>) -> (Node, Node) {
    let pri = start(NodeConfig {
        cert_lifetime: lifetime,
        ..secure(central(&dir.join("pri")))
    })
    .await;
    let token = sms_site::trust::create_token(&pri.ctx, "S01", Role::Secondary, 600)
        .expect("token")
        .encode();
    let s01 = start(NodeConfig {
        join_token: Some(token.clone()),
        ..secure(config(&dir.join("s01")))
    })
    .await;
    let c = secure_admin(&pri).await;
    c.clone()
        .create_secondary(pb::CreateSecondaryRequest {
            site_code: "S01".into(),
            server: s01.local_addr.to_string(),
            sever_link_mid_bootstrap: false,
            site_name: String::new(),
        })
        .await
        .expect("create_secondary over mutual TLS");
    wait_active("PRI", &c, "S01").await;
    // The token is used up: a second node cannot join with it.
    let listener = bind("127.0.0.1:0".parse().unwrap()).await;
    let err = Node::start(
        NodeConfig {
            join_token: Some(token),
            ..secure(config(&dir.join("thief")))
        },
        listener,
        sms_server::Connector::default(),
    )
    .await
    .expect_err("a used token must be refused");
    assert!(format!("{err:#}").contains("already used"), "{err:#}");
    (pri, s01)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_joins_with_a_token_and_links_carry_jobs_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, _s01) = pri_and_s01(dir.path()).await;
    let c = secure_admin(&pri).await;
    send_probes(&c, "S01", 50).await;
    wait_outbox_empty(&c, "S01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_refuses_strangers_and_impostors() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, _s01) = pri_and_s01(dir.path()).await;
    let root = admin_creds(&pri).root().to_vec();

    // Plaintext: no gRPC at all.
    if let Ok(ch) = dial(&pri, None).await {
        let r = Admin::new(ch).list_sites(pb::ListSitesRequest {}).await;
        assert!(r.is_err(), "a plaintext client got an answer: {r:?}");
    }

    // TLS without a certificate: only joining is open.
    let anon = sms_trust::tls::client_config(None, Some(&root), Expect::Any).unwrap();
    let r = Admin::new(dial(&pri, Some(Arc::new(anon))).await.unwrap())
        .list_sites(pb::ListSitesRequest {})
        .await
        .expect_err("no certificate, no answer");
    assert_eq!(r.code(), tonic::Code::Unauthenticated, "{r:?}");

    // A certificate from another hierarchy: the handshake fails.
    let other = Authority::new_root(&code("PRI")).unwrap();
    let theirs = other
        .issue_own(
            Role::Admin(sms_trust::AdminRole::Full),
            &Name {
                label: "eve".into(),
                ancestors: vec![code("PRI")],
            },
        )
        .unwrap();
    let cfg = sms_trust::tls::client_config(Some(&theirs), Some(&root), Expect::Any).unwrap();
    let refused = match dial(&pri, Some(Arc::new(cfg))).await {
        Err(_) => true,
        Ok(ch) => Admin::new(ch)
            .list_sites(pb::ListSitesRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "another hierarchy's administrator got an answer");

    // A valid certificate for site S02, made with PRI's own authority.
    let s02 = made_by_pri(&pri, "S02");
    let cfg = Arc::new(
        sms_trust::tls::client_config(Some(&s02), Some(&root), Expect::Site(code("PRI"))).unwrap(),
    );

    // ...is not an administrator's.
    let r = Admin::new(dial(&pri, Some(cfg.clone())).await.unwrap())
        .delete_site(pb::SiteRequest { site: "S01".into() })
        .await
        .expect_err("a site certificate cannot administer");
    assert_eq!(r.code(), tonic::Code::PermissionDenied, "{r:?}");
    assert!(
        r.message().contains("not an administrator"),
        "{}",
        r.message()
    );

    // ...cannot open a link claiming to be S01.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::LinkFrame {
        kind: Some(pb::link_frame::Kind::Hello(pb::Hello {
            source_site: "S01".into(),
            dest_site: "PRI".into(),
            source_address: "127.0.0.1:1".into(),
            link_secret: String::new(),
            sent_unix_ms: 0,
        })),
    })
    .await
    .unwrap();
    let mut t =
        pb::transfer_client::TransferClient::new(dial(&pri, Some(cfg.clone())).await.unwrap());
    let r = match t
        .link(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    {
        Err(s) => s,
        Ok(resp) => resp
            .into_inner()
            .message()
            .await
            .expect_err("the impostor's link must end"),
    };
    assert_eq!(r.code(), tonic::Code::PermissionDenied, "{r:?}");
    assert!(
        r.message().contains("certificate is for site S02"),
        "{}",
        r.message()
    );

    // ...and cannot attach itself as another primary.
    let r = Admin::new(dial(&pri, Some(cfg)).await.unwrap())
        .attach_primary(pb::AttachPrimaryRequest {
            site_code: "P09".into(),
            server: "127.0.0.1:1".into(),
            site_name: String::new(),
        })
        .await
        .expect_err("no squatting");
    assert_eq!(r.code(), tonic::Code::PermissionDenied, "{r:?}");
    let sites = secure_admin(&pri)
        .await
        .list_sites(pb::ListSitesRequest {})
        .await
        .unwrap()
        .into_inner()
        .sites;
    assert!(
        !sites.iter().any(|s| s.site_code == "P09"),
        "nothing was recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrator_roles_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, _s01) = pri_and_s01(dir.path()).await;
    let root = admin_creds(&pri).root().to_vec();
    let as_role = |role: sms_trust::AdminRole| {
        let key = sms_trust::ca::new_key().unwrap();
        let csr = sms_trust::ca::signing_request(&key).unwrap();
        let chain = sms_site::trust::issue_admin(&pri.ctx, role.as_str(), role, &csr).unwrap();
        Credentials::new(&key, chain)
    };
    let client = |creds: Credentials| {
        let root = root.clone();
        let pri = &pri;
        async move {
            let cfg =
                sms_trust::tls::client_config(Some(&creds), Some(&root), Expect::Any).unwrap();
            Admin::new(dial(pri, Some(Arc::new(cfg))).await.unwrap())
        }
    };
    let ro = client(as_role(sms_trust::AdminRole::ReadOnly)).await;
    ro.clone()
        .list_sites(pb::ListSitesRequest {})
        .await
        .expect("read-only may read");
    let r = ro
        .clone()
        .sever_link(pb::LinkRequest { to: "S01".into() })
        .await
        .expect_err("read-only may not sever");
    assert_eq!(r.code(), tonic::Code::PermissionDenied);
    let r = ro
        .clone()
        .change_site_control(pb::ChangeSiteControlRequest {
            polling_interval_ms: Some(5000),
            ..Default::default()
        })
        .await
        .expect_err("read-only may not change site control");
    assert!(r.message().contains("needs full"), "{}", r.message());

    let op = client(as_role(sms_trust::AdminRole::Operator)).await;
    op.clone()
        .sever_link(pb::LinkRequest { to: "S01".into() })
        .await
        .expect("an operator may sever");
    op.clone()
        .restore_link(pb::LinkRequest { to: "S01".into() })
        .await
        .expect("an operator may restore");
    let r = op
        .clone()
        .delete_site(pb::SiteRequest { site: "S01".into() })
        .await
        .expect_err("an operator may not delete");
    assert!(
        r.message().contains("has role operator; this needs full"),
        "{}",
        r.message()
    );

    // Every state-changing call is in the audit trail with its caller.
    let full = secure_admin(&pri).await;
    let msgs = full
        .clone()
        .list_status_messages(pb::ListStatusMessagesRequest {
            id: sms_types::catalog::AUDIT_ADMIN_ACTION.id,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    let texts: Vec<String> = msgs.iter().map(|m| m.text.clone()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("operator (admin-operator) ran sever-link")),
        "{texts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, s01) = pri_and_s01(dir.path()).await;
    let root = admin_creds(&pri).root().to_vec();
    let key = sms_trust::ca::new_key().unwrap();
    let csr = sms_trust::ca::signing_request(&key).unwrap();
    let chain =
        sms_site::trust::issue_admin(&pri.ctx, "olga", sms_trust::AdminRole::Operator, &csr)
            .unwrap();
    let olga = Credentials::new(&key, chain);
    let serial = olga.identity().unwrap().serial;
    let cfg =
        Arc::new(sms_trust::tls::client_config(Some(&olga), Some(&root), Expect::Any).unwrap());
    let c = Admin::new(dial(&pri, Some(cfg.clone())).await.unwrap());
    c.clone()
        .list_sites(pb::ListSitesRequest {})
        .await
        .expect("before revocation");
    let below = Admin::new(dial(&s01, Some(cfg.clone())).await.unwrap());
    below
        .clone()
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("accepted below PRI before revocation");
    secure_admin(&pri)
        .await
        .revoke_certificate(pb::RevokeCertificateRequest {
            serial: serial.clone(),
            reason: "left the team".into(),
        })
        .await
        .expect("a full administrator revokes");
    let r = c
        .clone()
        .list_sites(pb::ListSitesRequest {})
        .await
        .expect_err("a revoked certificate is refused");
    assert_eq!(r.code(), tonic::Code::PermissionDenied);
    assert!(r.message().contains("revoked"), "{}", r.message());
    // The revocation travels down: S01 refuses the certificate too.
    wait_for("the revocation at S01", WAIT, || {
        let below = below.clone();
        async move {
            match below.clone().get_status(pb::GetStatusRequest {}).await {
                Err(r) if r.code() == tonic::Code::PermissionDenied => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(s01.ctx.store.is_revoked(&serial).unwrap());

    // Deleting S01 revokes the certificate its token bought.
    let s01_serial = pri
        .ctx
        .store
        .tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.label == "S01")
        .and_then(|t| t.used)
        .map(|u| u.1)
        .expect("S01's token was used");
    assert!(!pri.ctx.store.is_revoked(&s01_serial).unwrap());
    secure_admin(&pri)
        .await
        .delete_site(pb::SiteRequest { site: "S01".into() })
        .await
        .expect("delete S01");
    wait_for("S01's certificate revoked", WAIT, || {
        let revoked = pri.ctx.store.is_revoked(&s01_serial).unwrap();
        async move {
            if revoked {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_site_control_applies_and_unsigned_lands_in_the_bad_box() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, s01) = pri_and_s01(dir.path()).await;
    let c = secure_admin(&pri).await;
    // A change made at PRI is signed there and applied at S01.
    c.clone()
        .change_site_control(pb::ChangeSiteControlRequest {
            site: "S01".into(),
            polling_interval_ms: Some(7000),
            ..Default::default()
        })
        .await
        .expect("change S01's site control");
    wait_for("S01 at serial 2 with the new interval", WAIT, || {
        let cfg = s01.ctx.config();
        async move {
            match cfg {
                Some(c) if c.serial == 2 && c.polling_interval_ms == 7000 => Ok(()),
                other => Err(format!(
                    "{:?}",
                    other.map(|c| (c.serial, c.polling_interval_ms))
                )),
            }
        }
    })
    .await;
    // A CT1 dropped unsigned into S01's inbox (an administrator's file, or a
    // forged job) is refused into the bad box, and changes nothing.
    let tls = sms_connect::admin_tls(&admin_creds(&pri)).unwrap();
    let s = Admin::new(dial(&s01, Some(tls)).await.unwrap());
    let mut proposed = s01.ctx.config().unwrap();
    proposed.polling_interval_ms = 9000;
    s.clone()
        .submit_ct1(pb::Ct1 {
            base_serial: 2,
            proposed: Some(sms_proto::convert::control_to(&proposed)),
            origin: "forger".into(),
            ..Default::default()
        })
        .await
        .expect("dropped in the inbox");
    let bad = wait_for("the unsigned CT1 in S01's bad box", WAIT, || {
        let s = s.clone();
        async move {
            let b = s
                .clone()
                .list_bad_ct1(pb::ListBadCt1Request {})
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .entries;
            if b.is_empty() {
                Err("empty".to_string())
            } else {
                Ok(b)
            }
        }
    })
    .await;
    assert!(
        bad[0].reason.contains("no signature"),
        "{:?}",
        bad[0].reason
    );
    assert_eq!(
        s01.ctx.config().unwrap().polling_interval_ms,
        7000,
        "nothing changed"
    );
}

fn serial(node: &Node) -> String {
    sms_site::trust::node_credentials(&node.ctx.store)
        .unwrap()
        .unwrap()
        .identity()
        .unwrap()
        .serial
}

/// Certificates that last 30 s are renewed at two thirds of that, on both
/// ends of a link, while jobs flow both ways: none is lost or duplicated,
/// and connections made after the renewal (a severed and restored link)
/// carry on with the new certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_renewed_before_they_expire_while_jobs_flow() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, s01) = pri_and_s01_lasting(dir.path(), Some(Duration::from_secs(30))).await;
    let (pri_was, s01_was) = (serial(&pri), serial(&s01));
    let c = secure_admin(&pri).await;
    let tls = sms_connect::admin_tls(&admin_creds(&pri)).unwrap();
    let c01 = Admin::new(dial(&s01, Some(tls)).await.unwrap());
    let (mut down, mut up) = (0u64, 0u64);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while serial(&pri) == pri_was || serial(&s01) == s01_was {
        assert!(
            std::time::Instant::now() < deadline,
            "no renewal within 60 s of certificates that last 30 s"
        );
        send_probes(&c, "S01", 20).await;
        send_probes(&c01, "PRI", 20).await;
        (down, up) = (down + 20, up + 20);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // New connections, with the renewed certificates on both ends.
    c.clone()
        .sever_link(pb::LinkRequest { to: "S01".into() })
        .await
        .unwrap();
    c.clone()
        .restore_link(pb::LinkRequest { to: "S01".into() })
        .await
        .unwrap();
    send_probes(&c, "S01", 20).await;
    send_probes(&c01, "PRI", 20).await;
    (down, up) = (down + 20, up + 20);
    wait_probes("S01", &c01, down).await;
    wait_probes("PRI", &c, up).await;
    wait_outbox_empty(&c, "S01").await;
    wait_outbox_empty(&c01, "PRI").await;
    assert_eq!(probe_count(&c01).await.unwrap(), down, "every probe once");
    assert_eq!(probe_count(&c).await.unwrap(), up, "every probe once");
    assert!(link(&c, "S01").await.failed_jobs == 0);
    // The parent recorded the renewed certificate as issued to S01, so
    // deleting S01 would revoke it too.
    let issued = pri.ctx.store.issued_serials("S01").unwrap();
    assert!(issued.contains(&serial(&s01)), "{issued:?}");
}

/// Renewal is refused to a certificate the site did not issue, and to a
/// caller without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_is_only_for_the_holder_of_a_certificate_this_site_issued() {
    let dir = tempfile::tempdir().unwrap();
    let (pri, _s01) = pri_and_s01(dir.path()).await;
    let root = admin_creds(&pri).root().to_vec();
    let key = sms_trust::ca::new_key().unwrap();
    let csr = sms_trust::ca::signing_request(&key).unwrap();
    let renew = |ch: Channel| {
        let csr = csr.clone();
        async move {
            pb::bootstrap_client::BootstrapClient::new(ch)
                .renew(pb::RenewRequest { csr })
                .await
        }
    };
    // No certificate.
    let anon = sms_trust::tls::client_config(None, Some(&root), Expect::Any).unwrap();
    let e = renew(dial(&pri, Some(Arc::new(anon))).await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    // An administrator.
    let tls = sms_connect::admin_tls(&admin_creds(&pri)).unwrap();
    let e = renew(dial(&pri, Some(tls)).await.unwrap())
        .await
        .unwrap_err();
    assert!(e.message().contains("not renewed this way"), "{e:?}");
    // A certificate for S07 made with PRI's authority but never issued by
    // PRI to anyone (no token, no renewal).
    let forged = made_by_pri(&pri, "S07");
    let cfg = sms_trust::tls::client_config(Some(&forged), Some(&root), Expect::Any).unwrap();
    let e = renew(dial(&pri, Some(Arc::new(cfg))).await.unwrap())
        .await
        .unwrap_err();
    assert!(
        e.message()
            .contains("holds no certificate this site issued"),
        "{e:?}"
    );
    assert!(pri.ctx.store.issued_serials("S07").unwrap().is_empty());
}
