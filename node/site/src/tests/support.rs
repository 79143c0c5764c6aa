//! Test support: a temp-dir store, fake ports, and builders for the cores
//! of a central primary, a secondary and a bare node.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tempfile::TempDir;
use uuid::Uuid;

use sms_store::Store;
use sms_types::link::*;
use sms_types::*;

use crate::core::{CoreConfig, Ctx};
use crate::ports::{LinkStream, Peers};

pub fn code(s: &str) -> SiteCode {
    s.parse().expect("a valid site code")
}

/// A fake of the other nodes: records every call, answers `probe` and
/// `prepare_delete` as scripted, and refuses everything else.
#[derive(Default)]
pub struct FakePeers {
    pub calls: Mutex<Vec<String>>,
    pub probe_answer: Mutex<Option<Result<NodeProbe, String>>>,
    pub prepare_delete_answer: Mutex<Option<Result<u64, String>>>,
    /// A management point server's answers: describe, setup (prepare
    /// succeeds when describe does), and the verification request.
    pub mp_target: Mutex<Option<Result<sms_types::mp::MpTarget, String>>>,
    pub mp_setup_answer: Mutex<Option<sms_types::mp::MpSetupResult>>,
    pub mp_http: Mutex<Option<Result<crate::ports::HttpAnswer, String>>>,
    /// Answers to HTTP POSTs (webhooks), in order, and the bodies posted.
    pub post_answers: Mutex<Vec<Result<crate::ports::HttpAnswer, String>>>,
    pub posted: Mutex<Vec<Vec<u8>>>,
}

