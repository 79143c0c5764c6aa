//! The administration service the `controller` calls.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::Stream;
use sha2::{Digest, Sha256};
use sms_proto::v1 as pb;
use tokio::sync::broadcast;
use tonic::{Code, Request, Response, Status};

use super::convert;
use crate::catalog;
use crate::hierarchy::{self, CreateError, CreateSecondary};
use crate::model::*;
use crate::node::Ctx;
use crate::scheduler::{self, Route};

pub struct AdminSvc {
    pub ctx: Arc<Ctx>,
}

type R<T> = Result<Response<T>, Status>;

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

impl AdminSvc {
    fn installed(&self) -> Result<Identity, Status> {
        self.ctx.identity().ok_or_else(|| {
            Status::failed_precondition("this node is bare: no site is installed here")
        })
    }

    fn link_state(&self, to: &SiteCode) -> pb::LinkState {
        let ctx = &self.ctx;
        let (state, detail, refused, chunk_bytes) = match ctx.scheduler.link(to) {
            Some(l) => {
                let (s, d) = l.state();
                (
                    s.as_str().to_string(),
                    d,
                    l.refused.load(Ordering::Relaxed),
                    l.chunk_bytes_sent.load(Ordering::Relaxed),
                )
            }
            None => ("idle".to_string(), "no sender started".to_string(), 0, 0),
        };
        let state = if ctx.store.link_fault(to).ok().flatten().is_some() {
            "severed".to_string()
        } else {
            state
        };
        let server = match ctx.identity().and_then(|i| i.parent) {
            Some(p) if &p.site_code == to => p.address,
            _ => ctx
                .store
                .site(to)
                .ok()
                .flatten()
                .map(|r| r.server)
                .unwrap_or_default(),
        };
        pb::LinkState {
            to: to.to_string(),
            state,
            queued_jobs: ctx.store.outbox_len(to) as u64,
            failed_jobs: ctx.store.failed_len(to) as u64,
            server,
            detail,
            refused_frames: refused,
            chunk_bytes_sent: chunk_bytes,
        }
    }

    /// A neighbour of this site (its parent or a direct child).
    fn neighbour(&self, to: &str) -> Result<SiteCode, Status> {
        let id = self.installed()?;
        let to = convert::code(to, "to")?;
        let is_parent = id.parent.as_ref().is_some_and(|p| p.site_code == to);
        let is_child = self
            .ctx
            .store
            .site(&to)
            .map_err(internal)?
            .is_some_and(|r| r.parent_site_code.as_ref() == Some(&id.site_code));
        if !is_parent && !is_child {
            return Err(Status::not_found(format!(
                "site {to} is not a neighbour of site {} (links exist only to the parent and direct children)",
                id.site_code
            )));
        }
        Ok(to)
    }

    fn faults(&self) -> R<pb::FaultList> {
        let faults = self.ctx.store.faults().map_err(internal)?;
        Ok(Response::new(pb::FaultList {
            faults: faults
                .iter()
                .map(|f| pb::Fault {
                    name: f.name().to_string(),
                    phase: match f {
                        Fault::BootstrapFailure { phase } => *phase as u32,
                        Fault::Ct2JobFailure => 0,
                    },
                })
                .collect(),
        }))
    }

    fn hop(&self, to: &str) -> Result<(Identity, SiteCode, SiteCode), Status> {
        let id = self.installed()?;
        let dest = convert::code(to, "to")?;
        match scheduler::route(&self.ctx, &dest) {
            Ok(Route::Hop(h)) => Ok((id, dest, h)),
            Ok(Route::Local) => Err(Status::invalid_argument(
                "jobs cannot be sent to this site itself",
            )),
            Err(e) => Err(Status::not_found(e.to_string())),
        }
    }
}

/// Runs a state-changing call to completion even if the client goes away:
/// tonic drops a handler whose caller disconnects, which could otherwise cut
/// a change between its durable write and the wake-up that acts on it.
async fn detached<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T, Status>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(fut)
        .await
        .map_err(|e| Status::internal(format!("the request task failed: {e}")))?
}

/// The state-changing calls, run detached by their trait methods.
impl AdminSvc {
    /// Runs `call` on a handle to this service as a detached task.
    async fn detach<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(AdminSvc) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>> + Send + 'static,
    {
        detached(call(AdminSvc {
            ctx: self.ctx.clone(),
        }))
        .await
    }

