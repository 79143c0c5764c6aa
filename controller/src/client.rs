//! Connecting to a node and turning gRPC failures into one-line reasons.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{anyhow, Result};
use sms_proto::v1::admin_client::AdminClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

/// Resolves the node address: `--node`, else `$SMS_NODE`. An address that
/// cannot be one (no port, a URL) is refused here, before any connection,
/// so the operator reads what to type instead of a transport error.
pub fn node_addr(node: &Option<String>) -> Result<String> {
    match node {
        Some(n) if !n.is_empty() => {
            check_host_port(n).map_err(|why| anyhow!("--node/SMS_NODE {n:?} {why}"))?;
            Ok(n.clone())
        }
        _ => Err(anyhow!(
            "no node given: pass --node HOST:PORT or set SMS_NODE"
        )),
    }
}

/// Whether `s` is `HOST:PORT` (`[V6]:PORT` for an IPv6 address); the
/// error says what is wrong and what to type instead.
pub fn check_host_port(s: &str) -> std::result::Result<(), String> {
    if let Some((scheme, rest)) = s.split_once("://") {
        let rest = rest.trim_end_matches('/');
        return Err(format!(
            "is a URL: give HOST:PORT without the {scheme}:// prefix (--node {rest})"
        ));
    }
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err("has no closing ]: give [IPV6]:PORT, e.g. [::1]:8500".into());
        };
        match after.strip_prefix(':') {
            Some(port) => (host, port),
            None => {
                return Err(format!(
                    "has no port: give [{host}]:PORT, e.g. [{host}]:8500"
                ))
            }
        }
    } else {
        match s.rsplit_once(':') {
            None => return Err(format!("has no port: give HOST:PORT, e.g. {s}:8500")),
            Some((host, _)) if host.contains(':') => {
                return Err(format!(
                "looks like a bare IPv6 address: put it in brackets with a port, e.g. [{s}]:8500"
            ))
            }
            Some(hp) => hp,
        }
    };
    if host.is_empty() {
        return Err(format!(
            "has no host: give HOST:PORT, e.g. 127.0.0.1:{port}"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "has port {port:?}, which is not a number from 1 to 65535: give HOST:PORT, e.g. {host}:8500"
        )),
    }
}

/// Where `controller up` writes the demo's administrator certificate, and
/// where the controller looks when no --tls-dir is given.
pub const DEFAULT_TLS_DIR: &str = ".sms-up/admin";

/// How this run of the controller connects.
enum Security {
    Tls(Arc<rustls::ClientConfig>),
    Plaintext,
    /// No certificate could be loaded: every connection reports why.
    Missing(String),
}

static SECURITY: RwLock<Option<Security>> = RwLock::new(None);

/// Chooses how to connect, once per run: `--insecure`, else the
/// administrator certificate in `tls_dir` (or [`DEFAULT_TLS_DIR`]).
pub fn init_security(tls_dir: Option<PathBuf>, insecure: bool) {
    let s = if insecure {
        Security::Plaintext
    } else {
        let dir = tls_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_TLS_DIR));
        match load(&dir) {
            Ok(cfg) => Security::Tls(cfg),
            Err(e) => Security::Missing(e),
        }
    };
    *SECURITY.write().unwrap_or_else(|p| p.into_inner()) = Some(s);
}

/// Whether this run talks plaintext (`--insecure`).
pub fn insecure() -> bool {
    matches!(
        *SECURITY.read().unwrap_or_else(|p| p.into_inner()),
        Some(Security::Plaintext)
    )
}

/// Uses the administrator certificate in `dir` from now on (`controller
/// up`, once its central site has written one).
pub fn use_admin_dir(dir: &Path) -> Result<()> {
    let cfg = load(dir).map_err(|e| anyhow!("{e}"))?;
    *SECURITY.write().unwrap_or_else(|p| p.into_inner()) = Some(Security::Tls(cfg));
    Ok(())
}

fn load(dir: &Path) -> std::result::Result<Arc<rustls::ClientConfig>, String> {
    if !dir.join("admin.pem").exists() {
        return Err(format!(
            "no administrator certificate in {}: pass --tls-dir DIR (or set SMS_TLS_DIR) with \
             ca.pem, admin.pem and admin.key; `controller up` writes them to {DEFAULT_TLS_DIR}, \
             a central site to DATA/admin",
            dir.display()
        ));
    }
    let creds = sms_connect::load_admin(dir).map_err(|e| format!("{e:#}"))?;
    sms_connect::admin_tls(&creds).map_err(|e| format!("{e:#}"))
}

