//! The node: its shared context, startup from the store, and clean shutdown.
//!
//! Every background component is a task spawned on [`Ctx::tasks`] that stops
//! when [`Ctx::cancel`] fires; shutdown cancels, waits a bounded time for the
//! tasks, then flushes the store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::model::*;
use crate::rpc::Connector;
use crate::scheduler::Scheduler;
use crate::site_component::Components;
use crate::store::Store;

/// How a node is started (from the command line or a test).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// Address other nodes use to reach this one; defaults to the bound address.
    pub advertise: Option<String>,
    /// Install the central primary site with this code on first start.
    pub install_primary: Option<SiteCode>,
    pub site_name: Option<String>,
    /// With `install_primary`: attach the new primary below this site...
    pub parent_site: Option<SiteCode>,
    /// ...whose site server is at this address.
    pub parent: Option<String>,
    /// Mark this node a member server of a domain.
    pub domain: Option<String>,
    /// How long shutdown waits for components before giving up.
    pub shutdown_grace: Duration,
}

/// State shared by every component of one node.
pub struct Ctx {
    pub store: Store,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    pub advertise: String,
    pub node_id: Uuid,
    identity: RwLock<Option<Identity>>,
    /// The working configuration: the current CT0, read by every component.
    config: watch::Sender<Option<SiteControl>>,
    pub cancel: CancellationToken,
    pub tasks: TaskTracker,
    pub connector: Connector,
    pub components: Components,
    pub scheduler: Scheduler,
    /// Wakes the Site Configuration Manager (a CT1 arrived, or a forced cycle).
    pub scm_wake: Notify,
    /// Wakes the Hierarchy Manager (a CT2 arrived).
    pub hm_wake: Notify,
    /// Wakes the Status Manager (messages to store or replicate).
    pub status_wake: Notify,
    /// Signals bootstrap progress changes to anyone waiting on them.
    pub bootstrap_changed: Notify,
    /// Serialises read-modify-write of the Hierarchy Manager's site records
    /// (phase reports and CT2s arrive on different inboxes).
    pub site_lock: tokio::sync::Mutex<()>,
    /// Fired when the node must restart (its site was deleted: it restarts bare).
    pub restart: CancellationToken,
    /// Set by `force-ct2`: the next stage 4 sends a CT2 even if one is queued.
    pub force_ct2: std::sync::atomic::AtomicBool,
    /// Serialises a logon server's ID allocations and range refills.
    pub logon_lock: tokio::sync::Mutex<()>,
    /// Set while a range refill is under way.
    pub logon_refill: std::sync::atomic::AtomicBool,
    /// Set while a task runs the bootstrap phases.
    pub bootstrap_task: std::sync::atomic::AtomicBool,
    /// Every batch of status messages stored at this site, for watchers
    /// (`WatchStatusMessages`); nothing is sent while no one watches.
    pub status_feed: tokio::sync::broadcast::Sender<crate::status_manager::Stored>,
    /// Set while a status load test runs (one at a time).
    pub status_load: std::sync::atomic::AtomicBool,
}

impl Ctx {
    /// This site's identity, or None on a bare node.
    pub fn identity(&self) -> Option<Identity> {
        self.identity.read().expect("identity lock").clone()
    }

    pub fn site_code(&self) -> Option<SiteCode> {
        self.identity
            .read()
            .expect("identity lock")
            .as_ref()
            .map(|i| i.site_code.clone())
    }

    /// Records a new or updated identity, in the store and in memory.
    pub fn set_identity(&self, id: Identity) -> crate::store::Result<()> {
        self.store.set_identity(&id)?;
        *self.identity.write().expect("identity lock") = Some(id);
        Ok(())
    }

    /// The current working configuration (CT0).
    pub fn config(&self) -> Option<SiteControl> {
        self.config.borrow().clone()
    }

    /// Watches the working configuration for changes.
    pub fn watch_config(&self) -> watch::Receiver<Option<SiteControl>> {
        self.config.subscribe()
    }

    /// Publishes a newly applied CT0 to every component.
    pub fn publish_config(&self, ct0: SiteControl) {
        self.config.send_replace(Some(ct0));
    }

    /// The address settings for a neighbour: from site control when present,
    /// otherwise defaults.
    pub fn address_for(&self, to: &SiteCode, server: String) -> Address {
        let configured = self
            .config()
            .and_then(|c| c.addresses.into_iter().find(|a| &a.site_code == to));
        match configured {
            Some(mut a) => {
                a.server = server;
                a
            }
            None => Address::new(to.clone(), server),
        }
    }

