//! The administration service the `controller` calls. Each RPC converts
//! its request, makes one call into the site, and converts the answer;
//! refusals map to gRPC statuses in one place ([`super::errors`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use sms_proto::convert;
use sms_proto::v1 as pb;
use sms_site::error::Refused;
use sms_site::hierarchy::{self, AddressChange, ControlChange, CreateSecondary};
use sms_site::{ops, queries, Ctx};
use sms_types::*;
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

use super::auth::{self, Caller};
use super::errors::{status, status_for_child};
use sms_trust::AdminRole;

/// Live status message streams a node serves at once: each holds a
/// broadcast receiver and its buffer, so they are bounded.
pub const MAX_WATCHERS: usize = 64;

/// `StreamLog --follow` streams a node serves at once: each polls a file
/// and holds a read buffer, so they are bounded like the watchers.
pub const MAX_LOG_FOLLOWERS: usize = 16;

/// How often a followed log is looked at for new lines.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

pub struct AdminSvc {
    pub ctx: Arc<Ctx>,
    /// One permit per open `WatchStatusMessages` stream.
    pub watchers: Arc<tokio::sync::Semaphore>,
    /// One permit per open `StreamLog` stream that follows its log.
    pub log_followers: Arc<tokio::sync::Semaphore>,
    /// Where this node's component logs are (for `controller log`).
    pub log_dir: std::path::PathBuf,
    /// The web console, whose sign-in links `CreateConsoleSession` issues.
    pub console: Arc<crate::console::Console>,
}

type R<T> = Result<Response<T>, Status>;