/// The TLS settings of this run (`None`: plaintext).
pub fn tls() -> Result<Option<Arc<rustls::ClientConfig>>> {
    if SECURITY.read().unwrap_or_else(|p| p.into_inner()).is_none() {
        init_security(std::env::var_os("SMS_TLS_DIR").map(PathBuf::from), false);
    }
    match &*SECURITY.read().unwrap_or_else(|p| p.into_inner()) {
        Some(Security::Tls(c)) => Ok(Some(c.clone())),
        Some(Security::Plaintext) => Ok(None),
        Some(Security::Missing(why)) => Err(anyhow!("{why}")),
        None => Err(anyhow!("no connection security chosen")),
    }
}

/// Opens a channel to `addr`.
pub async fn channel(addr: &str) -> Result<Channel> {
    let tls = tls()?;
    let ep = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| anyhow!("{addr:?} is not a HOST:PORT address"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(60));
    sms_connect::channel(ep, addr, tls, Duration::from_secs(10))
        .await
        .map_err(|e| anyhow!("cannot reach node {addr}: {}", chain(&e)))
}

/// The header that addresses a call to a site by its code: the node the
/// controller talks to relays it hop by hop to that site's server.
pub const SITE_HEADER: &str = "sms-site";

/// The site every Admin call of this run is addressed to (`--site`).
static SITE: RwLock<Option<String>> = RwLock::new(None);

/// Addresses every Admin call of this run to site `code` (`None`: the
/// node's own site). A code that cannot be one is refused here.
pub fn set_site(code: Option<String>) -> Result<()> {
    let code = code.filter(|c| !c.is_empty());
    if let Some(c) = &code {
        c.parse::<sms_types::SiteCode>()
            .map_err(|e| anyhow!("--site {c:?} is not a site code: {e}"))?;
    }
    *SITE.write().unwrap_or_else(|p| p.into_inner()) = code;
    Ok(())
}

/// The site `--site` named, if any.
pub fn site() -> Option<String> {
    SITE.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Adds the `sms-site` header to every call, when a site is named.
#[derive(Clone)]
pub struct SiteHeader(Option<MetadataValue<Ascii>>);

impl Interceptor for SiteHeader {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert(SITE_HEADER, v.clone());
        }
        Ok(req)
    }
}

/// The Admin client every command uses.
pub type Admin = AdminClient<InterceptedService<Channel, SiteHeader>>;

/// An Admin client for `addr`, its calls addressed to the `--site` site.
pub async fn admin(addr: &str) -> Result<Admin> {
    admin_for(addr, site().as_deref()).await
}

/// An Admin client for `addr` whose calls go to site `site` (relayed by
/// the node at `addr`), or to that node itself (`None`).
pub async fn admin_for(addr: &str, site: Option<&str>) -> Result<Admin> {
    let header = site
        .map(|s| {
            s.parse::<MetadataValue<Ascii>>()
                .map_err(|_| anyhow!("{s:?} is not a site code"))
        })
        .transpose()?;
    Ok(
        AdminClient::with_interceptor(channel(addr).await?, SiteHeader(header))
            .max_decoding_message_size(64 * 1024 * 1024),
    )
}

/// The node's address and an Admin client for it: how nearly every command
/// starts. A missing address is reported before any connection is tried.
pub async fn connect(node: &Option<String>) -> Result<(String, Admin)> {
    let addr = node_addr(node)?;
    let client = admin(&addr).await?;
    Ok((addr, client))
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut texts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        texts.push(c.to_string());
        cur = c.source();
    }
    join_causes(texts)
}

/// An error and its causes on one line, each said once: transport errors
/// often repeat their source in their own text ("transport error: refused
/// (os error 111): refused (os error 111)", "tcp connect error: tcp connect
/// error"), so a cause already said anywhere on the line so far is left
/// out, as is a part that repeats the one just before it, and an empty one.
pub fn join_causes(texts: impl IntoIterator<Item = String>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for t in texts {
        let t = t.trim();
        if t.is_empty() || parts.join(": ").contains(t) {
            continue;
        }
        for part in t.split(": ").map(str::trim) {
            if !part.is_empty() && parts.last().map(String::as_str) != Some(part) {
                parts.push(part.to_string());
            }
        }
    }
    parts.join(": ")
}

/// How the controller reports a failed command: the anyhow chain joined
/// by [`join_causes`].
pub fn error_text(e: &anyhow::Error) -> String {
    join_causes(e.chain().map(|c| c.to_string()))
}

/// Unwraps a gRPC reply, naming the command (`what`) if the call failed,
/// so every command reports a refusal the same way ([`status_err`]).
pub trait Reply<T> {
    fn reply(self, what: &str) -> Result<T>;
}

