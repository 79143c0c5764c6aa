//! `controller delete-site --site C` (at C's parent): remove a secondary from
//! the hierarchy. Its node removes its install and restarts bare (or, if it
//! cannot be reached, the site is recorded as orphaned). A site re-created
//! with the same code keeps its SMS unique ID counter.

use std::time::{Duration, Instant};

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{admin, node_addr, status_err};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The secondary site (a direct child of this node's site).
    #[arg(long)]
    site: String,
    /// Wait until the site has left the site list.
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
        .delete_site(pb::SiteRequest {
            site: a.site.clone(),
        })
        .await
        .map_err(|e| status_err("delete-site", e))?
        .into_inner();
    let mut status = r.status.clone();
    if a.wait {
        let start = Instant::now();
        loop {
            let sites = c
                .list_sites(pb::ListSitesRequest {})
                .await
                .map_err(|e| status_err("sites", e))?
                .into_inner()
                .sites;
            if !sites.iter().any(|s| s.site_code == r.site_code) {
                status = "Deleted".into();
                break;
            }
            if start.elapsed() > Duration::from_secs(a.timeout) {
                anyhow::bail!(
                    "site {} is still being deleted after {}s; see `controller --node {addr} diagnose --site {}`",
                    r.site_code,
                    a.timeout,
                    r.site_code
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out.print(&json!({"site_code": r.site_code, "status": status}), || {
        println!("site {}: {}", r.site_code, status)
    });
    Ok(())
}
