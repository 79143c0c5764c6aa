//! The bootstrap service: what a bare node answers to a parent.

use std::sync::Arc;

use sms_proto::convert;
use sms_proto::v1 as pb;
use sms_site::{bootstrap, queries, Ctx};
use tonic::{Request, Response, Status};

use super::auth;
use super::errors::status;

pub struct BootstrapSvc {
    pub ctx: Arc<Ctx>,
}

impl BootstrapSvc {
    /// Answers a certificate once its record is durable, logged and in the
    /// audit trail (status message 4802) with `how` it was obtained.
    async fn issued(
        &self,
        chain: Vec<Vec<u8>>,
        how: String,
    ) -> Result<Response<pb::EnrollReply>, Status> {
        self.ctx
            .store
            .durable()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if let Ok(id) = sms_trust::Identity::from_der(&chain[0]) {
            tracing::info!(serial = %id.serial, "issued a certificate for {} {} ({how})", id.role, id.name.label);
            if self.ctx.identity().is_some() {
                let _ = sms_site::status::emit(
                    &self.ctx,
                    &sms_types::catalog::AUDIT_CERT_ISSUED,
                    &[
                        id.role.to_string(),
                        id.name.label.clone(),
                        id.serial.clone(),
                        how,
                    ],
                );
            }
        }
        Ok(Response::new(pb::EnrollReply { certs: chain }))
    }
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
        let claimed_parent = req
            .get_ref()
            .package
            .as_ref()
            .map(|p| p.parent_site_code.clone())
            .unwrap_or_default();
        let parent = convert::code(&claimed_parent, "package.parent_site_code")?;
        // Only the parent the package names, proven by its certificate: a
        // stranger cannot hijack a bare node.
        auth::site_is(&req, &parent, "install a site whose parent is that site")?;
        let req = req.into_inner();
        let job_id = convert::uuid(&req.job_id, "job_id")?;
        let pkg = req
            .package
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("package is missing"))?;
        let pkg = convert::bootstrap_from(pkg)?;
        if let Some(own) = crate::node::own_site_label(&self.ctx) {
            if own != pkg.site_code.as_str() {
                return Err(Status::permission_denied(format!(
                    "this node joined the hierarchy as {own}; it cannot be installed as {}",
                    pkg.site_code
                )));
            }
        }
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

    async fn enroll(
        &self,
        req: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollReply>, Status> {
        let from = req
            .extensions()
            .get::<crate::security::PeerInfo>()
            .and_then(|p| p.remote)
            .map(|a| a.to_string())
            .unwrap_or_else(|| "an unknown address".into());
        let req = req.into_inner();
        if req.csr.len() > 16 * 1024 || req.proof.len() > 64 {
            return Err(Status::invalid_argument(
                "the signing request or proof is too large",
            ));
        }
        let chain = sms_site::trust::redeem(&self.ctx, &req.token_id, &req.csr, &req.proof, &from)
            .map_err(status)?;
        self.issued(chain, format!("join token {}", hex::encode(&req.token_id)))
            .await
    }

    async fn renew(
        &self,
        req: Request<pb::RenewRequest>,
    ) -> Result<Response<pb::EnrollReply>, Status> {
        auth::not_revoked(&req, &self.ctx)?;
        let (caller, serials) = match (
            auth::Caller::of(&req),
            req.extensions().get::<crate::security::PeerInfo>(),
        ) {
            (auth::Caller::Known(id), Some(info)) => (id, info.chain_serials.clone()),
            _ => {
                return Err(Status::unauthenticated(
                    "renewal needs the certificate being renewed; an expired or missing one is                      replaced by joining again with a new token",
                ))
            }
        };
        let csr = req.into_inner().csr;
        if csr.is_empty() || csr.len() > 16 * 1024 {
            return Err(Status::invalid_argument(
                "the signing request is empty or larger than 16 KiB",
            ));
        }
        let chain = sms_site::trust::renew(&self.ctx, &caller, &serials, &csr).map_err(status)?;
        self.issued(chain, format!("renewal of certificate {}", caller.serial))
            .await
    }
}
