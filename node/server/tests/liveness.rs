//! A link whose packets silently vanish is noticed: nodes in one process,
//! the link from the parent to its child through a relay that can turn into
//! a silent blackhole (it keeps every connection open and swallows every
//! byte, sending nothing back and never closing: a lost NAT entry, a dead
//! router, a frozen peer). Keepalives are short here (1 s + 1 s) so the
//! test runs in seconds; the default is 10 s + 10 s.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sms_proto::v1 as pb;
use sms_server::{Connector, Node, NodeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

use common::*;

/// Starts a node with the short keepalives of this file.
async fn start_fast(cfg: NodeConfig) -> Node {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_with(cfg, l, connector()).await.unwrap()
}

fn connector() -> Connector {
    Connector {
        keepalive_interval: Duration::from_secs(1),
        keepalive_timeout: Duration::from_secs(1),
        ..Connector::default()
    }
}

/// A TCP relay to `target` that can go silent: while `black` is set, bytes
/// in either direction are read and dropped, and new connections are
/// accepted and never answered.
struct Relay {
    addr: SocketAddr,
    black: Arc<AtomicBool>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let black = Arc::new(AtomicBool::new(false));
        let b = black.clone();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let b = b.clone();
                tokio::spawn(async move {
                    if b.load(Ordering::SeqCst) {
                        swallow(down).await;
                        return;
                    }
                    let Ok(up) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (dr, dw) = down.into_split();
                    let (ur, uw) = up.into_split();
                    tokio::spawn(pipe(dr, uw, b.clone()));
                    tokio::spawn(pipe(ur, dw, b));
                });
            }
        });
        Relay { addr, black }
    }

    fn blackhole(&self, on: bool) {
        self.black.store(on, Ordering::SeqCst);
    }
}

