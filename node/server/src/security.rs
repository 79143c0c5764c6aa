//! Transport security of every connection: the TLS acceptor in front of the
//! gRPC server (which records who the peer is for the handlers), and the
//! connector the clients dial with. Plaintext exists only behind an
//! explicit `--insecure` flag, for comparison benchmarks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use sms_connect::tune_socket;
use sms_trust::tls::Expect;
use sms_trust::{Credentials, Identity};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::either::Either;
use tonic::transport::server::Connected;

/// What a node's connections use.
#[derive(Clone)]
pub enum Security {
    /// Mutual TLS with this node's certificate.
    Tls(Arc<NodeTls>),
    /// No TLS and no authentication: only with `--insecure`.
    Plaintext,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::Tls(t) => write!(f, "Tls({})", t.current().identity.subject),
            Security::Plaintext => f.write_str("Plaintext"),
        }
    }
}

/// A node's certificate and the TLS settings made from it, replaced as a
/// whole when the certificate is renewed: a connection takes the settings in
/// force when it starts, and connections already up keep theirs.
pub struct NodeTls {
    current: std::sync::RwLock<Arc<TlsState>>,
}

/// One certificate's TLS settings.
pub struct TlsState {
    pub creds: Credentials,
    pub identity: Identity,
    /// The root servers must chain to (this hierarchy's; differs from the
    /// certificate's own root only for the `cert-exchange-failure` fault).
    anchor: Vec<u8>,
    server: Option<Arc<rustls::ServerConfig>>,
    clients: Mutex<HashMap<Expect, Arc<rustls::ClientConfig>>>,
}

impl TlsState {
    fn new(creds: Credentials) -> anyhow::Result<TlsState> {
        let identity = creds.identity()?;
        let server = if identity.role.is_site() || identity.role == sms_trust::Role::Member {
            Some(Arc::new(sms_trust::tls::server_config(&creds)?))
        } else {
            None
        };
        Ok(TlsState {
            anchor: creds.root().to_vec(),
            creds,
            identity,
            server,
            clients: Mutex::new(HashMap::new()),
        })
    }
}

impl NodeTls {
    pub fn new(creds: Credentials) -> anyhow::Result<NodeTls> {
        Ok(NodeTls {
            current: std::sync::RwLock::new(Arc::new(TlsState::new(creds)?)),
        })
    }

    /// The same name and role under a throwaway authority outside the
    /// hierarchy, still trusting this hierarchy's servers: what a site whose
    /// certificate exchange failed presents (fault `cert-exchange-failure`).
    pub fn with_foreign_certificate(&self) -> anyhow::Result<NodeTls> {
        let now = self.current();
        let label = now
            .identity
            .site()
            .unwrap_or_else(|| "ZZZ".parse().expect("a site code"));
        let stranger = sms_trust::Authority::new_root(&label)?;
        let creds = stranger.issue_own(now.identity.role, &now.identity.name)?;
        let mut state = TlsState::new(creds)?;
        state.anchor = now.anchor.clone();
        Ok(NodeTls {
            current: std::sync::RwLock::new(Arc::new(state)),
        })
    }

    /// The settings new connections use now.
    pub fn current(&self) -> Arc<TlsState> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a renewed certificate in use for every new connection, in and
    /// out.
    pub fn replace(&self, creds: Credentials) -> anyhow::Result<()> {
        let next = Arc::new(TlsState::new(creds)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The server settings for the HTTP listener: the node's certificate,
    /// speaking HTTP/2 or HTTP/1.1 (scrapers and browsers ask for either).
    pub fn http_server_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        let mut cfg = (*self.current().server.clone()?).clone();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Some(Arc::new(cfg))
    }

    /// The client settings for reaching `expect` (made once per
    /// certificate, then shared).
    pub fn client(&self, expect: Expect) -> Result<Arc<rustls::ClientConfig>, String> {
        let state = self.current();
        let mut cache = state.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(&expect) {
            return Ok(c.clone());
        }
        let cfg = Arc::new(
            sms_trust::tls::client_config(Some(&state.creds), Some(&state.anchor), expect.clone())
                .map_err(|e| e.to_string())?,
        );
        cache.insert(expect, cfg.clone());
        Ok(cfg)
    }
}

/// Who is on the other end of a connection, as the handlers see it.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// The verified client certificate's identity; `None` when the client
    /// presented none (or on a plaintext node).
    pub identity: Option<Identity>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Serial numbers of every certificate the client presented (its own
    /// and its issuers'), checked against this node's revocations.
    pub chain_serials: Vec<String>,
}

/// One accepted connection and who is on its other end.
pub struct ServerIo {
    io: Either<Box<tokio_rustls::server::TlsStream<TcpStream>>, TcpStream>,
    peer: PeerInfo,
    /// Its place under the connection limits, given back when it closes.
    _slot: Slot,
}

/// How many connections a node keeps open at once: in all, and from one
/// address. A connection over either is closed at once (and counted), so a
/// flood from one address cannot take the descriptors the links need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_address: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            total: 4096,
            per_address: 512,
        }
    }
}

/// The open connections, in all and by address.
#[derive(Default)]
struct Open {
    total: usize,
    by_addr: HashMap<std::net::IpAddr, usize>,
}

