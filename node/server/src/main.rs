//! `sms-node`: runs one site server, secondary site or bare node.

use std::process::ExitCode;
use std::time::Duration;

use sms_server::cli::{Command, RunArgs};
use sms_server::{Connector, Node, NodeConfig};

fn main() -> ExitCode {
    let cli = match sms_server::cli::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(sms_server::cli::CliError::Clap(e)) => e.exit(),
        Err(sms_server::cli::CliError::Config(msg)) => {
            eprintln!("sms-node: {msg}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sms-node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Health { addr, insecure }) => rt.block_on(health(addr, insecure)),
        None => rt.block_on(run(cli.run)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sms-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn health(addr: String, insecure: bool) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let connector = Connector::default();
    // The health probe sends no credentials and reads only a flag, so it
    // does not verify the node's certificate (it may not have the root).
    let tls = if insecure {
        None
    } else {
        Some(std::sync::Arc::new(sms_trust::tls::client_config(
            None,
            None,
            sms_trust::tls::Expect::Unverified,
        )?))
    };
    let channel = connector
        .connect_with(&addr, tls)
        .await
        .map_err(anyhow::Error::msg)?;
    let mut c = tonic_health::pb::health_client::HealthClient::new(channel);
    let r = tokio::time::timeout(
        connector.request_timeout,
        c.check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .map_err(|_| anyhow::anyhow!("{addr}: no answer within {:?}", connector.request_timeout))??
    .into_inner();
    if r.status == ServingStatus::Serving as i32 {
        println!("{addr}: serving");
        Ok(())
    } else {
        anyhow::bail!("{addr}: not serving (status {})", r.status)
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let data = args
        .data
        .ok_or_else(|| anyhow::anyhow!("--data DIR is required (or set SMS_DATA)"))?;
    std::fs::create_dir_all(&data)?;
    let log_files = sms_server::logging::LogFiles {
        max_bytes: args.log_max_size,
        keep: args.log_keep as usize,
        json: args.log_format == "json",
    };
    let _logs = sms_server::logging::init(&data.join("logs"), &log_files)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let join_token = match (&args.join_token, &args.join_token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(f)) => Some(read_token_file(f, &data).await?),
        (None, None) => None,
    };
    let cfg = NodeConfig {
        data_dir: data,
        advertise: args.advertise,
        install_primary: args.install_primary,
        site_name: args.site_name,
        parent_site: args.parent_site,
        parent: args.parent,
        domain: args.domain,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        insecure: args.insecure,
        join_token,
        ca_files: args.ca_cert.clone().zip(args.ca_key.clone()),
        admin_dir: args.admin_dir.clone(),
        cert_lifetime: args.cert_lifetime,
        connection_limits: connection_limits(
            args.max_connections,
            args.max_connections_per_address,
        ),
        call_rate: sms_server::rpc::rate::RateLimit {
            per_sec: args.max_calls_per_sec as f64,
            burst: (args.max_calls_per_sec * 2) as f64,
        },
        mp_volumes: args.mp_volumes.clone(),
        http_listen: args.http_listen,
        stale_after_intervals: args.stale_after_intervals,
        package_retention: sms_types::PackageRetention {
            keep: Duration::from_secs(args.package_keep_days.saturating_mul(24 * 3600)),
            max_bytes: args.package_max_mib.saturating_mul(1024 * 1024),
            ..Default::default()
        },
    };
    let keepalive = Duration::from_secs(args.keepalive_secs);
    let connector = Connector {
        keepalive_interval: keepalive,
        keepalive_timeout: keepalive,
        ..Connector::default()
    };
    let node = Node::start(cfg, listener, connector).await?;
    let who = match node.ctx.identity() {
        Some(id) => format!("site {} ({})", id.site_code, id.kind.as_str()),
        None => "bare node".to_string(),
    };
    println!("sms-node listening on {} as {who}", node.local_addr);
    if let Some(url) = &node.http_url {
        println!("sms-node serving {url}/metrics and {url}/ready");
        println!("sms-node web console at {url}/console/");
    }
    tracing::info!(addr = %node.local_addr, advertise = %node.ctx.advertise, "listening as {who}");
    // Bound, node.addr written, serving: systemd may start what follows it.
    sms_server::service_manager::ready(
        &node.ctx,
        &format!("listening on {} as {who}", node.local_addr),
    );
    let ctx = node.ctx.clone();
    let restarting = tokio::select! {
        _ = wait_for_signal() => false,
        _ = ctx.restart_requested() => true,
    };
    drop(ctx);
    if restarting {
        sms_server::service_manager::reloading();
    } else {
        sms_server::service_manager::stopping();
    }
    let bound = node.local_addr;
    node.shutdown().await?;
    if restarting {
        tracing::info!("restarting as a bare node on {bound}");
        drop(_logs);
        return Err(reexec(bound));
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Replaces this process with a fresh `sms-node` on the same address (same
/// pid, so service managers and containers keep tracking it). Only returns
/// on failure.
#[cfg(unix)]
fn reexec(bound: std::net::SocketAddr) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        // The restarted bare node gets a new address flag, and no join
        // token: the old one is used up, and a deleted site's node must be
        // given a new one to join again.
        if s == "--listen" || s == "--join-token" || s == "--join-token-file" {
            it.next();
        } else if !(s.starts_with("--listen=") || s.starts_with("--join-token")) {
            args.push(a);
        }
    }
    args.push("--listen".into());
    args.push(bound.to_string().into());
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return anyhow::anyhow!("cannot find this executable to restart: {e}"),
    };
    let err = std::process::Command::new(exe)
        .args(args)
        .env_remove("SMS_JOIN_TOKEN")
        .env_remove("SMS_JOIN_TOKEN_FILE")
        .env(sms_server::cli::RESTARTED_BARE_ENV, "1")
        .exec();
    anyhow::anyhow!("cannot restart: {err}")
}

#[cfg(not(unix))]
fn reexec(_: std::net::SocketAddr) -> anyhow::Error {
    anyhow::anyhow!("the site was deleted; start sms-node again to run as a bare node")
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Reads a join token file. A node that holds no certificate yet waits up
/// to two minutes for the file to appear (containers: a one-shot job writes
/// the tokens once the primary is up); one that already joined does not
/// need it.
async fn read_token_file(f: &std::path::Path, data: &std::path::Path) -> anyhow::Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut said = false;
    loop {
        match std::fs::read_to_string(f) {
            Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
            Ok(_) | Err(_) if data.join("db").exists() => {
                // Already joined (or at least started once): the store
                // decides; an absent token is only an error for a new node.
                return Ok(std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .trim()
                    .to_string());
            }
            Err(e) if std::time::Instant::now() >= deadline => {
                anyhow::bail!(
                    "cannot read the join token file {} after waiting 120 s: {e}",
                    f.display()
                )
            }
            _ => {
                if !said {
                    eprintln!("sms-node: waiting for the join token file {}", f.display());
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The connection limits, within what the process may open: the soft file
/// descriptor limit is raised to the hard one, and the total kept to three
/// quarters of it (the rest is for the store, the logs and outgoing links).
fn connection_limits(total: u64, per_address: u64) -> sms_server::security::Limits {
    let mut fds = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    let usable = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut fds) == 0 {
            if fds.rlim_cur < fds.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: fds.rlim_max,
                    rlim_max: fds.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    fds.rlim_cur = fds.rlim_max;
                }
            }
            Some(fds.rlim_cur * 3 / 4)
        } else {
            None
        }
    };
    let total = match usable {
        Some(u) if u < total => {
            tracing::warn!(
                "--max-connections {total} is above three quarters of the file descriptor limit; \
                 using {u}"
            );
            u
        }
        _ => total,
    };
    sms_server::security::Limits {
        total: total as usize,
        per_address: per_address.min(total) as usize,
    }
}
