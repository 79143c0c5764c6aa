//! The despooler's gRPC edge: one bidirectional stream per link. Frames are
//! read in batches (whatever has arrived, up to a bound), despooled and made
//! durable together, then acknowledged together.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream};
use sms_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use sms_proto::convert;
use sms_site::despooler::{self, ReceiveError};
use sms_site::Ctx;
use sms_store::Despooled;
use sms_types::link::{LinkHello, Refusal};
use sms_types::SiteCode;

/// Frames despooled per transaction at most.
const MAX_BATCH: usize = 512;

pub struct TransferSvc {
    pub ctx: Arc<Ctx>,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<pb::LinkReply, Status>> + Send>>;

fn reply(kind: pb::link_reply::Kind) -> pb::LinkReply {
    pb::LinkReply { kind: Some(kind) }
}

#[tonic::async_trait]
impl pb::transfer_server::Transfer for TransferSvc {
    type LinkStream = ReplyStream;

    async fn link(
        &self,
        req: Request<Streaming<pb::LinkFrame>>,
    ) -> Result<Response<ReplyStream>, Status> {
        // The peer's site comes from its certificate; the Hello must agree.
        let cert_site = super::auth::site(&req)?;
        super::auth::not_revoked(&req, &self.ctx)?;
        let serials = req
            .extensions()
            .get::<crate::security::PeerInfo>()
            .map(|p| p.chain_serials.clone())
            .unwrap_or_default();
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10 s"))??;
        let Some(pb::LinkFrame {
            kind: Some(pb::link_frame::Kind::Hello(h)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first frame of a link must be a Hello",
            ));
        };
        let hello = LinkHello {
            source_site: convert::code(&h.source_site, "hello.source_site")?,
            dest_site: convert::code(&h.dest_site, "hello.dest_site")?,
            source_address: h.source_address,
            link_secret: h.link_secret,
            sent_unix_ms: h.sent_unix_ms,
        };
        if let Some(cert) = &cert_site {
            if cert != &hello.source_site {
                tracing::warn!(cert = %cert, claimed = %hello.source_site, "refused a link: the hello claims another site than the certificate");
                return Err(Status::permission_denied(format!(
                    "the caller's certificate is for site {cert}, but its hello claims {}",
                    hello.source_site
                )));
            }
        }
        let ctx = self.ctx.clone();
        let from = despooler::accept_link(&ctx, &hello)
            .await
            .map_err(|r| match r {
                Refusal::Severed(m) => Status::failed_precondition(m),
                Refusal::NotNeighbour(m) => Status::permission_denied(m),
                Refusal::Unavailable(m) => Status::unavailable(m),
                Refusal::Full(m) => Status::resource_exhausted(m),
            })?;
        tracing::info!(from = %from, "link accepted");
        let (tx, rx) = mpsc::channel(64);
        let me = ctx.site_code().map(|c| c.to_string()).unwrap_or_default();
        let _ = tx
            .send(Ok(reply(pb::link_reply::Kind::Welcome(pb::Welcome {
                site_code: me,
            }))))
            .await;
        ctx.tasks.spawn(
            format!("despool from {from}"),
            pump(ctx.clone(), from, serials, inbound, tx),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Reads frames until the stream ends, the link is severed, or the node stops.
async fn pump(
    ctx: Arc<Ctx>,
    from: SiteCode,
    serials: Vec<String>,
    mut inbound: Streaming<pb::LinkFrame>,
    tx: mpsc::Sender<Result<pb::LinkReply, Status>>,
) {
    loop {
        let first = tokio::select! {
            _ = ctx.tasks.cancelled() => return,
            m = inbound.message() => m,
        };
        let first = match first {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(from = %from, "link stream error: {e}");
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut raw = vec![first];
        let mut ended = false;
        while raw.len() < MAX_BATCH {
            match inbound.message().now_or_never() {
                Some(Ok(Some(f))) => raw.push(f),
                Some(Ok(None)) => {
                    ended = true;
                    break;
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                None => break,
            }
        }
        // A certificate revoked while its link is open ends the link before
        // anything more is taken from it (a few store reads per batch).
        match sms_site::trust::any_revoked(&ctx, &serials) {
            Ok(None) => {}
            Ok(Some(serial)) => {
                tracing::warn!(from = %from, %serial, "ending a link: its certificate was revoked");
                let _ = tx
                    .send(Err(Status::permission_denied(format!(
                        "certificate {serial} was revoked here; the link is closed"
                    ))))
                    .await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                return;
            }
        }
        let mut frames = Vec::with_capacity(raw.len());
        let mut replies = Vec::new();
        for f in raw {
            match f.kind {
                Some(pb::link_frame::Kind::Job(j)) => {
                    let id = j.id.clone();
                    match convert::job_from(j) {
                        Ok(frame) => frames.push(frame),
                        Err(e) => replies.push(reply(pb::link_reply::Kind::Refusal(pb::Refusal {
                            job_id: id,
                            reason: format!("malformed job: {e}"),
                        }))),
                    }
                }
                _ => {
                    let _ = tx
                        .send(Err(Status::invalid_argument(
                            "only job frames may follow the Hello",
                        )))
                        .await;
                    return;
                }
            }
        }
        let results = match despooler::receive(&ctx, &from, frames).await {
            Ok(r) => r,
            Err(ReceiveError::Severed(m)) => {
                let _ = tx.send(Err(Status::failed_precondition(m))).await;
                return;
            }
            Err(ReceiveError::CannotStore(m)) => {
                // Nothing in the batch was acknowledged; the sender waits
                // this out without charging its jobs.
                tracing::warn!(from = %from, "cannot store what the link brings: {m}");
                let _ = tx.send(Err(Status::resource_exhausted(m))).await;
                return;
            }
            Err(ReceiveError::Failed(e)) => {
                tracing::error!(from = %from, "despool failed: {e:#}");
                let _ = tx
                    .send(Err(Status::internal(format!("despool failed: {e:#}"))))
                    .await;
                return;
            }
        };
        let mut acks = Vec::with_capacity(results.len());
        for (id, chunk, outcome) in results {
            match outcome {
                Despooled::Stored | Despooled::Duplicate => acks.push(pb::Ack {
                    job_id: id.as_bytes().to_vec(),
                    chunk_index: chunk,
                    duplicate: outcome == Despooled::Duplicate,
                }),
                Despooled::Refused(reason) => {
                    replies.push(reply(pb::link_reply::Kind::Refusal(pb::Refusal {
                        job_id: id.as_bytes().to_vec(),
                        reason: reason.to_string(),
                    })))
                }
            }
        }
        if !acks.is_empty() {
            replies.push(reply(pb::link_reply::Kind::Acks(pb::Acks { acks })));
        }
        for r in replies {
            if tx.send(Ok(r)).await.is_err() {
                return;
            }
        }
        if ended {
            return;
        }
    }
}
