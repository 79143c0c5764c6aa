//! `controller token k8s-sync` against a fake Kubernetes API server (the
//! Secrets endpoints, in this process) and a real primary: each bare-node
//! pod's key gets a token made at the primary, a second pass makes none,
//! and a node started with the token from the Secret joins.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::support::{CONTROLLER, SMS_NODE};

/// Secrets by name: key -> base64 value.
type Secrets = Arc<Mutex<BTreeMap<String, BTreeMap<String, String>>>>;

async fn handle(
    req: Request<hyper::body::Incoming>,
    secrets: Secrets,
    calls: Arc<Mutex<Vec<String>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    calls.lock().unwrap().push(format!("{method} {path}"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = |code: u16, v: Value| {
        Ok(Response::builder()
            .status(code)
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap())
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // api/v1/namespaces/NS/secrets[/NAME]
    if parts.len() < 5
        || parts[..3] != ["api", "v1", "namespaces"]
        || parts[3] != "sms"
        || parts[4] != "secrets"
    {
        return reply(404, json!({"message": format!("no such path {path}")}));
    }
    let mut s = secrets.lock().unwrap();
    match (method.as_str(), parts.get(5)) {
        ("GET", Some(name)) => match s.get(*name) {
            Some(d) => reply(200, json!({"metadata": {"name": name}, "data": d})),
            None => reply(
                404,
                json!({"message": format!("secrets \"{name}\" not found")}),
            ),
        },
        ("PATCH", Some(name)) => match s.get_mut(*name) {
            Some(d) => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                for (k, val) in v["data"].as_object().unwrap() {
                    d.insert(k.clone(), val.as_str().unwrap().to_string());
                }
                reply(200, json!({}))
            }
            None => reply(404, json!({"message": "not found"})),
        },
        ("POST", None) => {
            let v: Value = serde_json::from_slice(&body).unwrap();
            let name = v["metadata"]["name"].as_str().unwrap().to_string();
            if s.contains_key(&name) {
                return reply(409, json!({"message": "exists"}));
            }
            let d = v["data"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string()))
                .collect();
            s.insert(name, d);
            reply(201, json!({}))
        }
        _ => reply(405, json!({"message": "not here"})),
    }
}

#[test]
fn bare_node_pods_get_their_tokens_from_a_sync_beside_the_primary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cluster = sms_cluster::Cluster::new(SMS_NODE).env("RUST_LOG", "warn");
    let pri = cluster
        .start(&d.join("pri"), &["--install-primary", "PRI"])
        .unwrap();
    let admin = d.join("pri").join("admin");

    let secrets: Secrets = Arc::default();
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let (s2, c2) = (secrets.clone(), calls.clone());
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (s3, c3) = (s2.clone(), c2.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |r| handle(r, s3.clone(), c3.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });

    let sync = || {
        std::process::Command::new(CONTROLLER)
            .args(["--node", pri.addr(), "--tls-dir"])
            .arg(&admin)
            .args([
                "token",
                "k8s-sync",
                "--once",
                "--api",
                &api,
                "--namespace",
                "sms",
            ])
            .args(["--pod", "secondary-0=S01", "--pod", "smsdom-member-0"])
            .args(["--pod", "p01-0=P01:primary"])
            .env_remove("SMS_INSECURE")
            .output()
            .unwrap()
    };
    let out = sync();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("gave secondary-0 a join token for secondary S01"),
        "{text}"
    );
    let token_of = |secret: &str, key: &str| -> String {
        let s = secrets.lock().unwrap();
        let b64 = s
            .get(secret)
            .and_then(|d| d.get(key))
            .unwrap_or_else(|| panic!("no {secret}/{key}: {s:?}"));
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    assert!(
        text.contains("gave p01-0 a join token for primary P01"),
        "{text}"
    );
    let p01 = sms_trust::JoinToken::decode(&token_of("p01-join-tokens", "p01-0.token")).unwrap();
    assert_eq!((p01.label.as_str(), p01.role.as_str()), ("P01", "primary"));
    let s01_token = token_of("secondary-join-tokens", "secondary-0.token");
    let member_token = token_of("smsdom-member-join-tokens", "smsdom-member-0.token");
    assert_ne!(s01_token, member_token);

    // A second pass finds both keys and makes no token.
    let before = calls.lock().unwrap().len();
    let out = sync();
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after: Vec<String> = calls.lock().unwrap()[before..].to_vec();
    assert!(
        after.iter().all(|c| c.starts_with("GET ")),
        "only reads: {after:?}"
    );

    // The member's token works: a node started with it joins as that member.
    let f = d.join("member.token");
    std::fs::write(&f, &member_token).unwrap();
    let m = cluster
        .start(&d.join("m"), &["--join-token-file", f.to_str().unwrap()])
        .expect("joins with the synced token");
    let certs = std::process::Command::new(CONTROLLER)
        .args(["--node", m.addr(), "--tls-dir"])
        .arg(&admin)
        .args(["certs", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&certs.stdout).unwrap();
    let node = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["use"] == "node")
        .unwrap()
        .clone();
    assert!(
        node["subject"]
            .as_str()
            .unwrap()
            .contains("smsdom-member-0"),
        "{node}"
    );

    // The API refusing (RBAC) is a clear error naming the fix.
    let out = std::process::Command::new(CONTROLLER)
        .args(["--node", pri.addr(), "--tls-dir"])
        .arg(&admin)
        .args([
            "token",
            "k8s-sync",
            "--once",
            "--api",
            &api,
            "--namespace",
            "other",
            "--pod",
            "secondary-1=S02",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The manifests agree with the command: every `--pod` the token-sync
/// container passes parses, and the Role lets it get and patch exactly the
/// Secrets those pods' StatefulSets mount.
#[test]
fn the_kubernetes_manifests_give_token_sync_what_it_needs() {
    use yaml_rust2::YamlLoader;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s");
    let docs = |f: &str| {
        YamlLoader::load_from_str(&std::fs::read_to_string(root.join(f)).unwrap()).unwrap()
    };
    let primary = docs("primary.yaml");
    let sts = primary
        .iter()
        .find(|d| d["kind"].as_str() == Some("StatefulSet"))
        .unwrap();
    let spec = &sts["spec"]["template"]["spec"];
    assert_eq!(spec["serviceAccountName"].as_str(), Some("sms-token-sync"));
    assert_eq!(spec["automountServiceAccountToken"].as_bool(), Some(false));
    let sync = spec["containers"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some("token-sync"))
        .unwrap();
    let args: Vec<&str> = sync["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let pods: Vec<sms_controller::k8s::PodToken> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--pod="))
        .map(|p| sms_controller::k8s::PodToken::parse(p).unwrap())
        .collect();
    assert!(pods.len() >= 2, "{args:?}");
    let secrets: std::collections::BTreeSet<String> = pods.iter().map(|p| p.secret()).collect();
    // Only this container mounts the API token.
    let mounts = |c: &yaml_rust2::Yaml| -> Vec<String> {
        c["volumeMounts"]
            .as_vec()
            .map(|v| {
                v.iter()
                    .map(|m| m["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    for c in spec["containers"].as_vec().unwrap() {
        let has = mounts(c).iter().any(|m| m == "api-token");
        assert_eq!(
            has,
            c["name"].as_str() == Some("token-sync"),
            "{:?}",
            c["name"]
        );
    }
    let rbac = docs("token-sync.yaml");
    let role = rbac
        .iter()
        .find(|d| d["kind"].as_str() == Some("Role"))
        .unwrap();
    let named: std::collections::BTreeSet<String> = role["rules"]
        .as_vec()
        .unwrap()
        .iter()
        .filter(|r| {
            r["verbs"]
                .as_vec()
                .unwrap()
                .iter()
                .any(|v| v.as_str() == Some("patch"))
        })
        .flat_map(|r| {
            r["resourceNames"]
                .as_vec()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        named, secrets,
        "the Role names the Secrets token-sync writes"
    );
    // The StatefulSets mount those Secrets.
    for (file, secret) in [
        ("secondary.yaml", "secondary-join-tokens"),
        ("domain-smsdom.yaml", "smsdom-member-join-tokens"),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(text.contains(secret), "{file} does not mount {secret}");
    }
    let kustomization = std::fs::read_to_string(root.join("kustomization.yaml")).unwrap();
    assert!(kustomization.contains("token-sync.yaml"));
}
