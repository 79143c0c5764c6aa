//! The console's JSON endpoints and its session checks, against a real
//! site core (store on a temp dir) and the router as the listener serves it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use sms_site::{CoreConfig, Ctx};
use sms_trust::AdminRole;
use sms_types::catalog;
use sms_types::*;
use tower::ServiceExt;

use super::session::Grant;
use super::*;

struct Site {
    ctx: Arc<Ctx>,
    console: Arc<Console>,
    _dir: tempfile::TempDir,
}

/// A central site PRI at serial 1 (no components running: the endpoints
/// only read the store and queue work).
fn central() -> Site {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sms_store::Store::open(&dir.path().join("db")).expect("store");
    let code: SiteCode = "PRI".parse().unwrap();
    let id = Identity {
        site_code: code.clone(),
        site_name: "PRI central site".into(),
        kind: SiteKind::Primary,
        parent: None,
        installed_unix_ms: now_ms(),
        version: SOFTWARE_VERSION.to_string(),
        ancestors: vec![],
    };
    let ct0 = SiteControl::first(code, id.site_name.clone(), None);
    store.install_site(&id, &ct0).expect("install");
    let node_id = store.node_id().expect("node id");
    let ctx = Arc::new(
        Ctx::new(CoreConfig {
            store,
            data_dir: dir.path().to_path_buf(),
            advertise: "127.0.0.1:8500".into(),
            node_id,
            identity: Some(id),
            tasks: sms_runtime::TaskCenter::new(),
            peers: Arc::new(crate::Connector::default()),
        })
        .expect("core"),
    );
    sms_site::wiring::wire(&ctx);
    Site {
        ctx,
        console: Arc::new(Console::default()),
        _dir: dir,
    }
}

const LOOPBACK: &str = "127.0.0.1:9100";
const OFF_LOOPBACK: &str = "10.1.2.3:9100";

impl Site {
    fn router(&self, at: &str) -> Router {
        let bound: SocketAddr = at.parse().unwrap();
        router(
            self.ctx.clone(),
            self.console.clone(),
            bound,
            !bound.ip().is_loopback(),
        )
    }

    /// A signed-in session: (cookie header, CSRF token).
    async fn sign_in(&self, role: AdminRole) -> (String, String) {
        let t = self
            .console
            .sessions
            .issue(
                Grant {
                    subject: format!("alice ({role})"),
                    role,
                    chain_serials: vec![],
                },
                Duration::ZERO,
            )
            .unwrap();
        let r = self
            .router(LOOPBACK)
            .oneshot(
                Request::get(format!("/console/login?ticket={}", t.token))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let set = r.headers()[header::SET_COOKIE].to_str().unwrap();
        let cookie = set.split(';').next().unwrap().to_string();
        let (_, info) = call(
            &self.router(LOOPBACK),
            get_with("/console/api/session", &cookie),
        )
        .await;
        (cookie, info["csrf"].as_str().unwrap().to_string())
    }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn get_with(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

fn post(path: &str, cookie: Option<&str>, csrf: Option<&str>, body: &str) -> Request<Body> {
    let mut r = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    if let Some(t) = csrf {
        r = r.header(CSRF_HEADER, t);
    }
    r.body(Body::from(body.to_string())).unwrap()
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let r = router.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).to_string()));
    (status, v)
}

