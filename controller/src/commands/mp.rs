//! `controller mp`: management points (seed 001). `add` and `remove` are
//! site control changes (a CT1, at the site or an ancestor); `list` reads the
//! site control; `check` is the troubleshooter, run against a server before
//! or after an install; `get-policy` (MPGetPolicy), `register` and
//! `post-status` act as a client of a management point.

use std::time::Duration;

use serde_json::{json, Value};
use sms_proto::v1 as pb;
use sms_types::mp::{MP_MIN_FREE_BYTES, MP_VERSION};

use crate::client::{channel, Reply};
use crate::output::{mp_json, or_dash, shown, table, Out};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Assign the management point role to a server of a site: the site
    /// server itself or another sms-node (a site system).
    Add(AddArgs),
    /// Take the role from a server: the component is uninstalled there.
    Remove(RemoveArgs),
    /// Every management point of a site with its state and last verification.
    List(ListArgs),
    /// The troubleshooter: check a server against every requirement, before
    /// or after the install; each line says what was seen and the fix.
    Check(CheckArgs),
    /// Fetch a client's machine policy from a management point (MPGetPolicy).
    GetPolicy(ClientArgs),
    /// Register a client through a management point: its SMS unique ID.
    Register(RegisterArgs),
    /// Post a client status message through a management point.
    PostStatus(PostStatusArgs),
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The site (at the site itself or any ancestor).
    #[arg(long)]
    pub site: String,
    /// The server's node address (HOST:PORT of its sms-node).
    #[arg(long)]
    pub server: String,
    /// The HTTP port clients use (0: the server picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Make it the site's default management point (the first one is).
    #[arg(long)]
    pub default: bool,
}

#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    #[arg(long)]
    pub site: String,
    #[arg(long)]
    pub server: String,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// At an ancestor: a descendant's management points (from its last CT2).
    #[arg(long)]
    pub site: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The server's node address (HOST:PORT of its sms-node).
    #[arg(long)]
    pub server: String,
    /// The HTTP port to check before an install (after it, the one served).
    #[arg(long)]
    pub port: Option<u16>,
}

#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// The management point's HTTP address (HOST:PORT).
    #[arg(long)]
    pub mp: String,
}

#[derive(clap::Args, Debug)]
pub struct RegisterArgs {
    #[arg(long)]
    pub mp: String,
    /// The client's name.
    #[arg(long)]
    pub name: String,
    /// The client's hardware id (the same id always gets the same SMS ID).
    #[arg(long)]
    pub hardware_id: String,
}

#[derive(clap::Args, Debug)]
pub struct PostStatusArgs {
    #[arg(long)]
    pub mp: String,
    /// The client's name.
    #[arg(long)]
    pub client: String,
    /// Message id (client messages are 10000 to 19999).
    #[arg(long, default_value_t = 10002)]
    pub id: u32,
    /// informational, warning or error.
    #[arg(long, default_value = "informational")]
    pub severity: String,
    #[arg(long, default_value = "SMS_CLIENT")]
    pub component: String,
    #[arg(long, default_value = "")]
    pub text: String,
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(node: &Option<String>, out: &Out, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Add(a) => {
            let req = pb::ChangeSiteControlRequest {
                site: a.site,
                add_management_point: Some(pb::ManagementPoint {
                    server: a.server,
                    port: a.port as u32,
                    is_default: a.default,
                    ..Default::default()
                }),
                ..Default::default()
            };
            super::site_control::send_change(node, out, "mp add", req).await
        }
        Cmd::Remove(a) => {
            let req = pb::ChangeSiteControlRequest {
                site: a.site,
                remove_management_point: a.server,
                ..Default::default()
            };
            super::site_control::send_change(node, out, "mp remove", req).await
        }
        Cmd::List(a) => list(node, out, a).await,
        Cmd::Check(a) => check(out, a).await,
        Cmd::GetPolicy(a) => get_policy(out, &a.mp).await,
        Cmd::Register(a) => {
            let body = json!({"name": a.name, "hardware_id": a.hardware_id});
            let v = post(&a.mp, "/ccm_system/request/register", &body).await?;
            out.print(&v, || {
                println!(
                    "{} ({})",
                    v["sms_unique_id"].as_str().unwrap_or(""),
                    if v["new"].as_bool() == Some(true) {
                        "new"
                    } else {
                        "registered before"
                    }
                )
            });
            Ok(())
        }
        Cmd::PostStatus(a) => {
            let body = json!({"client": a.client, "messages": [{
                "id": a.id, "severity": a.severity, "component": a.component, "text": a.text,
            }]});
            let v = post(&a.mp, "/ccm_incoming/status", &body).await?;
            out.print(&v, || {
                println!("stored {} message(s) at the site", v["stored"])
            });
            Ok(())
        }
    }
}

