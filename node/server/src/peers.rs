//! Outgoing gRPC: the [`Peers`] port of the site components, implemented
//! over tonic. The [`Connector`] is handed to the node from outside, so TLS
//! or a simulated network can be swapped in without touching components.

use std::time::Duration;

use sms_proto::v1 as pb;
use sms_trust::tls::Expect;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::security::Security;
use tonic::Code;
use uuid::Uuid;

use async_trait::async_trait;
use sms_proto::convert;
use sms_site::ports::{LinkStream, Peers};
use sms_types::link::*;
use sms_types::{Chunk, Job, Payload, SiteCode};

/// Largest frame a node sends or accepts (a file chunk plus headers).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Opens channels to other nodes.
#[derive(Clone, Debug)]
pub struct Connector {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Liveness of every connection, both ends: an HTTP/2 PING (and a TCP
    /// keepalive probe) after this long without traffic...
    pub keepalive_interval: Duration,
    /// ...and the connection is closed when the PING is not answered
    /// within this. A link whose packets silently vanish (a lost NAT entry,
    /// a dead router, a frozen peer) is noticed within the two together,
    /// instead of showing "up" for as long as the kernel's TCP timeout.
    pub keepalive_timeout: Duration,
    /// TLS with this node's certificate, or plaintext (`--insecure`).
    pub security: Security,
}

impl Default for Connector {
    fn default() -> Self {
        Connector {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(10),
            security: Security::Plaintext,
        }
    }
}

/// HTTP/2 flow-control windows. The default 64 KiB stream window caps a
/// link at about 50 one-KiB jobs per round trip, below the sender's window
/// of jobs in flight, and adaptive sizing never grows it on loopback; a
/// file package keeps up to 8 MiB of chunks in flight.
pub const STREAM_WINDOW: u32 = 16 * 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

impl Connector {
    /// A channel to any node of the hierarchy at `addr` (`host:port`).
    pub async fn connect(&self, addr: &str) -> Result<Channel, String> {
        self.connect_to(addr, Expect::Any).await
    }

    /// A channel to `addr`, whose certificate must be what `expect` says.
    pub async fn connect_to(&self, addr: &str, expect: Expect) -> Result<Channel, String> {
        let tls = match &self.security {
            Security::Tls(t) => Some(t.client(expect)?),
            Security::Plaintext => None,
        };
        self.connect_with(addr, tls).await
    }

