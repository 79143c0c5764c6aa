//! The gRPC edge: services that translate wire types to domain calls. Each
//! RPC converts, makes one call into the site, and converts back; the
//! clients components use to reach other nodes are in [`crate::peers`].
//! Nothing below the server crate sees a prost or tonic type.

mod admin;
pub use admin::MAX_WATCHERS;
pub mod auth;
mod bootstrap;
mod errors;
mod logon;
mod mp;
pub mod rate;
pub mod relay;
mod transfer;

use std::sync::{Arc, Mutex};

use sms_proto::v1 as pb;
use tokio::net::TcpListener;
use tonic::transport::Server;

use sms_site::Ctx;

use crate::peers;

/// Serves every service of the node on `listener` until the node is
/// cancelled. Also serves gRPC health and reflection, so generic tools can
/// inspect a node with nothing but the `.proto` files.
pub async fn serve(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    log_dir: std::path::PathBuf,
    liveness: peers::Connector,
    limits: crate::security::Limits,
    rate: rate::RateLimit,
    console: Arc<crate::console::Console>,
) -> anyhow::Result<()> {
    let refused = ctx.clone();
    let throttled = ctx.clone();
    let over_rate = Arc::new(Mutex::new(None::<std::time::Instant>));
    let per_connection = rate::PerConnection::new(rate, move |peer| {
        throttled
            .links
            .calls_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut last = over_rate.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(5)) {
            tracing::warn!(peer = %peer, "refused calls from a connection over its rate");
            *last = Some(std::time::Instant::now());
        }
    });
    let (health, health_svc) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::transfer_server::TransferServer<transfer::TransferSvc>>()
        .await;
    health
        .set_serving::<pb::bootstrap_server::BootstrapServer<bootstrap::BootstrapSvc>>()
        .await;
    health
        .set_serving::<pb::admin_server::AdminServer<admin::AdminSvc>>()
        .await;
    health
        .set_serving::<pb::logon_server::LogonServer<logon::LogonSvc>>()
        .await;
    health
        .set_serving::<pb::management_points_server::ManagementPointsServer<mp::MpSvc>>()
        .await;
    ctx.tasks.spawn_until_shutdown(
        "health follows the store and components",
        follow_health(ctx.clone(), health.clone()),
    );
    // Reflection in both versions: Python grpcio's reflection client and
    // older grpcurl speak only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(sms_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let reflection = reflection().build_v1()?;
    let max = peers::MAX_FRAME_BYTES;
    let cancel = ctx.tasks.token();
    Server::builder()
        // Bounded work per connection: streams open at once, and requests
        // in progress at once (a link is one stream; watchers are bounded
        // per node too).
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .concurrency_limit_per_connection(MAX_STREAMS_PER_CONNECTION as usize)
        .layer(per_connection)
        // The despooler's end of a link is watched as the sender's is: a
        // peer that goes silent is dropped, not waited on forever.
        .http2_keepalive_interval(Some(liveness.keepalive_interval))
        .http2_keepalive_timeout(Some(liveness.keepalive_timeout))
        .initial_stream_window_size(peers::STREAM_WINDOW)
        .initial_connection_window_size(peers::CONNECTION_WINDOW)
        .add_service(health_svc)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(
            pb::transfer_server::TransferServer::new(transfer::TransferSvc { ctx: ctx.clone() })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            pb::bootstrap_server::BootstrapServer::new(bootstrap::BootstrapSvc {
                ctx: ctx.clone(),
            })
            .max_decoding_message_size(max),
        )
        .add_service(pb::logon_server::LogonServer::new(logon::LogonSvc {
            ctx: ctx.clone(),
        }))
        .add_service(
            pb::management_points_server::ManagementPointsServer::new(mp::MpSvc {
                ctx: ctx.clone(),
            })
            .max_decoding_message_size(max),
        )
        // Behind its relay: a call for another site (`controller --site`)
        // goes on to the next hop instead.
        .add_service(relay::Relay::new(
            pb::admin_server::AdminServer::new(admin::AdminSvc {
                ctx: ctx.clone(),
                log_dir,
                console,
                watchers: Arc::new(tokio::sync::Semaphore::new(admin::MAX_WATCHERS)),
                log_followers: Arc::new(tokio::sync::Semaphore::new(admin::MAX_LOG_FOLLOWERS)),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(64 * 1024 * 1024),
            ctx,
            liveness.clone(),
        ))
        // `Server::tcp_nodelay` does not reach sockets from our own listener:
        // the acceptor sets it, or replies wait on the peer's delayed ACK
        // (~40 ms); it also runs the TLS handshakes.
        .serve_with_incoming_shutdown(
            crate::security::incoming(
                listener,
                liveness.security.clone(),
                liveness.keepalive_interval,
                limits,
                move || {
                    refused
                        .links
                        .connections_refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                },
            ),
            cancel.cancelled_owned(),
        )
        .await?;
    Ok(())
}

/// HTTP/2 streams (calls) one connection may have open at once.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// How often health looks at the store.
const HEALTH_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Reports NOT_SERVING (for the server as a whole and for the services that
/// store what they take) while the store cannot write or a component is
/// restarting (see [`crate::health`]), and SERVING again once neither
/// holds; the admin service stays serving so an operator can look. Each
/// change is logged with its reason.
async fn follow_health(ctx: Arc<Ctx>, health: tonic_health::server::HealthReporter) {
    use tonic_health::ServingStatus;
    let mut failing: Option<String> = None;
    loop {
        let why = crate::health::not_ready(&ctx);
        let now = (!why.is_empty()).then(|| why.join("; "));
        if now.is_some() != failing.is_some() {
            let status = if now.is_some() {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            };
            match &now {
                Some(why) => tracing::error!("not serving: {why}"),
                None => tracing::info!("serving again"),
            }
            health.set_service_status("", status).await;
            health
                .set_service_status(
                    <pb::transfer_server::TransferServer<transfer::TransferSvc> as tonic::server::NamedService>::NAME,
                    status,
                )
                .await;
            health
                .set_service_status(
                    <pb::bootstrap_server::BootstrapServer<bootstrap::BootstrapSvc> as tonic::server::NamedService>::NAME,
                    status,
                )
                .await;
            health
                .set_service_status(
                    <pb::logon_server::LogonServer<logon::LogonSvc> as tonic::server::NamedService>::NAME,
                    status,
                )
                .await;
        }
        failing = now;
        tokio::time::sleep(HEALTH_POLL).await;
    }
}
