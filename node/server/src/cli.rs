//! `sms-node`'s command line, and its configuration file: a flat TOML
//! table whose keys are the long flag names. The file is turned into the
//! flags it stands for, and parsed with them by the same clap command, so a
//! value in the file is checked exactly as the same flag would be.
//!
//! Precedence: a flag on the command line, then its environment variable,
//! then the file, then the built-in default.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser, Subcommand};
use sms_types::SiteCode;

/// The environment variable naming the configuration file (like --config).
pub const CONFIG_ENV: &str = "SMS_CONFIG";

/// Set by a node that restarts itself as a bare node after its site was
/// deleted: the join token in its configuration is used up, so the file's
/// `join-token-file` is not applied again.
pub const RESTARTED_BARE_ENV: &str = "SMS_RESTARTED_BARE";

/// One node of an SMS-style site hierarchy. Its role and site come from the
/// store in --data; an empty data dir makes a bare node that waits for a
/// parent to install a site on it.
#[derive(Parser, Debug)]
#[command(
    name = "sms-node",
    version = sms_build_info::LONG_VERSION,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Read settings from this TOML file: its keys are these long flag
    /// names (`data = "/var/lib/sms"`, `http-listen = "0.0.0.0:9500"`,
    /// a list for --mp-volumes, true for --insecure). A flag on the
    /// command line wins over its environment variable, which wins over
    /// the file, which wins over the default.
    #[arg(long, value_name = "FILE", env = CONFIG_ENV)]
    pub config: Option<PathBuf>,
    /// Data directory (sled store, logs, node.addr).
    #[arg(long, env = "SMS_DATA")]
    pub data: Option<PathBuf>,
    /// Address to listen on; port 0 lets the OS choose (the bound address is
    /// printed and written to DIR/node.addr).
    #[arg(long, env = "SMS_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Address other nodes should use to reach this one (default: the bound address).
    #[arg(long, env = "SMS_ADVERTISE")]
    pub advertise: Option<String>,
    /// Install the central primary site with this site code on first start.
    #[arg(long, value_name = "CODE", env = "SMS_INSTALL_PRIMARY")]
    pub install_primary: Option<SiteCode>,
    /// Site name for --install-primary.
    #[arg(long, requires = "install_primary", env = "SMS_SITE_NAME")]
    pub site_name: Option<String>,
    /// With --install-primary: attach the new primary below this primary site...
    #[arg(long, value_name = "CODE", requires_all = ["install_primary", "parent"], env = "SMS_PARENT_SITE")]
    pub parent_site: Option<SiteCode>,
    /// ...whose site server is at HOST:PORT.
    #[arg(
        long,
        value_name = "HOST:PORT",
        requires = "parent_site",
        env = "SMS_PARENT"
    )]
    pub parent: Option<String>,
    /// Days a file package received at this site is kept (counted from its
    /// arrival, by this site's clock).
    #[arg(long, env = "SMS_PACKAGE_KEEP_DAYS", default_value_t = 30)]
    pub package_keep_days: u64,
    /// Most MiB of received packages kept; over it the oldest go first (a
    /// package is always kept at least ten minutes).
    #[arg(long, env = "SMS_PACKAGE_MAX_MIB", default_value_t = 10240)]
    pub package_max_mib: u64,
    /// Make this node a member server of a domain.
    #[arg(long, env = "SMS_DOMAIN", value_name = "NAME")]
    pub domain: Option<String>,
    /// Seconds shutdown waits for components to stop.
    #[arg(long, default_value_t = 5)]
    pub shutdown_grace_secs: u64,
    /// Liveness of every connection: a PING after this many idle seconds,
    /// and the connection is dropped if it is not answered within as many
    /// again (a silent link is noticed within twice this). The default for
    /// links whose address sets no keepalive (`controller set-address
    /// --keepalive-secs`); the address's own value wins for its link.
    #[arg(long, env = "SMS_KEEPALIVE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keepalive_secs: u64,
    /// Join the hierarchy with this token (made at the parent with
    /// `controller token create`): the node gets its certificate from the
    /// token's issuer. Needed once, by a node that has no certificate yet.
    #[arg(
        long,
        env = "SMS_JOIN_TOKEN",
        value_name = "TOKEN",
        conflicts_with = "join_token_file"
    )]
    pub join_token: Option<String>,
    /// Read the join token from this file (for containers and secrets).
    #[arg(long, env = "SMS_JOIN_TOKEN_FILE", value_name = "FILE")]
    pub join_token_file: Option<PathBuf>,
    /// With --install-primary and no parent: use this CA certificate (PEM,
    /// self-signed) as the hierarchy's root instead of creating one...
    #[arg(long, value_name = "FILE", requires_all = ["ca_key", "install_primary"], env = "SMS_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// ...with this PKCS#8 private key (PEM).
    #[arg(long, value_name = "FILE", requires = "ca_cert", env = "SMS_CA_KEY")]
    pub ca_key: Option<PathBuf>,
    /// With --install-primary and no parent: write the first administrator's
    /// certificate here instead of DIR/admin (a volume of its own in a
    /// container, so the key is not in the data volume).
    #[arg(long, value_name = "DIR", env = "SMS_ADMIN_DIR")]
    pub admin_dir: Option<PathBuf>,
    /// How long the certificates this node issues (as the central site or a
    /// primary) last, e.g. `90d` or `1h`; holders renew them on their own at
    /// two thirds of that. Default 397 days for site and member servers and
    /// 5 years for a child primary's authority; at least 30 s (short lives
    /// are for trying renewal out). A certificate never outlives its
    /// issuer's.
    #[arg(long, value_name = "DURATION", env = "SMS_CERT_LIFETIME", value_parser = parse_lifetime)]
    pub cert_lifetime: Option<Duration>,
    /// Connections the node keeps open at once; more are closed at once
    /// and counted (`controller status`). Lowered to three quarters of the
    /// process's file descriptor limit if that is smaller.
    #[arg(long, env = "SMS_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(16..=1_000_000))]
    pub max_connections: u64,
    /// Connections open at once from one address (a flood from one host
    /// cannot take the descriptors the links need).
    #[arg(long, env = "SMS_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections_per_address: u64,
    /// Calls one connection may make per second (twice that in a burst);
    /// more are answered RESOURCE_EXHAUSTED and counted.
    #[arg(long, env = "SMS_MAX_CALLS_PER_SEC", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_calls_per_sec: u64,
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
    pub mp_volumes: Vec<PathBuf>,
    /// A component log (DIR/logs/NAME.log) is rotated to NAME.log.1 before
    /// it grows past this size (e.g. 16MiB, 512KiB; at least 1KiB).
    #[arg(long, env = "SMS_LOG_MAX_SIZE", value_name = "SIZE", default_value = "16MiB", value_parser = parse_log_size)]
    pub log_max_size: u64,
    /// Rotated files kept per component log (NAME.log.1 is the newest, the
    /// oldest beyond this is deleted); 0 keeps no history.
    #[arg(long, env = "SMS_LOG_KEEP", default_value_t = 5, value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub log_keep: u16,
    /// Format of the component log files: text, or json (one object a line:
    /// timestamp, level, fields, target). stderr stays text.
    #[arg(long, env = "SMS_LOG_FORMAT", value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Serve `/metrics` (Prometheus text format), `/ready` and the web
    /// console (`/console/`) over HTTP on this address; port 0 lets the OS
    /// choose (the URL is printed and written to DIR/http.addr). Plain HTTP
    /// on a loopback address (or with --insecure), HTTPS with the node's
    /// certificate on any other; off loopback the console shows nothing
    /// without a sign-in link (`controller console-url`). Off when not
    /// given.
    #[arg(long, value_name = "HOST:PORT", env = "SMS_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// A site below this one that has not reported here (no CT2, no status
    /// message) for this many of its polling intervals is shown Stale, with
    /// status message 3120 (3121 when it reports again).
    #[arg(long, env = "SMS_STALE_AFTER_INTERVALS", default_value_t = crate::DEFAULT_STALE_AFTER_INTERVALS, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub stale_after_intervals: u32,
    /// Plaintext and unauthenticated connections, for comparison
    /// benchmarks and tests on loopback. Never on a network you do not own.
    #[arg(long, env = "SMS_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
    pub insecure: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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

