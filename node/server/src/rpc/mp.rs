//! The management point service: a site installs, verifies and removes the
//! component on a server (the first four calls, from that site's server
//! only), and a management point uses its site database (the last three,
//! from a site or member server).

use std::sync::Arc;

use sms_proto::convert::{self, WireError};
use sms_proto::convert_mp;
use sms_proto::v1 as pb;
use sms_site::{mp_db, mp_setup, Ctx};
use tonic::{Request, Response, Status};

use super::auth;
use super::errors::status;

pub struct MpSvc {
    pub ctx: Arc<Ctx>,
}

/// Only the site server of the site a request names may change this
/// node's management point.
fn from_site<T>(req: &Request<T>, site: &str) -> Result<(), Status> {
    let site = convert::code(site, "site_code")?;
    auth::site_is(req, &site, "manage its own management points")
}

type R<T> = Result<Response<T>, Status>;

/// The label of the caller's certificate (None on a plaintext node): the
/// site database checks it against the management point it granted.
fn caller_label(caller: &auth::Caller) -> Option<String> {
    match caller {
        auth::Caller::Known(id) => Some(id.name.label.clone()),
        _ => None,
    }
}

impl MpSvc {
    /// Runs a change to completion even if the caller goes away.
    async fn detached<T, F>(&self, name: &'static str, fut: F) -> Result<T, Status>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.ctx
            .tasks
            .run_detached(name, fut)
            .await
            .map_err(Status::internal)
    }
}

#[tonic::async_trait]
impl pb::management_points_server::ManagementPoints for MpSvc {
    async fn describe(&self, req: Request<pb::MpDescribeRequest>) -> R<pb::MpTarget> {
        auth::member(&req)?;
        Ok(Response::new(convert_mp::target_to(
            &mp_setup::describe_checked(&self.ctx).await,
        )))
    }

    async fn prepare(&self, req: Request<pb::MpPrepareRequest>) -> R<pb::MpPrepareReply> {
        from_site(&req, &req.get_ref().site_code)?;
        let (ctx, req) = (self.ctx.clone(), convert_mp::prepare_from(req.into_inner()));
        let (install_dir, lines) = self
            .detached("management point prepare", async move {
                mp_setup::prepare(&ctx, req).await
            })
            .await?
            .map_err(Status::failed_precondition)?;
        Ok(Response::new(pb::MpPrepareReply { install_dir, lines }))
    }

    async fn setup(&self, req: Request<pb::MpSetupRequest>) -> R<pb::MpSetupReply> {
        from_site(&req, &req.get_ref().site_code)?;
        let ctx = self.ctx.clone();
        let req = convert_mp::setup_from(req.into_inner())?;
        let result = self
            .detached("management point setup", async move {
                mp_setup::setup(&ctx, req).await
            })
            .await?;
        Ok(Response::new(convert_mp::setup_result_to(&result)))
    }

    async fn uninstall(&self, req: Request<pb::MpUninstallRequest>) -> R<pb::MpTarget> {
        from_site(&req, &req.get_ref().site_code)?;
        let (ctx, site) = (self.ctx.clone(), req.into_inner().site_code);
        let c = ctx.clone();
        self.detached("management point removal", async move {
            mp_setup::uninstall(&c, &site).await
        })
        .await?
        .map_err(Status::failed_precondition)?;
        Ok(Response::new(convert_mp::target_to(&mp_setup::describe(
            &ctx,
        ))))
    }

    async fn database_access(&self, req: Request<pb::MpDatabaseRequest>) -> R<pb::MpDatabaseReply> {
        let caller = caller_label(&auth::node(&req)?);
        let site = mp_db::check_access(&self.ctx, &req.get_ref().node_id, caller.as_deref())
            .map_err(status)?;
        Ok(Response::new(pb::MpDatabaseReply {
            site_code: site.to_string(),
        }))
    }

    async fn register_client(
        &self,
        req: Request<pb::RegisterClientRequest>,
    ) -> R<pb::RegisterClientReply> {
        let caller = caller_label(&auth::node(&req)?);
        let (ctx, r) = (self.ctx.clone(), req.into_inner());
        let (site, sms_id, new) = self
            .detached("client registration", async move {
                mp_db::register_client(&ctx, &r.node_id, caller.as_deref(), &r.name, &r.hardware_id)
                    .await
            })
            .await?
            .map_err(status)?;
        Ok(Response::new(pb::RegisterClientReply {
            sms_id,
            new,
            site_code: site.to_string(),
        }))
    }

    async fn submit_client_status(
        &self,
        req: Request<pb::ClientStatusRequest>,
    ) -> R<pb::ClientStatusReply> {
        let caller = caller_label(&auth::node(&req)?);
        let (ctx, r) = (self.ctx.clone(), req.into_inner());
        if r.messages.len() > sms_site::mp_agent::MAX_CLIENT_MESSAGES {
            return Err(WireError(format!(
                "{} messages in one post; at most {}",
                r.messages.len(),
                sms_site::mp_agent::MAX_CLIENT_MESSAGES
            ))
            .into());
        }
        let messages = convert_mp::client_messages_from(r.messages);
        let stored = self
            .detached("client status", async move {
                mp_db::client_status(&ctx, &r.node_id, caller.as_deref(), &r.client, &messages)
                    .await
            })
            .await?
            .map_err(status)?;
        Ok(Response::new(pb::ClientStatusReply { stored }))
    }
}
