//! `controller version`: the controller's version and git commit, and the
//! version the node (--node) reports, so an operator can tell whether the
//! two were built from the same source. It never fails for want of a node:
//! an unreachable one is reported as such and the exit code stays 0.

use std::time::Duration;

use serde_json::{json, Value};
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::{shown, Out};

#[derive(clap::Args, Debug)]
pub struct Args {}

/// How long the node gets to answer before `version` reports it as not
/// reached (connecting has its own shorter timeout).
const NODE_TIMEOUT: Duration = Duration::from_secs(10);

async fn node_status(node: &Option<String>) -> anyhow::Result<(String, pb::NodeStatus)> {
    let ask = async {
        let (addr, mut c) = connect(node).await?;
        let s = c
            .get_status(pb::GetStatusRequest {})
            .await
            .reply("status")?;
        anyhow::Ok((addr, s))
    };
    match tokio::time::timeout(NODE_TIMEOUT, ask).await {
        Ok(r) => r,
        Err(_) => anyhow::bail!(
            "the node did not answer within {} s",
            NODE_TIMEOUT.as_secs()
        ),
    }
}

/// The JSON document: the controller's build, and the node's version or
/// `null` with `node_error` saying why.
pub fn version_json(node: &Result<(String, pb::NodeStatus), String>) -> Value {
    let controller = json!({
        "version": sms_build_info::VERSION,
        "commit": sms_build_info::GIT_COMMIT,
    });
    match node {
        Ok((addr, s)) => json!({
            "controller": controller,
            "node": {
                "address": addr,
                "version": s.version,
                "role": s.role,
                "site_code": s.site_code,
                "node_id": s.node_id,
            },
            "node_error": Value::Null,
        }),
        Err(why) => json!({"controller": controller, "node": Value::Null, "node_error": why}),
    }
}

/// The lines `version` prints for people.
pub fn version_lines(node: &Result<(String, pb::NodeStatus), String>) -> Vec<String> {
    let mut lines = vec![format!("controller {}", sms_build_info::LONG_VERSION)];
    lines.push(match node {
        Ok((addr, s)) => {
            let site = if s.site_code.is_empty() {
                format!("{} node", shown(&s.role))
            } else {
                format!("site {}", shown(&s.site_code))
            };
            let version = if s.version.is_empty() {
                "(no version reported)".to_string()
            } else {
                shown(&s.version)
            };
            format!("node {addr} ({site}): sms-node {version}")
        }
        Err(why) => format!("node: not reached ({why})"),
    });
    lines
}

pub async fn run(node: &Option<String>, out: &Out, _: Args) -> anyhow::Result<()> {
    let status = node_status(node)
        .await
        .map_err(|e| crate::client::error_text(&e));
    out.print(&version_json(&status), || {
        for l in version_lines(&status) {
            println!("{l}");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_build_is_always_named_and_the_node_only_when_reached() {
        let s = pb::NodeStatus {
            version: "0.1.0".into(),
            role: "site-server".into(),
            site_code: "PRI".into(),
            ..Default::default()
        };
        let reached = Ok(("127.0.0.1:8500".to_string(), s));
        let v = version_json(&reached);
        assert_eq!(v["controller"]["version"], sms_build_info::VERSION);
        assert_eq!(v["controller"]["commit"], sms_build_info::GIT_COMMIT);
        assert_eq!(v["node"]["version"], "0.1.0");
        assert_eq!(v["node"]["site_code"], "PRI");
        assert!(v["node_error"].is_null());
        let lines = version_lines(&reached);
        assert!(lines[0].contains(sms_build_info::GIT_COMMIT), "{lines:?}");
        assert_eq!(lines[1], "node 127.0.0.1:8500 (site PRI): sms-node 0.1.0");

        let missed = Err("no node given: pass --node HOST:PORT or set SMS_NODE".to_string());
        let v = version_json(&missed);
        assert!(v["node"].is_null());
        assert_eq!(v["node_error"], missed.clone().unwrap_err());
        assert_eq!(
            version_lines(&missed)[1],
            "node: not reached (no node given: pass --node HOST:PORT or set SMS_NODE)"
        );
    }
}