/// One open connection's place; dropping it frees the place.
struct Slot {
    open: Arc<Mutex<Open>>,
    addr: Option<std::net::IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(|p| p.into_inner());
        o.total = o.total.saturating_sub(1);
        if let Some(a) = self.addr {
            if let Some(n) = o.by_addr.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    o.by_addr.remove(&a);
                }
            }
        }
    }
}

/// Takes a place for a connection from `addr`, or says which limit is full.
fn take_slot(
    open: &Arc<Mutex<Open>>,
    limits: Limits,
    addr: Option<std::net::IpAddr>,
) -> Result<Slot, String> {
    let mut o = open.lock().unwrap_or_else(|p| p.into_inner());
    if o.total >= limits.total {
        return Err(format!(
            "{} connections are open, the node's limit",
            limits.total
        ));
    }
    if let Some(a) = addr {
        let n = o.by_addr.entry(a).or_default();
        if *n >= limits.per_address {
            return Err(format!(
                "{} connections from {a} are open, the limit for one address",
                limits.per_address
            ));
        }
        *n += 1;
    }
    o.total += 1;
    Ok(Slot {
        open: open.clone(),
        addr,
    })
}

/// Logs refusals at most every few seconds, with how many there were.
struct RefusalLog {
    last: Mutex<Option<std::time::Instant>>,
    since: std::sync::atomic::AtomicU64,
}

impl RefusalLog {
    fn refused(&self, why: &str) {
        let n = self
            .since
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            tracing::warn!("refused {n} connection(s) over the connection limits: {why}");
            self.since.store(0, std::sync::atomic::Ordering::Relaxed);
            *last = Some(std::time::Instant::now());
        }
    }
}

impl Connected for ServerIo {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for ServerIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A TLS handshake that does not finish in this long is dropped, so silent
/// connections cannot hold the acceptor's slots.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the
/// kernel's backlog.
const CONCURRENT_HANDSHAKES: usize = 128;

/// Accepts connections on `listener`: TLS handshakes run concurrently
/// (bounded), failures are logged and dropped, never ending the server.
pub fn incoming(
    listener: TcpListener,
    security: Security,
    keepalive: Duration,
    limits: Limits,
    on_refused: impl Fn() + Clone + Send + Sync + 'static,
) -> impl Stream<Item = Result<ServerIo, std::io::Error>> {
    let open: Arc<Mutex<Open>> = Arc::default();
    let log = Arc::new(RefusalLog {
        last: Mutex::new(None),
        since: Default::default(),
    });
    let tls = match &security {
        Security::Tls(t) => Some(t.clone()),
        Security::Plaintext => None,
    };
    tokio_stream::wrappers::TcpListenerStream::new(listener)
        .filter_map(|r| async move {
            match r {
                Ok(s) => Some(s),
                Err(e) => {
                    // Out of descriptors and the like: say so, and pause so
                    // the loop does not spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    None
                }
            }
        })
        .filter_map(move |tcp| {
            let (open, log, on_refused) = (open.clone(), log.clone(), on_refused.clone());
            async move {
                let addr = tcp.peer_addr().ok().map(|a| a.ip());
                match take_slot(&open, limits, addr) {
                    Ok(slot) => Some((tcp, slot)),
                    Err(why) => {
                        // Closed at once: the descriptor goes back now.
                        drop(tcp);
                        on_refused();
                        log.refused(&why);
                        None
                    }
                }
            }
        })
        .map(move |(tcp, slot)| {
            // The certificate in force when the connection arrives.
            let acceptor = tls.as_ref().and_then(|t| {
                t.current()
                    .server
                    .clone()
                    .map(tokio_rustls::TlsAcceptor::from)
            });
            async move {
                tune_socket(&tcp, keepalive);
                let remote = tcp.peer_addr().ok();
                let Some(acceptor) = acceptor else {
                    return Some(ServerIo {
                        io: Either::Right(tcp),
                        peer: PeerInfo {
                            remote,
                            identity: None,
                            tls: false,
                            chain_serials: Vec::new(),
                        },
                        _slot: slot,
                    });
                };
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let certs = tls.get_ref().1.peer_certificates().unwrap_or_default();
                        // Each certificate parsed once: the leaf names the
                        // peer, every serial is checked for revocation.
                        let ids: Vec<Option<Identity>> =
                            certs.iter().map(|c| Identity::from_der(c).ok()).collect();
                        let chain_serials =
                            ids.iter().flatten().map(|i| i.serial.clone()).collect();
                        let identity = ids.into_iter().next().flatten();
                        Some(ServerIo {
                            io: Either::Left(Box::new(tls)),
                            peer: PeerInfo {
                                remote,
                                identity,
                                tls: true,
                                chain_serials,
                            },
                            _slot: slot,
                        })
                    }
                    Ok(Err(e)) => {
                        tracing::info!(peer = ?remote, "refused a connection: TLS handshake failed: {e}");
                        None
                    }
                    Err(_) => {
                        tracing::info!(peer = ?remote, "refused a connection: no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
                        None
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENT_HANDSHAKES)
        .filter_map(|io| async move { io.map(Ok) })
}