async fn list(node: &Option<String>, out: &Out, a: ListArgs) -> anyhow::Result<()> {
    let c = super::site_control::fetch(node, a.site, "mp list").await?;
    let v = json!({
        "site_code": c.site_code,
        "management_points": c.management_points.iter().map(mp_json).collect::<Vec<_>>(),
    });
    out.print(&v, || {
        if c.management_points.is_empty() {
            println!("site {} has no management points (controller mp add --site {0} --server HOST:PORT)", c.site_code);
            return;
        }
        let mut t = table(&["server", "port", "default", "state", "detail", "last verification"]);
        for m in &c.management_points {
            let port = if m.bound_port != 0 { m.bound_port } else { m.port };
            let verified = if m.verified_unix_ms == 0 {
                "-".to_string()
            } else {
                format!("{} {}", crate::output::time_ago(m.verified_unix_ms), shown(&m.verification))
            };
            t.add_row(vec![
                shown(&m.server),
                port.to_string(),
                if m.is_default { "yes".into() } else { String::new() },
                m.state.clone(),
                or_dash(&shown(&m.detail)),
                verified,
            ]);
        }
        println!("{t}");
    });
    Ok(())
}

/// A JSON POST to a management point; its refusal is the error.
async fn post(mp: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
    let a = sms_connect::http::post_json(mp, path, body.to_string().into_bytes(), HTTP_TIMEOUT)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.status != 200 {
        anyhow::bail!(
            "the management point at {mp} answered {} {}: {}",
            a.status,
            a.reason,
            shown(String::from_utf8_lossy(&a.body).trim())
        );
    }
    serde_json::from_slice(&a.body)
        .map_err(|e| anyhow::anyhow!("the management point at {mp} answered no JSON: {e}"))
}

async fn get(mp: &str, path: &str) -> Result<(u16, String, Vec<u8>), String> {
    let a = sms_connect::http::get(mp, path, HTTP_TIMEOUT).await?;
    Ok((a.status, a.reason, a.body))
}

