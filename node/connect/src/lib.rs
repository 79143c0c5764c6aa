//! How every client dials a node: a TCP socket tuned for liveness, TLS
//! that expects a given peer (see `sms_trust::tls::Expect`), and a tonic
//! channel over it. The node's peer clients, `controller` and the test
//! runner all dial through here, so they agree on settings.

pub mod http;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::either::Either;
use tonic::transport::{Channel, Endpoint, Uri};

/// Sets what every socket of a link needs: no Nagle delay, TCP keepalive,
/// and a user timeout so that data unacknowledged by a vanished peer fails
/// the connection instead of being retried for the kernel's ~15 minutes.
pub fn tune_socket(s: &TcpStream, keepalive: Duration) {
    let _ = s.set_nodelay(true);
    let sock = socket2::SockRef::from(s);
    let ka = socket2::TcpKeepalive::new()
        .with_time(keepalive)
        .with_interval(keepalive);
    let _ = sock.set_tcp_keepalive(&ka);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = sock.set_tcp_user_timeout(Some(keepalive * 2));
}

/// Dials `addr` over TCP (tuned as above) and, when secure, TLS expecting
/// `expect`; hyper's I/O adapter is applied for tonic.
pub async fn dial(
    addr: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    keepalive: Duration,
) -> std::io::Result<TokioIo<ClientIo>> {
    let tcp = TcpStream::connect(addr).await?;
    tune_socket(&tcp, keepalive);
    let io = match tls {
        Some(cfg) => {
            let name = rustls_pki_types::ServerName::try_from("node.sms.invalid")
                .expect("a valid placeholder name");
            let s = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await?;
            Either::Left(Box::new(s))
        }
        None => Either::Right(tcp),
    };
    Ok(TokioIo::new(io))
}

/// One dialled connection: TLS, or plaintext with `--insecure`.
pub type ClientIo = Either<Box<tokio_rustls::client::TlsStream<TcpStream>>, TcpStream>;

/// A channel to `addr` over [`dial`], with `ep`'s settings (timeouts,
/// windows, keepalive). `tls: None` is plaintext.
pub async fn channel(
    ep: Endpoint,
    addr: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    keepalive: Duration,
) -> Result<Channel, tonic::transport::Error> {
    let target = addr.to_string();
    let dial = tower::service_fn(move |_: Uri| {
        let (target, tls) = (target.clone(), tls.clone());
        async move { dial(&target, tls, keepalive).await }
    });
    ep.connect_with_connector(dial).await
}

/// An administrator's certificate, from the files `controller` reads:
/// `ca.pem` (the hierarchy's root), `admin.pem` (the chain), `admin.key`.
pub fn load_admin(dir: &Path) -> anyhow::Result<sms_trust::Credentials> {
    use anyhow::Context as _;
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let creds = sms_trust::Credentials::from_pem(&read("admin.pem")?, &read("admin.key")?)
        .with_context(|| format!("the administrator certificate in {}", dir.display()))?;
    let root = sms_trust::ca::parse_pem(&read("ca.pem")?, "CERTIFICATE")?;
    match root.first() {
        Some(r) if creds.root() == r.as_slice() => Ok(creds),
        Some(_) => {
            // A chain written without its root: append the given one.
            let mut creds = creds;
            creds.chain.push(root[0].clone());
            Ok(creds)
        }
        None => anyhow::bail!("{} holds no certificate", dir.join("ca.pem").display()),
    }
}

/// The client settings an administrator uses to reach any node.
pub fn admin_tls(creds: &sms_trust::Credentials) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    Ok(Arc::new(sms_trust::tls::client_config(
        Some(creds),
        Some(creds.root()),
        sms_trust::tls::Expect::Any,
    )?))
}