    async fn force_ct2_now(&self, _: Request<pb::ForceCt2Request>) -> R<pb::ForceCt2Reply> {
        self.installed()?;
        let (site, serial) = crate::site_config::force_ct2(&self.ctx)
            .await
            .map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
        Ok(Response::new(pb::ForceCt2Reply {
            site_code: site.to_string(),
            serial,
        }))
    }

    async fn change_site_control_now(
        &self,
        req: Request<pb::ChangeSiteControlRequest>,
    ) -> R<pb::ChangeSiteControlReply> {
        let req = req.into_inner();
        let site = convert::opt_code(&req.site, "site")?;
        let change = hierarchy::ControlChange {
            polling_interval_ms: req.polling_interval_ms,
            site_name: req.site_name,
            address: req
                .address
                .map(|a| -> Result<_, convert::WireError> {
                    Ok(hierarchy::AddressChange {
                        to: a.to,
                        retry_count: a.retry_count,
                        retry_delay_ms: a.retry_delay_ms,
                        concurrent_sendings: a.concurrent_sendings,
                        rate_limit_bytes_per_sec: a.rate_limit_bytes_per_sec,
                        schedule: if a.replace_schedule {
                            Some(
                                a.schedule
                                    .iter()
                                    .map(convert::rule_from)
                                    .collect::<Result<_, _>>()?,
                            )
                        } else {
                            None
                        },
                    })
                })
                .transpose()?,
            add_domain: req.add_domain.map(|d| (d.name, d.browse)),
            remove_domain: (!req.remove_domain.is_empty()).then_some(req.remove_domain),
        };
        let (site, base, serial) = hierarchy::change_site_control(&self.ctx, site, &change)
            .await
            .map_err(|e| match e {
                hierarchy::ChangeError::Invalid(m) => Status::invalid_argument(m),
                hierarchy::ChangeError::NotFound(m) => Status::not_found(m),
                hierarchy::ChangeError::Precondition(m) => Status::failed_precondition(m),
                hierarchy::ChangeError::Internal(m) => Status::internal(m),
            })?;
        Ok(Response::new(pb::ChangeSiteControlReply {
            site_code: site.to_string(),
            base_serial: base,
            serial,
        }))
    }

    async fn attach_primary_now(
        &self,
        req: Request<pb::AttachPrimaryRequest>,
    ) -> R<pb::AttachPrimaryReply> {
        let req = req.into_inner();
        let rec = hierarchy::attach_primary(&self.ctx, &req.site_code, &req.server)
            .await
            .map_err(|e| hierarchy_status(e, Code::InvalidArgument))?;
        Ok(Response::new(pb::AttachPrimaryReply {
            parent_site_code: rec
                .parent_site_code
                .map(|c| c.to_string())
                .unwrap_or_default(),
            parent_address: self.ctx.advertise.clone(),
            link_secret: rec.link_secret,
            ancestors: self
                .ctx
                .identity()
                .map(|i| {
                    std::iter::once(i.site_code.clone())
                        .chain(i.ancestors)
                        .map(|c| c.to_string())
                        .collect()
                })
                .unwrap_or_default(),
        }))
    }

    async fn create_secondary_now(
        &self,
        req: Request<pb::CreateSecondaryRequest>,
    ) -> R<pb::CreateSecondaryReply> {
        let req = req.into_inner();
        let rec = hierarchy::create_secondary(
            &self.ctx,
            CreateSecondary {
                site_code: req.site_code,
                server: req.server,
                site_name: (!req.site_name.is_empty()).then_some(req.site_name),
                sever_link_mid_bootstrap: req.sever_link_mid_bootstrap,
            },
        )
        .await;
        site_reply(rec, Code::InvalidArgument)
    }

    async fn sever_link_now(&self, req: Request<pb::LinkRequest>) -> R<pb::LinkState> {
        let to = self.neighbour(&req.into_inner().to)?;
        if self.ctx.store.link_fault(&to).map_err(internal)?.is_none() {
            crate::sender::sever(&self.ctx, &to)
                .await
                .map_err(internal)?;
        }
        Ok(Response::new(self.link_state(&to)))
    }

    async fn restore_link_now(&self, req: Request<pb::LinkRequest>) -> R<pb::LinkState> {
        let to = self.neighbour(&req.into_inner().to)?;
        let ctx = &self.ctx;
        if ctx.store.link_fault(&to).map_err(internal)?.is_some() {
            ctx.store.set_link_fault(&to, None).map_err(internal)?;
            ctx.store.durable().await.map_err(internal)?;
            tracing::info!(to = %to, "link restored by an administrator");
            crate::status_manager::emit(ctx, &catalog::LINK_RESTORED, &[to.to_string()])
                .map_err(internal)?;
            let link = scheduler::ensure_link(ctx, &to);
            link.set_state(scheduler::LinkStatus::Idle, "restored by an administrator");
            link.wake.notify_one();
        }
        Ok(Response::new(self.link_state(&to)))
    }