    /// A machine name for status messages.
    pub fn machine(&self) -> String {
        self.advertise.clone()
    }
}

/// A running node.
pub struct Node {
    pub ctx: Arc<Ctx>,
    pub local_addr: std::net::SocketAddr,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    grace: Duration,
}

impl Node {
    /// Opens the store, installs the central site if asked, starts what the
    /// store says this node is, and serves gRPC on `listener`.
    pub async fn start(
        cfg: NodeConfig,
        listener: TcpListener,
        connector: Connector,
    ) -> anyhow::Result<Node> {
        let local_addr = listener.local_addr()?;
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
        let marker = cfg.data_dir.join(DEINSTALL_MARKER);
        if marker.exists() {
            // The parent deleted this site: finish removing the install.
            let db = cfg.data_dir.join("db");
            if db.exists() {
                std::fs::remove_dir_all(&db).with_context(|| {
                    format!("cannot remove the deleted site's store {}", db.display())
                })?;
            }
            std::fs::remove_file(&marker)?;
            tracing::warn!(
                "the site install was removed at its parent's request; starting as a bare node"
            );
        }
        let store = Store::open(&cfg.data_dir.join("db"))
            .with_context(|| format!("cannot open the store in {}", cfg.data_dir.display()))?;
        let node_id = store.node_id()?;
        let advertise = cfg
            .advertise
            .clone()
            .unwrap_or_else(|| local_addr.to_string());

        let mut identity = store.identity()?;
        let mut installed_now = false;
        if let Some(code) = &cfg.install_primary {
            match &identity {
                Some(id) if &id.site_code == code && id.kind == SiteKind::Primary => {}
                Some(id) => bail!(
                    "data dir {} already holds site {} ({}); refusing to install {} over it",
                    cfg.data_dir.display(),
                    id.site_code,
                    id.kind.as_str(),
                    code
                ),
                None => {
                    if let Some(b) = store.bootstrap_package()? {
                        bail!(
                            "data dir {} holds a bootstrap for site {}; refusing to install {} over it",
                            cfg.data_dir.display(),
                            b.package.site_code,
                            code
                        );
                    }
                    let parent = match (&cfg.parent_site, &cfg.parent) {
                        (Some(psite), Some(paddr)) => {
                            let name = cfg.site_name.clone().unwrap_or_default();
                            let (got, addr, secret, ancestors) =
                                crate::rpc::client::attach_primary(
                                    &connector, paddr, code, &advertise, &name,
                                )
                                .await
                                .map_err(|e| {
                                    anyhow::anyhow!("cannot attach {code} below {psite}: {e}")
                                })?;
                            if got != psite.as_str() {
                                bail!("{paddr} is site {got}, not {psite}; nothing was installed");
                            }
                            let ancestors: Vec<SiteCode> =
                                ancestors.iter().filter_map(|c| c.parse().ok()).collect();
                            if ancestors.contains(code) {
                                bail!("{code} is an ancestor of {psite}; a site cannot be its own ancestor");
                            }
                            Some((
                                ancestors,
                                ParentLink {
                                    site_code: psite.clone(),
                                    address: if addr.is_empty() { paddr.clone() } else { addr },
                                    link_secret: secret,
                                },
                            ))
                        }
                        (None, None) => None,
                        _ => bail!("--parent-site and --parent go together"),
                    };
                    let id =
                        install_primary(&store, code, cfg.site_name.clone(), &advertise, parent)?;
                    store.durable().await?;
                    identity = Some(id);
                    installed_now = true;
                }
            }
        }
        if let Some(domain) = &cfg.domain {
            store.set_member_domain(domain)?;
            store.durable().await?;
        }
        let orphans = store.drop_orphan_chunks()?;
        if orphans > 0 {
            tracing::info!(
                orphans,
                "freed the chunks of packages that were never queued"
            );
        }
        let ct0 = store.ct0()?;
        let (config, _) = watch::channel(ct0);
        let ctx = Arc::new(Ctx {
            log_dir: cfg.data_dir.join("logs"),
            data_dir: cfg.data_dir.clone(),
            advertise,
            node_id,
            identity: RwLock::new(identity.clone()),
            config,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            connector,
            components: Components::default(),
            scheduler: Scheduler::default(),
            scm_wake: Notify::new(),
            hm_wake: Notify::new(),
            status_wake: Notify::new(),
            bootstrap_changed: Notify::new(),
            site_lock: tokio::sync::Mutex::new(()),
            bootstrap_task: std::sync::atomic::AtomicBool::new(false),
            force_ct2: std::sync::atomic::AtomicBool::new(false),
            logon_lock: tokio::sync::Mutex::new(()),
            logon_refill: std::sync::atomic::AtomicBool::new(false),
            restart: CancellationToken::new(),
            status_feed: tokio::sync::broadcast::channel(crate::status_manager::WATCH_BACKLOG).0,
            status_load: std::sync::atomic::AtomicBool::new(false),
            store,
        });

        if identity.is_some() {
            crate::site_component::start_site(&ctx)?;
            if installed_now {
                let id = ctx.identity().expect("just installed");
                crate::status_manager::emit(
                    &ctx,
                    &crate::catalog::SITE_INSTALLED,
                    &[id.site_code.to_string(), id.site_name.clone()],
                )?;
            }
        } else {
            tracing::info!(node_id = %ctx.node_id, "bare node: waiting for a site install");
        }
        crate::bootstrap::resume(&ctx)?;

        let server = tokio::spawn(crate::rpc::serve(ctx.clone(), listener));
        write_addr_file(&cfg.data_dir, &local_addr.to_string())?;
        Ok(Node {
            ctx,
            local_addr,
            server,
            grace: cfg.shutdown_grace,
        })
    }

