//! `controller up`: a local demo hierarchy on loopback. Starts a central
//! primary and a bare node as separate `sms-node` processes, creates the
//! secondary site on the bare node, shows the hierarchy, and stops both
//! nodes cleanly on Ctrl-C. Re-running it restarts the same hierarchy on
//! the same ports. The processes are run by the cluster runner
//! (`sms-cluster`), the same code the end-to-end tests and the benchmark use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::json;
use sms_cluster::{find_node_binary, Cluster, Node, StartError, Stopped};
use sms_proto::v1 as pb;

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
    /// The sms-node binary (default: $SMS_NODE_BIN, else next to this
    /// controller, else on PATH).
    #[arg(long)]
    sms_node: Option<PathBuf>,
}

/// A node of the demo and the name `up` reports it by. The runner kills
/// the process if it is dropped without [`stop`].
struct NodeProc {
    name: String,
    node: Node,
}

/// SIGTERM, then up to 10 s for a clean exit before SIGKILL.
fn stop(n: NodeProc) {
    let NodeProc { name, mut node } = n;
    let addr = node.addr().to_string();
    // The runner's process control blocks; keep it off the async workers.
    match tokio::task::block_in_place(|| node.stop(Duration::from_secs(10))) {
        Stopped::Exited(_) | Stopped::NotRunning => eprintln!("stopped {name} ({addr})"),
        Stopped::Killed => eprintln!("killed {name} ({addr}): it did not stop within 10 s"),
    }
}

fn spawn(
    cluster: &Cluster,
    name: &str,
    data: &Path,
    port: u16,
    extra: &[&str],
) -> anyhow::Result<NodeProc> {
    let node = tokio::task::block_in_place(|| cluster.start_on(data, port, extra));
    let node = node.map_err(|e| match e {
        StartError::Io { source, .. } => anyhow::Error::new(source),
        StartError::Spawn { bin, source } => anyhow::Error::new(source).context(format!(
            "cannot start {} (build it with `cargo build`)",
            bin.display()
        )),
        StartError::Exited { stderr, .. } => anyhow!(
            "{name} exited at start: {}",
            stderr.lines().last().unwrap_or("no output")
        ),
        StartError::Timeout { after, .. } => anyhow!(
            "{name} did not report its address within {} s",
            after.as_secs()
        ),
    })?;
    Ok(NodeProc {
        name: name.to_string(),
        node,
    })
}