    /// A channel to `addr` with these TLS settings (`None`: plaintext).
    pub async fn connect_with(
        &self,
        addr: &str,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Channel, String> {
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("{addr:?} is not a valid address: {e}"))?
            .connect_timeout(self.connect_timeout)
            .http2_keep_alive_interval(self.keepalive_interval)
            .keep_alive_timeout(self.keepalive_timeout)
            // A link with frames in flight but no traffic is still watched.
            .keep_alive_while_idle(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW);
        sms_connect::channel(ep, addr, tls, self.keepalive_interval)
            .await
            .map_err(|e| format!("cannot reach {addr}: {}", error_chain(&e)))
    }
}

/// Flattens an error and its sources into one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// How a gRPC status ends a link session.
fn link_error(s: tonic::Status) -> LinkError {
    match s.code() {
        Code::FailedPrecondition => LinkError::Severed(s.message().to_string()),
        Code::ResourceExhausted => LinkError::ReceiverFull(s.message().to_string()),
        Code::PermissionDenied | Code::Unauthenticated => {
            LinkError::Refused(s.message().to_string())
        }
        _ => LinkError::Failed(format!("{:?}: {}", s.code(), s.message())),
    }
}

/// An open link stream to a neighbour's despooler.
pub struct GrpcLink {
    tx: mpsc::Sender<pb::LinkFrame>,
    rx: tonic::Streaming<pb::LinkReply>,
}

impl GrpcLink {
    /// Connects, sends the Hello, and waits for the Welcome.
    pub async fn open(
        connector: &Connector,
        server: &str,
        hello: &LinkHello,
        window: usize,
    ) -> Result<GrpcLink, LinkError> {
        let channel = connector
            .connect_to(server, Expect::Site(hello.dest_site.clone()))
            .await
            .map_err(LinkError::Failed)?;
        let mut client = pb::transfer_client::TransferClient::new(channel)
            .max_decoding_message_size(MAX_FRAME_BYTES)
            .max_encoding_message_size(MAX_FRAME_BYTES);
        let (tx, rx) = mpsc::channel(window.max(1) + 8);
        let hello = pb::LinkFrame {
            kind: Some(pb::link_frame::Kind::Hello(pb::Hello {
                source_site: hello.source_site.to_string(),
                dest_site: hello.dest_site.to_string(),
                source_address: hello.source_address.clone(),
                link_secret: hello.link_secret.clone(),
                sent_unix_ms: hello.sent_unix_ms,
            })),
        };
        tx.send(hello)
            .await
            .map_err(|_| LinkError::Failed("stream closed".into()))?;
        let resp = tokio::time::timeout(
            connector.request_timeout,
            client.link(ReceiverStream::new(rx)),
        )
        .await
        .map_err(|_| LinkError::Failed(format!("{server} did not answer the link request")))?
        .map_err(link_error)?;
        let mut rx = resp.into_inner();
        let first = tokio::time::timeout(connector.request_timeout, rx.message())
            .await
            .map_err(|_| LinkError::Failed(format!("{server} did not welcome the link")))?
            .map_err(link_error)?;
        match first.and_then(|r| r.kind) {
            Some(pb::link_reply::Kind::Welcome(_)) => Ok(GrpcLink { tx, rx }),
            other => Err(LinkError::Failed(format!(
                "expected a welcome from {server}, got {other:?}"
            ))),
        }
    }
}

#[async_trait]
impl LinkStream for GrpcLink {
    /// Queues one frame on the stream.
    async fn send(&self, job: &Job, chunk: Option<Chunk>) -> Result<(), LinkError> {
        let frame = pb::LinkFrame {
            kind: Some(pb::link_frame::Kind::Job(convert::job_to(job, chunk))),
        };
        // Checked before it goes: a frame over the limit would end the whole
        // stream at the receiver, and every job sharing it with it.
        let size = prost::Message::encoded_len(&frame);
        if size > MAX_FRAME_BYTES {
            return Err(LinkError::TooLarge(format!(
                "its frame is {size} bytes; a link takes at most {MAX_FRAME_BYTES}"
            )));
        }
        self.tx
            .send(frame)
            .await
            .map_err(|_| LinkError::Failed("stream closed while sending".into()))
    }

