//! The bootstrap service: what a bare node answers to a parent.

use std::sync::Arc;

use sms_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::convert;
use crate::bootstrap::{self, InstallRefused};
use crate::node::Ctx;

pub struct BootstrapSvc {
    pub ctx: Arc<Ctx>,
}

#[tonic::async_trait]
impl pb::bootstrap_server::Bootstrap for BootstrapSvc {
    async fn probe(
        &self,
        _: Request<pb::ProbeRequest>,
    ) -> Result<Response<pb::ProbeReply>, Status> {
        let ctx = &self.ctx;
        let (state, detail) = bootstrap::describe(ctx);
        let id = ctx.identity();
        let pkg_site = ctx
            .store
            .bootstrap_package()
            .ok()
            .flatten()
            .map(|b| b.package.site_code.to_string());
        Ok(Response::new(pb::ProbeReply {
            role: crate::logon::describe(ctx).role,
            site_code: id
                .map(|i| i.site_code.to_string())
                .or(pkg_site)
                .unwrap_or_default(),
            bootstrap_state: state,
            bootstrap_detail: detail,
            node_id: ctx.node_id.to_string(),
            domain: ctx.store.member_domain().ok().flatten().unwrap_or_default(),
        }))
    }

    async fn install(
        &self,
        req: Request<pb::InstallRequest>,
    ) -> Result<Response<pb::InstallReply>, Status> {
        let req = req.into_inner();
        let job_id = convert::uuid(&req.job_id, "job_id")?;
        let pkg = req
            .package
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("package is missing"))?;
        let pkg = convert::bootstrap_from(pkg)?;
        // Detached: if the parent disconnects mid-call, the install is still
        // recorded and started as a whole.
        let ctx = self.ctx.clone();
        let accepted = tokio::spawn(async move { bootstrap::accept(&ctx, job_id, pkg).await })
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        match accepted {
            Ok(()) => Ok(Response::new(pb::InstallReply {
                started: true,
                detail: "bootstrap started".into(),
            })),
            Err(InstallRefused::AlreadyInstalled(m)) => Err(Status::already_exists(m)),
            Err(InstallRefused::Invalid(m)) => Err(Status::invalid_argument(m)),
            Err(InstallRefused::Internal(m)) => Err(Status::internal(m)),
        }
    }
}