    async fn inject_fault_now(&self, req: Request<pb::FaultRequest>) -> R<pb::FaultList> {
        let req = req.into_inner();
        let fault = match req.name.as_str() {
            "ct2-job-failure" => Fault::Ct2JobFailure,
            "bootstrap-failure" => match req.phase {
                1..=4 => Fault::BootstrapFailure {
                    phase: req.phase as u8,
                },
                p => {
                    return Err(Status::invalid_argument(format!(
                        "bootstrap-failure needs a phase from 1 to 4, not {p}"
                    )))
                }
            },
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown fault {other:?}; faults are ct2-job-failure and bootstrap-failure"
                )))
            }
        };
        self.ctx.store.set_fault(&fault).map_err(internal)?;
        self.ctx.store.durable().await.map_err(internal)?;
        tracing::warn!(fault = fault.name(), "fault injected");
        self.faults()
    }

    async fn clear_fault_now(&self, req: Request<pb::FaultRequest>) -> R<pb::FaultList> {
        let name = req.into_inner().name;
        if !["ct2-job-failure", "bootstrap-failure"].contains(&name.as_str()) {
            return Err(Status::invalid_argument(format!(
                "unknown fault {name:?}; faults are ct2-job-failure and bootstrap-failure"
            )));
        }
        if self.ctx.store.clear_fault(&name).map_err(internal)? {
            self.ctx.store.durable().await.map_err(internal)?;
            tracing::info!(fault = %name, "fault cleared");
            for l in self.ctx.scheduler.links() {
                l.wake.notify_one();
            }
        }
        self.faults()
    }

    async fn retry_failed_jobs_now(&self, req: Request<pb::LinkRequest>) -> R<pb::LinkState> {
        let id = self.installed()?;
        let to = convert::code(&req.into_inner().to, "to")?;
        let n = self.ctx.store.retry_failed(&to).map_err(internal)?;
        self.ctx.store.durable().await.map_err(internal)?;
        if n > 0 {
            tracing::info!(to = %to, jobs = n, site = %id.site_code, "failed jobs put back in the outbox");
            crate::status_manager::emit(
                &self.ctx,
                &catalog::JOBS_RETRIED,
                &[n.to_string(), to.to_string()],
            )
            .map_err(internal)?;
            scheduler::ensure_link(&self.ctx, &to).wake.notify_one();
        }
        Ok(Response::new(self.link_state(&to)))
    }

    async fn send_probes_now(&self, req: Request<pb::SendProbesRequest>) -> R<pb::SendProbesReply> {
        let req = req.into_inner();
        if req.count == 0 || req.count > 1_000_000 {
            return Err(Status::invalid_argument(
                "count must be between 1 and 1000000",
            ));
        }
        if req.bytes > 1024 * 1024 {
            return Err(Status::invalid_argument("a probe carries at most 1 MiB"));
        }
        let priority = if req.priority == 0 {
            Priority::Medium
        } else {
            convert::priority_from(req.priority)?
        };
        let (id, dest, hop) = self.hop(&req.to)?;
        let data = vec![0x5a_u8; req.bytes as usize];
        let mut ids = Vec::with_capacity(req.count as usize);
        for _ in 0..req.count {
            let job = Job::new(
                id.site_code.clone(),
                dest.clone(),
                priority,
                Payload::Probe(data.clone()),
            );
            self.ctx.store.enqueue(&hop, &job).map_err(internal)?;
            ids.push(job.id.as_bytes().to_vec());
        }
        self.ctx.store.durable().await.map_err(internal)?;
        scheduler::ensure_link(&self.ctx, &hop).wake.notify_one();
        Ok(Response::new(pb::SendProbesReply { job_ids: ids }))
    }

    async fn send_package_now(
        &self,
        req: Request<pb::SendPackageRequest>,
    ) -> R<pb::SendPackageReply> {
        let req = req.into_inner();
        let chunk_bytes = if req.chunk_bytes == 0 {
            1024 * 1024
        } else {
            req.chunk_bytes as usize
        };
        if chunk_bytes > 3 * 1024 * 1024 {
            return Err(Status::invalid_argument("chunk size is at most 3 MiB"));
        }
        let (id, dest, hop) = self.hop(&req.to)?;
        let content = if !req.source_path.is_empty() {
            std::fs::read(&req.source_path).map_err(|e| {
                Status::invalid_argument(format!("cannot read {}: {e}", req.source_path))
            })?
        } else if req.size_bytes > 0 && req.size_bytes <= 4 * 1024 * 1024 * 1024 {
            let mut v = vec![0u8; req.size_bytes as usize];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut v);
            v
        } else {
            return Err(Status::invalid_argument(
                "give a source path or a size between 1 byte and 4 GiB",
            ));
        };
        if content.is_empty() {
            return Err(Status::invalid_argument(
                "the package is empty; there is nothing to send",
            ));
        }
        let sha = Sha256::digest(&content).to_vec();
        let chunks: Vec<Vec<u8>> = content.chunks(chunk_bytes).map(|c| c.to_vec()).collect();
        let name = if req.name.is_empty() {
            "package".to_string()
        } else {
            req.name
        };
        let pkg = FilePackage {
            name,
            total_size: content.len() as u64,
            chunk_count: chunks.len() as u32,
            sha256: sha.clone(),
        };
        let count = pkg.chunk_count;
        let job = Job::new(id.site_code, dest, Priority::Low, Payload::File(pkg));
        self.ctx
            .store
            .enqueue_file(&hop, &job, chunks)
            .map_err(internal)?;
        self.ctx.store.durable().await.map_err(internal)?;
        scheduler::ensure_link(&self.ctx, &hop).wake.notify_one();
        Ok(Response::new(pb::SendPackageReply {
            job_id: job.id.as_bytes().to_vec(),
            size_bytes: content.len() as u64,
            chunk_count: count,
            sha256: hex::encode(sha),
        }))
    }

    async fn generate_status_load_now(
        &self,
        req: Request<pb::StatusLoadRequest>,
    ) -> R<pb::StatusLoadReply> {
        self.installed()?;
        let req = req.into_inner();
        if req.count == 0 || req.count > 10_000_000 {
            return Err(Status::invalid_argument(
                "count must be between 1 and 10000000",
            ));
        }
        if req.per_second == 0 || req.per_second > 1_000_000 {
            return Err(Status::invalid_argument(
                "per_second must be between 1 and 1000000",
            ));
        }
        if req.count as u64 > req.per_second as u64 * 3600 {
            return Err(Status::invalid_argument(
                "a load test lasts at most one hour (count / per_second <= 3600)",
            ));
        }
        if req.tag.len() > 64 {
            return Err(Status::invalid_argument("the tag is at most 64 characters"));
        }
        let tag = if req.tag.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            req.tag
        };
        let run = crate::status_manager::generate_load(&self.ctx, req.count, req.per_second, tag)
            .await
            .map_err(|e| Status::unavailable(format!("{e:#}")))?;
        Ok(Response::new(pb::StatusLoadReply {
            emitted: run.emitted,
            tag: run.tag,
            started_unix_ms: run.started_unix_ms,
            finished_unix_ms: run.finished_unix_ms,
        }))
    }
}

