//! `controller delete-site --site C` (at C's parent): remove a direct child
//! and the sites below it from the hierarchy. A secondary's node removes its
//! install and restarts bare; an installed primary is detached and carries
//! on as a central site with its own sites (or, if the child cannot be
//! reached, the site is recorded as orphaned). A site re-created with the
//! same code keeps its SMS unique ID counter.

use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The site to remove (a direct child of this node's site).
    #[arg(long)]
    pub site: String,
    /// Wait until the site has left the site list.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait allows (`90`, or a duration such as `5m`).
    #[arg(long, default_value_t = 120, value_name = "SECS",
          value_parser = crate::units::parse_secs)]
    pub timeout: u64,
}

/// `--wait`: polls the parent's site list until `code` has left it.
pub(super) async fn wait_gone(
    c: &mut crate::client::Admin,
    addr: &str,
    code: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        let sites = super::list_sites(c, "sites").await?;
        if !sites.iter().any(|s| s.site_code == code) {
            return Ok("Deleted".into());
        }
        if start.elapsed() > timeout {
            anyhow::bail!(
                "site {code} is still being deleted after {}s; see `controller --node {addr} diagnose --site {code}`",
                timeout.as_secs(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
