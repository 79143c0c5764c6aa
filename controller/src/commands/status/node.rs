//! `controller status`: a node's role, site, components and links.

use serde_json::json;
use sms_proto::v1 as pb;
use sms_types::link::NodeRole;

use std::fmt::Write as _;

use crate::client::{connect, Reply};
use crate::output::{self, link_json, links_table, table, Out};
use crate::watch::{self, WatchArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub watch: WatchArgs,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let (_, c) = connect(node).await?;
    watch::run(out, &a.watch, "status", || {
        let mut c = c.clone();
        async move {
            let s = c
                .get_status(pb::GetStatusRequest {})
                .await
                .reply("status")?;
            Ok((status_json(&s), status_text(&s)))
        }
    })
    .await
}

/// The node's status as `--json` prints it.
fn status_json(s: &pb::NodeStatus) -> serde_json::Value {
    json!({
        "role": s.role,
        "site_code": s.site_code,
        "parent_site_code": s.parent_site_code,
        "site_name": s.site_name,
        "kind": s.kind,
        "address": s.address,
        "version": s.version,
        "node_id": s.node_id,
        "serial": s.serial,
        "bootstrap": {"state": s.bootstrap_state, "detail": s.bootstrap_detail},
        "duplicates_dropped": s.duplicates_dropped,
        "connections_refused": s.connections_refused,
        "calls_refused": s.calls_refused,
        "domain": s.domain,
        "logon_site": s.logon_site,
        "range": {"start": s.range_start, "end": s.range_end},
        "ids_remaining": s.ids_remaining,
        "components": s.components.iter().map(|c| json!({"name": c.name, "state": c.state})).collect::<Vec<_>>(),
        "links": s.links.iter().map(link_json).collect::<Vec<_>>(),
    })
}

/// The node's status for people: a summary line, then its components and
/// links as tables.
fn status_text(s: &pb::NodeStatus) -> String {
    let mut o = String::new();
    let role = crate::wire::role(s);
    if role == Some(NodeRole::Bare) {
        let member = if s.domain.is_empty() {
            String::new()
        } else {
            format!(", member server of domain {}", s.domain)
        };
        let _ = writeln!(
            o,
            "{} is a bare node (node id {}){member}",
            s.address, s.node_id
        );
    } else if role == Some(NodeRole::LogonServer) {
        let _ =
            writeln!(o,
            "{} is a logon server of site {} in domain {}: current ID range {} to {}, {} IDs left",
            s.address,
            s.logon_site,
            s.domain,
            s.range_start,
            s.range_end.saturating_sub(1),
            s.ids_remaining
        );
    } else {
        let parent = if s.parent_site_code.is_empty() {
            "none (central site)".to_string()
        } else {
            s.parent_site_code.clone()
        };
        let _ = writeln!(
            o,
            "{} is site {} \"{}\" ({}), parent {}, site control serial {}",
            s.address, s.site_code, s.site_name, s.kind, parent, s.serial
        );
    }
    if s.connections_refused > 0 || s.calls_refused > 0 {
        let _ = writeln!(
            o,
            "refused {} connections over its connection limits and {} calls over a \
             connection's rate (see its node.log)",
            s.connections_refused, s.calls_refused
        );
    }
    if s.bootstrap_state != "none" {
        let _ = writeln!(o, "bootstrap: {} {}", s.bootstrap_state, s.bootstrap_detail);
    }
    if !s.components.is_empty() {
        let mut t = table(&["component", "state"]);
        for c in &s.components {
            t.add_row(vec![output::shown(&c.name), output::shown(&c.state)]);
        }
        let _ = writeln!(o, "{t}");
    }
    if !s.links.is_empty() {
        let _ = writeln!(o, "{}", links_table(&s.links));
    }
    o.trim_end().to_string()
}