impl FakePeers {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Peers for FakePeers {
    async fn open_link(
        &self,
        server: &str,
        hello: &LinkHello,
        window: usize,
        opts: &LinkOptions,
    ) -> Result<Box<dyn LinkStream>, LinkError> {
        let keepalive = opts
            .keepalive
            .map_or("default".to_string(), |k| format!("{}s", k.as_secs()));
        self.record(format!(
            "open_link {server} {} {window} keepalive={keepalive}",
            hello.dest_site
        ));
        Err(LinkError::Failed("fake peers open no links".into()))
    }
    async fn install_bootstrap(&self, server: &str, job: &Job) -> Result<(), BootstrapError> {
        self.record(format!("install_bootstrap {server} {}", job.id));
        Err(BootstrapError {
            message: "fake peers install nothing".into(),
            permanent: false,
        })
    }
    async fn attach_primary(
        &self,
        parent: &str,
        code: &SiteCode,
        _server: &str,
        _site_name: &str,
    ) -> Result<Attached, String> {
        self.record(format!("attach_primary {parent} {code}"));
        Err("not scripted".into())
    }
    async fn probe(&self, server: &str) -> Result<NodeProbe, String> {
        self.record(format!("probe {server}"));
        self.probe_answer
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Err("not scripted".into()))
    }
    async fn prepare_delete(&self, server: &str, site: &SiteCode) -> Result<u64, String> {
        self.record(format!("prepare_delete {server} {site}"));
        self.prepare_delete_answer
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Err("not scripted".into()))
    }
    async fn logon_describe(&self, server: &str) -> Result<LogonView, String> {
        self.record(format!("logon_describe {server}"));
        Err("not scripted".into())
    }
    async fn site_links(
        &self,
        server: &str,
        site: &SiteCode,
    ) -> Result<Vec<sms_types::views::LinkView>, String> {
        self.record(format!("site_links {site} {server}"));
        Err("not scripted".into())
    }
    async fn logon_install(
        &self,
        server: &str,
        _req: LogonInstallRequest,
    ) -> Result<LogonView, String> {
        self.record(format!("logon_install {server}"));
        Err("not scripted".into())
    }
    async fn logon_uninstall(&self, server: &str, _site: &SiteCode) -> Result<LogonView, String> {
        self.record(format!("logon_uninstall {server}"));
        Err("not scripted".into())
    }
    async fn logon_refresh(&self, server: &str, _script: LogonScript) -> Result<LogonView, String> {
        self.record(format!("logon_refresh {server}"));
        Err("not scripted".into())
    }
    async fn request_id_range(
        &self,
        site_address: &str,
        _site: &SiteCode,
        _node_id: &str,
    ) -> Result<(u64, u64), String> {
        self.record(format!("request_id_range {site_address}"));
        Err("not scripted".into())
    }
    async fn mp_describe(&self, server: &str) -> Result<sms_types::mp::MpTarget, String> {
        self.record(format!("mp_describe {server}"));
        self.mp_target
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Err("not scripted".into()))
    }
    async fn mp_prepare(
        &self,
        server: &str,
        req: sms_types::mp::MpPrepare,
    ) -> Result<(String, Vec<String>), String> {
        let names: Vec<_> = req.files.iter().map(|f| f.name.clone()).collect();
        self.record(format!(
            "mp_prepare {server} {} {}",
            req.volume,
            names.join(",")
        ));
        Ok((
            format!("{}/SMS_MP", req.volume),
            vec!["Created the installation directory.".into()],
        ))
    }
    async fn mp_setup(
        &self,
        server: &str,
        req: sms_types::mp::MpSetup,
    ) -> Result<sms_types::mp::MpSetupResult, String> {
        self.record(format!(
            "mp_setup {server} port={} policies={}",
            req.port,
            req.policies.len()
        ));
        self.mp_setup_answer
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| "not scripted".into())
    }
    async fn mp_uninstall(
        &self,
        server: &str,
        site: &SiteCode,
    ) -> Result<sms_types::mp::MpTarget, String> {
        self.record(format!("mp_uninstall {server} {site}"));
        self.mp_target
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Err("not scripted".into()))
    }
    async fn mp_database_access(
        &self,
        site_address: &str,
        _node_id: &str,
    ) -> Result<String, String> {
        self.record(format!("mp_database_access {site_address}"));
        Err("not scripted".into())
    }
    async fn mp_register_client(
        &self,
        site_address: &str,
        _node_id: &str,
        _name: &str,
        _hardware_id: &str,
    ) -> Result<(u64, bool), String> {
        self.record(format!("mp_register_client {site_address}"));
        Err("not scripted".into())
    }
    async fn mp_client_status(
        &self,
        site_address: &str,
        _node_id: &str,
        _client: &str,
        _messages: Vec<sms_types::mp::ClientMessage>,
    ) -> Result<u32, String> {
        self.record(format!("mp_client_status {site_address}"));
        Err("not scripted".into())
    }
    async fn http_get(
        &self,
        host_port: &str,
        path: &str,
    ) -> Result<(u16, String, Vec<u8>), String> {
        self.record(format!("http_get {host_port}{path}"));
        self.mp_http
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Err("not scripted".into()))
    }
    async fn http_post_json(
        &self,
        host_port: &str,
        path: &str,
        body: Vec<u8>,
        _: std::time::Duration,
    ) -> Result<crate::ports::HttpAnswer, String> {
        self.record(format!("http_post {host_port}{path}"));
        self.posted.lock().unwrap().push(body);
        let mut answers = self.post_answers.lock().unwrap();
        if answers.is_empty() {
            Err("not scripted".into())
        } else {
            answers.remove(0)
        }
    }
}

/// A link stream that records every frame handed to it and never answers.
#[derive(Default)]
pub struct FakeStream {
    pub sent: Mutex<Vec<(Job, Option<Chunk>)>>,
}

impl FakeStream {
    pub fn sent_ids(&self) -> Vec<Uuid> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(j, _)| j.id)
            .collect()
    }
}

#[async_trait]
impl LinkStream for FakeStream {
    async fn send(&self, job: &Job, chunk: Option<Chunk>) -> Result<(), LinkError> {
        self.sent.lock().unwrap().push((job.clone(), chunk));
        Ok(())
    }
    async fn next(&mut self) -> Result<LinkEvent, LinkError> {
        Err(LinkError::Failed("the fake stream has no answers".into()))
    }
}

/// One node under test; the temp dir lives as long as it does.
pub struct Node {
    pub ctx: Arc<Ctx>,
    pub peers: Arc<FakePeers>,
    _dir: TempDir,
}

/// A node with an empty store and no site.
pub fn bare() -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    let peers = Arc::new(FakePeers::default());
    let ctx = Ctx::new(CoreConfig {
        store,
        data_dir: dir.path().to_path_buf(),
        advertise: "127.0.0.1:7001".into(),
        node_id: Uuid::now_v7(),
        identity: None,
        tasks: sms_runtime::TaskCenter::new(),
        peers: peers.clone(),
    })
    .expect("core");
    let ctx = Arc::new(ctx);
    crate::wiring::wire(&ctx);
    Node {
        ctx,
        peers,
        _dir: dir,
    }
}

