//! `controller upgrade-site --site C` (at C's parent): run C's install again.

use serde_json::json;
use sms_proto::v1 as pb;

use super::create_secondary::wait_active;
use crate::client::{admin, node_addr, status_err};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The secondary site (a direct child of this node's site).
    #[arg(long)]
    site: String,
    /// Follow the install until the site is Active again.
    #[arg(long)]
    wait: bool,
    /// Seconds --wait allows.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let mut c = admin(&addr).await?;
    let r = c
        .upgrade_site(pb::SiteRequest {
            site: a.site.clone(),
        })
        .await
        .map_err(|e| status_err("upgrade-site", e))?
        .into_inner();
    let mut status = r.status.clone();
    if a.wait {
        let server = c
            .list_sites(pb::ListSitesRequest {})
            .await
            .map_err(|e| status_err("sites", e))?
            .into_inner()
            .sites
            .into_iter()
            .find(|s| s.site_code == r.site_code)
            .map(|s| s.server)
            .unwrap_or_default();
        status = wait_active(
            &addr,
            &r.site_code,
            &server,
            std::time::Duration::from_secs(a.timeout),
            !out.json,
        )
        .await?;
    }
    out.print(&json!({"site_code": r.site_code, "status": status}), || {
        if !a.wait {
            println!(
                "the install of site {} runs again; status {}",
                r.site_code, status
            )
        }
    });
    Ok(())
}