#[tokio::test]
async fn the_page_is_served_from_the_binary_with_a_strict_policy() {
    let site = central();
    let r = site
        .router(LOOPBACK)
        .oneshot(get("/console/"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let html = String::from_utf8_lossy(&body);
    assert!(html.contains("/console/app.js"));
    // No asset from anywhere else.
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!APP_JS.contains("http://") && !APP_JS.contains("https://"));
}

#[tokio::test]
async fn reads_are_open_on_loopback_and_need_a_session_elsewhere() {
    let site = central();
    let (status, tree) = call(&site.router(LOOPBACK), get("/console/api/tree")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tree["site"], "PRI");
    assert_eq!(tree["sites"][0]["code"], "PRI");
    assert_eq!(tree["sites"][0]["status"], "Active");

    let off = site.router(OFF_LOOPBACK);
    for path in [
        "/console/api/tree",
        "/console/api/sites/PRI",
        "/console/api/status",
        "/console/api/events",
        "/console/api/status/tail",
    ] {
        let (status, v) = call(&off, get(path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(v["error"]
            .as_str()
            .unwrap()
            .contains("controller console-url"));
    }
    let (cookie, _) = site.sign_in(AdminRole::ReadOnly).await;
    // The cookie is named after the listener's port, as the sign-in set it.
    let (status, tree) = call(&off, get_with("/console/api/tree", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tree["site"], "PRI");
    let (status, _) = call(
        &off,
        get_with("/console/api/tree", "sms_console_9100=forged"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_in_spends_the_ticket_and_sets_a_strict_http_only_cookie() {
    let site = central();
    let t = site
        .console
        .sessions
        .issue(
            Grant {
                subject: "bob (administrator)".into(),
                role: AdminRole::Operator,
                chain_serials: vec![],
            },
            Duration::ZERO,
        )
        .unwrap();
    let off = site.router(OFF_LOOPBACK);
    let login = format!("/console/login?ticket={}", t.token);
    let r = off.clone().oneshot(get(&login)).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/console/");
    let set = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    for part in [
        "sms_console_9100=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Secure",
    ] {
        assert!(set.contains(part), "{set} lacks {part}");
    }
    assert!(!set.contains(&t.token), "the cookie is not the ticket");
    // Used once.
    let r = off.clone().oneshot(get(&login)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let cookie = set.split(';').next().unwrap();
    let (_, info) = call(&off, get_with("/console/api/session", cookie)).await;
    assert_eq!(info["signed_in"], true);
    assert_eq!(info["role"], "operator");
    assert_eq!(info["subject"], "bob (administrator)");
    assert_eq!(info["read_open"], false);
    assert_eq!(info["csrf"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn actions_need_a_session_its_csrf_token_and_the_role_and_are_audited() {
    let site = central();
    let r = site.router(LOOPBACK);
    let body = r#"{"name":"CORP","browse":["127.0.0.1:1"]}"#;
    // Open reads on loopback do not open actions.
    let (status, _) = call(
        &r,
        post("/console/api/actions/add-domain", None, None, body),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (op, op_csrf) = site.sign_in(AdminRole::Operator).await;
    let (status, _) = call(
        &r,
        post("/console/api/actions/add-domain", Some(&op), None, body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF header");
    let (status, v) = call(
        &r,
        post(
            "/console/api/actions/add-domain",
            Some(&op),
            Some(&op_csrf),
            body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        v["error"],
        "administrator alice (operator) has role operator; this needs full"
    );

    let (full, csrf) = site.sign_in(AdminRole::Full).await;
    // Another session's token is not this one's.
    let (status, _) = call(
        &r,
        post(
            "/console/api/actions/add-domain",
            Some(&full),
            Some(&op_csrf),
            body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, v) = call(
        &r,
        post(
            "/console/api/actions/add-domain",
            Some(&full),
            Some(&csrf),
            body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["site"], "PRI");
    assert_eq!(v["serial"], 2);

    // A refused action changes nothing, the audit trail included.
    let (status, v) = call(
        &r,
        post(
            "/console/api/actions/sever-link",
            Some(&full),
            Some(&csrf),
            r#"{"to":"ZZZ"}"#,
        ),
    )
    .await;
    assert_ne!(status, StatusCode::OK, "{v}");
    let (status, v) = call(
        &r,
        post(
            "/console/api/actions/sever-link",
            Some(&full),
            Some(&csrf),
            r#"{}"#,
        ),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sever-link needs to"))
    );
    let (status, v) = call(
        &r,
        post(
            "/console/api/actions/delete-everything",
            Some(&full),
            Some(&csrf),
            "{}",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("not a console action"));

    let audit = queries::status_messages(
        &site.ctx,
        None,
        Some(catalog::AUDIT_ADMIN_ACTION.id),
        100,
        None,
    )
    .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].insertion_strings[0], "alice (full)");
    assert_eq!(audit[0].insertion_strings[1], "add-domain");
    assert_eq!(audit[0].insertion_strings[2], "PRI");
    assert!(audit[0].insertion_strings[3].starts_with("web console:"));
}

#[tokio::test]
async fn the_status_viewer_filters_by_every_field_and_names_bad_filters() {
    let site = central();
    let ctx = &site.ctx;
    sms_site::status::emit(
        ctx,
        &catalog::AUDIT_ADMIN_ACTION,
        &["a".into(), "b".into(), "PRI".into(), "needle".into()],
    )
    .unwrap();
    sms_site::status::emit(
        ctx,
        &catalog::TRUST_REFUSED,
        &["x".into(), "y".into(), "z".into()],
    )
    .unwrap();
    let r = site.router(LOOPBACK);
    let ids = |v: &Value| -> Vec<u64> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    let (_, all) = call(&r, get("/console/api/status")).await;
    assert!(
        ids(&all).contains(&4800) && ids(&all).contains(&4803),
        "{all}"
    );
    let (_, v) = call(&r, get("/console/api/status?severity=warning")).await;
    assert_eq!(ids(&v), [4803]);
    let (_, v) = call(&r, get("/console/api/status?text=NEEDLE&site=PRI")).await;
    assert_eq!(ids(&v), [4800]);
    let (_, v) = call(
        &r,
        get("/console/api/status?id=4803&component=sms_provider"),
    )
    .await;
    assert_eq!(ids(&v), [4803]);
    let (_, v) = call(&r, get("/console/api/status?site=S99")).await;
    assert_eq!(ids(&v), Vec::<u64>::new());
    let future = now_ms() + 3_600_000;
    let (_, v) = call(&r, get(&format!("/console/api/status?since={future}"))).await;
    assert_eq!(ids(&v), Vec::<u64>::new());
    let (_, v) = call(&r, get("/console/api/status?until=2001-01-01T00:00:00Z")).await;
    assert_eq!(ids(&v), Vec::<u64>::new());
    let (_, v) = call(&r, get("/console/api/status?limit=1")).await;
    assert_eq!(ids(&v).len(), 1);

    for (q, why) in [
        ("severity=fatal", "not informational, warning or error"),
        ("id=abc", "is not a message id"),
        ("since=yesterday", "is not a time"),
        ("site=toolong", "site:"),
        ("limit=0", "give 1 to 5000"),
        ("since=2000&until=1000", "since is after until"),
    ] {
        let (status, v) = call(&r, get(&format!("/console/api/status?{q}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        assert!(v["error"].as_str().unwrap().contains(why), "{q}: {v}");
    }
}

#[tokio::test]
async fn a_site_page_shows_control_history_components_and_a_diff() {
    let site = central();
    let r = site.router(LOOPBACK);
    let (status, p) = call(&r, get("/console/api/sites/PRI")).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["own"], true);
    assert_eq!(p["control"]["serial"], 1);
    assert_eq!(p["serials"], serde_json::json!([1]));
    assert!(p["components"].is_array());
    assert!(p["row"]["status"] == "Active");

    let (status, d) = call(&r, get("/console/api/sites/PRI/diff?a=1&b=1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(d["changes"], serde_json::json!([]));
    let (status, d) = call(&r, get("/console/api/sites/PRI/diff?a=1&b=7")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        d["error"]
            .as_str()
            .unwrap()
            .contains("no site control serial 7"),
        "{d}"
    );
    let (status, d) = call(&r, get("/console/api/sites/PRI/diff?a=0&b=1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(d["error"].as_str().unwrap().contains("serials start at 1"));

    let (status, v) = call(&r, get("/console/api/sites/S42")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "site S42 is not in the site list of PRI");
    let (status, _) = call(&r, get("/console/api/sites/bad%20code")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