/// A site control at serial 1 for `site` below `parent`.
pub fn ct0(site: &str, parent: Option<&str>) -> SiteControl {
    SiteControl::first(code(site), format!("{site} site"), parent.map(code))
}

fn install(node: &Node, id: Identity, control: SiteControl) {
    node.ctx
        .store
        .install_site(&id, &control)
        .expect("install_site");
    node.ctx.set_identity(id).expect("set_identity");
    node.ctx.publish_config(control);
}

/// The identity of a central primary site `site`, installed now.
fn central_identity(site: &str) -> Identity {
    Identity {
        site_code: code(site),
        site_name: format!("{site} site"),
        kind: SiteKind::Primary,
        parent: None,
        installed_unix_ms: now_ms(),
        version: SOFTWARE_VERSION.to_string(),
        ancestors: vec![],
    }
}

/// A central primary site `site` with CT0 serial 1.
pub fn central(site: &str) -> Node {
    let node = bare();
    let id = central_identity(site);
    install(&node, id, ct0(site, None));
    node
}

/// A secondary site `site` below `parent` (reached at 127.0.0.1:7000).
pub fn secondary(site: &str, parent: &str) -> Node {
    below(site, parent, SiteKind::Secondary)
}

/// A primary site `site` attached below `parent`.
pub fn primary_below(site: &str, parent: &str) -> Node {
    below(site, parent, SiteKind::Primary)
}

fn below(site: &str, parent: &str, kind: SiteKind) -> Node {
    let node = bare();
    let id = Identity {
        site_code: code(site),
        site_name: format!("{site} site"),
        kind,
        parent: Some(ParentLink {
            site_code: code(parent),
            address: "127.0.0.1:7000".into(),
            link_secret: "parent-secret".into(),
        }),
        installed_unix_ms: now_ms(),
        version: SOFTWARE_VERSION.to_string(),
        ancestors: vec![code(parent)],
    };
    install(&node, id, ct0(site, Some(parent)));
    node
}

pub fn record(site: &str, parent: Option<&str>, kind: SiteKind) -> SiteRecord {
    SiteRecord {
        site_code: code(site),
        parent_site_code: parent.map(code),
        kind,
        server: format!("127.0.0.1:71{}", &site[1..]),
        status: SiteStatus::Active,
        status_changed_unix_ms: 0,
        serial: 1,
        link_secret: format!("{site}-secret"),
        sever_link_mid_bootstrap: false,
    }
}

/// Puts an Active site record in the Hierarchy Manager's list.
pub fn put_site(ctx: &Ctx, site: &str, parent: Option<&str>, kind: SiteKind) -> SiteRecord {
    let rec = record(site, parent, kind);
    ctx.store.put_site(&rec).expect("put_site");
    rec
}

pub fn job(source: &str, dest: &str, priority: Priority, payload: Payload) -> Job {
    Job::new(code(source), code(dest), priority, payload)
}

pub fn probe(source: &str, dest: &str, priority: Priority) -> Job {
    job(source, dest, priority, Payload::Probe(vec![1, 2, 3]))
}

pub fn file_payload(chunk_count: u32) -> Payload {
    Payload::File(FilePackage {
        name: "pkg".into(),
        total_size: chunk_count as u64 * 4,
        chunk_count,
        chunk_size: 4,
        sha256: vec![0; 32],
    })
}

pub fn bootstrap_payload(site: &str, parent: &str) -> Payload {
    Payload::Bootstrap(Box::new(BootstrapPackage {
        site_code: code(site),
        site_name: format!("{site} site"),
        parent_site_code: code(parent),
        parent_address: "127.0.0.1:7000".into(),
        init_control: ct0(site, Some(parent)),
        link_secret: "secret".into(),
        content: vec![],
        content_sha256: vec![],
        required_free_bytes: 0,
        version: SOFTWARE_VERSION.to_string(),
        server: "127.0.0.1:7002".into(),
        ancestors: vec![code(parent)],
    }))
}