/// Copies until either side closes; while the relay is black, drops what
/// it reads (and keeps the connection open).
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    black: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if black.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Reads and drops everything, answers nothing, never closes (bounded by
/// the test's lifetime).
async fn swallow(mut s: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// The time `check` took to pass (bounded by [`WAIT`]).
async fn time_until<F, Fut>(what: &str, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let t0 = Instant::now();
    wait_for(what, WAIT, check).await;
    t0.elapsed()
}

/// S01 created on `server` (the child's address as PRI reaches it) and
/// Active at PRI.
async fn create_s01(p: &Admin, server: SocketAddr) {
    p.clone()
        .create_secondary(pb::CreateSecondaryRequest {
            site_code: "S01".into(),
            server: server.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_active("PRI", p, "S01").await;
}

/// Waits until exactly `n` probes are at `c`.
async fn wait_n_probes(c: &Admin, n: usize) {
    wait_for(&format!("{n} probes at S01"), WAIT, || async {
        let got = probe_ids(c).await.len();
        (got == n).then_some(()).ok_or(format!("{got} arrived"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_link_is_noticed_and_heals_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let pri = start_fast(central(&dir.path().join("pri"))).await;
    // The child is reached (and says it is reached) only through the relay.
    let child_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = Relay::start(child_listener.local_addr().unwrap()).await;
    let child = start_with(
        NodeConfig {
            advertise: Some(relay.addr.to_string()),
            ..config(&dir.path().join("s01"))
        },
        child_listener,
        connector(),
    )
    .await
    .unwrap();
    let p = admin(&pri).await;
    let c = admin(&child).await;
    create_s01(&p, relay.addr).await;

    // Traffic flows and the link is up.
    let mut sent: HashSet<Vec<u8>> = HashSet::new();
    sent.extend(send_probes(&p, "S01", 50).await);
    wait_n_probes(&c, 50).await;
    assert_eq!(link(&p, "S01").await.state, "up");

    // The path goes silent with work queued behind it: PRI must notice.
    relay.blackhole(true);
    sent.extend(send_probes(&p, "S01", 100).await);
    let noticed = time_until("PRI to notice the silent link", || async {
        let l = link(&p, "S01").await;
        if l.state != "up" && l.queued_jobs > 0 {
            Ok(())
        } else {
            Err(format!(
                "{} with {} queued: {}",
                l.state, l.queued_jobs, l.detail
            ))
        }
    })
    .await;
    // 1 s without traffic, then 1 s for the PING's answer: allow slack.
    assert!(
        noticed < Duration::from_secs(10),
        "noticed after {noticed:?}"
    );
    eprintln!("silent link noticed after {noticed:?}");

    // Healed: everything queued arrives, each probe exactly once.
    relay.blackhole(false);
    wait_n_probes(&c, 150).await;
    let got = probe_ids(&c).await;
    let unique: HashSet<Vec<u8>> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "a probe arrived twice");
    assert_eq!(
        unique, sent,
        "the probes that arrived are not the ones sent"
    );
    let l = link(&p, "S01").await;
    assert_eq!(l.failed_jobs, 0, "the outage failed jobs: {l:?}");

    child.shutdown().await.unwrap();
    pri.shutdown().await.unwrap();
}

/// With the child down, connection attempts fail again and again; none of
/// them is charged to a job, so a short retry budget does not matter: when
/// the child is back, everything queued is delivered and nothing failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let pri = start_fast(central(&dir.path().join("pri"))).await;
    let child = start_fast(config(&dir.path().join("s01"))).await;
    let child_addr = child.local_addr;
    let p = admin(&pri).await;
    create_s01(&p, child_addr).await;
    // Two attempts per job and 100 ms between them: before, a job was
    // failed after two refused connections.
    p.clone()
        .change_site_control(pb::ChangeSiteControlRequest {
            address: Some(pb::AddressChange {
                to: "S01".into(),
                retry_count: Some(2),
                retry_delay_ms: Some(100),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_for("PRI to apply the address change", WAIT, || async {
        let a = pri.ctx.config().and_then(|c| {
            c.addresses
                .into_iter()
                .find(|a| a.site_code.as_str() == "S01")
        });
        match a {
            Some(a) if a.retry_count == 2 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    child.shutdown().await.unwrap();
    let ids: HashSet<Vec<u8>> = send_probes(&p, "S01", 50).await.into_iter().collect();
    // The link is failing to connect...
    wait_for("PRI's link to S01 to fail to connect", WAIT, || async {
        let l = link(&p, "S01").await;
        (l.state == "retrying" && l.detail.contains("cannot reach"))
            .then_some(())
            .ok_or(format!("{} {}", l.state, l.detail))
    })
    .await;
    // ...and keeps failing for well over two attempts' worth (a window in
    // which nothing must happen cannot be waited for otherwise).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let l = link(&p, "S01").await;
    assert_eq!(l.failed_jobs, 0, "the outage failed jobs: {l:?}");
    assert_eq!(l.queued_jobs, 50, "{l:?}");

    // Back on the same address: everything arrives.
    let listener = bind(child_addr).await;
    let child = start_with(config(&dir.path().join("s01")), listener, connector())
        .await
        .unwrap();
    let c = admin(&child).await;
    wait_n_probes(&c, 50).await;
    let got: HashSet<Vec<u8>> = probe_ids(&c).await.into_iter().collect();
    assert_eq!(got, ids);
    assert_eq!(link(&p, "S01").await.failed_jobs, 0);
    child.shutdown().await.unwrap();
    pri.shutdown().await.unwrap();
}

/// The keepalive of an address governs its link: with the node's own set
/// to an hour, an idle link to S01 whose packets vanish is noticed by the
/// 1 s keepalive of PRI's address to S01 (no frames are out, so only a
/// keepalive can notice it), long before the idle session would close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_keepalive_notices_an_idle_silent_link() {
    let slow = || Connector {
        keepalive_interval: Duration::from_secs(3600),
        keepalive_timeout: Duration::from_secs(3600),
        ..Connector::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pri = start_with(central(&dir.path().join("pri")), l, slow())
        .await
        .unwrap();
    let p = admin(&pri).await;
    p.clone()
        .change_site_control(pb::ChangeSiteControlRequest {
            address: Some(pb::AddressChange {
                to: "S01".into(),
                keepalive_secs: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_for("PRI to apply the keepalive", WAIT, || async {
        let k = pri.ctx.config().and_then(|c| {
            c.addresses
                .into_iter()
                .find(|a| a.site_code.as_str() == "S01")
                .and_then(|a| a.keepalive_secs)
        });
        (k == Some(1)).then_some(()).ok_or(format!("{k:?}"))
    })
    .await;
    let child_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = Relay::start(child_listener.local_addr().unwrap()).await;
    let child = start_with(
        NodeConfig {
            advertise: Some(relay.addr.to_string()),
            ..config(&dir.path().join("s01"))
        },
        child_listener,
        slow(),
    )
    .await
    .unwrap();
    let c = admin(&child).await;
    create_s01(&p, relay.addr).await;
    send_probes(&p, "S01", 5).await;
    wait_n_probes(&c, 5).await;
    wait_for("PRI's link to S01 up and idle", WAIT, || async {
        let l = link(&p, "S01").await;
        (l.state == "up" && l.queued_jobs == 0)
            .then_some(())
            .ok_or(format!("{} {} queued", l.state, l.queued_jobs))
    })
    .await;

    relay.blackhole(true);
    let noticed = time_until("the address's keepalive to drop the link", || async {
        let l = link(&p, "S01").await;
        (l.state == "retrying")
            .then_some(())
            .ok_or(format!("{}: {}", l.state, l.detail))
    })
    .await;
    // 1 s idle, 1 s for the PING's answer; the idle session closes at 10 s
    // (as `idle`, not `retrying`), and the node's keepalive is an hour.
    assert!(
        noticed < Duration::from_secs(8),
        "noticed after {noticed:?}"
    );
    eprintln!("idle silent link noticed after {noticed:?}");
    child.shutdown().await.unwrap();
    pri.shutdown().await.unwrap();
}
