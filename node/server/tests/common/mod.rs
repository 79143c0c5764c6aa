//! What the in-process tests share: node configs, starting nodes on
//! loopback, admin clients, bounded waits that say what they waited for.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use sms_proto::v1 as pb;
use sms_proto::v1::admin_client::AdminClient;
use sms_server::{Connector, Node, NodeConfig};
use sms_types::SiteCode;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Every wait is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);
pub const GRACE: Duration = Duration::from_secs(5);

pub type Admin = AdminClient<Channel>;

pub fn code(s: &str) -> SiteCode {
    s.parse().expect("valid site code")
}

pub fn config(dir: &Path) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        advertise: None,
        install_primary: None,
        site_name: None,
        parent_site: None,
        parent: None,
        domain: None,
        shutdown_grace: GRACE,
        // Behaviour tests on plaintext; `secure.rs` runs the same nodes
        // with TLS.
        insecure: true,
        join_token: None,
        ca_files: None,
        admin_dir: None,
        package_retention: Default::default(),
        cert_lifetime: None,
        connection_limits: Default::default(),
        call_rate: Default::default(),
        mp_volumes: vec![],
        http_listen: None,
        stale_after_intervals: sms_site::stale::DEFAULT_STALE_AFTER_INTERVALS,
    }
}

/// Starts a node on `listen` (a loopback address, port 0 for any).
pub async fn start_on(cfg: NodeConfig, listen: SocketAddr) -> Node {
    let listener = bind(listen).await;
    let dir = cfg.data_dir.clone();
    Node::start(cfg, listener, Connector::default())
        .await
        .unwrap_or_else(|e| panic!("node in {} did not start: {e:#}", dir.display()))
}

pub async fn start(cfg: NodeConfig) -> Node {
    start_on(cfg, "127.0.0.1:0".parse().unwrap()).await
}

/// Binds `addr`; a just-freed port may take a moment to be bindable again.
pub async fn bind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) if Instant::now() < deadline && addr.port() != 0 => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

pub fn central(dir: &Path) -> NodeConfig {
    NodeConfig {
        install_primary: Some(code("PRI")),
        ..config(dir)
    }
}

pub async fn admin(node: &Node) -> Admin {
    AdminClient::connect(format!("http://{}", node.local_addr))
        .await
        .unwrap_or_else(|e| panic!("cannot reach the admin service of {node:?}: {e}"))
}

/// Polls `check` every 20 ms until it returns `Ok`; on timeout panics with
/// `what` and the last state `check` reported (its `Err`).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        match check().await {
            Ok(t) => {
                eprintln!("[{:>6.2?}] {what}", started.elapsed());
                return t;
            }
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The status of `site` in `node`'s site list, as "status" or what went wrong.
pub async fn site_status(c: &Admin, site: &str) -> Result<String, String> {
    let sites = c
        .clone()
        .list_sites(pb::ListSitesRequest {})
        .await
        .map_err(|e| format!("list_sites failed: {e}"))?
        .into_inner()
        .sites;
    sites
        .iter()
        .find(|s| s.site_code == site)
        .map(|s| s.status.clone())
        .ok_or_else(|| {
            let listed: Vec<_> = sites
                .iter()
                .map(|s| format!("{}={}", s.site_code, s.status))
                .collect();
            format!("{site} not listed; sites: {listed:?}")
        })
}

/// Waits until `c` lists `site` as Active.
pub async fn wait_active(who: &str, c: &Admin, site: &str) {
    wait_for(&format!("{site} Active at {who}"), WAIT, || async {
        match site_status(c, site).await? {
            s if s == "Active" => Ok(()),
            s => Err(format!("{site} is {s}")),
        }
    })
    .await
}

pub async fn probe_count(c: &Admin) -> Result<u64, String> {
    Ok(c.clone()
        .list_probes(pb::ListProbesRequest { count_only: true })
        .await
        .map_err(|e| format!("list_probes failed: {e}"))?
        .into_inner()
        .count)
}