/// The client's machine policy: the assignments, then each document.
async fn fetch_policies(mp: &str) -> Result<(String, Vec<(String, u64, String)>), String> {
    let (code, reason, body) = get(mp, "/ccm_system/request/machinepolicy").await?;
    if code != 200 {
        return Err(format!(
            "machine policy request answered {code} {reason}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| format!("machine policy is not JSON: {e}"))?;
    let site = v["site_code"].as_str().unwrap_or("").to_string();
    let mut out = vec![];
    for p in v["policies"].as_array().cloned().unwrap_or_default() {
        let (id, version, url) = (
            p["id"].as_str().unwrap_or("").to_string(),
            p["version"].as_u64().unwrap_or(0),
            p["url"].as_str().unwrap_or("").to_string(),
        );
        let (code, reason, body) = get(mp, &url).await?;
        if code != 200 {
            return Err(format!("policy {id}.{version} answered {code} {reason}"));
        }
        out.push((id, version, String::from_utf8_lossy(&body).to_string()));
    }
    if out.is_empty() {
        return Err("the management point assigns no policies".into());
    }
    Ok((site, out))
}

async fn get_policy(out: &Out, mp: &str) -> anyhow::Result<()> {
    let (site, pols) = fetch_policies(mp)
        .await
        .map_err(|e| anyhow::anyhow!("{mp}: {e}"))?;
    let v = json!({
        "site_code": site,
        "policies": pols.iter().map(|(id, v, body)| json!({"id": id, "version": v, "body": body})).collect::<Vec<_>>(),
    });
    out.print(&v, || {
        for (id, v, body) in &pols {
            println!("policy {id} version {v}:\n{}", shown_block(body));
        }
    });
    Ok(())
}

/// A document from a server: shown line by line, escaped.
fn shown_block(s: &str) -> String {
    s.lines().map(shown).collect::<Vec<_>>().join("\n")
}

/// One line of the troubleshooter.
struct Line {
    check: &'static str,
    pass: bool,
    seen: String,
    fix: String,
}

fn line(check: &'static str, pass: bool, seen: impl Into<String>, fix: impl Into<String>) -> Line {
    Line {
        check,
        pass,
        seen: seen.into(),
        fix: if pass { String::new() } else { fix.into() },
    }
}

async fn check(out: &Out, a: CheckArgs) -> anyhow::Result<()> {
    let mut c =
        pb::management_points_client::ManagementPointsClient::new(channel(&a.server).await?);
    let t = c
        .describe(pb::MpDescribeRequest {})
        .await
        .reply("mp check")?;
    let host = a
        .server
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or(a.server.clone());
    let mut lines = vec![];
    let best = t
        .volumes
        .iter()
        .filter(|v| v.supported)
        .max_by_key(|v| v.free_bytes);
    let vols = t
        .volumes
        .iter()
        .map(|v| {
            format!(
                "{} ({}{})",
                v.path,
                v.fs_type,
                if v.supported {
                    String::new()
                } else {
                    format!(": {}", v.why)
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    lines.push(line(
        "filesystem",
        best.is_some(),
        if vols.is_empty() { "no allowed data volumes".into() } else { vols },
        "give the server a data volume on a filesystem that honours fsync, mounted read-write (sms-node --mp-volumes DIR)",
    ));
    let free_mb = |b: u64| b / 1_000_000;
    lines.push(match best {
        Some(v) => line(
            "free space",
            v.free_bytes >= MP_MIN_FREE_BYTES,
            format!(
                "{} MB free on {} (at least {} MB needed)",
                free_mb(v.free_bytes),
                v.path,
                free_mb(MP_MIN_FREE_BYTES)
            ),
            "free space on that volume or allow a larger one (sms-node --mp-volumes)",
        ),
        None => line(
            "free space",
            false,
            "no usable volume",
            "see the filesystem check",
        ),
    });
    let installed = !t.mp_site.is_empty();
    lines.push(if installed && t.mp_port != 0 {
        line("port", true, format!("the management point of site {} serves on port {}", t.mp_site, t.mp_port), "")
    } else {
        match a.port {
            Some(p) => {
                let taken = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect((host.as_str(), p)))
                    .await
                    .map(|r| r.is_ok())
                    .unwrap_or(false);
                line(
                    "port",
                    !taken,
                    if taken { format!("something already answers on {host}:{p}") } else { format!("nothing listens on {host}:{p}") },
                    "stop the process that holds the port (the install names it), or choose another port (mp add --port N)",
                )
            }
            None => line("port", false, "not installed and no --port given", "give the port to check: mp check --port N"),
        }
    });
    lines.push(match (t.later_version_path.is_empty(), installed) {
        (true, _) => line(
            "version",
            true,
            if installed {
                format!("version {} installed; no later one", t.mp_version)
            } else {
                format!("no management point installed; setup is version {MP_VERSION}")
            },
            "",
        ),
        (false, _) => line(
            "version",
            false,
            format!(
                "version {} is installed at {}",
                t.later_version, t.later_version_path
            ),
            "remove the later management point from the server first",
        ),
    });
    lines.push(if !t.database_checked {
        line("site database", !installed, "not installed yet: access is granted during the install", "")
    } else {
        line(
            "site database",
            t.database_ok,
            t.database.clone(),
            "grant the server access at the site server (clear-fault mp-db-access-refused there), or remove and add the management point again",
        )
    });
    lines.push(line(
        "agent",
        installed && t.agent_running,
        if !installed {
            "no management point installed".to_string()
        } else if t.agent_running {
            format!("the policy service of site {} is running", t.mp_site)
        } else {
            "the policy service is stopped".to_string()
        },
        if installed {
            "start the agent (clear-fault mp-agent-stopped on the server)"
        } else {
            "install it: controller mp add --site CODE --server ADDR"
        },
    ));
    if installed && t.mp_port != 0 {
        let at = format!("{host}:{}", t.mp_port);
        lines.push(match get(&at, "/sms_mp/.sms_aut?mplist").await {
            Ok((200, _, b)) if b.is_empty() => line("mplist", true, "200 OK, empty", ""),
            Ok((code, reason, b)) => line(
                "mplist",
                false,
                format!(
                    "{code} {reason}: {}",
                    shown(String::from_utf8_lossy(&b).trim())
                ),
                "see the agent check and mpcontrol.log on the site server",
            ),
            Err(e) => line(
                "mplist",
                false,
                e,
                "check the server is up and the port reachable",
            ),
        });
        lines.push(match get(&at, "/sms_mp/.sms_aut?mpcert").await {
            Ok((200, _, b))
                if b.len() > 64 && b.len() % 2 == 0 && b.iter().all(u8::is_ascii_hexdigit) =>
            {
                line(
                    "mpcert",
                    true,
                    format!("200 OK, {} hex digits", b.len()),
                    "",
                )
            }
            Ok((code, reason, b)) => line(
                "mpcert",
                false,
                format!(
                    "{code} {reason}: {}",
                    shown(String::from_utf8_lossy(&b).trim())
                ),
                "run the site with TLS (its certificate is what mpcert answers)",
            ),
            Err(e) => line(
                "mpcert",
                false,
                e,
                "check the server is up and the port reachable",
            ),
        });
        lines.push(match fetch_policies(&at).await {
            Ok((_, p)) => line(
                "policy",
                true,
                p.iter()
                    .map(|(id, v, _)| format!("{id}.{v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                "",
            ),
            Err(e) => line(
                "policy",
                false,
                e,
                "see the agent check; the site refreshes policies every interval",
            ),
        });
    }
    let failed: Vec<&str> = lines.iter().filter(|l| !l.pass).map(|l| l.check).collect();
    let v = json!({
        "server": a.server,
        "checks": lines.iter().map(|l| json!({"check": l.check, "pass": l.pass, "seen": l.seen, "fix": l.fix})).collect::<Vec<_>>(),
        "failed": failed,
    });
    out.print(&v, || {
        let mut tb = table(&["check", "result", "seen", "fix"]);
        for l in &lines {
            tb.add_row(vec![
                l.check.to_string(),
                if l.pass { "pass".into() } else { "FAIL".into() },
                shown(&l.seen),
                or_dash(&l.fix),
            ]);
        }
        println!("{tb}");
    });
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} checks failed on {}: {}",
            failed.len(),
            lines.len(),
            a.server,
            failed.join(", ")
        );
    }
    Ok(())
}
