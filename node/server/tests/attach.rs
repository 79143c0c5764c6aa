//! Attaching a primary below another: a mistyped parent leaves nothing
//! behind, and a primary that attached but never installed can be removed.

use std::time::Duration;

use sms_proto::v1 as pb;
use sms_proto::v1::admin_client::AdminClient;
use sms_server::{Connector, Node, NodeConfig};
use tokio::net::TcpListener;

mod common;

use common::{config, start_with};

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
async fn a_pending_primary_can_be_deleted_an_installed_one_cannot() {
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

    // A primary that installed and reported is refused, with the reason.
    let p01 = start(NodeConfig {
        install_primary: Some("P01".parse().unwrap()),
        parent_site: Some("PRI".parse().unwrap()),
        parent: Some(pri.local_addr.to_string()),
        ..config(&dir.path().join("p01"))
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !site_codes(&mut a)
        .await
        .contains(&("P01".into(), "Active".into()))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "P01 never became Active at PRI: {:?}",
            site_codes(&mut a).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = a
        .delete_site(pb::SiteRequest { site: "P01".into() })
        .await
        .expect_err("an installed primary is not deleted");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message().contains("only a Pending primary"),
        "{}",
        e.message()
    );
    assert!(site_codes(&mut a)
        .await
        .contains(&("P01".into(), "Active".into())));
    p01.shutdown().await.unwrap();
    pri.shutdown().await.unwrap();
}
