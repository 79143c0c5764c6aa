//! A delay relay: a TCP proxy that holds every byte for a fixed time in
//! each direction. There is no netem on this kernel, so latency is added
//! in user space: a node advertises the relay's address, and its
//! neighbour's links reach it only through the relay.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::net::NsRuntime;

/// A running relay. It lives as long as the runtime it was started on.
pub struct Relay {
    pub addr: SocketAddr,
    upstream: Arc<OnceLock<SocketAddr>>,
    /// Connections accepted so far: each is a (re)connection of a link.
    pub accepted: Arc<AtomicU64>,
}

impl Relay {
    /// Listens on `listen` (port 0: any) on `rt`'s namespace. Forwarding
    /// starts once [`Relay::forward_to`] names the upstream: the node
    /// behind it must be told the relay's address before it starts.
    pub fn start(rt: &NsRuntime, listen: SocketAddr, delay: Duration) -> Relay {
        let listener = rt
            .run(async move { TcpListener::bind(listen).await })
            .unwrap_or_else(|e| panic!("relay cannot listen on {listen}: {e}"));
        let addr = listener.local_addr().expect("relay address");
        let upstream = Arc::new(OnceLock::new());
        let accepted = Arc::new(AtomicU64::new(0));
        let (up, n) = (upstream.clone(), accepted.clone());
        rt.spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                n.fetch_add(1, Ordering::Relaxed);
                // Not configured yet: refuse, as a closed port would.
                let Some(target) = up.get().copied() else {
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        splice(inbound, outbound, delay).await;
                    }
                });
            }
        });
        Relay {
            addr,
            upstream,
            accepted,
        }
    }

    /// Where connections go from now on.
    pub fn forward_to(&self, target: SocketAddr) {
        self.upstream
            .set(target)
            .expect("a relay's upstream is set once");
    }
}

/// Copies both ways, each byte `delay` late, until both sides close.
async fn splice(a: TcpStream, b: TcpStream, delay: Duration) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::join!(pump(ar, bw, delay), pump(br, aw, delay));
}

/// One direction: what is read at `t` is written at `t + delay`, in order.
/// A bounded queue: a slow reader holds the writer back, as TCP would.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(1024);
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .await
                    .is_err()
            {
                break;
            }
        }
    };
    tokio::join!(reader, writer);
}
