//! The ports: everything a component asks of another node, and the calls
//! that go up the layers. The server crate implements [`Peers`] with gRPC;
//! unit tests implement it with fakes. Nothing here names a wire type.

use async_trait::async_trait;
use sms_types::link::*;
use sms_types::mp::*;
use sms_types::*;

/// An HTTP answer: status code, reason phrase, body.
pub type HttpAnswer = (u16, String, Vec<u8>);

/// How this node reaches other nodes.
#[async_trait]
pub trait Peers: Send + Sync + 'static {
    /// Connects to a neighbour's despooler, sends the Hello, waits for the
    /// Welcome. `window` is how many frames may be queued on the stream;
    /// `opts` are the address's connection settings (its keepalive).
    async fn open_link(
        &self,
        server: &str,
        hello: &LinkHello,
        window: usize,
        opts: &LinkOptions,
    ) -> Result<Box<dyn LinkStream>, LinkError>;
    /// Delivers a bootstrap job to a bare node's bootstrap service.
    async fn install_bootstrap(&self, server: &str, job: &Job) -> Result<(), BootstrapError>;
    /// Asks primary `parent` to take `code` (reachable at `server`) as a child.
    async fn attach_primary(
        &self,
        parent: &str,
        code: &SiteCode,
        server: &str,
        site_name: &str,
    ) -> Result<Attached, String>;
    /// What a node says it is.
    async fn probe(&self, server: &str) -> Result<NodeProbe, String>;
    /// Tells a child its parent is deleting it; returns its final next ID.
    async fn prepare_delete(&self, server: &str, site: &SiteCode) -> Result<u64, String>;
    async fn logon_describe(&self, server: &str) -> Result<LogonView, String>;
    /// The links of child site `site`, whose server is at `server`, as its
    /// status reports them (a primary shows its grandchildren's edges).
    async fn site_links(
        &self,
        server: &str,
        site: &SiteCode,
    ) -> Result<Vec<sms_types::views::LinkView>, String>;
    async fn logon_install(
        &self,
        server: &str,
        req: LogonInstallRequest,
    ) -> Result<LogonView, String>;
    async fn logon_uninstall(&self, server: &str, site: &SiteCode) -> Result<LogonView, String>;
    async fn logon_refresh(&self, server: &str, script: LogonScript) -> Result<LogonView, String>;
    /// A logon server asks its site for a new SMS unique ID range.
    async fn request_id_range(
        &self,
        site_address: &str,
        site: &SiteCode,
        node_id: &str,
    ) -> Result<(u64, u64), String>;
    /// What a server offers a management point install.
    async fn mp_describe(&self, server: &str) -> Result<MpTarget, String>;
    /// Install step 1 on a server: directory, identification, files.
    /// Returns the install directory and what was done, line by line.
    async fn mp_prepare(
        &self,
        server: &str,
        req: MpPrepare,
    ) -> Result<(String, Vec<String>), String>;
    /// Install step 2: the server's setup (checks, then the agent).
    async fn mp_setup(&self, server: &str, req: MpSetup) -> Result<MpSetupResult, String>;
    async fn mp_uninstall(&self, server: &str, site: &SiteCode) -> Result<MpTarget, String>;
    /// A management point asks its site database whether it may use it.
    async fn mp_database_access(&self, site_address: &str, node_id: &str)
        -> Result<String, String>;
    /// A management point registers a client at its site database.
    async fn mp_register_client(
        &self,
        site_address: &str,
        node_id: &str,
        name: &str,
        hardware_id: &str,
    ) -> Result<(u64, bool), String>;
    /// A management point posts clients' status messages to its site.
    async fn mp_client_status(
        &self,
        site_address: &str,
        node_id: &str,
        client: &str,
        messages: Vec<ClientMessage>,
    ) -> Result<u32, String>;
    /// One HTTP GET (the MP Control Manager's verification request):
    /// status code, reason phrase and body, or why no answer came.
    async fn http_get(&self, host_port: &str, path: &str)
        -> Result<(u16, String, Vec<u8>), String>;
    /// One plain HTTP POST of a JSON body (a status filter rule's webhook),
    /// bounded by `timeout`: status code, reason phrase and body.
    async fn http_post_json(
        &self,
        host_port: &str,
        path: &str,
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> Result<HttpAnswer, String>;
}

/// The management point's HTTP listener on this node (the edge serves it;
/// the domain decides when it runs).
#[async_trait]
pub trait MpHost: Send + Sync + 'static {
    /// Binds `host:port` (0: any free port) and serves the management
    /// point there; returns the bound port.
    async fn start(&self, host: &str, port: u16) -> std::io::Result<u16>;
    /// Stops serving and frees the port.
    async fn stop(&self);
    /// The port served on, if serving.
    fn serving(&self) -> Option<u16>;
}

/// An open link stream to a neighbour's despooler.
#[async_trait]
pub trait LinkStream: Send {
    /// Queues one frame on the stream.
    async fn send(&self, job: &Job, chunk: Option<Chunk>) -> Result<(), LinkError>;
    /// The next answer from the despooler.
    async fn next(&mut self) -> Result<LinkEvent, LinkError>;
}

/// Calls that go up the layers, registered at wiring time so that no
/// module imports one above it.
#[async_trait]
pub trait Upcalls: Send + Sync + 'static {
    /// Status messages were stored here (the Hierarchy Manager turns phase
    /// reports of its children into their site status).
    async fn status_stored(&self, msgs: &[StatusMessage]) -> anyhow::Result<()>;
    /// A deinstall job left for good: acknowledged, or failed (`orphaned`).
    async fn deinstall_done(&self, site: &SiteCode, orphaned: bool) -> anyhow::Result<()>;
    /// Bootstrap phase 1: start the transport.
    fn install_transport(&self) -> anyhow::Result<()>;
    /// Bootstrap phase 2: start every other component.
    fn install_components(&self) -> anyhow::Result<()>;
}
