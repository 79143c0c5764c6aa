//! `sms-node`: runs one site server, secondary site or bare node.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sms_server::{Connector, Node, NodeConfig};
use sms_types::SiteCode;

/// One node of an SMS-style site hierarchy. Its role and site come from the
/// store in --data; an empty data dir makes a bare node that waits for a
/// parent to install a site on it.
#[derive(Parser, Debug)]
#[command(
    name = "sms-node",
    version = sms_build_info::LONG_VERSION,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Data directory (sled store, logs, node.addr).
    #[arg(long, env = "SMS_DATA")]
    data: Option<PathBuf>,
    /// Address to listen on; port 0 lets the OS choose (the bound address is
    /// printed and written to DIR/node.addr).
    #[arg(long, env = "SMS_LISTEN", default_value = "127.0.0.1:0")]
    listen: String,
    /// Address other nodes should use to reach this one (default: the bound address).
    #[arg(long, env = "SMS_ADVERTISE")]
    advertise: Option<String>,
    /// Install the central primary site with this site code on first start.
    #[arg(long, value_name = "CODE", env = "SMS_INSTALL_PRIMARY")]
    install_primary: Option<SiteCode>,
    /// Site name for --install-primary.
    #[arg(long, requires = "install_primary", env = "SMS_SITE_NAME")]
    site_name: Option<String>,
    /// With --install-primary: attach the new primary below this primary site...
    #[arg(long, value_name = "CODE", requires_all = ["install_primary", "parent"], env = "SMS_PARENT_SITE")]
    parent_site: Option<SiteCode>,
    /// ...whose site server is at HOST:PORT.
    #[arg(
        long,
        value_name = "HOST:PORT",
        requires = "parent_site",
        env = "SMS_PARENT"
    )]
    parent: Option<String>,
    /// Days a file package received at this site is kept (counted from its
    /// arrival, by this site's clock).
    #[arg(long, env = "SMS_PACKAGE_KEEP_DAYS", default_value_t = 30)]
    package_keep_days: u64,
    /// Most MiB of received packages kept; over it the oldest go first (a
    /// package is always kept at least ten minutes).
    #[arg(long, env = "SMS_PACKAGE_MAX_MIB", default_value_t = 10240)]
    package_max_mib: u64,
    /// Make this node a member server of a domain.
    #[arg(long, env = "SMS_DOMAIN", value_name = "NAME")]
    domain: Option<String>,
    /// Seconds shutdown waits for components to stop.
    #[arg(long, default_value_t = 5)]
    shutdown_grace_secs: u64,
    /// Liveness of every connection: a PING after this many idle seconds,
    /// and the connection is dropped if it is not answered within as many
    /// again (a silent link is noticed within twice this). The default for
    /// links whose address sets no keepalive (`controller set-address
    /// --keepalive-secs`); the address's own value wins for its link.
    #[arg(long, env = "SMS_KEEPALIVE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    keepalive_secs: u64,
    /// Join the hierarchy with this token (made at the parent with
    /// `controller token create`): the node gets its certificate from the
    /// token's issuer. Needed once, by a node that has no certificate yet.
    #[arg(
        long,
        env = "SMS_JOIN_TOKEN",
        value_name = "TOKEN",
        conflicts_with = "join_token_file"
    )]
    join_token: Option<String>,
    /// Read the join token from this file (for containers and secrets).
    #[arg(long, env = "SMS_JOIN_TOKEN_FILE", value_name = "FILE")]
    join_token_file: Option<PathBuf>,
    /// With --install-primary and no parent: use this CA certificate (PEM,
    /// self-signed) as the hierarchy's root instead of creating one...
    #[arg(long, value_name = "FILE", requires_all = ["ca_key", "install_primary"], env = "SMS_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// ...with this PKCS#8 private key (PEM).
    #[arg(long, value_name = "FILE", requires = "ca_cert", env = "SMS_CA_KEY")]
    ca_key: Option<PathBuf>,
    /// With --install-primary and no parent: write the first administrator's
    /// certificate here instead of DIR/admin (a volume of its own in a
    /// container, so the key is not in the data volume).
    #[arg(long, value_name = "DIR", env = "SMS_ADMIN_DIR")]
    admin_dir: Option<PathBuf>,
    /// How long the certificates this node issues (as the central site or a
    /// primary) last, e.g. `90d` or `1h`; holders renew them on their own at
    /// two thirds of that. Default 397 days for site and member servers and
    /// 5 years for a child primary's authority; at least 30 s (short lives
    /// are for trying renewal out). A certificate never outlives its
    /// issuer's.
    #[arg(long, value_name = "DURATION", env = "SMS_CERT_LIFETIME", value_parser = parse_lifetime)]
    cert_lifetime: Option<Duration>,
    /// Connections the node keeps open at once; more are closed at once
    /// and counted (`controller status`). Lowered to three quarters of the
    /// process's file descriptor limit if that is smaller.
    #[arg(long, env = "SMS_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(16..=1_000_000))]
    max_connections: u64,
    /// Connections open at once from one address (a flood from one host
    /// cannot take the descriptors the links need).
    #[arg(long, env = "SMS_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections_per_address: u64,
    /// Calls one connection may make per second (twice that in a burst);
    /// more are answered RESOURCE_EXHAUSTED and counted.
    #[arg(long, env = "SMS_MAX_CALLS_PER_SEC", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_calls_per_sec: u64,
    /// Data volumes a management point may be installed on (directories,
    /// comma separated); the Site Component Manager picks the one on a
    /// supported filesystem with the most free space [default: the data
    /// dir].
    #[arg(
        long,
        env = "SMS_MP_VOLUMES",
        value_delimiter = ',',
        value_name = "DIR,..."
    )]
    mp_volumes: Vec<PathBuf>,
    /// A component log (DIR/logs/NAME.log) is rotated to NAME.log.1 before
    /// it grows past this size (e.g. 16MiB, 512KiB; at least 1KiB).
    #[arg(long, env = "SMS_LOG_MAX_SIZE", value_name = "SIZE", default_value = "16MiB", value_parser = parse_log_size)]
    log_max_size: u64,
    /// Rotated files kept per component log (NAME.log.1 is the newest, the
    /// oldest beyond this is deleted); 0 keeps no history.
    #[arg(long, env = "SMS_LOG_KEEP", default_value_t = 5, value_parser = clap::value_parser!(u16).range(0..=1000))]
    log_keep: u16,
    /// Format of the component log files: text, or json (one object a line:
    /// timestamp, level, fields, target). stderr stays text.
    #[arg(long, env = "SMS_LOG_FORMAT", value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Serve `/metrics` (Prometheus text format), `/ready` and the web
    /// console (`/console/`) over HTTP on this address; port 0 lets the OS
    /// choose (the URL is printed and written to DIR/http.addr). Plain HTTP
    /// on a loopback address (or with --insecure), HTTPS with the node's
    /// certificate on any other; off loopback the console shows nothing
    /// without a sign-in link (`controller console-url`). Off when not
    /// given.
    #[arg(long, value_name = "HOST:PORT", env = "SMS_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// A site below this one that has not reported here (no CT2, no status
    /// message) for this many of its polling intervals is shown Stale, with
    /// status message 3120 (3121 when it reports again).
    #[arg(long, env = "SMS_STALE_AFTER_INTERVALS", default_value_t = sms_server::DEFAULT_STALE_AFTER_INTERVALS, value_parser = clap::value_parser!(u32).range(1..=1000))]
    stale_after_intervals: u32,
    /// Plaintext and unauthenticated connections, for comparison
    /// benchmarks and tests on loopback. Never on a network you do not own.
    #[arg(long, env = "SMS_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
    insecure: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ask a node's gRPC health service whether it is serving (exit 0 if so).
    Health {
        /// Node address.
        #[arg(long, default_value = "127.0.0.1:8500", env = "SMS_HEALTH_ADDR")]
        addr: String,
        /// The node runs with --insecure (plaintext).
        #[arg(long, env = "SMS_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
        insecure: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let ctx = node.ctx.clone();
    let restarting = tokio::select! {
        _ = wait_for_signal() => false,
        _ = ctx.restart_requested() => true,
    };
    drop(ctx);
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

/// `--cert-lifetime`: a human duration between 30 s and 10 years.
fn parse_log_size(s: &str) -> Result<u64, String> {
    let n = sms_server::logging::parse_size(s)?;
    if n < 1024 {
        return Err(format!(
            "{s} is below 1KiB: a log file must hold a few lines"
        ));
    }
    Ok(n)
}

fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 90d, 12h or 30s: {e}"))?;
    if d < Duration::from_secs(30) || d > Duration::from_secs(10 * 365 * 86_400) {
        return Err(format!(
            "{s} is outside 30s..3650d: a certificate must outlive a few renewal checks and \
             not its root"
        ));
    }
    Ok(d)
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
