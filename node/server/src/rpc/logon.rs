//! The logon service: how a site installs, verifies, refreshes and removes
//! the logon server component on a member server.

use std::sync::Arc;

use sms_proto::convert;
use sms_proto::v1 as pb;
use sms_site::{logon, Ctx};
use tonic::{Request, Response, Status};

use super::auth;

/// Only the site server of the site a request names may change this
/// node's logon server component.
fn from_site<T>(req: &Request<T>, site: &str) -> Result<(), Status> {
    let site = convert::code(site, "site_code")?;
    auth::site_is(req, &site, "manage its own logon servers")
}

pub struct LogonSvc {
    pub ctx: Arc<Ctx>,
}

type R = Result<Response<pb::LogonState>, Status>;

impl LogonSvc {
    /// Runs a change detached, then answers with what this node now is.
    async fn change<F>(&self, fut: F) -> R
    where
        F: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.ctx
            .tasks
            .run_detached("logon request", fut)
            .await
            .map_err(Status::internal)?
            .map_err(Status::failed_precondition)?;
        Ok(Response::new(convert::logon_view_to(&logon::describe(
            &self.ctx,
        ))))
    }
}

#[tonic::async_trait]
impl pb::logon_server::Logon for LogonSvc {
    async fn describe(&self, req: Request<pb::LogonDescribeRequest>) -> R {
        auth::member(&req)?;
        Ok(Response::new(convert::logon_view_to(&logon::describe(
            &self.ctx,
        ))))
    }

    async fn install(&self, req: Request<pb::LogonInstallRequest>) -> R {
        from_site(&req, &req.get_ref().site_code)?;
        let (ctx, req) = (
            self.ctx.clone(),
            convert::logon_install_from(req.into_inner()),
        );
        self.change(async move { logon::install_here(&ctx, req).await })
            .await
    }

    async fn uninstall(&self, req: Request<pb::LogonUninstallRequest>) -> R {
        from_site(&req, &req.get_ref().site_code)?;
        let (ctx, site) = (self.ctx.clone(), req.into_inner().site_code);
        self.change(async move { logon::uninstall_here(&ctx, &site).await })
            .await
    }

    async fn refresh_script(&self, req: Request<pb::LogonScript>) -> R {
        from_site(&req, &req.get_ref().site_code)?;
        let (ctx, req) = (
            self.ctx.clone(),
            convert::logon_script_from(req.into_inner()),
        );
        self.change(async move { logon::refresh_here(&ctx, req).await })
            .await
    }
}
