//! A site of the hierarchy, seen from its parent: `sites` (list),
//! `create-secondary` (create), `upgrade-site`, `delete-site` and
//! `diagnose`.

use std::time::Duration;

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::Out;

pub mod create;
pub mod delete;
pub mod diagnose;
pub mod list;
pub mod upgrade;

/// The Hierarchy Manager's site list; `what` names the command in an error.
pub(crate) async fn list_sites(
    c: &mut crate::client::Admin,
    what: &str,
) -> anyhow::Result<Vec<pb::SiteRecord>> {
    Ok(c.list_sites(pb::ListSitesRequest {})
        .await
        .reply(what)?
        .sites)
}

/// Prints a site's code and status after `create-secondary`, `upgrade-site`
/// or `delete-site`; `human` says it in the command's own words.
pub(crate) fn print_site_status(out: &Out, code: &str, status: &str, human: impl FnOnce()) {
    out.print(&json!({"site_code": code, "status": status}), human);
}

/// What a parent does to one of its secondary sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Run its install again.
    Upgrade,
    /// Remove it from the hierarchy.
    Delete,
}

impl Verb {
    /// The command, as errors name it.
    pub fn command(self) -> &'static str {
        match self {
            Verb::Upgrade => "upgrade-site",
            Verb::Delete => "delete-site",
        }
    }
}

/// `upgrade-site` and `delete-site`: asks the parent to act on child site
/// `site`; with `wait`, follows it to its end (Active again, or gone) for
/// at most `timeout` seconds; prints the site's status.
pub async fn run(
    node: &Option<String>,
    out: &Out,
    verb: Verb,
    site: String,
    wait: bool,
    timeout: u64,
) -> anyhow::Result<()> {
    let (addr, mut c) = connect(node).await?;
    let req = pb::SiteRequest { site };
    let r = match verb {
        Verb::Upgrade => c.upgrade_site(req).await,
        Verb::Delete => c.delete_site(req).await,
    }
    .reply(verb.command())?;
    let mut status = r.status.clone();
    if wait {
        let timeout = Duration::from_secs(timeout);
        status = match verb {
            Verb::Upgrade => upgrade::wait(&mut c, &addr, &r.site_code, timeout, !out.json).await?,
            Verb::Delete => delete::wait_gone(&mut c, &addr, &r.site_code, timeout).await?,
        };
    }
    print_site_status(out, &r.site_code, &status, || match verb {
        // A followed install has already shown how it ended.
        Verb::Upgrade if wait => {}
        Verb::Upgrade => println!(
            "the install of site {} runs again; status {}",
            r.site_code, status
        ),
        Verb::Delete => println!("site {}: {}", r.site_code, status),
    });
    Ok(())
}
