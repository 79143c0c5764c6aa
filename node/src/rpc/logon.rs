//! The logon service: how a site installs, verifies, refreshes and removes
//! the logon server component on a member server.

use std::sync::Arc;

use sms_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::logon;
use crate::node::Ctx;

pub struct LogonSvc {
    pub ctx: Arc<Ctx>,
}

fn refused(m: String) -> Status {
    Status::failed_precondition(m)
}

#[tonic::async_trait]
impl pb::logon_server::Logon for LogonSvc {
    async fn describe(
        &self,
        _: Request<pb::LogonDescribeRequest>,
    ) -> Result<Response<pb::LogonState>, Status> {
        Ok(Response::new(logon::describe(&self.ctx)))
    }

    async fn install(
        &self,
        req: Request<pb::LogonInstallRequest>,
    ) -> Result<Response<pb::LogonState>, Status> {
        let ctx = self.ctx.clone();
        let req = req.into_inner();
        tokio::spawn(async move { logon::install_here(&ctx, req).await })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(refused)?;
        Ok(Response::new(logon::describe(&self.ctx)))
    }

    async fn uninstall(
        &self,
        req: Request<pb::LogonUninstallRequest>,
    ) -> Result<Response<pb::LogonState>, Status> {
        let ctx = self.ctx.clone();
        let site = req.into_inner().site_code;
        tokio::spawn(async move { logon::uninstall_here(&ctx, &site).await })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(refused)?;
        Ok(Response::new(logon::describe(&self.ctx)))
    }

    async fn refresh_script(
        &self,
        req: Request<pb::LogonScript>,
    ) -> Result<Response<pb::LogonState>, Status> {
        let ctx = self.ctx.clone();
        let req = req.into_inner();
        tokio::spawn(async move { logon::refresh_here(&ctx, req).await })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(refused)?;
        Ok(Response::new(logon::describe(&self.ctx)))
    }
}
