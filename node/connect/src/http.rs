//! A small HTTP/1.1 client (hyper) for management points: the site's
//! verification request, and `controller mp` checks and simulated clients.
//! One request per connection, bounded in time and in answer size.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;

use hyper::body::Bytes;

/// Largest answer read (a policy document or a certificate is far smaller).
pub const MAX_BODY: usize = 4 << 20;

/// One answer: status code, reason phrase, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub reason: String,
    pub body: Vec<u8>,
}

/// `GET http://{addr}{path}`.
pub async fn get(addr: &str, path: &str, timeout: Duration) -> Result<Answer, String> {
    request(addr, "GET", path, None, timeout, None).await
}

/// `GET https://{addr}{path}`, the server verified by `tls` (a node of
/// the hierarchy: see `sms_trust::tls::Expect`).
pub async fn get_tls(
    addr: &str,
    path: &str,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Answer, String> {
    request(addr, "GET", path, None, timeout, Some(tls)).await
}

/// `POST http://{addr}{path}` with a JSON body.
pub async fn post_json(
    addr: &str,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, String> {
    request(addr, "POST", path, Some(body), timeout, None).await
}

async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Answer, String> {
    tokio::time::timeout(timeout, async {
        let io = crate::dial(addr, tls, Duration::from_secs(10))
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr);
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("bad request {path}: {e}"))?;
        let work = async {
            let res = send
                .send_request(req)
                .await
                .map_err(|e| format!("no answer from {addr}: {e}"))?;
            let status = res.status();
            let body = Limited::new(res.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the answer from {addr}: {e}"))?
                .to_bytes()
                .to_vec();
            Ok::<_, String>((status, body))
        };
        // The connection is driven here, beside the request (no task of its
        // own): once it ends, whatever the request got is its answer.
        tokio::pin!(work);
        tokio::pin!(conn);
        let (status, body) = tokio::select! {
            biased;
            r = &mut work => r?,
            _ = &mut conn => work.await?,
        };
        Ok(Answer {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
            body,
        })
    })
    .await
    .map_err(|_| format!("{addr} did not answer within {} s", timeout.as_secs_f32()))?
}
