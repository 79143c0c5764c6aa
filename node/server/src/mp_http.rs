//! The management point's HTTP edge: the URLs clients and the MP Control
//! Manager use (seed 001), each mapped to one call of the agent
//! (`sms_site::mp_agent`), and the listener the agent starts and stops.
//!
//! - `GET /sms_mp/.sms_aut?mplist`: 200 with an empty body while it works
//! - `GET /sms_mp/.sms_aut?mpcert`: the site's certificate, one hex string
//! - `GET /sms_mp/.sms_pol?<PolicyID>.<Version>`: a policy document
//! - `GET /ccm_system/request/machinepolicy`: the policy assignments
//! - `POST /ccm_system/request/register` `{"name", "hardware_id"}`
//! - `POST /ccm_incoming/status` `{"client", "messages": [{id, severity, component, text}]}`

use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use sms_site::mp_agent::{self, AgentError};
use sms_site::ports::MpHost;
use sms_site::Ctx;
use sms_types::mp::ClientMessage;

/// Largest request body a client may post.
const MAX_BODY: usize = 256 * 1024;

/// The listener: at most one per node, started and stopped by the agent.
/// With TLS on the node it answers HTTPS (the node's certificate chain,
/// under the hierarchy's root) and plain HTTP on the same port.
pub struct MpHttp {
    ctx: Weak<Ctx>,
    tls: Option<Arc<crate::security::NodeTls>>,
    serving: Mutex<Option<Serving>>,
}

struct Serving {
    port: u16,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl MpHttp {
    pub fn new(ctx: &Arc<Ctx>, security: &crate::security::Security) -> MpHttp {
        MpHttp {
            ctx: Arc::downgrade(ctx),
            tls: match security {
                crate::security::Security::Tls(t) => Some(t.clone()),
                _ => None,
            },
            serving: Mutex::new(None),
        }
    }
}

#[async_trait]
impl MpHost for MpHttp {
    async fn start(&self, host: &str, port: u16) -> std::io::Result<u16> {
        if let Some(s) = self.serving.lock().expect("mp http lock").as_ref() {
            if port == 0 || port == s.port {
                return Ok(s.port);
            }
        }
        self.stop().await;
        let ctx = self
            .ctx
            .upgrade()
            .ok_or_else(|| std::io::Error::other("the node is stopping"))?;
        let listener = tokio::net::TcpListener::bind((host, port)).await?;
        let bound = listener.local_addr()?.port();
        let stop = ctx.tasks.token().child_token();
        let app = router(ctx.clone());
        let until = stop.clone();
        let security = match &self.tls {
            Some(t) => crate::http::HttpSecurity::Either(t.clone()),
            None => crate::http::HttpSecurity::Plaintext,
        };
        let done = ctx.tasks.spawn(
            "management point http",
            crate::http::serve_until(ctx.clone(), listener, security, app, until),
        );
        *self.serving.lock().expect("mp http lock") = Some(Serving {
            port: bound,
            stop,
            done,
        });
        Ok(bound)
    }

    async fn stop(&self) {
        let s = self.serving.lock().expect("mp http lock").take();
        if let Some(s) = s {
            s.stop.cancel();
            // Open client connections do not hold the port: graceful
            // shutdown waits for them a moment, then the task is stopped.
            let done = s.done;
            let abort = done.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), done)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn serving(&self) -> Option<u16> {
        self.serving
            .lock()
            .expect("mp http lock")
            .as_ref()
            .map(|s| s.port)
    }
}

fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/sms_mp/.sms_aut", get(sms_aut))
        .route("/sms_mp/.sms_pol", get(sms_pol))
        .route("/ccm_system/request/machinepolicy", get(machine_policy))
        .route("/ccm_system/request/register", post(register))
        .route("/ccm_incoming/status", post(status))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}

fn refused(e: AgentError) -> Response {
    let code = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", e.message),
    )
        .into_response()
}

async fn sms_aut(State(ctx): State<Arc<Ctx>>, RawQuery(q): RawQuery) -> Response {
    match q.unwrap_or_default().to_ascii_lowercase().as_str() {
        "mplist" => match mp_agent::mplist(&ctx) {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => refused(e),
        },
        "mpcert" => match mp_agent::mpcert(&ctx) {
            Ok(hex) => ([(header::CONTENT_TYPE, "text/plain")], hex).into_response(),
            Err(e) => refused(e),
        },
        other => refused(AgentError {
            status: 400,
            message: format!(
                "unknown request {:?}: .sms_aut answers mplist and mpcert",
                sms_types::limits::clip(other)
            ),
        }),
    }
}

async fn sms_pol(State(ctx): State<Arc<Ctx>>, RawQuery(q): RawQuery) -> Response {
    match mp_agent::policy(&ctx, &q.unwrap_or_default()) {
        Ok(body) => ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response(),
        Err(e) => refused(e),
    }
}

async fn machine_policy(State(ctx): State<Arc<Ctx>>) -> Response {
    match mp_agent::machine_policy(&ctx) {
        Ok((site, list)) => Json(serde_json::json!({
            "site_code": site,
            "policies": list
                .into_iter()
                .map(|(id, version, url)| serde_json::json!({"id": id, "version": version, "url": url}))
                .collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct Registration {
    name: String,
    hardware_id: String,
}

async fn register(State(ctx): State<Arc<Ctx>>, body: axum::body::Bytes) -> Response {
    let r: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refused(AgentError {
                status: 400,
                message: format!("a registration is {{\"name\", \"hardware_id\"}}: {e}"),
            })
        }
    };
    match mp_agent::register(&ctx, &r.name, &r.hardware_id).await {
        Ok((site, id, new)) => Json(serde_json::json!({
            "site_code": site,
            "sms_id": id,
            "sms_unique_id": format!("{site}{id:08}"),
            "new": new,
        }))
        .into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct StatusPost {
    client: String,
    messages: Vec<ClientMessageIn>,
}

#[derive(Deserialize)]
struct ClientMessageIn {
    id: u32,
    severity: String,
    component: String,
    #[serde(default)]
    text: String,
}

async fn status(State(ctx): State<Arc<Ctx>>, body: axum::body::Bytes) -> Response {
    let p: StatusPost = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return refused(AgentError {
                status: 400,
                message: format!("a status post is {{\"client\", \"messages\": [{{\"id\", \"severity\", \"component\", \"text\"}}]}}: {e}"),
            })
        }
    };
    let msgs = p
        .messages
        .into_iter()
        .map(|m| ClientMessage {
            id: m.id,
            severity: m.severity,
            component: m.component,
            text: m.text,
        })
        .collect();
    match mp_agent::client_status(&ctx, &p.client, msgs).await {
        Ok(n) => Json(serde_json::json!({"stored": n})).into_response(),
        Err(e) => refused(e),
    }
}