    /// The next answer from the despooler.
    async fn next(&mut self) -> Result<LinkEvent, LinkError> {
        loop {
            let reply = self
                .rx
                .message()
                .await
                .map_err(link_error)?
                .ok_or_else(|| LinkError::Failed("the peer closed the stream".into()))?;
            match reply.kind {
                Some(pb::link_reply::Kind::Acks(a)) => {
                    let mut out = Vec::with_capacity(a.acks.len());
                    for ack in a.acks {
                        if let Ok(id) = Uuid::from_slice(&ack.job_id) {
                            out.push((id, ack.chunk_index, ack.duplicate));
                        }
                    }
                    return Ok(LinkEvent::Acks(out));
                }
                Some(pb::link_reply::Kind::Refusal(r)) => {
                    let job_id = Uuid::from_slice(&r.job_id)
                        .map_err(|_| LinkError::Failed("refusal without a job id".into()))?;
                    return Ok(LinkEvent::Refused {
                        job_id,
                        reason: r.reason,
                    });
                }
                Some(pb::link_reply::Kind::Welcome(_)) | None => continue,
            }
        }
    }
}

/// Delivers a bootstrap package to a bare node's bootstrap service.
async fn install_bootstrap(
    connector: &Connector,
    server: &str,
    job: &Job,
) -> Result<(), BootstrapError> {
    let Payload::Bootstrap(pkg) = &job.payload else {
        return Err(BootstrapError {
            message: "not a bootstrap job".into(),
            permanent: true,
        });
    };
    let channel = connector
        .connect_to(server, Expect::Site(pkg.site_code.clone()))
        .await
        .map_err(|m| BootstrapError {
            message: m,
            permanent: false,
        })?;
    let mut c = pb::bootstrap_client::BootstrapClient::new(channel)
        .max_encoding_message_size(MAX_FRAME_BYTES);
    let req = pb::InstallRequest {
        job_id: job.id.as_bytes().to_vec(),
        package: Some(convert::bootstrap_to(pkg)),
    };
    match tokio::time::timeout(connector.request_timeout, c.install(req)).await {
        Err(_) => Err(BootstrapError {
            message: format!("{server} did not answer the install"),
            permanent: false,
        }),
        Ok(Err(s)) => Err(BootstrapError {
            message: s.message().to_string(),
            permanent: matches!(s.code(), Code::AlreadyExists | Code::InvalidArgument),
        }),
        Ok(Ok(r)) if r.get_ref().started => Ok(()),
        Ok(Ok(r)) => Err(BootstrapError {
            message: r.into_inner().detail,
            permanent: false,
        }),
    }
}

/// Asks primary `parent` to take `code` (reachable at `server`) as a child
/// primary. Returns (parent site code, parent address, link secret).
async fn attach_primary(
    connector: &Connector,
    parent: &str,
    code: &SiteCode,
    server: &str,
    site_name: &str,
) -> Result<(String, String, String, Vec<String>), String> {
    let channel = connector.connect(parent).await?;
    let mut c = pb::admin_client::AdminClient::new(channel);
    let req = pb::AttachPrimaryRequest {
        site_code: code.to_string(),
        server: server.to_string(),
        site_name: site_name.to_string(),
    };
    let r = tokio::time::timeout(connector.request_timeout, c.attach_primary(req))
        .await
        .map_err(|_| format!("{parent} did not answer"))?
        .map_err(|s| format!("{parent} refused: {}", s.message()))?
        .into_inner();
    Ok((
        r.parent_site_code,
        r.parent_address,
        r.link_secret,
        r.ancestors,
    ))
}

/// What a node says it is, via its bootstrap service.
async fn probe(connector: &Connector, server: &str) -> Result<pb::ProbeReply, String> {
    let channel = connector.connect(server).await?;
    let mut c = pb::bootstrap_client::BootstrapClient::new(channel);
    tokio::time::timeout(connector.request_timeout, c.probe(pb::ProbeRequest {}))
        .await
        .map_err(|_| format!("{server} did not answer"))?
        .map(|r| r.into_inner())
        .map_err(|s| format!("{server}: {}", s.message()))
}

/// Tells a child that its parent is deleting it: it stops granting ID
/// ranges for good and returns its final next SMS unique ID.
async fn prepare_delete(
    connector: &Connector,
    server: &str,
    site: &SiteCode,
) -> Result<u64, String> {
    let channel = connector
        .connect_to(server, Expect::Site(site.clone()))
        .await?;
    let mut c = pb::admin_client::AdminClient::new(channel);
    let req = pb::SiteRequest {
        site: site.to_string(),
    };
    tokio::time::timeout(connector.request_timeout, c.prepare_delete(req))
        .await
        .map_err(|_| format!("{server} did not answer"))?
        .map(|r| r.into_inner().start)
        .map_err(|s| s.message().to_string())
}

/// What a node's logon service reports.
type WireLogon = pb::LogonState;

async fn logon_client(
    connector: &Connector,
    server: &str,
) -> Result<pb::logon_client::LogonClient<Channel>, String> {
    Ok(pb::logon_client::LogonClient::new(
        connector.connect(server).await?,
    ))
}

/// Asks a node what it is as a (potential) logon server.
async fn logon_describe(connector: &Connector, server: &str) -> Result<WireLogon, String> {
    let mut c = logon_client(connector, server).await?;
    tokio::time::timeout(
        connector.request_timeout,
        c.describe(pb::LogonDescribeRequest {}),
    )
    .await
    .map_err(|_| format!("{server} did not answer"))?
    .map(|r| r.into_inner())
    .map_err(|s| s.message().to_string())
}

/// Installs the logon server component on a member server.
async fn logon_install(
    connector: &Connector,
    server: &str,
    req: pb::LogonInstallRequest,
) -> Result<WireLogon, String> {
    let mut c = logon_client(connector, server).await?;
    tokio::time::timeout(connector.request_timeout, c.install(req))
        .await
        .map_err(|_| format!("{server} did not answer"))?
        .map(|r| r.into_inner())
        .map_err(|s| s.message().to_string())
}

/// Removes this site's logon server component from a server.
async fn logon_uninstall(
    connector: &Connector,
    server: &str,
    site: &SiteCode,
) -> Result<WireLogon, String> {
    let mut c = logon_client(connector, server).await?;
    let req = pb::LogonUninstallRequest {
        site_code: site.to_string(),
    };
    tokio::time::timeout(connector.request_timeout, c.uninstall(req))
        .await
        .map_err(|_| format!("{server} did not answer"))?
        .map(|r| r.into_inner())
        .map_err(|s| s.message().to_string())
}

/// A child site server's links, from its status: the caller must be its
/// parent's site server (it checks the certificate), and expects that
/// site's certificate.
async fn site_links(
    connector: &Connector,
    server: &str,
    site: &SiteCode,
) -> Result<Vec<pb::LinkState>, String> {
    let channel = connector
        .connect_to(server, Expect::Site(site.clone()))
        .await?;
    let mut c = pb::admin_client::AdminClient::new(channel);
    tokio::time::timeout(
        connector.request_timeout,
        c.get_status(pb::GetStatusRequest {}),
    )
    .await
    .map_err(|_| format!("{server} did not answer"))?
    .map(|r| r.into_inner().links)
    .map_err(|s| s.message().to_string())
}

/// Pushes the site's current logon script to a logon server.
async fn logon_refresh(
    connector: &Connector,
    server: &str,
    req: pb::LogonScript,
) -> Result<WireLogon, String> {
    let mut c = logon_client(connector, server).await?;
    tokio::time::timeout(connector.request_timeout, c.refresh_script(req))
        .await
        .map_err(|_| format!("{server} did not answer"))?
        .map(|r| r.into_inner())
        .map_err(|s| s.message().to_string())
}

/// A logon server asks its site for a new SMS unique ID range.
async fn request_id_range(
    connector: &Connector,
    site_address: &str,
    site: &SiteCode,
    node_id: &str,
) -> Result<(u64, u64), String> {
    let channel = connector
        .connect_to(site_address, Expect::Site(site.clone()))
        .await?;
    let mut c = pb::admin_client::AdminClient::new(channel);
    let req = pb::IdRangeRequest {
        site_code: site.to_string(),
        node_id: node_id.to_string(),
    };
    let r = tokio::time::timeout(connector.request_timeout, c.request_id_range(req))
        .await
        .map_err(|_| format!("site server {site_address} did not answer"))?
        .map_err(|s| s.message().to_string())?
        .into_inner();
    Ok((r.start, r.end))
}

fn wire(e: convert::WireError) -> String {
    format!("the peer sent a malformed reply: {e}")
}

#[async_trait]
impl Peers for Connector {
    async fn open_link(
        &self,
        server: &str,
        hello: &LinkHello,
        window: usize,
        opts: &LinkOptions,
    ) -> Result<Box<dyn LinkStream>, LinkError> {
        // The address's keepalive, for this link's connection only.
        let mut c = self.clone();
        if let Some(k) = opts.keepalive {
            (c.keepalive_interval, c.keepalive_timeout) = (k, k);
        }
        if opts.foreign_certificate {
            if let Security::Tls(t) = &c.security {
                let impostor = t
                    .with_foreign_certificate()
                    .map_err(|e| LinkError::Failed(format!("{e:#}")))?;
                c.security = Security::Tls(std::sync::Arc::new(impostor));
                // Said in the link's error, so `diagnose` names the fault.
                let why = " (this node presents a certificate from outside the hierarchy: \
                           fault cert-exchange-failure)";
                return match GrpcLink::open(&c, server, hello, window).await {
                    Ok(l) => Ok(Box::new(l)),
                    Err(LinkError::Failed(m)) => Err(LinkError::Failed(format!("{m}{why}"))),
                    Err(LinkError::Refused(m)) => Err(LinkError::Refused(format!("{m}{why}"))),
                    Err(e) => Err(e),
                };
            }
        }
        Ok(Box::new(GrpcLink::open(&c, server, hello, window).await?))
    }