impl<T> Reply<T> for std::result::Result<tonic::Response<T>, tonic::Status> {
    fn reply(self, what: &str) -> Result<T> {
        self.map(tonic::Response::into_inner)
            .map_err(|e| status_err(what, e))
    }
}

/// A gRPC failure as the node explained it.
pub fn status_err(what: &str, s: tonic::Status) -> anyhow::Error {
    let m = s.message();
    let transport = matches!(
        s.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::Internal
    );
    if insecure() && transport {
        // A plaintext client meets a TLS node as a garbled or cut connection.
        return anyhow!(
            "{what}: the connection failed ({m}); if the node uses TLS (the default), drop \
             --insecure and unset SMS_INSECURE"
        );
    }
    if s.code() == tonic::Code::Unavailable && s.message().contains("transport") {
        return anyhow!("{what}: the node is unreachable ({})", s.message());
    }
    anyhow!("{what}: {}", s.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_address_comes_from_the_option_and_an_empty_one_is_refused() {
        assert_eq!(node_addr(&Some("h:1".into())).unwrap(), "h:1");
        for missing in [None, Some(String::new())] {
            let e = node_addr(&missing).unwrap_err().to_string();
            assert_eq!(e, "no node given: pass --node HOST:PORT or set SMS_NODE");
        }
    }

    #[test]
    fn a_node_address_without_a_port_or_with_a_scheme_is_refused_with_the_fix() {
        for ok in [
            "127.0.0.1:8500",
            "node-a.example:1",
            "[::1]:8500",
            "localhost:65535",
        ] {
            assert_eq!(node_addr(&Some(ok.into())).unwrap(), ok);
        }
        let e = |s: &str| node_addr(&Some(s.into())).unwrap_err().to_string();
        assert_eq!(
            e("127.0.0.1"),
            "--node/SMS_NODE \"127.0.0.1\" has no port: give HOST:PORT, e.g. 127.0.0.1:8500"
        );
        assert_eq!(
            e("http://127.0.0.1:8500"),
            "--node/SMS_NODE \"http://127.0.0.1:8500\" is a URL: give HOST:PORT without the \
             http:// prefix (--node 127.0.0.1:8500)"
        );
        assert!(e("https://h:1/").ends_with("without the https:// prefix (--node h:1)"));
        assert!(e("::1").contains("in brackets with a port, e.g. [::1]:8500"));
        assert!(e("[::1]").contains("has no port: give [::1]:PORT"));
        assert!(e(":8500").contains("has no host"));
        for bad in ["h:0", "h:99999", "h:port", "h:"] {
            assert!(e(bad).contains("not a number from 1 to 65535"), "{bad}");
        }
        for s in ["127.0.0.1", "http://h:1", "h:0", "::1"] {
            assert!(!e(s).contains('\n'), "one line: {s}");
        }
    }

    #[test]
    fn a_cause_is_said_once_however_often_the_chain_repeats_it() {
        let refused = "Connection refused (os error 111)";
        assert_eq!(
            join_causes([
                "cannot reach node h:1".to_string(),
                format!("transport error: {refused}"),
                refused.to_string(),
                refused.to_string(),
            ]),
            format!("cannot reach node h:1: transport error: {refused}")
        );
        assert_eq!(join_causes(["a".into(), "".into(), "b".into()]), "a: b");
        assert_eq!(join_causes(Vec::<String>::new()), "");
        // The same through anyhow's chain, as `controller` prints a failure.
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, refused);
        let e = anyhow::Error::new(io)
            .context(format!("tcp connect error: {refused}"))
            .context("tcp connect error");
        assert_eq!(error_text(&e), format!("tcp connect error: {refused}"));
        assert_eq!(
            join_causes(["x: x: y".to_string(), "y".to_string()]),
            "x: y"
        );
    }

    #[test]
    fn refusals_name_the_command_and_transport_failures_say_unreachable() {
        let refused: std::result::Result<tonic::Response<()>, _> =
            Err(tonic::Status::not_found("no site S09"));
        assert_eq!(
            refused.reply("delete-site").unwrap_err().to_string(),
            "delete-site: no site S09"
        );
        let down = status_err("sites", tonic::Status::unavailable("transport error"));
        assert_eq!(
            down.to_string(),
            "sites: the node is unreachable (transport error)"
        );
        let ok: std::result::Result<_, tonic::Status> = Ok(tonic::Response::new(7));
        assert_eq!(ok.reply("x").unwrap(), 7);
    }
}