pub async fn run(out: &Out, a: Args) -> anyhow::Result<()> {
    if a.fresh && a.dir.exists() {
        std::fs::remove_dir_all(&a.dir)
            .with_context(|| format!("cannot wipe {}", a.dir.display()))?;
    }
    std::fs::create_dir_all(&a.dir)?;
    let insecure = crate::client::insecure();
    let mut cluster = Cluster::new(find_node_binary(a.sms_node.as_deref()).path)
        .start_timeout(Duration::from_secs(15));
    if insecure {
        cluster = cluster.env("SMS_INSECURE", "1");
    }
    let ports_file = a.dir.join("ports.json");
    let ports: serde_json::Value = std::fs::read(&ports_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(json!({}));
    let port = |k: &str| ports.get(k).and_then(|v| v.as_u64()).unwrap_or(0) as u16;

    // The central site serves /metrics and /ready on loopback (plain HTTP).
    let http_listen = format!("127.0.0.1:{}", port("http"));
    let primary = spawn(
        &cluster,
        &format!("primary {}", a.primary),
        &a.dir.join(&a.primary),
        port("primary"),
        &[
            "--install-primary",
            &a.primary,
            "--http-listen",
            &http_listen,
        ],
    )?;
    let http_url = std::fs::read_to_string(a.dir.join(&a.primary).join("http.addr"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let http_port = http_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(0);
    // Secure by default: the central site wrote its first administrator's
    // certificate; keep a copy where the controller looks by default, and
    // get the secondary's node a join token from the primary.
    let mut token = None;
    if !insecure {
        let admin_dir = a.dir.join("admin");
        if let Err(e) = copy_admin(&a.dir.join(&a.primary).join(ADMIN_SUBDIR), &admin_dir)
            .and_then(|_| crate::client::use_admin_dir(&admin_dir))
        {
            stop(primary);
            return Err(e);
        }
        match join_token(primary.node.addr(), &a.secondary).await {
            Ok(t) => token = Some(t),
            Err(e) => {
                stop(primary);
                return Err(e);
            }
        }
    }
    let join: Vec<&str> = match &token {
        Some(t) => vec!["--join-token", t],
        None => vec![],
    };
    let secondary = match spawn(
        &cluster,
        &format!("node for {}", a.secondary),
        &a.dir.join(&a.secondary),
        port("secondary"),
        &join,
    ) {
        Ok(s) => s,
        Err(e) => {
            stop(primary);
            return Err(e);
        }
    };
    std::fs::write(
        &ports_file,
        serde_json::to_vec_pretty(
            &json!({"primary": primary.node.port(), "secondary": secondary.node.port(), "http": http_port}),
        )?,
    )?;
    let me = invoked_as(std::env::args_os().next());
    if !out.json {
        println!("central primary {} on {}", a.primary, primary.node.addr());
        println!("bare node for {} on {}", a.secondary, secondary.node.addr());
        if !http_url.is_empty() {
            println!("metrics of {} at {http_url}/metrics", a.primary);
            println!(
                "web console of {} at {http_url}/console/ (reading is open on loopback; \
                 for actions sign in with the link `{me} console-url` prints)",
                a.primary
            );
        }
    }
    // A signal while the hierarchy is built stops the nodes too.
    let result = tokio::select! {
        r = build(out, &a, primary.node.addr(), secondary.node.addr()) => r,
        s = stop_signal() => Err(anyhow!("{s} while the hierarchy was being built: stopped both nodes")),
    };
    if result.is_ok() && !a.once {
        if !out.json {
            if insecure {
                println!(
                    "\nTry:  export SMS_NODE={} SMS_INSECURE=1",
                    primary.node.addr()
                );
            } else {
                println!(
                    "\nTry:  export SMS_NODE={} SMS_TLS_DIR={}",
                    primary.node.addr(),
                    a.dir.join("admin").display()
                );
            }
            println!(
                "      {me} sites; {me} status-messages --site {}",
                a.secondary
            );
            println!("      {me} --node {} status", secondary.node.addr());
            if !http_url.is_empty() {
                println!("      {me} console-url   # sign in to the web console");
            }
            println!(
                "Press Ctrl-C (or send SIGTERM) to stop both nodes (data stays in {}).",
                a.dir.display()
            );
        }
        let signal = stop_signal().await;
        if !out.json {
            eprintln!("{signal}: stopping both nodes");
        }
    }
    stop(secondary);
    stop(primary);
    result
}

/// How to run this controller again from the same directory, for the
/// hints: the path it was started by when that has a directory in it
/// (`./target/release/controller`, as the README's first command runs it,
/// is not on PATH), else `controller` (it was found on PATH).
fn invoked_as(argv0: Option<std::ffi::OsString>) -> String {
    let Some(a) = argv0.map(|a| a.to_string_lossy().into_owned()) else {
        return "controller".into();
    };
    if !a.contains('/') {
        return "controller".into();
    }
    if a.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        a
    } else {
        // Quoted for a POSIX shell, so a path with spaces still pastes.
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// Waits for Ctrl-C or SIGTERM (a service manager, `kill`, `timeout`):
/// either stops the nodes the same way. Returns which one came.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "Ctrl-C"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
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

/// Where a central site writes its first administrator's certificate.
const ADMIN_SUBDIR: &str = "admin";

/// Copies the central site's administrator files to `to` (once).
fn copy_admin(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for f in ["ca.pem", "admin.pem", "admin.key"] {
        let src = from.join(f);
        let dst = to.join(f);
        if dst.exists() {
            continue;
        }
        std::fs::copy(&src, &dst).with_context(|| {
            format!(
                "cannot copy the administrator certificate {}",
                src.display()
            )
        })?;
    }
    Ok(())
}

/// A join token for `code` from the primary at `primary` (one hour).
async fn join_token(primary: &str, code: &str) -> anyhow::Result<String> {
    let mut c = admin(primary).await?;
    let r = c
        .create_token(pb::CreateTokenRequest {
            label: code.to_string(),
            role: "secondary".into(),
            ttl_secs: 0,
        })
        .await
        .map_err(|e| status_err("token create", e))?
        .into_inner();
    Ok(r.token)
}

#[cfg(test)]
mod tests {
    use super::invoked_as;

    #[test]
    fn the_hint_runs_the_controller_as_it_was_started() {
        assert_eq!(
            invoked_as(Some("./target/release/controller".into())),
            "./target/release/controller"
        );
        assert_eq!(invoked_as(Some("controller".into())), "controller");
        assert_eq!(invoked_as(None), "controller");
        assert_eq!(
            invoked_as(Some("/opt/my tools/controller".into())),
            "'/opt/my tools/controller'"
        );
    }
}
