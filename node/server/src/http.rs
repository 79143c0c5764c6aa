//! The node's HTTP listener (`sms-node --http-listen`): `/metrics` in the
//! Prometheus text format and `/ready`, on a port of its own beside gRPC.
//! The routes are one axum [`Router`] (see [`router`]) that later pages
//! (the web console) extend; every request carries the connection's
//! [`PeerInfo`] as an extension, so a route can check who calls.
//!
//! Plaintext only where nobody else can listen in: on a loopback address,
//! or on a node started with `--insecure`. On any other address the
//! listener speaks TLS with the node's own certificate (the same one its
//! gRPC port presents, renewed with it); a client need not present one
//! (`/metrics` and `/ready` say nothing secret), and verifies the node
//! with the hierarchy's root (`ca.pem`) and the certificate's DNS name
//! (`pri.sms.invalid` for the central site PRI).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use sms_site::Ctx;
use tokio::net::TcpListener;

use crate::security::{NodeTls, PeerInfo, Security};

/// Name of the file in the data dir that holds the HTTP listener's URL.
pub const HTTP_ADDR_FILE: &str = "http.addr";

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A TLS handshake that does not finish in this long is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the HTTP listener talks.
#[derive(Clone)]
pub enum HttpSecurity {
    Plaintext,
    Tls(Arc<NodeTls>),
    /// Both on one port: a connection that opens with a TLS handshake gets
    /// TLS, any other plain HTTP (a management point's clients use either).
    Either(Arc<NodeTls>),
}

impl HttpSecurity {
    /// Plaintext on loopback or on an `--insecure` node, TLS elsewhere.
    pub fn for_address(addr: SocketAddr, node: &Security) -> HttpSecurity {
        match node {
            Security::Tls(t) if !addr.ip().is_loopback() => HttpSecurity::Tls(t.clone()),
            _ => HttpSecurity::Plaintext,
        }
    }

    /// The URL of the listener bound at `addr`.
    pub fn url(&self, addr: SocketAddr) -> String {
        match self {
            HttpSecurity::Plaintext => format!("http://{addr}"),
            HttpSecurity::Tls(_) | HttpSecurity::Either(_) => format!("https://{addr}"),
        }
    }
}

/// The routes every node serves.
pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .with_state(ctx)
}

async fn metrics(State(ctx): State<Arc<Ctx>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&ctx),
    )
}

/// 200 "ready" while the node serves, 503 with the reasons otherwise.
async fn ready(State(ctx): State<Arc<Ctx>>) -> impl IntoResponse {
    let why = crate::health::not_ready(&ctx);
    if why.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.join("; ")),
        )
    }
}

/// Serves `router` on `listener` until the node is cancelled.
pub async fn serve(ctx: Arc<Ctx>, listener: TcpListener, security: HttpSecurity, router: Router) {
    let cancel = ctx.tasks.token();
    serve_until(ctx, listener, security, router, cancel).await
}

/// Serves `router` on `listener` until `cancel` (a child of the node's
/// token, so the node's shutdown stops it too).
pub async fn serve_until(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    security: HttpSecurity,
    router: Router,
    cancel: tokio_util::sync::CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (tcp, remote) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("http: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (router, security, cancel) = (router.clone(), security.clone(), cancel.clone());
        ctx.tasks
            .spawn_until_shutdown(format!("http connection {remote}"), async move {
                let _permit = permit;
                let peer = PeerInfo {
                    remote: Some(remote),
                    identity: None,
                    tls: false,
                    chain_serials: Vec::new(),
                };
                let tls = match security {
                    HttpSecurity::Plaintext => None,
                    HttpSecurity::Tls(tls) => Some(tls),
                    HttpSecurity::Either(tls) => {
                        // A TLS connection opens with a handshake record (0x16).
                        let mut first = [0u8; 1];
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
                            Ok(Ok(1)) if first[0] == 0x16 => Some(tls),
                            Ok(Ok(_)) => None,
                            _ => return,
                        }
                    }
                };
                let Some(tls) = tls else {
                    return connection(tcp, router.layer(Extension(peer)), cancel).await;
                };
                let Some(config) = tls.http_server_config() else {
                    tracing::warn!("http: this node's certificate cannot serve TLS");
                    return;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let identity = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| sms_trust::Identity::from_der(c).ok());
                        let peer = PeerInfo {
                            identity,
                            tls: true,
                            ..peer
                        };
                        connection(stream, router.layer(Extension(peer)), cancel).await
                    }
                    Ok(Err(e)) => tracing::info!(peer = %remote, "http: TLS handshake failed: {e}"),
                    Err(_) => tracing::info!(peer = %remote, "http: no TLS handshake in time"),
                }
            });
    }
}

/// Serves one connection (HTTP/1.1 or HTTP/2) until it closes or the node
/// stops.
async fn connection<IO>(io: IO, router: Router, cancel: tokio_util::sync::CancellationToken)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("http: connection ended: {e}");
            }
        }
        _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
    }
}

/// Writes the listener's URL atomically (write + rename).
pub fn write_addr_file(dir: &std::path::Path, url: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!("{HTTP_ADDR_FILE}.tmp"));
    std::fs::write(&tmp, format!("{url}\n"))?;
    std::fs::rename(tmp, dir.join(HTTP_ADDR_FILE))
}
