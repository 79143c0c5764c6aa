//! Just enough of the Kubernetes API for `controller token k8s-sync`: read,
//! create and patch one Secret, in-cluster (the pod's service account token
//! and the cluster's CA), over HTTPS with rustls (ring). Plain HTTP only to a
//! loopback address, for tests against a fake API server.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// Where the kubelet mounts a pod's service account.
pub const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

const TIMEOUT: Duration = Duration::from_secs(15);

/// A connection to the API server.
pub struct Api {
    /// `https://HOST:PORT` (or `http://127.0.0.1:PORT` in tests).
    base: String,
    host_port: String,
    token: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Api {
    /// In a pod: `KUBERNETES_SERVICE_HOST`/`_PORT`, the mounted token and CA.
    pub fn in_cluster(sa_dir: &Path) -> Result<Api> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST")
            .context("KUBERNETES_SERVICE_HOST is not set: run this in a pod, or give --api")?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Api::new(&format!("https://{host}:{port}"), Some(sa_dir))
    }

    /// An API at `base`; with `sa_dir`, its token and CA authenticate.
    pub fn new(base: &str, sa_dir: Option<&Path>) -> Result<Api> {
        let (scheme, host_port) = base
            .split_once("://")
            .ok_or_else(|| anyhow!("{base} is not an http(s)://HOST:PORT URL"))?;
        let host_port = host_port.trim_end_matches('/').to_string();
        let read = |name: &str| -> Result<Option<String>> {
            match sa_dir {
                Some(d) => {
                    let p = d.join(name);
                    Ok(Some(
                        std::fs::read_to_string(&p)
                            .with_context(|| format!("cannot read {}", p.display()))?,
                    ))
                }
                None => Ok(None),
            }
        };
        let token = read("token")?.map(|t| t.trim().to_string());
        let tls = match scheme {
            "https" => {
                let ca = read("ca.crt")?
                    .ok_or_else(|| anyhow!("HTTPS needs the cluster's CA (ca.crt)"))?;
                let mut roots = rustls::RootCertStore::empty();
                for der in sms_trust::ca::parse_pem(&ca, "CERTIFICATE")? {
                    roots
                        .add(rustls_pki_types::CertificateDer::from(der))
                        .context("the cluster's CA")?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                Some(Arc::new(
                    rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()?
                        .with_root_certificates(roots)
                        .with_no_client_auth(),
                ))
            }
            "http" => {
                let host = host_port
                    .rsplit_once(':')
                    .map(|(h, _)| h)
                    .unwrap_or(&host_port);
                let loopback = host == "localhost"
                    || host
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if !loopback {
                    bail!(
                        "plain HTTP to the API is only allowed on loopback (tests); use https://"
                    );
                }
                None
            }
            other => bail!("{other}:// is not http or https"),
        };
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            host_port,
            token,
            tls,
        })
    }

    /// The namespace of the pod this runs in.
    pub fn own_namespace(sa_dir: &Path) -> Option<String> {
        std::fs::read_to_string(sa_dir.join("namespace"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        tokio::time::timeout(TIMEOUT, async {
            let tcp = tokio::net::TcpStream::connect(&self.host_port)
                .await
                .with_context(|| format!("cannot reach the Kubernetes API at {}", self.base))?;
            let mut req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, &self.host_port)
                .header(hyper::header::ACCEPT, "application/json");
            if let Some(t) = &self.token {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            if let Some(ct) = content_type {
                req = req.header(hyper::header::CONTENT_TYPE, ct);
            }
            let req = req.body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))?;
            let (status, bytes) = match &self.tls {
                Some(cfg) => {
                    let host = self
                        .host_port
                        .rsplit_once(':')
                        .map(|(h, _)| h)
                        .unwrap_or(&self.host_port);
                    let name = rustls_pki_types::ServerName::try_from(
                        host.trim_matches(['[', ']']).to_string(),
                    )
                    .map_err(|e| anyhow!("{host} is not a server name: {e}"))?;
                    let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                        .connect(name, tcp)
                        .await?;
                    send(TokioIo::new(tls), req).await?
                }
                None => send(TokioIo::new(tcp), req).await?,
            };
            let v = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            Ok((status, v))
        })
        .await
        .map_err(|_| {
            anyhow!(
                "the Kubernetes API at {} did not answer within {} s",
                self.base,
                TIMEOUT.as_secs()
            )
        })?
    }

    fn secret_path(ns: &str, name: &str) -> String {
        format!("/api/v1/namespaces/{ns}/secrets/{name}")
    }

    /// The Secret's data (decoded), or None when it does not exist.
    pub async fn secret(&self, ns: &str, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        let (code, v) = self
            .call("GET", &Self::secret_path(ns, name), None, None)
            .await?;
        match code {
            404 => Ok(None),
            200 => {
                let mut out = BTreeMap::new();
                if let Some(data) = v["data"].as_object() {
                    for (k, val) in data {
                        let b = base64::engine::general_purpose::STANDARD
                            .decode(val.as_str().unwrap_or(""))
                            .with_context(|| format!("secret {name} key {k} is not base64"))?;
                        out.insert(k.clone(), b);
                    }
                }
                Ok(Some(out))
            }
            c => Err(refusal(c, &v, &format!("reading secret {ns}/{name}"))),
        }
    }

    /// Sets one key of a Secret, creating the Secret if it is missing;
    /// other keys are kept.
    pub async fn put_secret_key(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        match self.patch_secret_key(ns, name, key, &encoded).await? {
            (200, _) => return Ok(()),
            (404, _) => {}
            (c, v) => return Err(refusal(c, &v, &format!("patching secret {ns}/{name}"))),
        }
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "sms-hierarchy"}},
            "type": "Opaque",
            "data": {key: encoded},
        });
        let (code, v) = self
            .call(
                "POST",
                &format!("/api/v1/namespaces/{ns}/secrets"),
                Some("application/json"),
                Some(secret),
            )
            .await?;
        match code {
            200 | 201 => Ok(()),
            // Made meanwhile by someone else: patch it after all.
            409 => match self.patch_secret_key(ns, name, key, &encoded).await? {
                (200, _) => Ok(()),
                (c, v) => Err(refusal(c, &v, &format!("patching secret {ns}/{name}"))),
            },
            c => Err(refusal(c, &v, &format!("creating secret {ns}/{name}"))),
        }
    }

    /// A merge patch setting one key (base64 already) of a Secret; the
    /// API's status code and answer.
    async fn patch_secret_key(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        encoded: &str,
    ) -> Result<(u16, Value)> {
        self.call(
            "PATCH",
            &Self::secret_path(ns, name),
            Some("application/merge-patch+json"),
            Some(json!({"data": {key: encoded}})),
        )
        .await
    }
}

