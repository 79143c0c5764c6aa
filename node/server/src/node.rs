//! The composition root: opens the store, installs the central site if
//! asked, builds the site's core with its ports (gRPC peers), wires the
//! components, serves gRPC, and shuts everything down in order.
//!
//! Every task runs on the node's [`TaskCenter`]; shutdown cancels it, waits
//! a bounded time for every task, then flushes the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use sms_runtime::TaskCenter;
use sms_site::ports::Peers;
use sms_site::{CoreConfig, Ctx, DEINSTALL_MARKER};
use sms_store::Store;
use sms_types::catalog;
use sms_types::*;
use tokio::net::TcpListener;

use crate::peers::Connector;
use crate::security::{NodeTls, Security};

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
    /// No TLS, no authentication (comparison benchmarks and old tests only).
    pub insecure: bool,
    /// A join token, for a node that has no certificate yet.
    pub join_token: Option<String>,
    /// With `install_primary` and no parent: an existing CA (certificate
    /// and PKCS#8 key, PEM files) to use as the hierarchy's root.
    pub ca_files: Option<(PathBuf, PathBuf)>,
    /// Where the central install writes its first administrator's
    /// certificate (default `DATA/admin`; a container points it at a
    /// volume of its own, so the key is not in the data volume).
    pub admin_dir: Option<PathBuf>,
    /// How long file packages received at this site are kept.
    pub package_retention: sms_types::PackageRetention,
    /// How long the certificates this node's authority issues last (None:
    /// 397 days for a leaf, 5 years for an authority). Holders renew at two
    /// thirds of that.
    pub cert_lifetime: Option<Duration>,
    /// Connections open at once, in all and from one address.
    pub connection_limits: crate::security::Limits,
    /// Calls per second (and burst) one connection may make.
    pub call_rate: crate::rpc::rate::RateLimit,
    /// The data volumes a management point may be installed on (empty: the
    /// data dir's own volume).
    pub mp_volumes: Vec<PathBuf>,
    /// Serve `/metrics` and `/ready` (see [`crate::http`]) on this address
    /// (port 0: any free port); None: no HTTP listener.
    pub http_listen: Option<String>,
    /// Polling intervals of silence after which a site below is Stale.
    pub stale_after_intervals: u32,
}

/// The directory in a central site's data dir where its first
/// administrator's certificate is written for its operator.
pub const ADMIN_DIR: &str = "admin";

/// The site code or name this node's certificate is for, if it has one.
pub fn own_site_label(ctx: &Ctx) -> Option<String> {
    sms_site::trust::node_credentials(&ctx.store)
        .ok()
        .flatten()
        .and_then(|c| c.identity().ok())
        .filter(|id| id.role.is_site())
        .map(|id| id.name.label)
}

/// A running node.
pub struct Node {
    pub ctx: Arc<Ctx>,
    pub local_addr: std::net::SocketAddr,
    /// The HTTP listener's URL (`http://` or `https://` and the bound
    /// address), if it runs.
    pub http_url: Option<String>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    grace: Duration,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the store, installs the central site if asked, starts what the
    /// store says this node is, and serves gRPC on `listener`.
    pub async fn start(
        cfg: NodeConfig,
        listener: TcpListener,
        mut connector: Connector,
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
            sms_site::witness::remove(&cfg.data_dir)?;
            std::fs::remove_file(&marker)?;
            tracing::warn!(
                "the site install was removed at its parent's request; starting as a bare node"
            );
        }
        refuse_missing_store(&cfg.data_dir)?;
        let store = Store::open(&cfg.data_dir.join("db"))
            .with_context(|| format!("cannot open the store in {}", cfg.data_dir.display()))?;
        let node_id = store.node_id()?;
        let advertise = cfg
            .advertise
            .clone()
            .unwrap_or_else(|| local_addr.to_string());

