//! One `sms-node` process: start, stop, kill -9, restart, logs. Plain
//! blocking code: the tests that use it are synchronous, and the async users
//! (the benchmark, `controller up`) only start and stop nodes at the edges.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The file in a node's data dir where it writes the address it bound.
pub const ADDR_FILE: &str = "node.addr";
/// The file in a node's data dir that receives the node's stderr.
pub const STDERR_FILE: &str = "stderr.log";

/// How long a restart waits for the old process's port to be free again.
const PORT_FREE_WAIT: Duration = Duration::from_secs(10);
/// How often start and stop look at the process.
const POLL: Duration = Duration::from_millis(5);

/// The address a `node.addr` file holds, once it is complete. The node
/// writes `HOST:PORT\n` and renames it into place; the newline check still
/// guards a reader against a half-written file from another writer.
pub fn parse_addr_file(contents: &str) -> Option<SocketAddr> {
    contents.strip_suffix('\n')?.trim().parse().ok()
}

/// What every node of one cluster shares: the binary, extra environment,
/// and how long a start may take. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cluster {
    bin: PathBuf,
    env: Vec<(OsString, OsString)>,
    start_timeout: Duration,
}

impl Cluster {
    /// Nodes run `bin` with the caller's environment and 20 s to start.
    pub fn new(bin: impl Into<PathBuf>) -> Cluster {
        Cluster {
            bin: bin.into(),
            env: Vec::new(),
            start_timeout: Duration::from_secs(20),
        }
    }

    /// Sets an environment variable for every node (e.g. `RUST_LOG`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Cluster {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long a node may take to report its address.
    pub fn start_timeout(mut self, t: Duration) -> Cluster {
        self.start_timeout = t;
        self
    }