/// `--log-max-size`: a size of at least 1KiB.
fn parse_log_size(s: &str) -> Result<u64, String> {
    let n = crate::logging::parse_size(s)?;
    if n < 1024 {
        return Err(format!(
            "{s} is below 1KiB: a log file must hold a few lines"
        ));
    }
    Ok(n)
}

/// `--cert-lifetime`: a human duration between 30 s and 10 years.
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

/// Keys a configuration file may not hold, and why (with the fix).
const REFUSED: &[(&str, &str)] = &[
    (
        "config",
        "a configuration file cannot name another; remove it",
    ),
    ("help", "it is not a setting; remove it"),
    ("version", "it is not a setting; remove it"),
    (
        "join-token",
        "a token is a secret: write it to a file of its own and name that with join-token-file",
    ),
];

/// Why the command line was not accepted.
#[derive(Debug)]
pub enum CliError {
    /// clap's own message (also --help and --version, which exit 0).
    Clap(clap::Error),
    /// The configuration file: one line naming the file, the key and the fix.
    Config(String),
}

/// Parses `sms-node`'s command line: `argv` with the settings of the
/// configuration file (`--config FILE`, or `SMS_CONFIG`) that neither a
/// flag nor an environment variable gives.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, CliError> {
    let env = |name: &str| std::env::var_os(name);
    let args = expand(argv, &env).map_err(CliError::Config)?;
    Cli::try_parse_from(args).map_err(CliError::Clap)
}