    /// Stops every component (bounded by the grace period) and flushes.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down");
        self.ctx.cancel.cancel();
        self.ctx.tasks.close();
        if tokio::time::timeout(self.grace, self.ctx.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.grace, "components did not stop in time");
        }
        match tokio::time::timeout(self.grace, self.server).await {
            Ok(Ok(Err(e))) => tracing::warn!("gRPC server ended with an error: {e:#}"),
            Ok(_) => {}
            Err(_) => tracing::warn!("gRPC server did not stop in time"),
        }
        self.ctx.store.flush_now()?;
        Ok(())
    }
}

/// Installs a primary site: the central site, or (with `parent`) a primary
/// already registered below another primary.
fn install_primary(
    store: &Store,
    code: &SiteCode,
    name: Option<String>,
    advertise: &str,
    parent: Option<(Vec<SiteCode>, ParentLink)>,
) -> anyhow::Result<Identity> {
    let (ancestors, parent) = match parent {
        Some((a, p)) => (a, Some(p)),
        None => (vec![], None),
    };
    let site_name = name.unwrap_or_else(|| match &parent {
        None => format!("{code} central site"),
        Some(p) => format!("{code} primary site below {}", p.site_code),
    });
    let parent_code = parent.as_ref().map(|p| p.site_code.clone());
    let id = Identity {
        site_code: code.clone(),
        site_name: site_name.clone(),
        kind: SiteKind::Primary,
        parent,
        installed_unix_ms: now_ms(),
        version: SOFTWARE_VERSION.to_string(),
        ancestors,
    };
    let ct0 = SiteControl {
        site_code: code.clone(),
        site_name,
        serial: 1,
        parent_site_code: parent_code.clone(),
        polling_interval_ms: DEFAULT_POLLING_INTERVAL_MS,
        domains: vec![],
        addresses: vec![],
        version: SOFTWARE_VERSION.to_string(),
        next_unique_id: 1,
    };
    store.install_site(&id, &ct0)?;
    store.put_site(&SiteRecord {
        site_code: code.clone(),
        parent_site_code: parent_code,
        kind: SiteKind::Primary,
        server: advertise.to_string(),
        status: SiteStatus::Active,
        status_changed_unix_ms: now_ms(),
        serial: 1,
        link_secret: String::new(),
        sever_link_mid_bootstrap: false,
    })?;
    tracing::info!(site = %code, parent = ?id.parent.as_ref().map(|p| &p.site_code), "installed a primary site");
    Ok(id)
}

/// A file in the data dir that says: wipe the store at the next start.
pub const DEINSTALL_MARKER: &str = "deinstall.marker";

/// Records durably that this node's site install must be removed, then asks
/// the process to restart (it comes back bare). A crash after the marker is
/// written still ends with a bare node.
pub fn request_deinstall(ctx: &Ctx) -> std::io::Result<()> {
    let path = ctx.data_dir.join(DEINSTALL_MARKER);
    let f = std::fs::File::create(&path)?;
    f.sync_all()?;
    std::fs::File::open(&ctx.data_dir)?.sync_all()?;
    ctx.restart.cancel();
    Ok(())
}

/// Name of the file in the data dir that holds the bound address.
pub const ADDR_FILE: &str = "node.addr";

/// Writes the bound address atomically (write + rename) so a reader never
/// sees half of it.
fn write_addr_file(dir: &Path, addr: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!("{ADDR_FILE}.tmp"));
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(tmp, dir.join(ADDR_FILE))
}