/// The gRPC status for a Hierarchy Manager refusal; `invalid` is the code an
/// invalid request gets.
fn hierarchy_status(e: CreateError, invalid: Code) -> Status {
    match e {
        CreateError::Invalid(m) => Status::new(invalid, m),
        CreateError::Exists(m) => Status::already_exists(m),
        CreateError::Precondition(m) => Status::failed_precondition(m),
        CreateError::Unreachable(m) => Status::unavailable(m),
        CreateError::Internal(m) => Status::internal(m),
    }
}

/// The reply to a request that creates or changes a child site.
fn site_reply(rec: Result<SiteRecord, CreateError>, invalid: Code) -> R<pb::CreateSecondaryReply> {
    let rec = rec.map_err(|e| hierarchy_status(e, invalid))?;
    Ok(Response::new(pb::CreateSecondaryReply {
        site_code: rec.site_code.to_string(),
        status: rec.status.to_string(),
    }))
}

type StoredStream = Pin<Box<dyn Stream<Item = Result<pb::StoredStatusMessages, Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminSvc {
    type WatchStatusMessagesStream = StoredStream;

    async fn watch_status_messages(
        &self,
        req: Request<pb::WatchStatusMessagesRequest>,
    ) -> R<StoredStream> {
        self.installed()?;
        let req = req.into_inner();
        let site = convert::opt_code(&req.site, "site")?;
        let id = (req.id != 0).then_some(req.id);
        let rx = crate::status_manager::watch(&self.ctx);
        let cancel = self.ctx.cancel.clone();
        // Ends when the node stops (so shutdown never waits on a watcher).
        let stream = futures::stream::unfold((rx, 0u64), move |(mut rx, mut missed)| {
            let (site, cancel) = (site.clone(), cancel.clone());
            async move {
                loop {
                    let got = tokio::select! {
                        _ = cancel.cancelled() => return None,
                        got = rx.recv() => got,
                    };
                    match got {
                        Ok(b) => {
                            let messages: Vec<pb::StatusMessage> = b
                                .messages
                                .iter()
                                .filter(|m| {
                                    site.as_ref().is_none_or(|s| &m.site_code == s)
                                        && id.is_none_or(|i| m.id == i)
                                })
                                .map(convert::status_to)
                                .collect();
                            if messages.is_empty() {
                                continue;
                            }
                            let item = pb::StoredStatusMessages {
                                messages,
                                stored_unix_us: b.stored_unix_us,
                                missed_batches: missed,
                            };
                            return Some((Ok(item), (rx, 0)));
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => missed += n,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn generate_status_load(
        &self,
        req: Request<pb::StatusLoadRequest>,
    ) -> R<pb::StatusLoadReply> {
        self.detach(|this| async move { this.generate_status_load_now(req).await })
            .await
    }

    async fn delete_site(&self, req: Request<pb::SiteRequest>) -> R<pb::CreateSecondaryReply> {
        let ctx = self.ctx.clone();
        let site = req.into_inner().site;
        detached(async move {
            // The site named is not a child here: "not found".
            site_reply(hierarchy::delete_site(&ctx, &site).await, Code::NotFound)
        })
        .await
    }

    async fn upgrade_site(&self, req: Request<pb::SiteRequest>) -> R<pb::CreateSecondaryReply> {
        let ctx = self.ctx.clone();
        let site = req.into_inner().site;
        detached(async move {
            // The site named is not a child here: "not found".
            site_reply(hierarchy::upgrade_site(&ctx, &site).await, Code::NotFound)
        })
        .await
    }

    async fn submit_ct1(&self, req: Request<pb::Ct1>) -> R<pb::ChangeSiteControlReply> {
        let id = self.installed()?;
        let c = req.into_inner();
        let proposed = c
            .proposed
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("ct1.proposed is missing"))?;
        let ct1 = Ct1 {
            base_serial: c.base_serial,
            proposed: convert::control_from(proposed)?,
            origin: if c.origin.is_empty() {
                "submit-ct1".into()
            } else {
                c.origin
            },
        };
        let base = ct1.base_serial;
        let job = Job::new(
            id.site_code.clone(),
            id.site_code.clone(),
            Priority::High,
            Payload::Ct1(ct1),
        );
        let ctx = self.ctx.clone();
        detached(async move {
            ctx.store
                .put_inbox(crate::store::Inbox::SiteControl, &job)
                .map_err(internal)?;
            ctx.store.durable().await.map_err(internal)?;
            ctx.scm_wake.notify_one();
            Ok(())
        })
        .await?;
        Ok(Response::new(pb::ChangeSiteControlReply {
            site_code: id.site_code.to_string(),
            base_serial: base,
            serial: base + 1,
        }))
    }

    async fn list_bad_ct1(&self, _: Request<pb::ListBadCt1Request>) -> R<pb::BadCt1List> {
        let bad = self.ctx.store.bad_ct1s().map_err(internal)?;
        Ok(Response::new(pb::BadCt1List {
            entries: bad
                .iter()
                .map(|b| pb::BadCt1 {
                    base_serial: b.ct1.base_serial,
                    site_code: b.ct1.proposed.site_code.to_string(),
                    origin: b.ct1.origin.clone(),
                    reason: b.reason.clone(),
                    rejected_unix_ms: b.rejected_unix_ms,
                })
                .collect(),
        }))
    }

    async fn force_ct2(&self, req: Request<pb::ForceCt2Request>) -> R<pb::ForceCt2Reply> {
        self.detach(|this| async move { this.force_ct2_now(req).await })
            .await
    }

    async fn change_site_control(
        &self,
        req: Request<pb::ChangeSiteControlRequest>,
    ) -> R<pb::ChangeSiteControlReply> {
        self.detach(|this| async move { this.change_site_control_now(req).await })
            .await
    }

    async fn attach_primary(
        &self,
        req: Request<pb::AttachPrimaryRequest>,
    ) -> R<pb::AttachPrimaryReply> {
        self.detach(|this| async move { this.attach_primary_now(req).await })
            .await
    }

    async fn allocate_ids(&self, req: Request<pb::AllocateIdsRequest>) -> R<pb::IdList> {
        let count = req.into_inner().count;
        if count == 0 || count > 100_000 {
            return Err(Status::invalid_argument(
                "count must be between 1 and 100000",
            ));
        }
        let ctx = self.ctx.clone();
        let ids = tokio::spawn(async move { crate::logon::allocate(&ctx, count as usize).await })
            .await
            .map_err(internal)?
            .map_err(Status::failed_precondition)?;
        let site = crate::logon::describe(&self.ctx).site_code;
        let sms_ids = ids.iter().map(|n| format!("{site}{n:08}")).collect();
        Ok(Response::new(pb::IdList { ids, sms_ids }))
    }

    async fn prepare_delete(&self, req: Request<pb::SiteRequest>) -> R<pb::IdRange> {
        let id = self.installed()?;
        if req.into_inner().site != id.site_code.as_str() {
            return Err(Status::invalid_argument(format!(
                "this is site {}",
                id.site_code
            )));
        }
        let ctx = self.ctx.clone();
        detached(async move {
            ctx.store.freeze_ids().map_err(internal)?;
            ctx.store.durable().await.map_err(internal)?;
            let floor = ctx.config().map(|c| c.next_unique_id).unwrap_or(1);
            let next = ctx.store.next_unique_id(floor).map_err(internal)?;
            tracing::warn!(
                next,
                "the parent is deleting this site: no more ID ranges are granted"
            );
            Ok(Response::new(pb::IdRange {
                start: next,
                end: next,
            }))
        })
        .await
    }

    async fn request_id_range(&self, req: Request<pb::IdRangeRequest>) -> R<pb::IdRange> {
        let id = self.installed()?;
        let req = req.into_inner();
        if req.site_code != id.site_code.as_str() {
            return Err(Status::invalid_argument(format!(
                "this is site {}, not {}",
                id.site_code, req.site_code
            )));
        }
        let ctx = self.ctx.clone();
        let (start, end) =
            tokio::spawn(async move { crate::logon::grant_range(&ctx, &req.node_id).await })
                .await
                .map_err(internal)?
                .map_err(Status::permission_denied)?;
        Ok(Response::new(pb::IdRange { start, end }))
    }

    async fn list_failed_jobs(&self, req: Request<pb::LinkRequest>) -> R<pb::FailedJobList> {
        let to = convert::code(&req.into_inner().to, "to")?;
        let jobs = self.ctx.store.failed_jobs(&to).map_err(internal)?;
        Ok(Response::new(pb::FailedJobList {
            jobs: jobs
                .iter()
                .map(|f| pb::FailedJob {
                    job_id: f.job.id.as_bytes().to_vec(),
                    kind: f.job.payload.kind().to_string(),
                    dest_site: f.job.dest.to_string(),
                    attempts: f.job.attempts,
                    reason: f.reason.clone(),
                    failed_unix_ms: f.failed_unix_ms,
                })
                .collect(),
        }))
    }

    async fn create_secondary(
        &self,
        req: Request<pb::CreateSecondaryRequest>,
    ) -> R<pb::CreateSecondaryReply> {
        self.detach(|this| async move { this.create_secondary_now(req).await })
            .await
    }

    async fn sever_link(&self, req: Request<pb::LinkRequest>) -> R<pb::LinkState> {
        self.detach(|this| async move { this.sever_link_now(req).await })
            .await
    }

    async fn restore_link(&self, req: Request<pb::LinkRequest>) -> R<pb::LinkState> {
        self.detach(|this| async move { this.restore_link_now(req).await })
            .await
    }

    async fn inject_fault(&self, req: Request<pb::FaultRequest>) -> R<pb::FaultList> {
        self.detach(|this| async move { this.inject_fault_now(req).await })
            .await
    }

    async fn clear_fault(&self, req: Request<pb::FaultRequest>) -> R<pb::FaultList> {
        self.detach(|this| async move { this.clear_fault_now(req).await })
            .await
    }

    async fn retry_failed_jobs(&self, req: Request<pb::LinkRequest>) -> R<pb::LinkState> {
        self.detach(|this| async move { this.retry_failed_jobs_now(req).await })
            .await
    }

    async fn send_probes(&self, req: Request<pb::SendProbesRequest>) -> R<pb::SendProbesReply> {
        self.detach(|this| async move { this.send_probes_now(req).await })
            .await
    }

    async fn send_package(&self, req: Request<pb::SendPackageRequest>) -> R<pb::SendPackageReply> {
        self.detach(|this| async move { this.send_package_now(req).await })
            .await
    }

    async fn get_status(&self, _: Request<pb::GetStatusRequest>) -> R<pb::NodeStatus> {
        let ctx = &self.ctx;
        let id = ctx.identity();
        let (bs, bd) = crate::bootstrap::describe(ctx);
        let links = ctx
            .scheduler
            .links()
            .iter()
            .map(|l| self.link_state(&l.to))
            .collect();
        let logon = crate::logon::describe(ctx);
        Ok(Response::new(pb::NodeStatus {
            role: logon.role.clone(),
            domain: logon.domain.clone(),
            logon_site: if logon.role == "logon-server" {
                logon.site_code.clone()
            } else {
                String::new()
            },
            range_start: logon.range_start,
            range_end: logon.range_end,
            ids_remaining: logon.remaining,
            site_code: id
                .as_ref()
                .map(|i| i.site_code.to_string())
                .unwrap_or_default(),
            parent_site_code: id
                .as_ref()
                .and_then(|i| i.parent.as_ref())
                .map(|p| p.site_code.to_string())
                .unwrap_or_default(),
            components: convert::components_to(&ctx.components.list()),
            links,
            site_name: id.as_ref().map(|i| i.site_name.clone()).unwrap_or_default(),
            kind: id
                .as_ref()
                .map(|i| i.kind.as_str().to_string())
                .unwrap_or_default(),
            address: ctx.advertise.clone(),
            version: SOFTWARE_VERSION.into(),
            node_id: ctx.node_id.to_string(),
            serial: ctx.config().map(|c| c.serial).unwrap_or(0),
            bootstrap_state: bs,
            bootstrap_detail: bd,
            duplicates_dropped: ctx.scheduler.duplicates.load(Ordering::Relaxed),
        }))
    }

    async fn list_sites(&self, _: Request<pb::ListSitesRequest>) -> R<pb::SiteList> {
        let id = self.installed()?;
        if id.kind == SiteKind::Secondary {
            let p = id.parent.expect("a secondary has a parent");
            return Err(Status::failed_precondition(format!(
                "site {} is a secondary site and keeps no site list; ask its parent {} at {}",
                id.site_code, p.site_code, p.address
            )));
        }
        let mut sites = self.ctx.store.sites().map_err(internal)?;
        if !sites.iter().any(|s| s.site_code == id.site_code) {
            sites.insert(
                0,
                SiteRecord {
                    site_code: id.site_code.clone(),
                    parent_site_code: id.parent.as_ref().map(|p| p.site_code.clone()),
                    kind: id.kind,
                    server: self.ctx.advertise.clone(),
                    status: SiteStatus::Active,
                    status_changed_unix_ms: id.installed_unix_ms,
                    serial: self.ctx.config().map(|c| c.serial).unwrap_or(0),
                    link_secret: String::new(),
                    sever_link_mid_bootstrap: false,
                },
            );
        }
        // Health at a glance: recent errors and warnings, and link state.
        let counts = self
            .ctx
            .store
            .recent_severity_counts(now_ms().saturating_sub(3_600_000))
            .map_err(internal)?;
        let out = sites
            .iter()
            .map(|s| {
                let mut r = convert::site_to(s);
                let (e, w) = counts.get(&s.site_code).copied().unwrap_or_default();
                r.recent_errors = e;
                r.recent_warnings = w;
                if self.ctx.scheduler.link(&s.site_code).is_some() {
                    r.link_state = self.link_state(&s.site_code).state;
                }
                r.version = match self.ctx.store.child_ct2(&s.site_code) {
                    Ok(Some(c)) => c.version,
                    _ => String::new(),
                };
                r
            })
            .collect();
        Ok(Response::new(pb::SiteList { sites: out }))
    }

    async fn get_site_control(
        &self,
        req: Request<pb::GetSiteControlRequest>,
    ) -> R<pb::SiteControl> {
        let id = self.installed()?;
        let req = req.into_inner();
        let site = convert::opt_code(&req.site, "site")?;
        let ctx = &self.ctx;
        match site {
            Some(s) if s != id.site_code => {
                let ct2 = ctx.store.child_ct2(&s).map_err(internal)?.ok_or_else(|| {
                    Status::not_found(format!(
                        "site {} holds no site control report (CT2) from site {s}",
                        id.site_code
                    ))
                })?;
                if req.serial != 0 && req.serial != ct2.serial {
                    return Err(Status::not_found(format!(
                        "site {} holds only serial {} of site {s}'s control (its last CT2)",
                        id.site_code, ct2.serial
                    )));
                }
                Ok(Response::new(convert::control_to(&ct2.control)))
            }
            _ => {
                let ct0 = if req.serial == 0 {
                    // The current control as the site reports it (with its
                    // logon servers and unique ID counter).
                    ctx.config().map(|c| crate::logon::control_view(ctx, c))
                } else {
                    ctx.store.ct0_at(req.serial).map_err(internal)?
                };
                let ct0 = ct0.ok_or_else(|| {
                    let serials = ctx.store.ct0_serials().unwrap_or_default();
                    match (serials.first(), serials.last()) {
                        (Some(a), Some(b)) => Status::not_found(format!(
                            "site {} has no site control serial {}; it keeps serials {a}..{b}",
                            id.site_code, req.serial
                        )),
                        _ => Status::not_found(format!(
                            "site {} has no site control yet",
                            id.site_code
                        )),
                    }
                })?;
                Ok(Response::new(convert::control_to(&ct0)))
            }
        }
    }

    async fn list_status_messages(
        &self,
        req: Request<pb::ListStatusMessagesRequest>,
    ) -> R<pb::StatusMessageList> {
        let req = req.into_inner();
        let site = convert::opt_code(&req.site, "site")?;
        let id = (req.id != 0).then_some(req.id);
        let limit = if req.limit == 0 {
            1000
        } else {
            req.limit as usize
        };
        let msgs = if req.after_uid.is_empty() {
            self.ctx.store.status_messages(site.as_ref(), id, limit)
        } else {
            let after = convert::uuid(&req.after_uid, "after_uid")?;
            self.ctx
                .store
                .status_after(&after, site.as_ref(), id, limit)
        }
        .map_err(internal)?;
        Ok(Response::new(pb::StatusMessageList {
            messages: msgs.iter().map(convert::status_to).collect(),
        }))
    }

    async fn read_log(&self, req: Request<pb::ReadLogRequest>) -> R<pb::LogLines> {
        let req = req.into_inner();
        let lines = crate::logging::read(&self.ctx.log_dir, &req.name, req.tail as usize)
            .map_err(Status::invalid_argument)?;
        Ok(Response::new(pb::LogLines { lines }))
    }

    async fn list_probes(&self, req: Request<pb::ListProbesRequest>) -> R<pb::ProbeList> {
        if req.into_inner().count_only {
            return Ok(Response::new(pb::ProbeList {
                probes: vec![],
                count: self.ctx.store.probe_count() as u64,
            }));
        }
        let probes = self.ctx.store.probes().map_err(internal)?;
        Ok(Response::new(pb::ProbeList {
            count: probes.len() as u64,
            probes: probes
                .iter()
                .map(|(p, bytes)| pb::ReceivedProbe {
                    job_id: p.job_id.as_bytes().to_vec(),
                    source_site: p.source.to_string(),
                    priority: convert::priority_to(p.priority),
                    arrival: p.arrival,
                    received_unix_us: p.received_unix_us,
                    payload_bytes: *bytes as u64,
                })
                .collect(),
        }))
    }

    async fn list_packages(&self, _: Request<pb::ListPackagesRequest>) -> R<pb::PackageList> {
        let me = self.ctx.site_code();
        let mut out = Vec::new();
        for p in self.ctx.store.packages().map_err(internal)? {
            // Verify what actually landed: hash the stored chunks.
            let sha = if p.complete && Some(&p.dest) == me.as_ref() {
                let mut h = Sha256::new();
                for i in 0..p.package.chunk_count {
                    let c = self
                        .ctx
                        .store
                        .chunk(&p.job_id, i)
                        .map_err(internal)?
                        .unwrap_or_default();
                    h.update(&c);
                }
                hex::encode(h.finalize())
            } else {
                String::new()
            };
            out.push(pb::ReceivedPackage {
                job_id: p.job_id.as_bytes().to_vec(),
                name: p.package.name.clone(),
                source_site: p.source.to_string(),
                size_bytes: p.package.total_size,
                sha256: sha,
                chunks_received: p.chunks_received,
                chunk_count: p.package.chunk_count,
                complete: p.complete,
            });
        }
        Ok(Response::new(pb::PackageList { packages: out }))
    }
}
