//! `controller sites`

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{admin, node_addr, status_err};
use crate::output::{table, time, Out};

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(node: &Option<String>, out: &Out, _: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let sites = admin(&addr)
        .await?
        .list_sites(pb::ListSitesRequest {})
        .await
        .map_err(|e| status_err("sites", e))?
        .into_inner()
        .sites;
    let v = json!({
        "sites": sites.iter().map(|s| json!({
            "site_code": s.site_code,
            "parent_site_code": s.parent_site_code,
            "kind": s.kind,
            "server": s.server,
            "status": s.status,
            "serial": s.serial,
            "status_changed_unix_ms": s.status_changed_unix_ms,
            "version": s.version,
            "link_state": s.link_state,
            "recent_errors": s.recent_errors,
            "recent_warnings": s.recent_warnings,
        })).collect::<Vec<_>>()
    });
    out.print(&v, || {
        let mut t = table(&[
            "site",
            "parent",
            "kind",
            "server",
            "status",
            "serial",
            "since",
            "link",
            "errors/warnings (1 h)",
        ]);
        for s in &sites {
            t.add_row(vec![
                s.site_code.clone(),
                if s.parent_site_code.is_empty() {
                    "-".into()
                } else {
                    s.parent_site_code.clone()
                },
                s.kind.clone(),
                s.server.clone(),
                s.status.clone(),
                s.serial.to_string(),
                time(s.status_changed_unix_ms),
                if s.link_state.is_empty() {
                    "-".into()
                } else {
                    s.link_state.clone()
                },
                format!("{}/{}", s.recent_errors, s.recent_warnings),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}
