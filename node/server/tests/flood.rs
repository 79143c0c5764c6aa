//! A node flooded with connections from one address keeps serving everyone
//! else: connections over the per-address limit are closed at once and
//! counted in its status, and the descriptors they would have held stay
//! free. (Another loopback address, 127.0.0.2, plays the flooding host.)

use std::time::Duration;

use sms_proto::v1 as pb;
use sms_server::security::Limits;
use sms_server::NodeConfig;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

mod common;

use common::*;

const FLOOD: usize = 40;
const PER_ADDRESS: usize = 8;

/// A connection from 127.0.0.2 to `to`.
async fn from_other_host(to: std::net::SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// Whether the node closed the connection (EOF or reset) within `wait`.
async fn closed(c: &mut TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 1];
    match tokio::time::timeout(wait, c.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_limit_are_closed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(NodeConfig {
        connection_limits: Limits {
            total: 64,
            per_address: PER_ADDRESS,
        },
        ..central(dir.path())
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(from_other_host(node.local_addr).await);
    }
    let mut open = 0;
    for c in &mut flood {
        if !closed(c, Duration::from_millis(300)).await {
            open += 1;
        }
    }
    assert_eq!(open, PER_ADDRESS, "the rest were closed at once");
    // Everyone else is still served.
    let c = admin(&node).await;
    let st = c
        .clone()
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("served while flooded")
        .into_inner();
    assert_eq!(st.connections_refused, (FLOOD - PER_ADDRESS) as u64);
    // The places come back when the flood goes.
    drop(flood);
    wait_for("places freed", Duration::from_secs(5), || async {
        let mut again = from_other_host(node.local_addr).await;
        if closed(&mut again, Duration::from_millis(200)).await {
            Err("still refused".to_string())
        } else {
            Ok(())
        }
    })
    .await;
}

/// A hostile value is refused as INVALID_ARGUMENT with a short message: the
/// answer never carries the value back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_site_code_is_refused_without_being_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(central(dir.path())).await;
    let huge = "S\u{202e}".repeat(1 << 19);
    let e = admin(&node)
        .await
        .create_secondary(pb::CreateSecondaryRequest {
            site_code: huge.clone(),
            server: "127.0.0.1:1".into(),
            sever_link_mid_bootstrap: false,
            site_name: String::new(),
        })
        .await
        .expect_err("refused");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().len() < 600,
        "{} bytes echoed",
        e.message().len()
    );
    let e = admin(&node)
        .await
        .delete_site(pb::SiteRequest { site: huge })
        .await
        .expect_err("refused");
    assert!(
        e.message().len() < 600,
        "{} bytes echoed",
        e.message().len()
    );
}

/// A connection calling faster than its rate is answered RESOURCE_EXHAUSTED
/// past its burst; another connection is served all the while, and the
/// refusals are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_its_call_rate_is_refused_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(NodeConfig {
        call_rate: sms_server::rpc::rate::RateLimit {
            per_sec: 5.0,
            burst: 10.0,
        },
        ..central(dir.path())
    })
    .await;
    let busy = admin(&node).await;
    let mut refused = 0;
    for _ in 0..40 {
        match busy.clone().get_status(pb::GetStatusRequest {}).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("slow down"), "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(refused >= 25, "only {refused} of 40 refused");
    let st = admin(&node)
        .await
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("another connection is served")
        .into_inner();
    assert_eq!(st.calls_refused, refused);
}