/// Waits until exactly `want` probes are stored at the node `c` reaches.
pub async fn wait_probes(who: &str, c: &Admin, want: u64) {
    wait_for(&format!("{want} probes at {who}"), WAIT, || async {
        match probe_count(c).await? {
            n if n == want => Ok(()),
            n => Err(format!("{who} holds {n} probes")),
        }
    })
    .await;
}

pub async fn send_probes(c: &Admin, to: &str, count: u32) -> Vec<Vec<u8>> {
    let ids = c
        .clone()
        .send_probes(pb::SendProbesRequest {
            to: to.into(),
            count,
            bytes: 64,
            priority: 0,
        })
        .await
        .unwrap_or_else(|e| panic!("send_probes to {to}: {e}"))
        .into_inner()
        .job_ids;
    assert_eq!(ids.len(), count as usize, "send_probes to {to}");
    ids
}

pub async fn status(c: &Admin) -> pb::NodeStatus {
    c.clone()
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("get_status")
        .into_inner()
}

pub async fn link(c: &Admin, to: &str) -> pb::LinkState {
    let st = status(c).await;
    st.links
        .iter()
        .find(|l| l.to == to)
        .cloned()
        .unwrap_or_else(|| panic!("no link to {to} in {:?}", st.links))
}

/// Waits until the node `c` reaches has nothing queued for `to`.
pub async fn wait_outbox_empty(c: &Admin, to: &str) {
    wait_for(&format!("the outbox to {to} to drain"), WAIT, || async {
        match link(c, to).await {
            l if l.queued_jobs == 0 => Ok(()),
            l => Err(format!("{l:?}")),
        }
    })
    .await
}

/// Every probe stored at the node `c` reaches.
pub async fn probes(c: &Admin) -> Vec<pb::ReceivedProbe> {
    c.clone()
        .list_probes(pb::ListProbesRequest { count_only: false })
        .await
        .expect("list_probes")
        .into_inner()
        .probes
}

/// Shuts `node` down; it must return Ok within the grace period, with no
/// task left running.
pub async fn stop(who: &str, node: Node) {
    let ctx = node.ctx.clone();
    let t = Instant::now();
    node.shutdown()
        .await
        .unwrap_or_else(|e| panic!("{who} shutdown failed: {e:#}"));
    let took = t.elapsed();
    let stuck = ctx.tasks.running();
    eprintln!("{who} shut down in {took:.2?}");
    assert!(stuck.is_empty(), "{who}: tasks still running: {stuck:?}");
    assert!(took < GRACE, "{who} took {took:?} to shut down");
    // Nothing may keep the node's core (and so its store) alive once it
    // has stopped, or the data dir cannot be opened again in this process.
    let weak = std::sync::Arc::downgrade(&ctx);
    drop(ctx);
    wait_for(&format!("{who}'s core to be freed"), WAIT, || async {
        match weak.strong_count() {
            0 => Ok(()),
            n => Err(format!("{n} references to {who}'s Ctx remain")),
        }
    })
    .await;
}

/// Starts a node with its own connector (short keepalives, say) on a
/// listener the caller bound; the error is the node's own.
pub async fn start_with(
    cfg: NodeConfig,
    listener: TcpListener,
    connector: Connector,
) -> anyhow::Result<Node> {
    Node::start(cfg, listener, connector).await
}

/// An admin client for a node at `addr`.
pub async fn admin_at(addr: SocketAddr) -> Admin {
    AdminClient::connect(format!("http://{addr}"))
        .await
        .unwrap_or_else(|e| panic!("cannot reach the admin service at {addr}: {e}"))
}

/// The job ids of every probe `c` received.
pub async fn probe_ids(c: &Admin) -> Vec<Vec<u8>> {
    probes(c).await.into_iter().map(|p| p.job_id).collect()
}