impl AdminSvc {
    /// Runs a state-changing call to completion even if the client goes
    /// away (tonic drops a handler whose caller disconnects).
    async fn detached<T, F>(&self, fut: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Refused>> + Send + 'static,
    {
        self.ctx
            .tasks
            .run_detached("admin request", fut)
            .await
            .map_err(Status::internal)?
            .map_err(status)
    }

    fn ctx(&self) -> Arc<Ctx> {
        self.ctx.clone()
    }

    /// This site's path, own code first (empty on a bare node).
    fn here(&self) -> Vec<SiteCode> {
        self.ctx
            .identity()
            .map(|id| {
                let mut p = vec![id.site_code.clone()];
                p.extend(id.ancestors.iter().cloned());
                p
            })
            .unwrap_or_default()
    }

    /// The caller must be an administrator with at least `need`.
    fn allow<T>(&self, req: &Request<T>, need: AdminRole) -> Result<Caller, Status> {
        let caller = auth::admin(req, need, &self.here())?;
        auth::not_revoked(req, &self.ctx)?;
        Ok(caller)
    }

    /// Runs a state-changing call and, if it took effect, records it in
    /// the audit trail; a refused call changes nothing, the trail included.
    async fn audited<T>(
        &self,
        caller: &Caller,
        action: &str,
        detail: String,
        call: impl Future<Output = R<T>>,
    ) -> R<T> {
        let result = call.await;
        if result.is_ok() {
            self.audit(caller, action, detail);
        }
        result
    }

    /// A state-changing call that passed its checks: recorded in the
    /// audit trail (a status message, replicated up like any other).
    fn audit(&self, caller: &Caller, action: &str, detail: String) {
        crate::audit::record(&self.ctx, &caller.subject(), action, detail);
    }
}

fn code(s: &str, field: &str) -> Result<SiteCode, Status> {
    Ok(convert::code(s, field)?)
}

/// What the audit trail says a request asked for: its fields, cut short
/// so a hostile value is never stored whole.
fn detail<T: std::fmt::Debug>(req: &Request<T>) -> String {
    format!("{:?}", req.get_ref()).chars().take(200).collect()
}

fn reply<T>(t: T) -> R<T> {
    Ok(Response::new(t))
}

/// The reply to a request that creates or changes a child site.
fn site_reply(rec: SiteRecord) -> R<pb::CreateSecondaryReply> {
    reply(pb::CreateSecondaryReply {
        site_code: rec.site_code.to_string(),
        status: rec.status.to_string(),
    })
}

fn control_change(req: pb::ChangeSiteControlRequest) -> Result<ControlChange, Status> {
    let address = req
        .address
        .map(|a| -> Result<_, convert::WireError> {
            Ok(AddressChange {
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
                keepalive_secs: if a.reset_keepalive {
                    Some(None)
                } else {
                    a.keepalive_secs.map(Some)
                },
            })
        })
        .transpose()?;
    Ok(ControlChange {
        polling_interval_ms: req.polling_interval_ms,
        site_name: req.site_name,
        address,
        add_domain: req.add_domain.map(|d| (d.name, d.browse)),
        remove_domain: (!req.remove_domain.is_empty()).then_some(req.remove_domain),
        add_management_point: req
            .add_management_point
            .map(|m| {
                let port = u16::try_from(m.port).map_err(|_| {
                    Status::invalid_argument(format!(
                        "port {} is not a TCP port (0..=65535)",
                        m.port
                    ))
                })?;
                Ok::<_, Status>((m.server, port, m.is_default))
            })
            .transpose()?,
        remove_management_point: (!req.remove_management_point.is_empty())
            .then_some(req.remove_management_point),
        add_status_rule: req
            .add_status_rule
            .as_ref()
            .map(|r| {
                let rule = sms_proto::convert_rules::rule_from(r)?;
                let at =
                    (req.status_rule_position != 0).then_some(req.status_rule_position as usize);
                Ok::<_, Status>((rule, at))
            })
            .transpose()?,
        remove_status_rule: (!req.remove_status_rule.is_empty()).then_some(req.remove_status_rule),
    })
}

type StoredStream = Pin<Box<dyn Stream<Item = Result<pb::StoredStatusMessages, Status>> + Send>>;
type LogStream = Pin<Box<dyn Stream<Item = Result<pb::LogLines, Status>> + Send>>;

/// The `since` of a log request as a time (None for 0).
fn log_since(req: &pb::ReadLogRequest) -> Option<std::time::SystemTime> {
    (req.since_unix_ms > 0)
        .then(|| std::time::UNIX_EPOCH + std::time::Duration::from_millis(req.since_unix_ms))
}

fn log_status(e: crate::logging::ReadError) -> Status {
    match e {
        crate::logging::ReadError::Unknown(m) => Status::invalid_argument(m),
        crate::logging::ReadError::Io(m) => Status::internal(m),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminSvc {
    type WatchStatusMessagesStream = StoredStream;

    async fn watch_status_messages(
        &self,
        req: Request<pb::WatchStatusMessagesRequest>,
    ) -> R<StoredStream> {
        let _caller = self.allow(&req, AdminRole::ReadOnly)?;
        queries::installed(&self.ctx).map_err(status)?;
        let req = req.into_inner();
        let site = convert::opt_code(&req.site, "site")?;
        let id = (req.id != 0).then_some(req.id);
        let permit = self.watchers.clone().try_acquire_owned().map_err(|_| {
            tracing::warn!("refused a status message stream: {MAX_WATCHERS} are open");
            Status::resource_exhausted(format!(
                "this node already serves {MAX_WATCHERS} live status message streams; close one \
                 (or poll with status-messages) and try again"
            ))
        })?;
        let rx = sms_site::status::watch(&self.ctx);
        let cancel = self.ctx.tasks.token();
        // Ends when the node stops (so shutdown never waits on a watcher).
        let stream =
            futures::stream::unfold((rx, 0u64, permit), move |(mut rx, mut missed, permit)| {
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
                                return Some((Ok(item), (rx, 0, permit)));
                            }
                            Err(broadcast::error::RecvError::Lagged(n)) => missed += n,
                            Err(broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                }
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn create_console_session(
        &self,
        req: Request<pb::ConsoleSessionRequest>,
    ) -> R<pb::ConsoleSessionReply> {
        let caller = self.allow(&req, AdminRole::ReadOnly)?;
        let Some(console_url) = self.console.url().map(str::to_string) else {
            return Err(Status::failed_precondition(
                "this node serves no web console: start sms-node with --http-listen HOST:PORT",
            ));
        };
        let role = match &caller {
            Caller::Known(id) => id.admin_role().unwrap_or(AdminRole::ReadOnly),
            // Nobody is authenticated on an --insecure node: as its gRPC calls.
            _ => AdminRole::Full,
        };
        let chain_serials = req
            .extensions()
            .get::<crate::security::PeerInfo>()
            .map(|p| p.chain_serials.clone())
            .unwrap_or_default();
        let grant = crate::console::session::Grant {
            subject: caller.subject(),
            role,
            chain_serials,
        };
        let ttl = std::time::Duration::from_secs(req.get_ref().ttl_secs);
        let ticket = self
            .console
            .sessions
            .issue(grant, ttl)
            .map_err(|e| match e {
                crate::console::session::SessionError::TooLong => {
                    Status::invalid_argument(e.to_string())
                }
                other => Status::resource_exhausted(other.to_string()),
            })?;
        self.audit(
            &caller,
            "console-session",
            format!("role {role}, until unix time {}", ticket.expires_unix),
        );
        reply(pb::ConsoleSessionReply {
            url: format!("{}login?ticket={}", console_url, ticket.token),
            console_url,
            expires_unix: ticket.expires_unix,
            subject: caller.subject(),
            role: role.to_string(),
        })
    }

    async fn generate_status_load(
        &self,
        req: Request<pb::StatusLoadRequest>,
    ) -> R<pb::StatusLoadReply> {
        let caller = self.allow(&req, AdminRole::Operator)?;
        let detail = detail(&req);
        self.audited(&caller, "generate-status-load", detail, async {
            let (req, ctx) = (req.into_inner(), self.ctx());
            let run = self
                .detached(async move {
                    ops::generate_status_load(&ctx, req.count, req.per_second, &req.tag).await
                })
                .await?;
            reply(pb::StatusLoadReply {
                emitted: run.emitted,
                tag: run.tag,
                started_unix_ms: run.started_unix_ms,
                finished_unix_ms: run.finished_unix_ms,
            })
        })
        .await
    }

    async fn delete_site(&self, req: Request<pb::SiteRequest>) -> R<pb::CreateSecondaryReply> {
        let caller = self.allow(&req, AdminRole::Full)?;
        let detail = detail(&req);
        self.audited(&caller, "delete-site", detail, async {
            let (site, ctx) = (req.into_inner().site, self.ctx());
            let rec = self
                .ctx
                .tasks
                .run_detached("delete-site", async move {
                    hierarchy::delete_site(&ctx, &site).await
                })
                .await
                .map_err(Status::internal)?
                .map_err(status_for_child)?;
            site_reply(rec)
        })
        .await
    }

    async fn upgrade_site(&self, req: Request<pb::SiteRequest>) -> R<pb::CreateSecondaryReply> {
        let caller = self.allow(&req, AdminRole::Full)?;
        let detail = detail(&req);
        self.audited(&caller, "upgrade-site", detail, async {
            let (site, ctx) = (req.into_inner().site, self.ctx());
            let rec = self
                .ctx
                .tasks
                .run_detached("upgrade-site", async move {
                    hierarchy::upgrade_site(&ctx, &site).await
                })
                .await
                .map_err(Status::internal)?
                .map_err(status_for_child)?;
            site_reply(rec)
        })
        .await
    }

    async fn submit_ct1(&self, req: Request<pb::Ct1>) -> R<pb::ChangeSiteControlReply> {
        let caller = self.allow(&req, AdminRole::Full)?;
        let detail = detail(&req);
        self.audited(&caller, "submit-ct1", detail, async {
            queries::installed(&self.ctx).map_err(status)?;
            let (ct1, ctx) = (convert::ct1_from(&req.into_inner())?, self.ctx());
            let (site, base, serial) = self
                .detached(async move { ops::submit_ct1(&ctx, ct1).await })
                .await?;
            reply(pb::ChangeSiteControlReply {
                site_code: site.to_string(),
                base_serial: base,
                serial,
            })
        })
        .await
    }

    async fn list_bad_ct1(&self, req: Request<pb::ListBadCt1Request>) -> R<pb::BadCt1List> {
        let _caller = self.allow(&req, AdminRole::ReadOnly)?;
        let bad = queries::bad_ct1s(&self.ctx).map_err(status)?;
        reply(pb::BadCt1List {
            entries: bad.iter().map(convert::bad_ct1_to).collect(),
        })
    }

    async fn force_ct2(&self, req: Request<pb::ForceCt2Request>) -> R<pb::ForceCt2Reply> {
        let caller = self.allow(&req, AdminRole::Operator)?;
        let detail = detail(&req);
        self.audited(&caller, "force-ct2", detail, async {
            queries::installed(&self.ctx).map_err(status)?;
            let ctx = self.ctx();
            let (site, serial) = self
                .detached(async move {
                    sms_site::site_config::force_ct2(&ctx)
                        .await
                        .map_err(|e| Refused::Precondition(format!("{e:#}")))
                })
                .await?;
            reply(pb::ForceCt2Reply {
                site_code: site.to_string(),
                serial,
            })
        })
        .await
    }

    async fn change_site_control(
        &self,
        req: Request<pb::ChangeSiteControlRequest>,
    ) -> R<pb::ChangeSiteControlReply> {
        let caller = self.allow(&req, AdminRole::Full)?;
        let detail = detail(&req);
        self.audited(&caller, "change-site-control", detail, async {
            let req = req.into_inner();
            let site = convert::opt_code(&req.site, "site")?;
            let (change, ctx) = (control_change(req)?, self.ctx());
            let (site, base, serial) = self
                .detached(async move { hierarchy::change_site_control(&ctx, site, &change).await })
                .await?;
            reply(pb::ChangeSiteControlReply {
                site_code: site.to_string(),
                base_serial: base,
                serial,
            })
        })
        .await
    }

    async fn attach_primary(
        &self,
        req: Request<pb::AttachPrimaryRequest>,
    ) -> R<pb::AttachPrimaryReply> {
        // Only the new primary itself, with the certificate its join token
        // bought: nobody can squat a site code or read another's secret.
        let claimed = code(&req.get_ref().site_code, "site_code")?;
        auth::site_is(&req, &claimed, "attach itself as that site")?;
        auth::not_revoked(&req, &self.ctx)?;
        let (req, ctx) = (req.into_inner(), self.ctx());
        let a = self
            .detached(async move { hierarchy::attach(&ctx, &req.site_code, &req.server).await })
            .await?;
        reply(pb::AttachPrimaryReply {
            parent_site_code: a.parent_site_code,
            parent_address: a.parent_address,
            link_secret: a.link_secret,
            ancestors: a.ancestors,
        })
    }

    async fn allocate_ids(&self, req: Request<pb::AllocateIdsRequest>) -> R<pb::IdList> {
        let caller = self.allow(&req, AdminRole::Full)?;
        let detail = detail(&req);
        self.audited(&caller, "allocate-ids", detail, async {
            let (count, ctx) = (req.into_inner().count, self.ctx());
            let (ids, sms_ids) = self
                .detached(async move { ops::allocate_ids(&ctx, count).await })
                .await?;
            reply(pb::IdList { ids, sms_ids })
        })
        .await
    }

    async fn prepare_delete(&self, req: Request<pb::SiteRequest>) -> R<pb::IdRange> {
        match self.ctx.identity().and_then(|id| id.parent) {
            Some(p) => auth::site_is(&req, &p.site_code, "delete this site")?,
            None => {
                self.allow(&req, AdminRole::Full)?;
            }
        }
        let (site, ctx) = (req.into_inner().site, self.ctx());
        let next = self
            .detached(async move { ops::prepare_delete(&ctx, &site).await })
            .await?;
        reply(pb::IdRange {
            start: next,
            end: next,
        })
    }

    async fn request_id_range(&self, req: Request<pb::IdRangeRequest>) -> R<pb::IdRange> {
        auth::node(&req)?;
        auth::not_revoked(&req, &self.ctx)?;
        let (req, ctx) = (req.into_inner(), self.ctx());
        let (start, end) = self
            .detached(
                async move { ops::request_id_range(&ctx, &req.site_code, &req.node_id).await },
            )
            .await?;
        reply(pb::IdRange { start, end })
    }

    async fn list_failed_jobs(&self, req: Request<pb::LinkRequest>) -> R<pb::FailedJobList> {
        let _caller = self.allow(&req, AdminRole::ReadOnly)?;
        let to = code(&req.into_inner().to, "to")?;
        let jobs = queries::failed_jobs(&self.ctx, &to).map_err(status)?;
        reply(pb::FailedJobList {
            jobs: jobs.iter().map(convert::failed_job_to).collect(),
        })
    }

    async fn create_secondary(
        &self,
        req: Request<pb::CreateSecondaryRequest>,
    ) -> R<pb::CreateSecondaryReply> {
        let caller = self.allow(&req, AdminRole::Full)?;
        let detail = detail(&req);
        self.audited(&caller, "create-secondary", detail, async {
            let req = req.into_inner();
            let create = CreateSecondary {
                site_code: req.site_code,
                server: req.server,
                site_name: (!req.site_name.is_empty()).then_some(req.site_name),
                sever_link_mid_bootstrap: req.sever_link_mid_bootstrap,
            };
            let ctx = self.ctx();
            let rec = self
                .detached(async move { hierarchy::create_secondary(&ctx, create).await })
                .await?;
            site_reply(rec)
        })
        .await
    }

    async fn sever_link(&self, req: Request<pb::LinkRequest>) -> R<pb::LinkState> {
        let caller = self.allow(&req, AdminRole::Operator)?;
        let detail = detail(&req);
        self.audited(&caller, "sever-link", detail, async {
            let (to, ctx) = (code(&req.into_inner().to, "to")?, self.ctx());
            let l = self
                .detached(async move { ops::sever_link(&ctx, &to).await })
                .await?;
            reply(convert::link_view_to(&l))
        })
        .await
    }

    async fn restore_link(&self, req: Request<pb::LinkRequest>) -> R<pb::LinkState> {
        let caller = self.allow(&req, AdminRole::Operator)?;
        let detail = detail(&req);
        self.audited(&caller, "restore-link", detail, async {
            let (to, ctx) = (code(&req.into_inner().to, "to")?, self.ctx());
            let l = self
                .detached(async move { ops::restore_link(&ctx, &to).await })
                .await?;
            reply(convert::link_view_to(&l))
        })
        .await
    }

    async fn inject_fault(&self, req: Request<pb::FaultRequest>) -> R<pb::FaultList> {
        let caller = self.allow(&req, AdminRole::Operator)?;
        let detail = detail(&req);
        self.audited(&caller, "inject-fault", detail, async {
            let (req, ctx) = (req.into_inner(), self.ctx());
            let f = self
                .detached(async move { ops::inject_fault(&ctx, &req.name, req.phase).await })
                .await?;
            reply(convert::faults_to(&f))
        })
        .await
    }

    async fn clear_fault(&self, req: Request<pb::FaultRequest>) -> R<pb::FaultList> {
        let caller = self.allow(&req, AdminRole::Operator)?;
        let detail = detail(&req);
        self.audited(&caller, "clear-fault", detail, async {
            let (req, ctx) = (req.into_inner(), self.ctx());
            let f = self
                .detached(async move { ops::clear_fault(&ctx, &req.name).await })
                .await?;
            reply(convert::faults_to(&f))
        })
        .await
    }

    async fn retry_failed_jobs(&self, req: Request<pb::LinkRequest>) -> R<pb::LinkState> {
        let caller = self.allow(&req, AdminRole::Operator)?;
        let detail = detail(&req);
        self.audited(&caller, "retry-jobs", detail, async {
            let (to, ctx) = (code(&req.into_inner().to, "to")?, self.ctx());
            let l = self
                .detached(async move { ops::retry_failed_jobs(&ctx, &to).await })
                .await?;
            reply(convert::link_view_to(&l))
        })
        .await
    }

    async fn send_probes(&self, req: Request<pb::SendProbesRequest>) -> R<pb::SendProbesReply> {
        let caller = self.allow(&req, AdminRole::Operator)?;
        let detail = detail(&req);
        self.audited(&caller, "send-probes", detail, async {
            let req = req.into_inner();
            let priority = if req.priority == 0 {
                Priority::Medium
            } else {
                convert::priority_from(req.priority)?
            };
            let (to, ctx) = (code(&req.to, "to")?, self.ctx());
            let ids = self
                .detached(async move {
                    ops::send_probes(&ctx, &to, req.count, req.bytes, priority).await
                })
                .await?;
            reply(pb::SendProbesReply {
                job_ids: ids.iter().map(|i| i.as_bytes().to_vec()).collect(),
            })
        })
        .await
    }

    async fn send_package(&self, req: Request<pb::SendPackageRequest>) -> R<pb::SendPackageReply> {
        let caller = self.allow(&req, AdminRole::Full)?;
        let detail = detail(&req);
        self.audited(&caller, "send-package", detail, async {
            let req = req.into_inner();
            let (to, ctx) = (code(&req.to, "to")?, self.ctx());
            let source = if req.source_path.is_empty() {
                ops::PackageSource::Random(req.size_bytes)
            } else {
                ops::PackageSource::Path(req.source_path)
            };
            let sent = self
                .detached(async move {
                    ops::send_package(&ctx, &to, &req.name, source, req.chunk_bytes as usize).await
                })
                .await?;
            reply(pb::SendPackageReply {
                job_id: sent.job_id.as_bytes().to_vec(),
                size_bytes: sent.size_bytes,
                chunk_count: sent.chunk_count,
                sha256: sent.sha256_hex,
            })
        })
        .await
    }

    async fn get_status(&self, req: Request<pb::GetStatusRequest>) -> R<pb::NodeStatus> {
        // The parent's site server may read it too: its console shows the
        // edges below this site (a grandchild's, seen from there).
        let parent = self.ctx.identity().and_then(|i| i.parent);
        if auth::is_site_server_of(&req, parent.as_ref().map(|p| &p.site_code)) {
            auth::not_revoked(&req, &self.ctx)?;
        } else {
            self.allow(&req, AdminRole::ReadOnly)?;
        }
        reply(convert::node_view_to(&queries::node_view(&self.ctx)))
    }

    async fn list_sites(&self, req: Request<pb::ListSitesRequest>) -> R<pb::SiteList> {
        let _caller = self.allow(&req, AdminRole::ReadOnly)?;
        let rows = queries::sites(&self.ctx).map_err(status)?;
        reply(pb::SiteList {
            sites: rows.iter().map(convert::site_row_to).collect(),
        })
    }

    async fn get_site_control(
        &self,
        req: Request<pb::GetSiteControlRequest>,
    ) -> R<pb::SiteControl> {
        let _caller = self.allow(&req, AdminRole::ReadOnly)?;
        let req = req.into_inner();
        let site = convert::opt_code(&req.site, "site")?;
        let ctl = queries::site_control(&self.ctx, site, req.serial).map_err(status)?;
        reply(convert::control_to(&ctl))
    }

    async fn list_status_messages(
        &self,
        req: Request<pb::ListStatusMessagesRequest>,
    ) -> R<pb::StatusMessageList> {
        let _caller = self.allow(&req, AdminRole::ReadOnly)?;
        let req = req.into_inner();
        let site = convert::opt_code(&req.site, "site")?;
        let after = if req.after_uid.is_empty() {
            None
        } else {
            Some(convert::uuid(&req.after_uid, "after_uid")?)
        };
        let id = (req.id != 0).then_some(req.id);
        let msgs =
            queries::status_messages(&self.ctx, site.as_ref(), id, req.limit as usize, after)
                .map_err(status)?;
        reply(pb::StatusMessageList {
            messages: msgs.iter().map(convert::status_to).collect(),
        })
    }

    async fn read_log(&self, req: Request<pb::ReadLogRequest>) -> R<pb::LogLines> {
        let _caller = self.allow(&req, AdminRole::ReadOnly)?;
        let req = req.into_inner();
        if req.follow {
            return Err(Status::invalid_argument(
                "follow needs the StreamLog call; ReadLog returns one reply",
            ));
        }
        let since = log_since(&req);
        let dir = &self.log_dir;
        // Bounded reads of local files: a short block, as the despooler's.
        let (lines, truncated) = tokio::task::block_in_place(|| {
            crate::logging::read(dir, &req.name, req.tail as u64, since)
        })
        .map_err(log_status)?;
        reply(pb::LogLines { lines, truncated })
    }

    type StreamLogStream = LogStream;

    async fn stream_log(&self, req: Request<pb::ReadLogRequest>) -> R<LogStream> {
        let _caller = self.allow(&req, AdminRole::ReadOnly)?;
        let req = req.into_inner();
        let permit = if req.follow {
            let p = self
                .log_followers
                .clone()
                .try_acquire_owned()
                .map_err(|_| {
                    tracing::warn!("refused to follow a log: {MAX_LOG_FOLLOWERS} are followed");
                    Status::resource_exhausted(format!(
                        "this node already serves {MAX_LOG_FOLLOWERS} followed logs; close one \
                     (or read without --follow) and try again"
                    ))
                })?;
            Some(p)
        } else {
            None
        };
        let (reader, _) = tokio::task::block_in_place(|| {
            crate::logging::open(
                &self.log_dir,
                &req.name,
                req.tail as u64,
                log_since(&req),
                req.follow,
                None,
            )
        })
        .map_err(log_status)?;
        let cancel = self.ctx.tasks.token();
        let name = req.name;
        // Ends with the log (or, following, when the client goes away or
        // the node stops: shutdown never waits on a follower).
        let stream = futures::stream::unfold(Some((reader, permit)), move |state| {
            let (cancel, name) = (cancel.clone(), name.clone());
            async move {
                let (mut reader, permit) = state?;
                loop {
                    match tokio::task::block_in_place(|| reader.next_chunk()) {
                        Ok(Some(lines)) => {
                            let item = pb::LogLines {
                                lines,
                                truncated: false,
                            };
                            return Some((Ok(item), Some((reader, permit))));
                        }
                        Ok(None) if reader.following() => tokio::select! {
                            _ = cancel.cancelled() => return None,
                            _ = tokio::time::sleep(FOLLOW_POLL) => {}
                        },
                        Ok(None) => return None,
                        Err(e) => {
                            let e = Status::internal(format!("cannot read {name}.log: {e}"));
                            return Some((Err(e), None));
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_probes(&self, req: Request<pb::ListProbesRequest>) -> R<pb::ProbeList> {
        let _caller = self.allow(&req, AdminRole::ReadOnly)?;
        if req.into_inner().count_only {
            return reply(pb::ProbeList {
                probes: vec![],
                count: queries::probe_count(&self.ctx),
            });
        }
        let probes = queries::probes(&self.ctx).map_err(status)?;
        reply(pb::ProbeList {
            count: probes.len() as u64,
            probes: probes
                .iter()
                .map(|(p, bytes)| convert::probe_record_to(p, *bytes))
                .collect(),
        })
    }

    async fn list_packages(&self, req: Request<pb::ListPackagesRequest>) -> R<pb::PackageList> {
        let _caller = self.allow(&req, AdminRole::ReadOnly)?;
        let packages = queries::packages(&self.ctx).map_err(status)?;
        reply(pb::PackageList {
            packages: packages.iter().map(convert::package_to).collect(),
        })
    }

    async fn create_token(&self, req: Request<pb::CreateTokenRequest>) -> R<pb::CreateTokenReply> {
        let caller = self.allow(&req, AdminRole::Full)?;
        let req = req.into_inner();
        let role = match req.role.as_str() {
            "" | "secondary" => sms_trust::Role::Secondary,
            "primary" => sms_trust::Role::Primary,
            "member" => sms_trust::Role::Member,
            other => {
                return Err(Status::invalid_argument(format!(
                    "{:?} is not a token role; use secondary, primary or member",
                    sms_trust::clip(other)
                )))
            }
        };
        let ttl = if req.ttl_secs == 0 {
            sms_site::trust::DEFAULT_TOKEN_SECS
        } else {
            req.ttl_secs
        };
        let t = sms_site::trust::create_token(&self.ctx, &req.label, role, ttl).map_err(status)?;
        self.ctx
            .store
            .durable()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if self.ctx.identity().is_some() {
            let _ = sms_site::status::emit(
                &self.ctx,
                &sms_types::catalog::AUDIT_TOKEN_CREATED,
                &[
                    caller.subject(),
                    t.id_hex(),
                    t.role.clone(),
                    t.label.clone(),
                    t.expires_unix.to_string(),
                ],
            );
        }
        reply(pb::CreateTokenReply {
            token: t.encode(),
            token_id: t.id_hex(),
            expires_unix: t.expires_unix,
        })
    }

    async fn issue_admin(&self, req: Request<pb::IssueAdminRequest>) -> R<pb::CertificateChain> {
        let caller = self.allow(&req, AdminRole::Full)?;
        let req = req.into_inner();
        let role: AdminRole = req.role.parse().map_err(Status::invalid_argument)?;
        let chain =
            sms_site::trust::issue_admin(&self.ctx, &req.name, role, &req.csr).map_err(status)?;
        let serial = sms_trust::Identity::from_der(&chain[0])
            .map(|i| i.serial)
            .unwrap_or_default();
        if self.ctx.identity().is_some() {
            let _ = sms_site::status::emit(
                &self.ctx,
                &sms_types::catalog::AUDIT_CERT_ISSUED,
                &[
                    format!("administrator ({role})"),
                    req.name.clone(),
                    serial,
                    format!("requested by {}", caller.subject()),
                ],
            );
        }
        reply(pb::CertificateChain { certs: chain })
    }

    async fn list_certificates(
        &self,
        req: Request<pb::ListCertificatesRequest>,
    ) -> R<pb::CertificateList> {
        self.allow(&req, AdminRole::ReadOnly)?;
        let info = |use_: &str, der: &[u8]| -> pb::CertificateInfo {
            match sms_trust::Identity::from_der(der) {
                Ok(id) => pb::CertificateInfo {
                    r#use: use_.into(),
                    subject: id.subject.clone(),
                    role: id.role.as_str().into(),
                    serial: id.serial.clone(),
                    not_before: id.not_before,
                    not_after: id.not_after,
                    issuer: String::new(),
                },
                Err(e) => pb::CertificateInfo {
                    r#use: use_.into(),
                    subject: format!("unreadable: {e}"),
                    ..Default::default()
                },
            }
        };
        let mut certificates = Vec::new();
        let store = &self.ctx.store;
        if let Some(c) = store
            .node_credentials()
            .map_err(|e| Status::internal(e.to_string()))?
        {
            for (i, der) in c.chain.iter().enumerate() {
                let use_ = match (i, c.chain.len() - 1 - i) {
                    (0, _) => "node",
                    (_, 0) => "root",
                    _ => "issuer",
                };
                certificates.push(info(use_, der));
            }
        }
        if let Some(c) = store
            .ca_credentials()
            .map_err(|e| Status::internal(e.to_string()))?
        {
            if let Some(der) = c.chain.first() {
                certificates.push(info("ca", der));
            }
        }
        let tokens = store
            .tokens()
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .map(|t| pb::TokenInfo {
                token_id: hex::encode(t.id),
                label: t.label,
                role: t.role,
                created_unix: t.created_unix,
                expires_unix: t.expires_unix,
                used_unix: t.used.map(|u| u.0).unwrap_or(0),
            })
            .collect();
        let tls = !matches!(auth::Caller::of(&req), Caller::Insecure);
        reply(pb::CertificateList {
            certificates,
            tokens,
            tls,
        })
    }

    async fn revoke_certificate(
        &self,
        req: Request<pb::RevokeCertificateRequest>,
    ) -> R<pb::RevokeCertificateReply> {
        let caller = self.allow(&req, AdminRole::Full)?;
        let req = req.into_inner();
        let why = if req.reason.is_empty() {
            format!("revoked by {}", caller.subject())
        } else {
            sms_trust::clip(&req.reason)
        };
        sms_site::trust::revoke_serial(&self.ctx, &req.serial, &why).map_err(status)?;
        // The whole subtree refuses it too.
        sms_site::trust::send_revocations_down(&self.ctx, None).map_err(status)?;
        self.ctx
            .store
            .durable()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        self.audit(
            &caller,
            "revoke-certificate",
            format!("serial {}: {why}", req.serial),
        );
        reply(pb::RevokeCertificateReply { serial: req.serial })
    }
}