    /// Whether nodes run with SMS_INSECURE (plaintext).
    pub fn insecure(&self) -> bool {
        self.env.iter().any(|(k, v)| {
            k == "SMS_INSECURE" && !matches!(v.to_str(), Some("" | "0" | "false" | "no" | "off"))
        })
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Starts a node on an OS-chosen loopback port with data dir `data`.
    pub fn start(&self, data: &Path, args: &[&str]) -> Result<Node, StartError> {
        self.start_on(data, 0, args)
    }

    /// Starts a node on `127.0.0.1:port` (0: OS-chosen) with data dir `data`.
    /// Stderr goes to `<data>/stderr.log`, truncated; stdout is discarded.
    pub fn start_on(&self, data: &Path, port: u16, args: &[&str]) -> Result<Node, StartError> {
        let mut node = Node {
            cluster: self.clone(),
            data: data.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
            addr: String::new(),
            port: 0,
        };
        node.launch(port, false)?;
        Ok(node)
    }
}

/// Why a node did not come up.
#[derive(Debug)]
pub enum StartError {
    /// The data dir or stderr file could not be set up.
    Io {
        data: PathBuf,
        source: std::io::Error,
    },
    /// The binary could not be executed (missing, not executable).
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    /// The process ended before it reported an address; `stderr` is its log.
    Exited {
        data: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
    /// No address within the cluster's start timeout; the process is killed.
    Timeout { data: PathBuf, after: Duration },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Io { data, source } => {
                write!(f, "cannot prepare {}: {source}", data.display())
            }
            StartError::Spawn { bin, source } => {
                write!(f, "cannot start {}: {source}", bin.display())
            }
            StartError::Exited { data, status, .. } => {
                write!(
                    f,
                    "sms-node in {} exited with {status} at start",
                    data.display()
                )
            }
            StartError::Timeout { data, after } => write!(
                f,
                "sms-node in {} did not report its address within {} s",
                data.display(),
                after.as_secs()
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Io { source, .. } | StartError::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// How [`Node::stop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running (already stopped or killed).
    NotRunning,
    /// It exited on SIGTERM within the grace period.
    Exited(ExitStatus),
    /// It ignored SIGTERM for the whole grace period and was killed.
    Killed,
}

/// One `sms-node` process with its own data dir. Killed (`kill -9`) when
/// dropped, so a failing test or an early `?` never leaves nodes behind.
#[derive(Debug)]
pub struct Node {
    cluster: Cluster,
    data: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    addr: String,
    port: u16,
}

impl Node {
    /// Spawns the process and waits for the address it reports in
    /// `<data>/node.addr` (removed first, so a stale one is never read).
    /// The stderr log is kept across restarts and truncated on a new start.
    fn launch(&mut self, port: u16, append_stderr: bool) -> Result<(), StartError> {
        let io = |source| StartError::Io {
            data: self.data.clone(),
            source,
        };
        std::fs::create_dir_all(&self.data).map_err(io)?;
        let addr_file = self.data.join(ADDR_FILE);
        let _ = std::fs::remove_file(&addr_file);
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append_stderr)
            .truncate(!append_stderr)
            .open(self.data.join(STDERR_FILE))
            .map_err(io)?;
        let mut child = Command::new(&self.cluster.bin)
            .arg("--data")
            .arg(&self.data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(&self.args)
            .envs(self.cluster.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| StartError::Spawn {
                bin: self.cluster.bin.clone(),
                source,
            })?;
        let deadline = Instant::now() + self.cluster.start_timeout;
        loop {
            if let Some(addr) = std::fs::read_to_string(&addr_file)
                .ok()
                .and_then(|s| parse_addr_file(&s))
            {
                self.addr = addr.to_string();
                self.port = addr.port();
                self.child = Some(child);
                if !self.cluster.insecure() {
                    crate::trust::learn(&self.data, &self.args, &self.addr);
                }
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(StartError::Exited {
                    data: self.data.clone(),
                    status,
                    stderr: self.stderr_log(),
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::Timeout {
                    data: self.data.clone(),
                    after: self.cluster.start_timeout,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The address it listens on, `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: no chance to flush or clean up. Waits for the process to go.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits up to `grace` for a clean exit; kills it after.
    pub fn stop(&mut self, grace: Duration) -> Stopped {
        let Some(mut c) = self.child.take() else {
            return Stopped::NotRunning;
        };
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return Stopped::Exited(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return Stopped::Killed;
                }
            }
        }
    }

    /// Starts the stopped node again on the same port, data dir and
    /// arguments, so its peers find it where they left it.
    ///
    /// # Panics
    /// If it is still running: stop or kill it first.
    pub fn restart(&mut self) -> Result<(), StartError> {
        self.restart_on(self.port)
    }

    /// Starts the stopped node again on `port` (0: OS-chosen), waiting up to
    /// 10 s for a fixed port to be released by the old process.
    ///
    /// # Panics
    /// If it is still running: stop or kill it first.
    pub fn restart_on(&mut self, port: u16) -> Result<(), StartError> {
        assert!(self.child.is_none(), "stop or kill the node first");
        if port != 0 {
            let deadline = Instant::now() + PORT_FREE_WAIT;
            while TcpListener::bind(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.launch(port, true)
    }

    /// The node's `<data>/logs/<name>.log` (e.g. `sender`), empty if absent.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// What the node wrote to stderr, empty if nothing.
    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(self.data.join(STDERR_FILE)).unwrap_or_default()
    }

    /// An admin gRPC client for this node.
    pub async fn admin(&self) -> anyhow::Result<crate::Admin> {
        crate::admin(&self.addr).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_file_counts_only_when_complete() {
        assert_eq!(
            parse_addr_file("127.0.0.1:8500\n"),
            Some("127.0.0.1:8500".parse().unwrap())
        );
        assert_eq!(parse_addr_file("127.0.0.1:8500"), None, "no newline yet");
        assert_eq!(parse_addr_file("127.0.0.1:85"), None);
        assert_eq!(parse_addr_file(""), None);
        assert_eq!(parse_addr_file("\n"), None);
        assert_eq!(parse_addr_file("not an address\n"), None);
        assert_eq!(
            parse_addr_file("[::1]:9\n").map(|a| a.port()),
            Some(9),
            "IPv6 too"
        );
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A stand-in node: writes its address like sms-node does (`$2` is the
    /// data dir, `$4` the listen address), then runs `then`.
    fn fake(dir: &Path, then: &str) -> Cluster {
        fake_with(dir, ":", then)
    }

    /// A fake node that runs `before` ahead of reporting its address (so a
    /// signal the test sends once started finds it in place), then `then`.
    fn fake_with(dir: &Path, before: &str, then: &str) -> Cluster {
        let bin = script(
            dir,
            "fake-node",
            &format!(
                "{before}\n\
                 a=$4; [ \"${{a##*:}}\" = 0 ] && a=127.0.0.1:4242\n\
                 echo starting >&2\n\
                 printf '%s\\n' \"$a\" > \"$2/node.addr.tmp\" && mv \"$2/node.addr.tmp\" \"$2/node.addr\"\n\
                 {then}"
            ),
        );
        Cluster::new(bin).start_timeout(Duration::from_secs(5))
    }

    /// Starts through `c`, retrying ETXTBSY: a script just written here can
    /// be briefly "busy" while another test thread forks.
    fn start(c: &Cluster, data: &Path) -> Result<Node, StartError> {
        loop {
            match c.start(data, &[]) {
                Err(StartError::Spawn { source, .. })
                    if source.raw_os_error() == Some(libc::ETXTBSY) =>
                {
                    std::thread::sleep(Duration::from_millis(10))
                }
                r => return r,
            }
        }
    }

    #[test]
    fn start_reads_the_address_and_stop_restart_keep_the_port() {
        let tmp = tempfile::tempdir().unwrap();
        // `exec` so SIGTERM reaches the sleeping process itself.
        let c = fake(tmp.path(), "exec sleep 30");
        let data = tmp.path().join("n");
        let mut n = start(&c, &data).unwrap();
        assert_eq!((n.addr(), n.port()), ("127.0.0.1:4242", 4242));
        assert!(n.pid().is_some());
        assert!(matches!(n.stop(Duration::from_secs(5)), Stopped::Exited(_)));
        assert_eq!(n.stop(Duration::from_secs(5)), Stopped::NotRunning);
        n.restart_on(4343).unwrap();
        assert_eq!(n.addr(), "127.0.0.1:4343");
        n.kill9();
        assert!(n.pid().is_none());
        assert_eq!(
            n.stderr_log(),
            "starting\nstarting\n",
            "kept across restart"
        );
        let n = start(&c, &data).unwrap();
        assert_eq!(n.stderr_log(), "starting\n", "truncated on a new start");
    }

    #[test]
    fn a_node_that_ignores_sigterm_is_killed_after_the_grace() {
        let tmp = tempfile::tempdir().unwrap();
        // The trap is set before the address is reported: a SIGTERM sent
        // as soon as the node is "started" must find it ignored.
        let c = fake_with(tmp.path(), "trap '' TERM", "while :; do sleep 0.05; done");
        let mut n = start(&c, &tmp.path().join("n")).unwrap();
        assert_eq!(n.stop(Duration::from_millis(200)), Stopped::Killed);
    }

    #[test]
    fn start_failures_say_why() {
        let tmp = tempfile::tempdir().unwrap();
        let died = script(tmp.path(), "died", "echo 'no such flag' >&2; exit 3");
        match start(&Cluster::new(died), &tmp.path().join("a")) {
            Err(StartError::Exited { status, stderr, .. }) => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(stderr, "no such flag\n");
            }
            other => panic!("{other:?}"),
        }
        let silent = script(tmp.path(), "silent", "exec sleep 30");
        let c = Cluster::new(silent).start_timeout(Duration::from_millis(200));
        assert!(matches!(
            start(&c, &tmp.path().join("b")),
            Err(StartError::Timeout { .. })
        ));
        let missing = Cluster::new(tmp.path().join("nope"));
        assert!(matches!(
            missing.start(&tmp.path().join("c"), &[]),
            Err(StartError::Spawn { .. })
        ));
    }
}