async fn send<IO>(io: TokioIo<IO>, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Vec<u8>)>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let work = async {
        let res = sender.send_request(req).await?;
        let status = res.status().as_u16();
        let body = Limited::new(res.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| anyhow!("reading the API's answer: {e}"))?
            .to_bytes()
            .to_vec();
        Ok::<_, anyhow::Error>((status, body))
    };
    tokio::pin!(work);
    tokio::pin!(conn);
    tokio::select! {
        biased;
        r = &mut work => r,
        _ = &mut conn => work.await,
    }
}

/// The API's refusal, with the fix for the usual one (RBAC).
fn refusal(code: u16, v: &Value, what: &str) -> anyhow::Error {
    let msg = v["message"].as_str().unwrap_or("");
    match code {
        401 => anyhow!("{what}: the API did not accept the service account token (401): {msg}"),
        403 => anyhow!(
            "{what}: forbidden (403): {msg}. The pod's service account needs get, create and patch on \
             secrets in its namespace (deploy/k8s/token-sync.yaml)"
        ),
        c => anyhow!("{what}: the API answered {c}: {msg}"),
    }
}

/// One pod to give a token: `POD` (a member server named after it),
/// `POD=SITE` (a secondary site) or `POD=SITE:primary` (a child primary
/// below this one). The Secret is `<statefulset>-join-tokens`, key
/// `POD.token`, as the manifests mount it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodToken {
    pub pod: String,
    pub site: Option<String>,
    /// `POD=SITE:primary`: the token makes a child primary.
    pub primary: bool,
}

