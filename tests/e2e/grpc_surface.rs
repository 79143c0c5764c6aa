//! Every node serves standard gRPC health and reflection, so generic tools
//! can inspect it with nothing but the .proto files.

use crate::support::*;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1alpha as alpha;

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_answer_on_bare_and_installed_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let bare = NodeProc::start(&dir.path().join("bare"), &[]);
    let primary = NodeProc::start(&dir.path().join("pri"), &["--install-primary", "PRI"]);
    for node in [&bare, &primary] {
        let url = format!("http://{}", node.addr);
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut h = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        for svc in ["", "sms.v1.Admin", "sms.v1.Transfer", "sms.v1.Bootstrap"] {
            let r = h
                .check(tonic_health::pb::HealthCheckRequest {
                    service: svc.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.status, 1, "{svc} not SERVING on {}", node.addr);
        }
        let mut r = ServerReflectionClient::new(channel.clone());
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = r
            .server_reflection_info(futures::stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
            panic!("unexpected reflection answer");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        // The same list through v1alpha, which older tools speak.
        let mut old = alpha::server_reflection_client::ServerReflectionClient::new(channel);
        let req = alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        };
        let mut stream = old
            .server_reflection_info(futures::stream::iter(vec![req]))
            .await
            .expect("v1alpha reflection is served")
            .into_inner();
        let resp = stream.message().await.unwrap().unwrap();
        let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            resp.message_response
        else {
            panic!("unexpected v1alpha reflection answer");
        };
        let alpha_names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for svc in [
            "sms.v1.Admin",
            "sms.v1.Transfer",
            "sms.v1.Bootstrap",
            "grpc.health.v1.Health",
        ] {
            assert!(
                names.iter().any(|n| n == svc),
                "{svc} not listed: {names:?}"
            );
            assert!(
                alpha_names.iter().any(|n| n == svc),
                "{svc} not listed by v1alpha: {alpha_names:?}"
            );
        }
    }
    // The binary's own health subcommand (used by container health checks).
    let out = std::process::Command::new(SMS_NODE)
        .env("SMS_INSECURE", "1")
        .args(["health", "--addr", &primary.addr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(SMS_NODE)
        .env("SMS_INSECURE", "1")
        .args(["health", "--addr", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