    async fn install_bootstrap(&self, server: &str, job: &Job) -> Result<(), BootstrapError> {
        install_bootstrap(self, server, job).await
    }

    async fn attach_primary(
        &self,
        parent: &str,
        code: &SiteCode,
        server: &str,
        site_name: &str,
    ) -> Result<Attached, String> {
        let (parent_site_code, parent_address, link_secret, ancestors) =
            attach_primary(self, parent, code, server, site_name).await?;
        Ok(Attached {
            parent_site_code,
            parent_address,
            link_secret,
            ancestors,
        })
    }

    async fn probe(&self, server: &str) -> Result<NodeProbe, String> {
        convert::probe_from(probe(self, server).await?).map_err(wire)
    }

    async fn prepare_delete(&self, server: &str, site: &SiteCode) -> Result<u64, String> {
        prepare_delete(self, server, site).await
    }

    async fn logon_describe(&self, server: &str) -> Result<LogonView, String> {
        convert::logon_view_from(logon_describe(self, server).await?).map_err(wire)
    }

    async fn logon_install(
        &self,
        server: &str,
        req: LogonInstallRequest,
    ) -> Result<LogonView, String> {
        let r = logon_install(self, server, convert::logon_install_to(&req)).await?;
        convert::logon_view_from(r).map_err(wire)
    }