/// `argv` with the configuration file's settings added as flags (after the
/// program name). `env` reads an environment variable (a parameter so
/// tests need not change the process's environment).
pub fn expand(
    argv: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, String> {
    let cmd = Cli::command();
    // A subcommand (`sms-node health`) takes no configuration file: its
    // flags are its own, and the node's settings are not its business.
    if let Some(first) = argv.get(1).and_then(|a| a.to_str()) {
        if cmd.get_subcommands().any(|s| s.get_name() == first) {
            return Ok(argv);
        }
    }
    let Some(path) = config_path(&argv, env) else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read the configuration file {} ({e}): fix the path given with --config or {CONFIG_ENV}",
            path.display()
        )
    })?;
    let mut skip: Vec<&str> = Vec::new();
    if env(RESTARTED_BARE_ENV).is_some() {
        skip.push("join-token-file");
    }
    let flags = file_flags(&cmd, &path, &text, &skip)?;
    let given = |long: &str| {
        let exact = format!("--{long}");
        let prefix = format!("--{long}=");
        argv.iter()
            .skip(1)
            .take_while(|a| *a != "--")
            .filter_map(|a| a.to_str())
            .any(|a| a == exact || a.starts_with(&prefix))
    };
    let mut out = Vec::with_capacity(argv.len() + flags.len());
    out.extend(argv.iter().take(1).cloned());
    for (long, args) in flags {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .expect("checked by file_flags");
        let by_env = arg
            .get_env()
            .and_then(|name| name.to_str())
            .is_some_and(|name| env(name).is_some());
        if !given(&long) && !by_env {
            out.extend(args);
        }
    }
    out.extend(argv.into_iter().skip(1));
    Ok(out)
}

