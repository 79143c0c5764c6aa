//! Readiness reflects reality: `/ready` and gRPC health say not serving
//! while a supervised component is restarting after a failure, and serving
//! again once it runs. (The store failing for real is covered by
//! tests/e2e/disk_full.rs, on a full tmpfs.)

mod common;

use common::*;
use sms_server::NodeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_check_response::ServingStatus;

/// GET `path` from the node's plain HTTP listener: (status, body).
async fn get(url: &str, path: &str) -> (u16, String) {
    let addr = url.strip_prefix("http://").expect("loopback is plain HTTP");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

async fn grpc_health(node: &sms_server::Node) -> i32 {
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", node.local_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic_health::pb::health_client::HealthClient::new(ch)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_a_component_restarts_and_ready_again_once_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(NodeConfig {
        http_listen: Some("127.0.0.1:0".into()),
        ..central(dir.path())
    })
    .await;
    let url = node.http_url.clone().expect("the HTTP listener runs");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(sms_server::http::HTTP_ADDR_FILE))
            .unwrap()
            .trim(),
        url
    );
    assert_eq!(get(&url, "/ready").await, (200, "ready\n".into()));
    assert_eq!(grpc_health(&node).await, ServingStatus::Serving as i32);

    // What the supervisor records when a component's loop fails.
    let comps = &node.ctx.components;
    comps.restarting("SMS_STATUS_MANAGER", "store: disk on fire");
    let (code, body) = get(&url, "/ready").await;
    assert_eq!(code, 503);
    assert!(
        body.contains("SMS_STATUS_MANAGER is restarting after an error (store: disk on fire)"),
        "{body}"
    );
    wait_for("gRPC health NOT_SERVING", WAIT, || async {
        match grpc_health(&node).await {
            s if s == ServingStatus::NotServing as i32 => Ok(()),
            s => Err(format!("status {s}")),
        }
    })
    .await;
    let (_, metrics) = get(&url, "/metrics").await;
    assert!(metrics.contains("sms_node_ready 0"), "{metrics}");
    assert!(
        metrics.contains("sms_component_restarts_total{component=\"SMS_STATUS_MANAGER\"} 1"),
        "{metrics}"
    );

    comps.set("SMS_STATUS_MANAGER", "running");
    assert_eq!(get(&url, "/ready").await.0, 200);
    wait_for("gRPC health SERVING", WAIT, || async {
        match grpc_health(&node).await {
            s if s == ServingStatus::Serving as i32 => Ok(()),
            s => Err(format!("status {s}")),
        }
    })
    .await;
    node.shutdown().await.unwrap();
}