    async fn logon_uninstall(&self, server: &str, site: &SiteCode) -> Result<LogonView, String> {
        convert::logon_view_from(logon_uninstall(self, server, site).await?).map_err(wire)
    }

    async fn site_links(
        &self,
        server: &str,
        site: &SiteCode,
    ) -> Result<Vec<sms_types::views::LinkView>, String> {
        site_links(self, server, site)
            .await?
            .iter()
            .map(|l| convert::link_view_from(l).map_err(wire))
            .collect()
    }

    async fn logon_refresh(&self, server: &str, script: LogonScript) -> Result<LogonView, String> {
        let r = logon_refresh(self, server, convert::logon_script_to(&script)).await?;
        convert::logon_view_from(r).map_err(wire)
    }

    async fn request_id_range(
        &self,
        site_address: &str,
        site: &SiteCode,
        node_id: &str,
    ) -> Result<(u64, u64), String> {
        request_id_range(self, site_address, site, node_id).await
    }

    async fn mp_describe(&self, server: &str) -> Result<sms_types::mp::MpTarget, String> {
        crate::peers_mp::describe(self, server).await
    }

    async fn mp_prepare(
        &self,
        server: &str,
        req: sms_types::mp::MpPrepare,
    ) -> Result<(String, Vec<String>), String> {
        crate::peers_mp::prepare(self, server, req).await
    }

    async fn mp_setup(
        &self,
        server: &str,
        req: sms_types::mp::MpSetup,
    ) -> Result<sms_types::mp::MpSetupResult, String> {
        crate::peers_mp::setup(self, server, req).await
    }

    async fn mp_uninstall(
        &self,
        server: &str,
        site: &SiteCode,
    ) -> Result<sms_types::mp::MpTarget, String> {
        crate::peers_mp::uninstall(self, server, site).await
    }

    async fn mp_database_access(
        &self,
        site_address: &str,
        node_id: &str,
    ) -> Result<String, String> {
        crate::peers_mp::database_access(self, site_address, node_id).await
    }

    async fn mp_register_client(
        &self,
        site_address: &str,
        node_id: &str,
        name: &str,
        hardware_id: &str,
    ) -> Result<(u64, bool), String> {
        crate::peers_mp::register_client(self, site_address, node_id, name, hardware_id).await
    }

