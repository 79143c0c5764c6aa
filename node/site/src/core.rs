//! What every component of one site server shares: the store, who this
//! node is, the working configuration (CT0), the task centre, the ports to
//! other nodes, and the wake-ups that carry work between components.
//!
//! Component-private state is not here: each component keeps its own in a
//! type whose fields only its module can touch (see the `*State` fields).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::{watch, Notify};
use uuid::Uuid;

use sms_runtime::TaskCenter;
use sms_store::Store;
use sms_types::*;

/// Stored status messages as a watcher sees them.
pub use crate::site_component::Stored;

use sms_runtime::SingleFlight;
use tokio::sync::broadcast;

use crate::links::Links;
use crate::ports::{Peers, Upcalls};
use crate::site_component::Components;
use crate::site_records::SiteRecords;

/// How the shared core is made (by the composition root).
pub struct CoreConfig {
    pub store: Store,
    pub data_dir: PathBuf,
    pub advertise: String,
    pub node_id: Uuid,
    pub identity: Option<Identity>,
    pub tasks: TaskCenter,
    pub peers: Arc<dyn Peers>,
}

/// The shared core of one node.
pub struct Ctx {
    pub store: Store,
    pub data_dir: PathBuf,
    pub advertise: String,
    pub node_id: Uuid,
    identity: RwLock<Option<Identity>>,
    /// The working configuration: the current CT0, read by every component.
    config: watch::Sender<Option<SiteControl>>,
    pub tasks: TaskCenter,
    /// How this node reaches other nodes (gRPC in the server, fakes in tests).
    pub peers: Arc<dyn Peers>,
    pub components: Components,
    /// The links to neighbouring sites and what their senders report.
    pub links: Links,
    /// Fires when the node must restart (its site was deleted: it restarts bare).
    restart: watch::Sender<bool>,
    /// Every read-modify-write of a site record goes through here.
    pub sites: SiteRecords,
    /// The Site Configuration Manager's handle: its wake-up and flags.
    pub scm: ScmState,
    /// The Hierarchy Manager's handle: its wake-up.
    pub hm: HmState,
    pub(crate) logon: LogonLocks,
    /// The Bootstrap component's handle: its single runner and progress signal.
    pub bootstrap: BootstrapRun,
    /// The Status Manager's handle: its wake-up, watchers' feed, load guard.
    pub status: StatusState,
    /// Calls up the layers, registered once at wiring time.
    upcalls: OnceLock<Arc<dyn Upcalls>>,
    /// How long packages received here are kept (applied by `retention`).
    pub package_retention: std::sync::Mutex<PackageRetention>,
    /// How long the certificates this node's authority issues last (None:
    /// the defaults, 397 days for a leaf, 5 years for a CA).
    pub cert_lifetime: std::sync::Mutex<Option<std::time::Duration>>,
    /// The management point role on this node (target side) and the site
    /// database's lock (site side).
    pub mp: MpRuntime,
}

