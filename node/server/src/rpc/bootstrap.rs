//! The bootstrap service: what a bare node answers to a parent.

use std::sync::Arc;

use sms_proto::convert;
use sms_proto::v1 as pb;
use sms_site::{bootstrap, queries, Ctx};
use tonic::{Request, Response, Status};

use super::errors::status;

pub struct BootstrapSvc {
    pub ctx: Arc<Ctx>,
}

#[tonic::async_trait]
impl pb::bootstrap_server::Bootstrap for BootstrapSvc {
    async fn probe(
        &self,
        _: Request<pb::ProbeRequest>,
    ) -> Result<Response<pb::ProbeReply>, Status> {
        Ok(Response::new(convert::probe_to(&queries::node_probe(
            &self.ctx,
        ))))
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
        self.ctx
            .tasks
            .run_detached("bootstrap install", async move {
                bootstrap::accept(&ctx, job_id, pkg).await
            })
            .await
            .map_err(Status::internal)?
            .map_err(status)?;
        Ok(Response::new(pb::InstallReply {
            started: true,
            detail: "bootstrap started".into(),
        }))
    }
}
