//! A link whose packets silently vanish is noticed: nodes in one process,
//! the link from the parent to its child through a relay that can turn into
//! a silent blackhole (it keeps every connection open and swallows every
//! byte, sending nothing back and never closing: a lost NAT entry, a dead
//! router, a frozen peer). Keepalives are short here (1 s + 1 s) so the
//! test runs in seconds; the default is 10 s + 10 s.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sms_proto::v1 as pb;
use sms_proto::v1::admin_client::AdminClient;
use sms_server::{Connector, Node, NodeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(20);

fn connector() -> Connector {
    Connector {
        keepalive_interval: Duration::from_secs(1),
        keepalive_timeout: Duration::from_secs(1),
        ..Connector::default()
    }
}

fn config(dir: &Path) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        advertise: None,
        install_primary: None,
        site_name: None,
        parent_site: None,
        parent: None,
        domain: None,
        shutdown_grace: Duration::from_secs(5),
    }
}

async fn start(cfg: NodeConfig) -> Node {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Node::start(cfg, l, connector()).await.unwrap()
}

async fn admin(addr: SocketAddr) -> AdminClient<Channel> {
    AdminClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
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

async fn link_to(a: &mut AdminClient<Channel>, to: &str) -> pb::LinkState {
    let st = a
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    st.links
        .into_iter()
        .find(|l| l.to == to)
        .unwrap_or_else(|| panic!("no link to {to}"))
}

async fn probes_at(a: &mut AdminClient<Channel>) -> Vec<Vec<u8>> {
    a.list_probes(pb::ListProbesRequest { count_only: false })
        .await
        .unwrap()
        .into_inner()
        .probes
        .into_iter()
        .map(|p| p.job_id)
        .collect()
}

async fn wait_until<F, Fut>(what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < WAIT {
        match cond().await {
            Ok(()) => return start.elapsed(),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {WAIT:?} waiting for {what}; last seen: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_link_is_noticed_and_heals_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let pri = start(NodeConfig {
        install_primary: Some("PRI".parse().unwrap()),
        ..config(&dir.path().join("pri"))
    })
    .await;
    // The child is reached (and says it is reached) only through the relay.
    let child_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let child_addr = child_listener.local_addr().unwrap();
    let relay = Relay::start(child_addr).await;
    let child = Node::start(
        NodeConfig {
            advertise: Some(relay.addr.to_string()),
            ..config(&dir.path().join("s01"))
        },
        child_listener,
        connector(),
    )
    .await
    .unwrap();

    let mut p = admin(pri.local_addr).await;
    let mut c = admin(child.local_addr).await;
    p.create_secondary(pb::CreateSecondaryRequest {
        site_code: "S01".into(),
        server: relay.addr.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    wait_until("S01 Active at PRI", || {
        let mut p = p.clone();
        async move {
            let sites = p
                .list_sites(pb::ListSitesRequest {})
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .sites;
            match sites.iter().find(|s| s.site_code == "S01") {
                Some(s) if s.status == "Active" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;

    // Traffic flows and the link is up.
    let mut sent: HashSet<Vec<u8>> = HashSet::new();
    let sender = p.clone();
    let send = |n: u32| {
        let mut p = sender.clone();
        async move {
            p.send_probes(pb::SendProbesRequest {
                to: "S01".into(),
                count: n,
                bytes: 64,
                priority: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .job_ids
        }
    };
    sent.extend(send(50).await);
    wait_until("the first 50 probes at S01", || {
        let mut c = c.clone();
        async move {
            let n = probes_at(&mut c).await.len();
            (n == 50).then_some(()).ok_or(format!("{n} arrived"))
        }
    })
    .await;
    assert_eq!(link_to(&mut p, "S01").await.state, "up");

    // The path goes silent with work queued behind it: PRI must notice.
    relay.blackhole(true);
    sent.extend(send(100).await);
    let noticed = wait_until("PRI to notice the silent link", || {
        let mut p = p.clone();
        async move {
            let l = link_to(&mut p, "S01").await;
            if l.state != "up" && l.queued_jobs > 0 {
                Ok(())
            } else {
                Err(format!(
                    "{} with {} queued: {}",
                    l.state, l.queued_jobs, l.detail
                ))
            }
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
    wait_until("all 150 probes at S01", || {
        let mut c = c.clone();
        async move {
            let n = probes_at(&mut c).await.len();
            (n >= 150).then_some(()).ok_or(format!("{n} arrived"))
        }
    })
    .await;
    let got = probes_at(&mut c).await;
    let unique: HashSet<Vec<u8>> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "a probe arrived twice");
    assert_eq!(
        unique, sent,
        "the probes that arrived are not the ones sent"
    );
    let l = link_to(&mut p, "S01").await;
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
    let pri = start(NodeConfig {
        install_primary: Some("PRI".parse().unwrap()),
        ..config(&dir.path().join("pri"))
    })
    .await;
    let child = start(config(&dir.path().join("s01"))).await;
    let child_addr = child.local_addr;
    let mut p = admin(pri.local_addr).await;
    p.create_secondary(pb::CreateSecondaryRequest {
        site_code: "S01".into(),
        server: child_addr.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    wait_until("S01 Active at PRI", || {
        let mut p = p.clone();
        async move {
            let sites = p
                .list_sites(pb::ListSitesRequest {})
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .sites;
            match sites.iter().find(|s| s.site_code == "S01") {
                Some(s) if s.status == "Active" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    // Two attempts per job and 100 ms between them: before, a job was
    // failed after two refused connections.
    p.change_site_control(pb::ChangeSiteControlRequest {
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
    tokio::time::sleep(Duration::from_millis(500)).await;

    child.shutdown().await.unwrap();
    let ids: HashSet<Vec<u8>> = p
        .send_probes(pb::SendProbesRequest {
            to: "S01".into(),
            count: 50,
            bytes: 16,
            priority: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .job_ids
        .into_iter()
        .collect();
    // Well over two attempts' worth of refused connections.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let l = link_to(&mut p, "S01").await;
    assert_eq!(l.failed_jobs, 0, "the outage failed jobs: {l:?}");
    assert_eq!(l.queued_jobs, 50, "{l:?}");

    // Back on the same address: everything arrives.
    let listener = loop {
        match TcpListener::bind(child_addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let child = Node::start(config(&dir.path().join("s01")), listener, connector())
        .await
        .unwrap();
    let mut c = admin(child.local_addr).await;
    wait_until("the 50 probes at S01", || {
        let mut c = c.clone();
        async move {
            let n = probes_at(&mut c).await.len();
            (n == 50).then_some(()).ok_or(format!("{n} arrived"))
        }
    })
    .await;
    let got: HashSet<Vec<u8>> = probes_at(&mut c).await.into_iter().collect();
    assert_eq!(got, ids);
    assert_eq!(link_to(&mut p, "S01").await.failed_jobs, 0);
    child.shutdown().await.unwrap();
    pri.shutdown().await.unwrap();
}