/// The configuration file's path: `--config FILE`, `--config=FILE`, or
/// `SMS_CONFIG` (non-empty).
fn config_path(argv: &[OsString], env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let mut it = argv.iter().skip(1).take_while(|a| *a != "--");
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else { continue };
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    env(CONFIG_ENV).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The flags a configuration file stands for, by key (in file order is not
/// needed: clap does not care), each as `--key=value` arguments. Refuses
/// unknown keys (naming the nearest flag), keys that are no setting, tables
/// and values of the wrong type.
fn file_flags(
    cmd: &clap::Command,
    path: &Path,
    text: &str,
    skip: &[&str],
) -> Result<Vec<(String, Vec<OsString>)>, String> {
    let file = path.display();
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(1);
        format!(
            "{file}: line {line}: not valid TOML ({}): write one `flag-name = value` a line",
            e.message().trim()
        )
    })?;
    let known: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .collect();
    let mut out = Vec::new();
    for (key, value) in table {
        if skip.contains(&key.as_str()) {
            continue;
        }
        if value.is_table() {
            return Err(format!(
                "{file}: key `{key}` is a table: the file is flat, write `flag-name = value` lines with no [sections]"
            ));
        }
        if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == key) {
            return Err(format!(
                "{file}: key `{key}` is not allowed in a configuration file: {why}"
            ));
        }
        let Some(arg) = known.iter().find(|a| a.get_long() == Some(key.as_str())) else {
            if let Some(sub) = cmd.get_subcommands().find(|s| {
                s.get_name() == key
                    || s.get_arguments()
                        .any(|a| a.get_long() == Some(key.as_str()))
            }) {
                return Err(format!(
                    "{file}: key `{key}` belongs to `sms-node {}`, not to the node's settings: remove it",
                    sub.get_name()
                ));
            }
            let nearest = known
                .iter()
                .filter_map(|a| a.get_long())
                .filter(|l| !REFUSED.iter().any(|(k, _)| k == l))
                .min_by_key(|l| strsim::levenshtein(l, &key))
                .unwrap_or("data");
            return Err(format!(
                "{file}: unknown key `{key}`: did you mean `{nearest}`? (keys are sms-node's long flag names, see sms-node --help)"
            ));
        };
        let flag = format!("--{key}");
        let wrong = |want: &str| {
            format!(
                "{file}: key `{key}` is {}, it must be {want}",
                describe(&value)
            )
        };
        let args: Vec<OsString> = match arg.get_action() {
            ArgAction::SetTrue => match value {
                toml::Value::Boolean(true) => vec![flag.into()],
                toml::Value::Boolean(false) => vec![],
                _ => return Err(wrong("true or false")),
            },
            ArgAction::Append => match &value {
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| scalar(v).map(|s| format!("{flag}={s}").into()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| wrong("a list of strings"))?,
                v => vec![format!(
                    "{flag}={}",
                    scalar(v).ok_or_else(|| wrong("a list of strings"))?
                )
                .into()],
            },
            _ => match scalar(&value) {
                Some(s) => vec![format!("{flag}={s}").into()],
                None => return Err(wrong("a string or a number")),
            },
        };
        // The value alone, through the flag's own parser: a bad value is
        // reported with the file and key (relations between flags, such
        // as --site-name needing --install-primary, are checked later).
        let mut alone: Vec<OsString> = vec!["sms-node".into()];
        alone.extend(args.iter().cloned());
        if let Err(e) = cmd.clone().try_get_matches_from(alone) {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::InvalidValue | ErrorKind::ValueValidation
            ) {
                let msg = e.to_string();
                let first = msg
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                return Err(format!("{file}: key `{key}`: {first}: fix the value"));
            }
        }
        out.push((key, args));
    }
    Ok(out)
}

/// A string or integer as the flag's text; None for other TOML types.
fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn describe(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "a number",
        toml::Value::Float(_) => "a fraction",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table (the file is flat: no [sections])",
    }
}