impl Ctx {
    pub fn new(cfg: CoreConfig) -> anyhow::Result<Ctx> {
        let ct0 = cfg.store.ct0()?;
        let status = StatusState::default();
        if let Some(c) = &ct0 {
            status.set_rules(&c.status_rules);
        }
        Ok(Ctx {
            identity: RwLock::new(cfg.identity),
            config: watch::channel(ct0).0,
            store: cfg.store,
            data_dir: cfg.data_dir,
            advertise: cfg.advertise,
            node_id: cfg.node_id,
            tasks: cfg.tasks,
            peers: cfg.peers,
            components: Components::default(),
            links: Links::default(),
            restart: watch::channel(false).0,
            sites: SiteRecords::default(),
            scm: ScmState::default(),
            hm: HmState::default(),
            logon: LogonLocks::default(),
            bootstrap: BootstrapRun::default(),
            status,
            upcalls: OnceLock::new(),
            package_retention: Default::default(),
            cert_lifetime: Default::default(),
            mp: MpRuntime::default(),
        })
    }

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
    pub fn set_identity(&self, id: Identity) -> sms_store::Result<()> {
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

    /// Publishes a newly applied CT0 to every component, its status filter
    /// rules compiled once here rather than for every message.
    pub fn publish_config(&self, ct0: SiteControl) {
        self.status.set_rules(&ct0.status_rules);
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

    /// Registers the calls that go up the layers (done once, at wiring).
    pub fn set_upcalls(&self, up: Arc<dyn Upcalls>) {
        let _ = self.upcalls.set(up);
    }

    pub(crate) fn upcalls(&self) -> anyhow::Result<&Arc<dyn Upcalls>> {
        self.upcalls
            .get()
            .ok_or_else(|| anyhow::anyhow!("the node is not wired yet"))
    }

    /// Whether a restart was asked for (the site's install is being removed).
    pub fn restart_pending(&self) -> bool {
        *self.restart.borrow()
    }

    /// Resolves when the node must restart bare.
    pub async fn restart_requested(&self) {
        let mut rx = self.restart.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Records durably that this node's site install must be removed, then
    /// asks the process to restart (it comes back bare). A crash after the
    /// marker is written still ends with a bare node.
    pub fn request_deinstall(&self) -> std::io::Result<()> {
        let path = self.data_dir.join(DEINSTALL_MARKER);
        let f = std::fs::File::create(&path)?;
        f.sync_all()?;
        std::fs::File::open(&self.data_dir)?.sync_all()?;
        self.restart.send_replace(true);
        Ok(())
    }
}

/// A file in the data dir that says: wipe the store at the next start.
pub const DEINSTALL_MARKER: &str = "deinstall.marker";

/// The Bootstrap component's state: at most one task runs the phases, and
/// whoever waits on its progress is told of each change.
#[derive(Default)]
pub struct BootstrapRun {
    task: SingleFlight,
    changed: Notify,
}

impl BootstrapRun {
    pub(crate) fn runner(&self) -> &SingleFlight {
        &self.task
    }

    /// Tells every waiter the bootstrap moved on.
    pub(crate) fn changed(&self) {
        self.changed.notify_waiters();
    }

    /// Resolves at the next change of the bootstrap's progress.
    pub async fn progress(&self) {
        self.changed.notified().await
    }
}

/// The Site Configuration Manager's state.
#[derive(Default)]
pub struct ScmState {
    /// A CT1 arrived, or a cycle was forced.
    wake: Notify,
    /// Set by `force-ct2`: the next stage 4 sends a CT2 even if one is queued.
    force_ct2: std::sync::atomic::AtomicBool,
}

/// Polling intervals of silence after which a site below is Stale, by
/// default (see `stale`).
pub const DEFAULT_STALE_AFTER_INTERVALS: u32 = 3;

/// The Hierarchy Manager's state.
pub struct HmState {
    /// A CT2 arrived.
    wake: Notify,
    /// Polling intervals of silence after which a site below is Stale.
    stale_after: std::sync::atomic::AtomicU32,
    /// When this node started: silence is counted from here at the most.
    started_unix_ms: std::sync::atomic::AtomicU64,
}

impl Default for HmState {
    fn default() -> Self {
        HmState {
            wake: Notify::new(),
            stale_after: DEFAULT_STALE_AFTER_INTERVALS.into(),
            started_unix_ms: now_ms().into(),
        }
    }
}

impl HmState {
    /// Polling intervals of silence after which a site below is Stale.
    pub fn stale_after_intervals(&self) -> u32 {
        self.stale_after.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets it (the node's `--stale-after-intervals`; at least 1).
    pub fn set_stale_after_intervals(&self, n: u32) {
        self.stale_after
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn started_unix_ms(&self) -> u64 {
        self.started_unix_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Tests: pretend the node started at `ms`.
    #[cfg(test)]
    pub(crate) fn set_started_unix_ms(&self, ms: u64) {
        self.started_unix_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }
}

impl ScmState {
    /// Runs a watchdog cycle soon (a CT1 is waiting in the inbox).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    pub(crate) fn request_ct2(&self) {
        self.force_ct2
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a CT2 was forced since the last call (and clears it).
    pub(crate) fn take_ct2_request(&self) -> bool {
        self.force_ct2
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

/// The logon component's state on a member server.
#[derive(Default)]
pub struct LogonLocks {
    /// Serialises a logon server's ID allocations and range refills.
    lock: tokio::sync::Mutex<()>,
    /// At most one range refill at a time.
    refill: SingleFlight,
}

impl LogonLocks {
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    pub(crate) fn refill(&self) -> &SingleFlight {
        &self.refill
    }
}

/// The Status Manager's state: the feed watchers subscribe to, and the
/// one-at-a-time guard of the load generator.
pub struct StatusState {
    /// Messages to store or replicate.
    wake: Notify,
    /// Every batch of status messages stored at this site, for watchers
    /// (`WatchStatusMessages`); nothing is sent while no one watches.
    feed: broadcast::Sender<Stored>,
    load: SingleFlight,
    /// Messages stored at this site since start (its own and its
    /// descendants'), by severity: informational, warning, error.
    stored: [std::sync::atomic::AtomicU64; 3],
    /// The site's status filter rules, compiled.
    rules: RwLock<Arc<crate::status_rules::Compiled>>,
    /// Webhook and program calls the rules asked for, to the runner.
    pub actions: crate::status_rules::ActionQueue,
}

/// Batches a watcher may fall behind by before it misses some (a batch is
/// up to a few thousand messages: this bounds what a stalled watcher holds).
pub const WATCH_BACKLOG: usize = 128;

impl Default for StatusState {
    fn default() -> Self {
        StatusState {
            wake: Notify::new(),
            feed: broadcast::channel(WATCH_BACKLOG).0,
            load: SingleFlight::new(),
            stored: Default::default(),
            rules: Default::default(),
            actions: Default::default(),
        }
    }
}

impl StatusState {
    /// Replicates soon (messages were stored).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    /// The status filter rules in force.
    pub fn rules(&self) -> Arc<crate::status_rules::Compiled> {
        self.rules.read().expect("status rules lock").clone()
    }

    fn set_rules(&self, rules: &[sms_types::status_rules::StatusRule]) {
        *self.rules.write().expect("status rules lock") =
            Arc::new(crate::status_rules::Compiled::new(rules));
    }

    pub(crate) fn count_stored(&self, severity: Severity) {
        self.stored[severity as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Messages stored at this site since start, by severity.
    pub fn stored_by_severity(&self) -> [(Severity, u64); 3] {
        use std::sync::atomic::Ordering::Relaxed;
        [
            (Severity::Informational, self.stored[0].load(Relaxed)),
            (Severity::Warning, self.stored[1].load(Relaxed)),
            (Severity::Error, self.stored[2].load(Relaxed)),
        ]
    }

    pub(crate) fn feed(&self) -> &broadcast::Sender<Stored> {
        &self.feed
    }

    pub(crate) fn load_test(&self) -> &SingleFlight {
        &self.load
    }
}

/// The management point role's state on this node: the HTTP listener
/// registered by the edge, the data volumes an install may use, and the
/// lock that serialises installs and removals here.
#[derive(Default)]
pub struct MpRuntime {
    host: OnceLock<Arc<dyn crate::ports::MpHost>>,
    volumes: RwLock<Vec<PathBuf>>,
    pub(crate) lock: tokio::sync::Mutex<()>,
    /// The installed management point as the agent serves it, kept beside
    /// its stored record so no client request reads the store.
    installed: RwLock<Option<Arc<sms_types::mp::MpInstall>>>,
    /// The agent stopped on demand (fault `mp-agent-stopped`).
    agent_stopped: std::sync::atomic::AtomicBool,
}

impl MpRuntime {
    /// Registers the HTTP listener (once, by the composition root).
    pub fn set_host(&self, host: Arc<dyn crate::ports::MpHost>) {
        let _ = self.host.set(host);
    }

    pub(crate) fn host(&self) -> Option<&Arc<dyn crate::ports::MpHost>> {
        self.host.get()
    }

    /// The data volumes a management point may be installed on.
    pub fn set_volumes(&self, v: Vec<PathBuf>) {
        *self.volumes.write().expect("mp volumes lock") = v;
    }

    pub fn volumes(&self) -> Vec<PathBuf> {
        self.volumes.read().expect("mp volumes lock").clone()
    }

    /// The install the agent serves (set after each stored change).
    pub(crate) fn installed(&self) -> Option<Arc<sms_types::mp::MpInstall>> {
        self.installed.read().expect("mp install lock").clone()
    }

    pub(crate) fn set_installed(&self, i: Option<sms_types::mp::MpInstall>) {
        *self.installed.write().expect("mp install lock") = i.map(Arc::new);
    }

    pub(crate) fn agent_stopped(&self) -> bool {
        self.agent_stopped
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_agent_stopped(&self, stopped: bool) {
        self.agent_stopped
            .store(stopped, std::sync::atomic::Ordering::Relaxed);
    }
}
