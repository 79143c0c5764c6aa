//! Attaching a primary below another: a mistyped parent leaves nothing
//! behind, a primary that attached but never installed can be removed, and
//! an installed one is detached with the sites below it.

use sms_proto::v1 as pb;
use sms_proto::v1::admin_client::AdminClient;
use sms_server::{Connector, Node, NodeConfig};
use tokio::net::TcpListener;

mod common;

use common::{config, start_with, wait_active, wait_for, WAIT};
use sms_site::ports::Peers;
use sms_types::link::{LinkError, LinkHello, LinkOptions};

/// Starts a node with the default connector; the error is the node's own.
async fn start(cfg: NodeConfig) -> anyhow::Result<Node> {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_with(cfg, l, Connector::default()).await
}

async fn site_codes(a: &mut AdminClient<tonic::transport::Channel>) -> Vec<(String, String)> {
    a.list_sites(pb::ListSitesRequest {})
        .await
        .unwrap()
        .into_inner()
        .sites
        .into_iter()
        .map(|s| (s.site_code, s.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_parent_site_leaves_no_ghost() {
    let dir = tempfile::tempdir().unwrap();
    let pri = start(NodeConfig {
        install_primary: Some("PRI".parse().unwrap()),
        ..config(&dir.path().join("pri"))
    })
    .await
    .unwrap();
    let err = start(NodeConfig {
        install_primary: Some("P03".parse().unwrap()),
        parent_site: Some("PRX".parse().unwrap()),
        parent: Some(pri.local_addr.to_string()),
        ..config(&dir.path().join("p03"))
    })
    .await
    .expect_err("a parent that is not PRX must be refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("is site PRI, not PRX") && msg.contains("nothing was installed"),
        "{msg}"
    );
    let mut a = AdminClient::connect(format!("http://{}", pri.local_addr))
        .await
        .unwrap();
    let sites = site_codes(&mut a).await;
    assert!(
        sites.iter().all(|(c, _)| c != "P03"),
        "PRI recorded a ghost of P03: {sites:?}"
    );
    // The refused node installed nothing: it starts again as a bare node.
    let bare = start(config(&dir.path().join("p03"))).await.unwrap();
    assert!(bare.ctx.identity().is_none());
    bare.shutdown().await.unwrap();
    pri.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_primary_can_be_deleted_and_an_installed_one_is_detached() {
    let dir = tempfile::tempdir().unwrap();
    let pri = start(NodeConfig {
        install_primary: Some("PRI".parse().unwrap()),
        ..config(&dir.path().join("pri"))
    })
    .await
    .unwrap();
    let mut a = AdminClient::connect(format!("http://{}", pri.local_addr))
        .await
        .unwrap();
    // An attach whose install never happened (its server is gone).
    a.attach_primary(pb::AttachPrimaryRequest {
        site_code: "P04".into(),
        server: "127.0.0.1:9".into(),
        site_name: String::new(),
    })
    .await
    .unwrap();
    assert!(site_codes(&mut a)
        .await
        .contains(&("P04".into(), "Pending".into())));
    let r = a
        .delete_site(pb::SiteRequest { site: "P04".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.site_code, "P04");
    assert!(site_codes(&mut a).await.iter().all(|(c, _)| c != "P04"));

    // An installed primary with a secondary of its own.
    let p01 = start(NodeConfig {
        install_primary: Some("P01".parse().unwrap()),
        parent_site: Some("PRI".parse().unwrap()),
        parent: Some(pri.local_addr.to_string()),
        ..config(&dir.path().join("p01"))
    })
    .await
    .unwrap();
    let s11 = start(config(&dir.path().join("s11"))).await.unwrap();
    let b = common::admin(&p01).await;
    wait_active("PRI", &a, "P01").await;
    b.clone()
        .create_secondary(pb::CreateSecondaryRequest {
            site_code: "S11".into(),
            server: s11.local_addr.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_active("P01", &b, "S11").await;
    wait_active("PRI", &a, "S11").await;
    let old_secret = p01.ctx.identity().unwrap().parent.unwrap().link_secret;

    // Not a direct child: refused with where to run it.
    let e = a
        .delete_site(pb::SiteRequest { site: "S11".into() })
        .await
        .expect_err("a grandchild is deleted at its parent");
    assert!(
        e.message()
            .contains("its parent is P01); run delete-site at P01"),
        "{}",
        e.message()
    );

    // The installed primary leaves PRI's hierarchy with its subtree...
    a.delete_site(pb::SiteRequest { site: "P01".into() })
        .await
        .unwrap();
    wait_for("P01 and S11 to leave PRI's list", WAIT, || {
        let mut a = a.clone();
        async move {
            let sites = site_codes(&mut a).await;
            if sites.iter().all(|(c, _)| c != "P01" && c != "S11") {
                Ok(())
            } else {
                Err(format!("{sites:?}"))
            }
        }
    })
    .await;
    // ...and carries on as a central site with it.
    wait_for("P01 to forget its parent", WAIT, || async {
        match p01.ctx.identity().unwrap().parent {
            None => Ok(()),
            Some(p) => Err(format!("parent still {}", p.site_code)),
        }
    })
    .await;
    assert!(p01.ctx.config().unwrap().parent_site_code.is_none());
    let mut b2 = b.clone();
    let below = site_codes(&mut b2).await;
    assert!(
        below.contains(&("S11".into(), "Active".into())),
        "P01 kept S11: {below:?}"
    );

    // PRI forgot the link and its secret: P01's old link is refused.
    let hello = LinkHello {
        source_site: "P01".parse().unwrap(),
        dest_site: "PRI".parse().unwrap(),
        source_address: p01.local_addr.to_string(),
        link_secret: old_secret,
        sent_unix_ms: 0,
    };
    match Connector::default()
        .open_link(
            &pri.local_addr.to_string(),
            &hello,
            1,
            &LinkOptions::default(),
        )
        .await
    {
        Err(LinkError::Refused(m)) => assert!(m.contains("not a neighbour"), "{m}"),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("PRI still accepts the detached P01's link"),
    }
    s11.shutdown().await.unwrap();
    p01.shutdown().await.unwrap();
    pri.shutdown().await.unwrap();
}