/// Checks a configuration file the way `sms-node --config` reads it (for
/// tests of shipped files): every key known and of the right type, and the
/// whole accepted by the command line's own checks.
pub fn check_file(path: &Path, text: &str) -> Result<RunArgs, String> {
    let cmd = Cli::command();
    let flags = file_flags(&cmd, path, text, &[])?;
    let mut argv: Vec<OsString> = vec!["sms-node".into()];
    argv.extend(flags.into_iter().flat_map(|(_, a)| a));
    Cli::try_parse_from(argv).map(|c| c.run).map_err(|e| {
        format!(
            "{}: {}",
            path.display(),
            e.to_string().lines().next().unwrap_or("")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    fn run_with(argv: &[&str], env: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let env: Vec<(String, OsString)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        expand(argv.iter().map(OsString::from).collect(), &lookup)
            .map(|v| v.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    const FILE: &str = r#"
data = "/var/lib/sms"
listen = "0.0.0.0:8500"
http-listen = "127.0.0.1:9500"
install-primary = "PRI"
log-max-size = "1MiB"
max-connections = 100
mp-volumes = ["/a", "/b"]
insecure = true
"#;

    #[test]
    fn file_values_reach_the_parsed_flags() {
        let (_d, p) = write(FILE);
        let args = run_with(&["sms-node", "--config", p.to_str().unwrap()], &[]).unwrap();
        let cli = Cli::try_parse_from(args).unwrap();
        let r = cli.run;
        assert_eq!(r.data, Some(PathBuf::from("/var/lib/sms")));
        assert_eq!(r.listen, "0.0.0.0:8500");
        assert_eq!(r.http_listen.as_deref(), Some("127.0.0.1:9500"));
        assert_eq!(
            r.install_primary.map(|c| c.to_string()).as_deref(),
            Some("PRI")
        );
        assert_eq!(r.log_max_size, 1024 * 1024);
        assert_eq!(r.max_connections, 100);
        assert_eq!(r.mp_volumes, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(r.insecure);
        // Untouched keys keep their defaults.
        assert_eq!(r.log_keep, 5);
    }

    #[test]
    fn command_line_beats_environment_beats_file() {
        let (_d, p) = write(FILE);
        let args = run_with(
            &[
                "sms-node",
                "--listen=127.0.0.1:1",
                "--max-connections",
                "200",
            ],
            &[
                (CONFIG_ENV, p.to_str().unwrap()),
                ("SMS_HTTP_LISTEN", "127.0.0.1:2"),
                ("SMS_LISTEN", "127.0.0.1:3"),
            ],
        )
        .unwrap();
        // Given on the command line: not taken from the file.
        assert!(!args.iter().any(|a| a == "--listen=0.0.0.0:8500"));
        assert!(!args.iter().any(|a| a == "--max-connections=100"));
        // Given by the environment: not taken from the file (clap reads it).
        assert!(!args.iter().any(|a| a.starts_with("--http-listen")));
        // The rest comes from the file.
        assert!(args.iter().any(|a| a == "--data=/var/lib/sms"));
        let cli = Cli::try_parse_from(&args).unwrap();
        assert_eq!(cli.run.listen, "127.0.0.1:1");
        assert_eq!(cli.run.max_connections, 200);
    }

    #[test]
    fn no_file_leaves_the_command_line_alone() {
        let args = run_with(&["sms-node", "--data", "/x"], &[]).unwrap();
        assert_eq!(args, ["sms-node", "--data", "/x"]);
        // A subcommand ignores SMS_CONFIG, even one that does not exist.
        let args = run_with(
            &["sms-node", "health"],
            &[(CONFIG_ENV, "/nonexistent.toml")],
        )
        .unwrap();
        assert_eq!(args, ["sms-node", "health"]);
    }

    #[test]
    fn bad_files_are_refused_with_the_key_and_the_fix() {
        let cases = [
            (
                "listn = \"x\"\n",
                "unknown key `listn`: did you mean `listen`?",
            ),
            ("addr = \"x\"\n", "key `addr` belongs to `sms-node health`"),
            ("config = \"other.toml\"\n", "key `config` is not allowed"),
            ("join-token = \"SMSJOIN1\"\n", "join-token-file"),
            (
                "insecure = \"yes\"\n",
                "key `insecure` is a string, it must be true or false",
            ),
            (
                "max-connections = 1.5\n",
                "key `max-connections` is a fraction",
            ),
            (
                "mp-volumes = [1.0]\n",
                "key `mp-volumes` is a list, it must be a list of strings",
            ),
            ("[node]\ndata = \"/x\"\n", "key `node` is a table"),
            ("data = \n", "line 1: not valid TOML"),
        ];
        for (text, want) in cases {
            let (_d, p) = write(text);
            let err = run_with(&["sms-node", "--config", p.to_str().unwrap()], &[]).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains(p.to_str().unwrap()), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let err = run_with(&["sms-node", "--config=/nonexistent/node.toml"], &[]).unwrap_err();
        assert!(
            err.contains("cannot read the configuration file /nonexistent/node.toml"),
            "{err}"
        );
    }

    #[test]
    fn values_are_checked_like_flags() {
        let (_d, p) = write("log-max-size = \"12\"\n");
        let err = run_with(&["sms-node", "--config", p.to_str().unwrap()], &[]).unwrap_err();
        assert!(err.contains("key `log-max-size`"), "{err}");
        assert!(err.contains("below 1KiB"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
        assert!(check_file(&p, "log-max-size = \"12\"\n").is_err());
        assert!(check_file(&p, "data = \"/d\"\nlog-keep = 2\n").is_ok());
    }

    #[test]
    fn a_restarted_bare_node_skips_the_used_token_file() {
        let (_d, p) = write("join-token-file = \"/tokens/t\"\n");
        let path = p.to_str().unwrap();
        let args = run_with(&["sms-node", "--config", path], &[]).unwrap();
        assert!(args.iter().any(|a| a == "--join-token-file=/tokens/t"));
        let args = run_with(
            &["sms-node", "--config", path],
            &[(RESTARTED_BARE_ENV, "1")],
        )
        .unwrap();
        assert!(!args.iter().any(|a| a.starts_with("--join-token-file")));
    }
}