impl PodToken {
    pub fn parse(spec: &str) -> Result<PodToken> {
        let (pod, site) = match spec.split_once('=') {
            Some((p, s)) => (p, Some(s.to_string())),
            None => (spec, None),
        };
        let (site, primary) = match site.as_deref().map(|s| s.split_once(':')) {
            Some(Some((s, "primary"))) => (Some(s.to_string()), true),
            Some(Some((_, other))) => bail!(
                "{spec}: {other:?} is not a site role here; write POD=SITE for a secondary \
                 or POD=SITE:primary for a child primary"
            ),
            _ => (site, false),
        };
        let (sts, ordinal) = pod
            .rsplit_once('-')
            .ok_or_else(|| anyhow!("{pod} is not a StatefulSet pod name (NAME-N)"))?;
        let name_ok = !sts.is_empty()
            && sts.len() <= 50
            && sts
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !sts.starts_with('-')
            && !sts.ends_with('-');
        if !name_ok || ordinal.is_empty() || !ordinal.chars().all(|c| c.is_ascii_digit()) {
            bail!("{pod} is not a StatefulSet pod name (NAME-N)");
        }
        if let Some(s) = &site {
            s.parse::<sms_types::SiteCode>()
                .map_err(|e| anyhow!("{spec}: {e}"))?;
        }
        Ok(PodToken {
            pod: pod.to_string(),
            site,
            primary,
        })
    }

    pub fn secret(&self) -> String {
        let sts = self
            .pod
            .rsplit_once('-')
            .map(|(s, _)| s)
            .unwrap_or(&self.pod);
        format!("{sts}-join-tokens")
    }

    pub fn key(&self) -> String {
        format!("{}.token", self.pod)
    }

    /// The token's label and role at the primary.
    pub fn label_role(&self) -> (String, String) {
        match &self.site {
            Some(s) if self.primary => (s.clone(), "primary".into()),
            Some(s) => (s.clone(), "secondary".into()),
            None => (self.pod.clone(), "member".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_specs_name_their_secret_key_and_token() {
        let p = PodToken::parse("secondary-0=S01").unwrap();
        assert_eq!(
            (p.secret(), p.key()),
            ("secondary-join-tokens".into(), "secondary-0.token".into())
        );
        assert_eq!(p.label_role(), ("S01".into(), "secondary".into()));
        let m = PodToken::parse("smsdom-member-1").unwrap();
        assert_eq!(m.secret(), "smsdom-member-join-tokens");
        assert_eq!(m.label_role(), ("smsdom-member-1".into(), "member".into()));
        let c = PodToken::parse("p01-0=P01:primary").unwrap();
        assert_eq!(
            (c.secret(), c.key()),
            ("p01-join-tokens".into(), "p01-0.token".into())
        );
        assert_eq!(c.label_role(), ("P01".into(), "primary".into()));
        let err = PodToken::parse("p01-0=P01:secondary")
            .unwrap_err()
            .to_string();
        assert!(err.contains("POD=SITE:primary"), "{err}");
        assert!(PodToken::parse("p01-0=TOOLONG:primary").is_err());
        for bad in [
            "nodash",
            "Upper-0",
            "x-",
            "-0",
            "a-b",
            "secondary-0=TOOLONG",
        ] {
            assert!(PodToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(Api::new("http://127.0.0.1:8080", None).is_ok());
        assert!(Api::new("http://10.0.0.1:8080", None).is_err());
        assert!(Api::new("ftp://127.0.0.1:1", None).is_err());
        assert!(
            Api::new("https://10.0.0.1:443", None).is_err(),
            "HTTPS needs the CA"
        );
    }
}