/// A central primary `site` whose remote calls go to `peers` (a fake of
/// the test's own); the temp dir lives as long as the returned guard.
pub fn central_with_peers(site: &str, peers: Arc<dyn Peers>) -> (Arc<Ctx>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx = Arc::new(
        Ctx::new(CoreConfig {
            store: Store::open(dir.path()).expect("store"),
            data_dir: dir.path().to_path_buf(),
            advertise: "127.0.0.1:7001".into(),
            node_id: Uuid::now_v7(),
            identity: None,
            tasks: sms_runtime::TaskCenter::new(),
            peers,
        })
        .expect("core"),
    );
    crate::wiring::wire(&ctx);
    let id = central_identity(site);
    ctx.store
        .install_site(&id, &ct0(site, None))
        .expect("install_site");
    ctx.set_identity(id).expect("set_identity");
    ctx.publish_config(ct0(site, None));
    (ctx, dir)
}

/// A fake of the other nodes that only opens links, each from `open`, and
/// counts them; any other call is a bug in the test.
pub struct LinkPeers {
    pub opened: std::sync::atomic::AtomicUsize,
    open: Box<dyn Fn() -> Box<dyn LinkStream> + Send + Sync>,
}

impl LinkPeers {
    pub fn new(open: impl Fn() -> Box<dyn LinkStream> + Send + Sync + 'static) -> LinkPeers {
        LinkPeers {
            opened: Default::default(),
            open: Box::new(open),
        }
    }
}

#[async_trait]
impl Peers for LinkPeers {
    async fn open_link(
        &self,
        _: &str,
        _: &LinkHello,
        _: usize,
        _: &LinkOptions,
    ) -> Result<Box<dyn LinkStream>, LinkError> {
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok((self.open)())
    }
    async fn install_bootstrap(&self, _: &str, _: &Job) -> Result<(), BootstrapError> {
        unreachable!("not used here")
    }
    async fn attach_primary(
        &self,
        _: &str,
        _: &SiteCode,
        _: &str,
        _: &str,
    ) -> Result<Attached, String> {
        unreachable!("not used here")
    }
    async fn probe(&self, _: &str) -> Result<NodeProbe, String> {
        unreachable!("not used here")
    }
    async fn prepare_delete(&self, _: &str, _: &SiteCode) -> Result<u64, String> {
        unreachable!("not used here")
    }
    async fn logon_describe(&self, _: &str) -> Result<LogonView, String> {
        unreachable!("not used here")
    }
    async fn site_links(
        &self,
        _: &str,
        _: &SiteCode,
    ) -> Result<Vec<sms_types::views::LinkView>, String> {
        unreachable!("not used here")
    }
    async fn logon_install(&self, _: &str, _: LogonInstallRequest) -> Result<LogonView, String> {
        unreachable!("not used here")
    }
    async fn logon_uninstall(&self, _: &str, _: &SiteCode) -> Result<LogonView, String> {
        unreachable!("not used here")
    }
    async fn logon_refresh(&self, _: &str, _: LogonScript) -> Result<LogonView, String> {
        unreachable!("not used here")
    }
    async fn request_id_range(&self, _: &str, _: &SiteCode, _: &str) -> Result<(u64, u64), String> {
        unreachable!("not used here")
    }
    async fn mp_describe(&self, _: &str) -> Result<sms_types::mp::MpTarget, String> {
        unreachable!("not used here")
    }
    async fn mp_prepare(
        &self,
        _: &str,
        _: sms_types::mp::MpPrepare,
    ) -> Result<(String, Vec<String>), String> {
        unreachable!("not used here")
    }
    async fn mp_setup(
        &self,
        _: &str,
        _: sms_types::mp::MpSetup,
    ) -> Result<sms_types::mp::MpSetupResult, String> {
        unreachable!("not used here")
    }
    async fn mp_uninstall(&self, _: &str, _: &SiteCode) -> Result<sms_types::mp::MpTarget, String> {
        unreachable!("not used here")
    }
    async fn mp_database_access(&self, _: &str, _: &str) -> Result<String, String> {
        unreachable!("not used here")
    }
    async fn mp_register_client(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<(u64, bool), String> {
        unreachable!("not used here")
    }
    async fn mp_client_status(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Vec<sms_types::mp::ClientMessage>,
    ) -> Result<u32, String> {
        unreachable!("not used here")
    }
    async fn http_get(&self, _: &str, _: &str) -> Result<(u16, String, Vec<u8>), String> {
        unreachable!("not used here")
    }
    async fn http_post_json(
        &self,
        _: &str,
        _: &str,
        _: Vec<u8>,
        _: std::time::Duration,
    ) -> Result<crate::ports::HttpAnswer, String> {
        unreachable!("not used here")
    }
}