    async fn mp_client_status(
        &self,
        site_address: &str,
        node_id: &str,
        client: &str,
        messages: Vec<sms_types::mp::ClientMessage>,
    ) -> Result<u32, String> {
        crate::peers_mp::client_status(self, site_address, node_id, client, messages).await
    }

    async fn http_get(
        &self,
        host_port: &str,
        path: &str,
    ) -> Result<(u16, String, Vec<u8>), String> {
        crate::peers_mp::http_get(self, host_port, path).await
    }

    async fn http_post_json(
        &self,
        host_port: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(u16, String, Vec<u8>), String> {
        let a = sms_connect::http::post_json(host_port, path, body, timeout).await?;
        Ok((a.status, a.reason, a.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sms_types::limits::*;
    use sms_types::*;

    /// The bounds on site control keep any CT1 that passes them well below a
    /// link's frame limit, so a change accepted at the call can be sent.
    #[test]
    fn the_largest_site_control_the_limits_allow_fits_in_a_frame() {
        let code = |s: &str| s.parse::<SiteCode>().unwrap();
        let rule = ScheduleRule {
            start_hour: 1,
            end_hour: 2,
            lowest: Priority::Low,
        };
        let addresses = (0..MAX_ADDRESSES)
            .map(|i| {
                let mut a = Address::new(code(&format!("A{:02}", i % 100)), "s".repeat(255));
                a.schedule = vec![rule.clone(); MAX_SCHEDULE_RULES];
                a
            })
            .collect();
        let domains = (0..MAX_DOMAINS)
            .map(|i| Domain {
                name: format!("D{i:0>14}"),
                browse: vec!["b".repeat(MAX_SERVER_NAME); MAX_BROWSE_ENTRIES],
                logon_servers: vec![],
            })
            .collect();
        let control = SiteControl {
            site_code: code("S01"),
            site_name: "n".repeat(MAX_SITE_NAME),
            serial: u64::MAX,
            parent_site_code: Some(code("PRI")),
            polling_interval_ms: MAX_POLLING_INTERVAL_MS,
            domains,
            addresses,
            version: "9".repeat(32),
            next_unique_id: MAX_UNIQUE_ID,
            management_points: (0..MAX_MANAGEMENT_POINTS)
                .map(|i| {
                    let server = format!("{}:{}", "m".repeat(MAX_SERVER_NAME - 6), 10_000 + i);
                    sms_types::mp::ManagementPoint::new(server, 65_535, i == 0)
                })
                .collect(),
            status_rules: (0..sms_types::status_rules::MAX_STATUS_RULES)
                .map(|i| {
                    use sms_types::status_rules::*;
                    StatusRule {
                        name: format!("r{i:0>31}"),
                        ids: Some((0, u32::MAX)),
                        severity: Some(SeverityMatch::AtLeast(Severity::Error)),
                        component: Some("c".repeat(MAX_RULE_COMPONENT)),
                        site_code: Some(code("S01")),
                        replicate: Some(Replicate::At(Priority::Low)),
                        keep_days: Some(MAX_KEEP_DAYS),
                        webhook: Some(format!("http://{}", "w".repeat(MAX_WEBHOOK_URL - 7))),
                        program: vec![
                            format!("/{}", "p".repeat(MAX_PROGRAM_ARG - 1));
                            MAX_PROGRAM_ARGS
                        ],
                        stop: true,
                    }
                })
                .collect(),
        };
        assert_eq!(check_site_control(&control), Ok(()));
        let job = Job::new(
            code("PRI"),
            code("S01"),
            Priority::High,
            Payload::Ct1(Ct1 {
                signature: None,
                base_serial: u64::MAX,
                proposed: control,
                origin: "o".repeat(200),
            }),
        );
        let frame = pb::LinkFrame {
            kind: Some(pb::link_frame::Kind::Job(convert::job_to(&job, None))),
        };
        let size = frame.encoded_len();
        assert!(
            size < MAX_FRAME_BYTES / 2,
            "the largest CT1 is {size} bytes; the frame limit is {MAX_FRAME_BYTES}"
        );
    }
}
