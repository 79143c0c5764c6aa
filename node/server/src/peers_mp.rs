//! Outgoing management point calls (the `ManagementPoint` gRPC service)
//! and the MP Control Manager's HTTP verification request.

use sms_proto::convert_mp;
use sms_proto::v1 as pb;
use sms_types::mp::*;
use sms_types::SiteCode;
use tonic::transport::Channel;

use crate::peers::Connector;

type Client = pb::management_points_client::ManagementPointsClient<Channel>;

async fn client(connector: &Connector, server: &str) -> Result<Client, String> {
    Ok(Client::new(connector.connect(server).await?))
}

/// Runs one call bounded by the connector's request timeout; the refusal's
/// message is what the caller reports.
macro_rules! call {
    ($connector:expr, $server:expr, |$c:ident| $call:expr) => {{
        let mut $c = client($connector, $server).await?;
        tokio::time::timeout($connector.request_timeout, $call)
            .await
            .map_err(|_| {
                format!(
                    "{} did not answer within {} s",
                    $server,
                    $connector.request_timeout.as_secs()
                )
            })?
            .map(|r| r.into_inner())
            .map_err(|s| s.message().to_string())
    }};
}

pub async fn describe(connector: &Connector, server: &str) -> Result<MpTarget, String> {
    let t = call!(connector, server, |c| c.describe(pb::MpDescribeRequest {}))?;
    convert_mp::target_from(t).map_err(|e| e.0)
}

pub async fn prepare(
    connector: &Connector,
    server: &str,
    req: MpPrepare,
) -> Result<(String, Vec<String>), String> {
    let r = call!(connector, server, |c| c
        .prepare(convert_mp::prepare_to(&req)))?;
    Ok((r.install_dir, r.lines))
}

pub async fn setup(
    connector: &Connector,
    server: &str,
    req: MpSetup,
) -> Result<MpSetupResult, String> {
    let r = call!(connector, server, |c| c.setup(convert_mp::setup_to(&req)))?;
    convert_mp::setup_result_from(r).map_err(|e| e.0)
}

pub async fn uninstall(
    connector: &Connector,
    server: &str,
    site: &SiteCode,
) -> Result<MpTarget, String> {
    let t = call!(connector, server, |c| c.uninstall(pb::MpUninstallRequest {
        site_code: site.to_string()
    }))?;
    convert_mp::target_from(t).map_err(|e| e.0)
}

pub async fn database_access(
    connector: &Connector,
    site: &str,
    node_id: &str,
) -> Result<String, String> {
    let r = call!(connector, site, |c| c.database_access(
        pb::MpDatabaseRequest {
            node_id: node_id.to_string()
        }
    ))?;
    Ok(r.site_code)
}

pub async fn register_client(
    connector: &Connector,
    site: &str,
    node_id: &str,
    name: &str,
    hardware_id: &str,
) -> Result<(u64, bool), String> {
    let r = call!(connector, site, |c| c.register_client(
        pb::RegisterClientRequest {
            node_id: node_id.to_string(),
            name: name.to_string(),
            hardware_id: hardware_id.to_string(),
        }
    ))?;
    Ok((r.sms_id, r.new))
}

pub async fn client_status(
    connector: &Connector,
    site: &str,
    node_id: &str,
    client_name: &str,
    messages: Vec<ClientMessage>,
) -> Result<u32, String> {
    let r = call!(connector, site, |c| c.submit_client_status(
        pb::ClientStatusRequest {
            node_id: node_id.to_string(),
            client: client_name.to_string(),
            messages: convert_mp::client_messages_to(&messages),
        }
    ))?;
    Ok(r.stored)
}

/// One HTTP GET, bounded by the request timeout.
pub async fn http_get(
    connector: &Connector,
    addr: &str,
    path: &str,
) -> Result<(u16, String, Vec<u8>), String> {
    let a = sms_connect::http::get(addr, path, connector.request_timeout).await?;
    Ok((a.status, a.reason, a.body))
}
