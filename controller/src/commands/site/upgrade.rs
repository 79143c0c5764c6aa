//! `controller upgrade-site --site C` (at C's parent): run C's install again.

use std::time::Duration;

use super::create::wait_active;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The secondary site (a direct child of this node's site).
    #[arg(long)]
    pub site: String,
    /// Follow the install until the site is Active again.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait allows (`90`, or a duration such as `5m`).
    #[arg(long, default_value_t = 120, value_name = "SECS",
          value_parser = crate::units::parse_secs)]
    pub timeout: u64,
}

/// `--wait`: follows the new install until the site is Active again.
pub(super) async fn wait(
    c: &mut crate::client::Admin,
    addr: &str,
    code: &str,
    timeout: Duration,
    show: bool,
) -> anyhow::Result<String> {
    // The server is only named in the failure hints of the wait.
    let server = super::list_sites(c, "sites")
        .await?
        .into_iter()
        .find(|s| s.site_code == code)
        .map(|s| s.server)
        .unwrap_or_default();
    wait_active(addr, code, &server, timeout, show).await
}
