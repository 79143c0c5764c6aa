//! `controller set-site-control`: a site's polling interval or name.

use sms_proto::v1 as pb;

use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The site to change (default: the node's own site). At an ancestor, the
    /// change travels down as a CT1.
    #[arg(long)]
    pub site: Option<String>,
    /// Watchdog polling interval of the Site Configuration Manager, in ms.
    #[arg(long, conflicts_with = "polling_interval")]
    pub polling_interval_ms: Option<u64>,
    /// The same as a duration: `500ms`, `5s`, `1m`.
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration_ms)]
    pub polling_interval: Option<u64>,
    #[arg(long)]
    pub site_name: Option<String>,
}

/// The change request; refused when there is nothing to change, before
/// any node is contacted.
pub fn request(a: Args) -> anyhow::Result<pb::ChangeSiteControlRequest> {
    let polling_interval_ms = a.polling_interval_ms.or(a.polling_interval);
    if polling_interval_ms.is_none() && a.site_name.is_none() {
        anyhow::bail!(
            "nothing to change: give --polling-interval (or --polling-interval-ms) and/or \
             --site-name"
        );
    }
    Ok(pb::ChangeSiteControlRequest {
        site: a.site.unwrap_or_default(),
        polling_interval_ms,
        site_name: a.site_name,
        ..Default::default()
    })
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    super::send_change(node, out, "set-site-control", request(a)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(polling: Option<u64>, name: Option<&str>) -> Args {
        Args {
            site: None,
            polling_interval_ms: polling,
            polling_interval: None,
            site_name: name.map(String::from),
        }
    }

    #[test]
    fn nothing_to_change_is_refused() {
        let e = request(args(None, None)).unwrap_err().to_string();
        assert_eq!(
            e,
            "nothing to change: give --polling-interval (or --polling-interval-ms) and/or \
             --site-name"
        );
    }

    #[test]
    fn only_the_given_settings_change_and_the_site_defaults_to_the_nodes_own() {
        let r = request(args(Some(5000), None)).unwrap();
        assert_eq!(r.site, "");
        assert_eq!(r.polling_interval_ms, Some(5000));
        assert_eq!(r.site_name, None);
        assert!(r.address.is_none() && r.add_domain.is_none() && r.remove_domain.is_empty());
        let r = request(args(None, Some("North"))).unwrap();
        assert_eq!(r.site_name.as_deref(), Some("North"));
        assert_eq!(r.polling_interval_ms, None);
    }
}
