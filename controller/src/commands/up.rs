//! `controller up`: a local demo hierarchy on loopback. Starts a central
//! primary and a bare node as separate `sms-node` processes, creates the
//! secondary site on the bare node, shows the hierarchy, and stops both
//! nodes cleanly on Ctrl-C. Re-running it restarts the same hierarchy on
//! the same ports.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::json;
use sms_proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::create_secondary::wait_active;
use crate::client::{admin, status_err};
use crate::output::{table, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory for the nodes' data dirs.
    #[arg(long, default_value = ".sms-up")]
    dir: PathBuf,
    /// Site code of the central primary.
    #[arg(long, default_value = "PRI")]
    primary: String,
    /// Site code of the secondary.
    #[arg(long, default_value = "S01")]
    secondary: String,
    /// Wipe the directory first.
    #[arg(long)]
    fresh: bool,
    /// Build the hierarchy, show it, stop the nodes and exit (no Ctrl-C wait).
    #[arg(long)]
    once: bool,
    /// The sms-node binary (default: next to this controller, else on PATH).
    #[arg(long)]
    sms_node: Option<PathBuf>,
}

/// A node process; SIGTERM then a bounded wait on stop, SIGKILL on drop.
struct NodeProc {
    name: String,
    child: Child,
    addr: String,
}

impl NodeProc {
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => eprintln!("stopped {} ({})", self.name, self.addr),
            Err(_) => {
                let _ = self.child.kill().await;
                eprintln!(
                    "killed {} ({}): it did not stop within 10 s",
                    self.name, self.addr
                );
            }
        }
    }
}

fn node_binary(explicit: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name(format!("sms-node{}", std::env::consts::EXE_SUFFIX));
    if sibling.exists() {
        return Ok(sibling);
    }
    Ok(PathBuf::from("sms-node"))
}

async fn spawn(
    bin: &Path,
    name: &str,
    data: &Path,
    port: u16,
    extra: &[&str],
) -> anyhow::Result<NodeProc> {
    std::fs::create_dir_all(data)?;
    let stderr = std::fs::File::create(data.join("stderr.log"))?;
    let mut child = Command::new(bin)
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (build it with `cargo build`)",
                bin.display()
            )
        })?;
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .map_err(|_| anyhow!("{name} did not report its address within 15 s"))??;
    let Some(line) = line else {
        let log = std::fs::read_to_string(data.join("stderr.log")).unwrap_or_default();
        bail!(
            "{name} exited at start: {}",
            log.lines().last().unwrap_or("no output")
        );
    };
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .ok_or_else(|| anyhow!("unexpected first line from {name}: {line}"))?
        .to_string();
    // Keep draining stdout so the node never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(NodeProc {
        name: name.to_string(),
        child,
        addr,
    })
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

pub async fn run(out: &Out, a: Args) -> anyhow::Result<()> {
    if a.fresh && a.dir.exists() {
        std::fs::remove_dir_all(&a.dir)
            .with_context(|| format!("cannot wipe {}", a.dir.display()))?;
    }
    std::fs::create_dir_all(&a.dir)?;
    let bin = node_binary(&a.sms_node)?;
    let ports_file = a.dir.join("ports.json");
    let ports: serde_json::Value = std::fs::read(&ports_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(json!({}));
    let port = |k: &str| ports.get(k).and_then(|v| v.as_u64()).unwrap_or(0) as u16;

    let primary = spawn(
        &bin,
        &format!("primary {}", a.primary),
        &a.dir.join(&a.primary),
        port("primary"),
        &["--install-primary", &a.primary],
    )
    .await?;
    let secondary = match spawn(
        &bin,
        &format!("node for {}", a.secondary),
        &a.dir.join(&a.secondary),
        port("secondary"),
        &[],
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            primary.stop().await;
            return Err(e);
        }
    };
    std::fs::write(
        &ports_file,
        serde_json::to_vec_pretty(
            &json!({"primary": port_of(&primary.addr), "secondary": port_of(&secondary.addr)}),
        )?,
    )?;
    if !out.json {
        println!("central primary {} on {}", a.primary, primary.addr);
        println!("bare node for {} on {}", a.secondary, secondary.addr);
    }
    let result = build(out, &a, &primary.addr, &secondary.addr).await;
    if result.is_ok() && !a.once {
        if !out.json {
            println!("\nTry:  export SMS_NODE={}", primary.addr);
            println!(
                "      controller sites; controller status-messages --site {}",
                a.secondary
            );
            println!("      controller --node {} status", secondary.addr);
            println!(
                "Press Ctrl-C to stop both nodes (data stays in {}).",
                a.dir.display()
            );
        }
        let _ = tokio::signal::ctrl_c().await;
    }
    secondary.stop().await;
    primary.stop().await;
    result
}

async fn build(out: &Out, a: &Args, primary: &str, secondary: &str) -> anyhow::Result<()> {
    let mut c = admin(primary).await?;
    let sites = c
        .list_sites(pb::ListSitesRequest {})
        .await
        .map_err(|e| status_err("sites", e))?
        .into_inner()
        .sites;
    if !sites.iter().any(|s| s.site_code == a.secondary) {
        c.create_secondary(pb::CreateSecondaryRequest {
            site_code: a.secondary.clone(),
            server: secondary.to_string(),
            sever_link_mid_bootstrap: false,
            site_name: String::new(),
        })
        .await
        .map_err(|e| status_err("create-secondary", e))?;
    }
    wait_active(
        primary,
        &a.secondary,
        secondary,
        Duration::from_secs(60),
        !out.json,
    )
    .await?;
    let sites = c
        .list_sites(pb::ListSitesRequest {})
        .await
        .map_err(|e| status_err("sites", e))?
        .into_inner()
        .sites;
    let v = json!({
        "primary": {"site_code": a.primary, "address": primary},
        "secondary": {"site_code": a.secondary, "address": secondary},
        "sites": sites.iter().map(|s| json!({
            "site_code": s.site_code, "parent_site_code": s.parent_site_code,
            "kind": s.kind, "server": s.server, "status": s.status, "serial": s.serial,
        })).collect::<Vec<_>>(),
    });
    out.print(&v, || {
        let mut t = table(&["site", "parent", "kind", "server", "status", "serial"]);
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
            ]);
        }
        println!("{t}");
    });
    Ok(())
}