        let mut identity = store.identity()?;
        check_witness(&cfg.data_dir, &store, node_id, identity.as_ref())?;
        connector.security = establish_trust(&cfg, &store, &connector, identity.as_ref()).await?;
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
                            // Check who is there first: attaching records this
                            // site at the parent, and a mistyped parent would
                            // keep a Pending ghost of it.
                            let there = connector.probe(paddr).await.map_err(|e| {
                                anyhow::anyhow!("cannot attach {code} below {psite}: {e}")
                            })?;
                            if there.site_code != psite.as_str()
                                || there.role != sms_types::link::NodeRole::SiteServer
                            {
                                let what = if there.site_code.is_empty() {
                                    format!("a {} node", there.role)
                                } else {
                                    format!("site {}", there.site_code)
                                };
                                bail!(
                                    "{paddr} is {what}, not {psite}; nothing was installed \
                                     (check --parent-site and --parent)"
                                );
                            }
                            let a = connector
                                .attach_primary(paddr, code, &advertise, &name)
                                .await
                                .map_err(|e| {
                                    anyhow::anyhow!("cannot attach {code} below {psite}: {e}")
                                })?;
                            let (got, addr, secret, ancestors) = (
                                a.parent_site_code,
                                a.parent_address,
                                a.link_secret,
                                a.ancestors,
                            );
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
                    sms_site::witness::write(
                        &cfg.data_dir,
                        &sms_site::witness::Witness {
                            site_code: id.site_code.clone(),
                            node_id,
                            ct0_serial: 1,
                        },
                    )
                    .context("cannot write the site witness")?;
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
        let tasks = TaskCenter::new();
        let ctx = Arc::new(Ctx::new(CoreConfig {
            store,
            data_dir: cfg.data_dir.clone(),
            advertise,
            node_id,
            identity: identity.clone(),
            tasks: tasks.clone(),
            peers: Arc::new(connector.clone()) as Arc<dyn Peers>,
        })?);
        // Before any component runs: the first housekeeping applies it.
        *ctx.package_retention.lock().expect("retention lock") = cfg.package_retention;
        *ctx.cert_lifetime.lock().expect("lifetime lock") = cfg.cert_lifetime;
        ctx.hm.set_stale_after_intervals(cfg.stale_after_intervals);
        sms_site::wiring::wire(&ctx);
        // The management point role: its listener, and where it may go.
        ctx.mp.set_host(Arc::new(crate::mp_http::MpHttp::new(
            &ctx,
            &connector.security,
        )));
        let volumes = if cfg.mp_volumes.is_empty() {
            vec![cfg.data_dir.clone()]
        } else {
            cfg.mp_volumes.clone()
        };
        // Absolute, so the install directory a site records means the same
        // after a restart from another working directory.
        ctx.mp.set_volumes(
            volumes
                .into_iter()
                .map(|v| std::fs::canonicalize(&v).unwrap_or(v))
                .collect(),
        );
        sms_site::mp_setup::start_installed(&ctx).await;

        if identity.is_some() {
            sms_site::wiring::start_site(&ctx)?;
            if installed_now {
                let id = ctx.identity().expect("just installed");
                sms_site::status::emit(
                    &ctx,
                    &catalog::SITE_INSTALLED,
                    &[id.site_code.to_string(), id.site_name.clone()],
                )?;
            }
        } else {
            tracing::info!(node_id = %ctx.node_id, "bare node: waiting for a site install");
        }
        sms_site::bootstrap::resume(&ctx)?;

        if let Security::Tls(tls) = &connector.security {
            tasks.spawn(
                "certificate renewal",
                crate::renewal::run(ctx.clone(), tls.clone(), connector.clone()),
            );
        }
        // Shared by the HTTP listener (the web console) and the admin
        // service (which issues its sign-in links).
        let console = Arc::new(crate::console::Console::default());
        let http_url = match &cfg.http_listen {
            Some(addr) => Some(start_http(&ctx, addr, &connector.security, &console).await?),
            None => None,
        };
        let server = tasks.spawn(
            "grpc server",
            crate::rpc::serve(
                ctx.clone(),
                listener,
                cfg.data_dir.join("logs"),
                connector,
                cfg.connection_limits,
                cfg.call_rate,
                console,
            ),
        );
        // The HTTP URL first: whoever waits for node.addr finds it too.
        if let Some(url) = &http_url {
            crate::http::write_addr_file(&cfg.data_dir, url)?;
        }
        write_addr_file(&cfg.data_dir, &local_addr.to_string())?;
        Ok(Node {
            ctx,
            local_addr,
            http_url,
            server,
            grace: cfg.shutdown_grace,
        })
    }

    /// Stops every component (bounded by the grace period) and flushes.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down");
        let stuck = self.ctx.tasks.shutdown(self.grace).await;
        if !stuck.is_empty() {
            tracing::warn!(grace = ?self.grace, "tasks did not stop in time: {}", stuck.join(", "));
        }
        if self.server.is_finished() {
            if let Ok(Err(e)) = self.server.await {
                tracing::warn!("gRPC server ended with an error: {e:#}");
            }
        }
        self.ctx.store.flush_now()?;
        Ok(())
    }
}

/// Binds the HTTP listener and serves the node's routes on it; returns its
/// URL.
async fn start_http(
    ctx: &Arc<Ctx>,
    addr: &str,
    security: &Security,
    console: &Arc<crate::console::Console>,
) -> anyhow::Result<String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for HTTP (--http-listen): {e}"))?;
    let bound = listener.local_addr()?;
    let http = crate::http::HttpSecurity::for_address(bound, security);
    let url = http.url(bound);
    console.set_url(&url);
    let tls = matches!(http, crate::http::HttpSecurity::Tls(_));
    let routes = crate::http::router(ctx.clone()).merge(crate::console::router(
        ctx.clone(),
        console.clone(),
        bound,
        tls,
    ));
    ctx.tasks.spawn(
        "http server",
        crate::http::serve(ctx.clone(), listener, http, routes),
    );
    tracing::info!(%url, "serving /metrics, /ready and the web console (/console/)");
    Ok(url)
}

