//! `controller sites`: the Hierarchy Manager's site list (at a primary),
//! once or redrawn with `--watch`.
//!
//! A primary keeps links only to its own parent and children, so its list
//! has no link state for a grandchild. For those rows the command asks the
//! grandchild's parent, by its site code through the relay (as `controller
//! --site P01 status` would), for its link to that site: the column then
//! says what the site that owns the link sees, and from where.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{admin_for, connect, Reply};
use crate::output::{site_json, sites_table, Out};
use crate::watch::{self, WatchArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// How long one parent may take to describe its links before its rows say
/// it did not answer (a frozen site must not hold up the whole list).
const PARENT_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let (addr, c) = connect(node).await?;
    watch::run(out, &a.watch, "sites", || {
        let mut c = c.clone();
        let addr = addr.clone();
        async move {
            let mut sites = super::list_sites(&mut c, "sites").await?;
            let seen = far_links(&addr, &sites).await;
            let mut rows = Vec::with_capacity(sites.len());
            for s in &mut sites {
                let mut v = site_json(s);
                if let Some(far) = seen.get(&s.site_code) {
                    v["link_seen_at"] = json!(far.parent);
                    match &far.state {
                        Ok(state) => {
                            v["link_state"] = json!(state);
                            s.link_state = format!("{state} (at {})", far.parent);
                        }
                        Err(e) => {
                            v["link_error"] = json!(e);
                            s.link_state = format!("? ({} did not say: {e})", far.parent);
                        }
                    }
                }
                rows.push(v);
            }
            let v = json!({ "sites": rows });
            Ok((v, sites_table(&sites).to_string()))
        }
    })
    .await
}

/// What a grandchild's parent said of its link to it.
struct FarLink {
    parent: String,
    state: Result<String, String>,
}

/// Asks each parent of a row without link state, at once and each within
/// [`PARENT_TIMEOUT`], for its link to that row's site.
async fn far_links(addr: &str, sites: &[pb::SiteRecord]) -> BTreeMap<String, FarLink> {
    let mut by_parent: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in sites {
        if s.link_state.is_empty() && !s.parent_site_code.is_empty() {
            by_parent
                .entry(s.parent_site_code.as_str())
                .or_default()
                .push(s.site_code.as_str());
        }
    }
    let asks = by_parent.into_iter().map(|(parent, children)| async move {
        let links = tokio::time::timeout(PARENT_TIMEOUT, links_of(addr, parent))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", PARENT_TIMEOUT.as_secs())));
        children
            .into_iter()
            .filter_map(|child| {
                let state = match &links {
                    Ok(l) => Ok(l.iter().find(|l| l.to == child)?.state.clone()),
                    Err(e) => Err(e.clone()),
                };
                Some((
                    child.to_string(),
                    FarLink {
                        parent: parent.to_string(),
                        state,
                    },
                ))
            })
            .collect::<Vec<_>>()
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Site `parent`'s links, through the relay from the node at `addr`.
async fn links_of(addr: &str, parent: &str) -> Result<Vec<pb::LinkState>, String> {
    let mut c = admin_for(addr, Some(parent))
        .await
        .map_err(|e| format!("{e:#}"))?;
    let status = c
        .get_status(pb::GetStatusRequest {})
        .await
        .reply("status")
        .map_err(|e| format!("{e:#}"))?;
    Ok(status.links)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(code: &str, parent: &str, link: &str) -> pb::SiteRecord {
        pb::SiteRecord {
            site_code: code.into(),
            parent_site_code: parent.into(),
            link_state: link.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn only_rows_without_link_state_are_asked_about_and_an_unreachable_parent_is_named() {
        // Nothing listens on port 1: the parent P01 cannot be asked, and
        // its rows say so; rows with a link here are left alone.
        let sites = [
            row("PRI", "", ""),
            row("P01", "PRI", "up"),
            row("S11", "P01", ""),
            row("S12", "P01", ""),
        ];
        let seen = far_links("127.0.0.1:1", &sites).await;
        assert_eq!(seen.keys().collect::<Vec<_>>(), ["S11", "S12"]);
        for far in seen.values() {
            assert_eq!(far.parent, "P01");
            assert!(far.state.is_err());
        }
    }
}