/// With a witness but no store log (the store directory deleted, or its log
/// emptied), refuses before opening: opening would create an empty store.
fn refuse_missing_store(data_dir: &Path) -> anyhow::Result<()> {
    use sms_site::witness;
    let Ok(Some(w)) = witness::read(data_dir) else {
        return Ok(());
    };
    let log = data_dir.join("db").join("db");
    let problem = match std::fs::metadata(&log) {
        Err(_) => format!("its store ({}) is gone", log.display()),
        Ok(m) if m.len() == 0 => format!("its store log ({}) is empty", log.display()),
        Ok(_) => return Ok(()),
    };
    bail!(witness::refusal(
        data_dir,
        &w,
        &format!("this data dir held site {}, but {problem}", w.site_code)
    ))
}

/// Refuses a store that does not match the site witness beside it (see
/// `sms_site::witness`); an installed store without one (a data dir from
/// before witnesses) gets one now.
fn check_witness(
    data_dir: &Path,
    store: &Store,
    node_id: uuid::Uuid,
    identity: Option<&Identity>,
) -> anyhow::Result<()> {
    use sms_site::witness;
    let ct0_serial = store.ct0()?.map(|c| c.serial).unwrap_or(0);
    let w = witness::read(data_dir).with_context(|| {
        format!(
            "refusing to start: {} is unreadable; restore it from a backup",
            data_dir.join(witness::WITNESS_FILE).display()
        )
    })?;
    let found = witness::Found {
        node_id,
        identity,
        ct0_serial,
    };
    match (&w, witness::check(w.as_ref(), &found)) {
        (Some(w), Err(problem)) => bail!(witness::refusal(data_dir, w, &problem)),
        (None, _) => {
            if let Some(id) = identity {
                witness::write(
                    data_dir,
                    &witness::Witness {
                        site_code: id.site_code.clone(),
                        node_id,
                        ct0_serial,
                    },
                )
                .context("cannot write the site witness")?;
            }
            Ok(())
        }
        (Some(_), Ok(())) => Ok(()),
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
    let ct0 = SiteControl::first(code.clone(), site_name, parent_code.clone());
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

/// Name of the file in the data dir that holds the bound address.
pub const ADDR_FILE: &str = "node.addr";

/// Writes the bound address atomically (write + rename) so a reader never
/// sees half of it.
fn write_addr_file(dir: &Path, addr: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!("{ADDR_FILE}.tmp"));
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(tmp, dir.join(ADDR_FILE))
}

/// Decides how this node's connections are secured, getting a certificate
/// first when it has none: the central install creates the hierarchy's
/// root; a join token buys one from its issuer; anything else is refused
/// with the fix.
async fn establish_trust(
    cfg: &NodeConfig,
    store: &Store,
    connector: &Connector,
    identity: Option<&Identity>,
) -> anyhow::Result<Security> {
    if cfg.insecure {
        tracing::warn!(
            "--insecure: connections are plaintext and unauthenticated; never run this on a \
             network you do not own"
        );
        return Ok(Security::Plaintext);
    }
    if let Some(c) = sms_site::trust::node_credentials(store)? {
        if cfg.join_token.is_some() {
            tracing::info!("this node already holds a certificate; the join token was not used");
        }
        return Ok(Security::Tls(Arc::new(NodeTls::new(c)?)));
    }
    if let Some(id) = identity {
        bail!(
            "site {} is installed in {} but holds no certificate (it was installed with \
             --insecure); start it with --insecure, or install it again with TLS",
            id.site_code,
            cfg.data_dir.display()
        );
    }
    let creds = match (&cfg.install_primary, &cfg.parent, &cfg.join_token) {
        (Some(code), None, _) => {
            let existing = match &cfg.ca_files {
                Some((cert, key)) => {
                    let read = |p: &PathBuf| {
                        std::fs::read_to_string(p)
                            .with_context(|| format!("cannot read {}", p.display()))
                    };
                    Some(
                        sms_trust::Credentials::from_pem(&read(cert)?, &read(key)?)
                            .context("the CA files given with --ca-cert and --ca-key")?,
                    )
                }
                None => None,
            };
            let c = sms_site::trust::install_root(store, code, existing, cfg.cert_lifetime)?;
            let admin_dir = cfg
                .admin_dir
                .clone()
                .unwrap_or_else(|| cfg.data_dir.join(ADMIN_DIR));
            write_admin_files(&admin_dir, store)?;
            tracing::info!(
                "created the hierarchy's certificate authority; the first administrator's \
                 certificate is in {}",
                admin_dir.display()
            );
            c
        }
        (_, _, Some(text)) => enroll(cfg, store, connector, text).await?,
        _ => bail!(
            "this node has no certificate: start it with --join-token TOKEN (make one at its \
             parent with `controller token create --site CODE`), or with --insecure for a \
             plaintext test setup"
        ),
    };
    store.durable().await?;
    Ok(Security::Tls(Arc::new(NodeTls::new(creds)?)))
}

/// Gets this node's certificate with a join token: a key made here, a
/// signing request and the token's proof to the issuer, whose chain must
/// end in the root the token names.
async fn enroll(
    cfg: &NodeConfig,
    store: &Store,
    connector: &Connector,
    text: &str,
) -> anyhow::Result<sms_trust::Credentials> {
    use sms_proto::v1 as pb;
    use sms_trust::{ca, tls::Expect, JoinToken, Role};
    let token = JoinToken::decode(text)?;
    let role = token.role().context("the join token names no role")?;
    match (role, &cfg.install_primary) {
        (Role::Primary, Some(code)) if code.as_str() == token.label => {}
        (Role::Primary, _) => bail!(
            "this join token is for primary site {0}: start with --install-primary {0} \
             --parent-site CODE --parent ADDR",
            token.label
        ),
        (Role::Secondary, Some(code)) => bail!(
            "this join token is for secondary site {}, but --install-primary {code} was given: a \
             secondary is installed by its parent (`controller create-secondary`)",
            token.label
        ),
        (Role::Secondary | Role::Member, None) => {}
        (Role::Member, Some(_)) => {
            bail!("this join token is for a member server; start it without --install-primary")
        }
        (other, _) => bail!("a join token cannot be for a {other}"),
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    if now >= token.expires_unix {
        bail!(
            "this join token expired {} s ago; make a new one with `controller token create`",
            now - token.expires_unix
        );
    }
    let issuer = cfg.parent.clone().unwrap_or_else(|| token.issuer.clone());
    let key = ca::new_key()?;
    let csr = ca::signing_request(&key)?;
    let tls = sms_trust::tls::client_config(None, None, Expect::Root(token.ca_fingerprint))?;
    let channel = connector
        .connect_with(&issuer, Some(Arc::new(tls)))
        .await
        .map_err(|e| anyhow::anyhow!("cannot join through {issuer}: {e}"))?;
    let mut client = pb::bootstrap_client::BootstrapClient::new(channel);
    let req = pb::EnrollRequest {
        token_id: token.id.to_vec(),
        proof: token.proof(&csr),
        csr,
    };
    let reply = tokio::time::timeout(connector.request_timeout, client.enroll(req))
        .await
        .map_err(|_| anyhow::anyhow!("{issuer} did not answer the join request"))?
        .map_err(|s| anyhow::anyhow!("{issuer} refused the join token: {}", s.message()))?
        .into_inner();
    let issued = sms_trust::Credentials::new(&key, reply.certs);
    if ca::fingerprint(issued.root()) != token.ca_fingerprint {
        bail!("{issuer} answered with a chain that does not end in the token's root; nothing was kept");
    }
    let id = issued.identity()?;
    tracing::info!(serial = %id.serial, "joined the hierarchy as {} {}", id.role, id.name.label);
    // Where a member server (which has no parent link) renews it.
    store.set_issuer_address(&issuer)?;
    if role == Role::Primary {
        // Our own authority, and our site server's certificate under it.
        let code: SiteCode = token.label.parse().map_err(anyhow::Error::msg)?;
        Ok(sms_site::trust::install_child_authority(
            store,
            &issued,
            &code,
            &id.name.ancestors,
            cfg.cert_lifetime,
        )?)
    } else {
        sms_site::trust::set_node_credentials(store, &issued)?;
        Ok(issued)
    }
}

/// Writes the central site's first administrator certificate (full role)
/// and the root, for the operator: `controller --tls-dir DIR/admin`.
fn write_admin_files(dir: &Path, store: &Store) -> anyhow::Result<()> {
    let creds = sms_site::trust::issue_local_admin(store, "admin")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_synced(
        &dir.join("ca.pem"),
        sms_trust::ca::pem("CERTIFICATE", creds.root()).as_bytes(),
        0o644,
    )?;
    write_synced(&dir.join("admin.pem"), creds.chain_pem().as_bytes(), 0o644)?;
    write_synced(&dir.join("admin.key"), creds.key_pem().as_bytes(), 0o600)?;
    std::fs::File::open(dir)?.sync_all()?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Writes a file whole (temp file, fsync, rename) with `mode`.
fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}
