//! Reaching any site by its code: the Admin service's front door. A call
//! whose `sms-site` header names another site is passed, as raw HTTP/2
//! (streams included), to the next hop's site server over a connection
//! this node makes with its own certificate; the rules of the walk (next
//! hop, loops, severed links, who may relay) are in [`sms_site::relay`].
//!
//! Who the caller is travels with the request: the first hop takes it from
//! the administrator's verified certificate and writes it in a header; a
//! node believes that header only from a TLS peer whose certificate is its
//! parent's or a direct child's site server, so an administrator cannot
//! claim to be anyone else. At the target the relayed administrator is
//! checked as a direct caller would be (role, issued at this site or an
//! ancestor, not revoked), and the audit trail names them and the relays.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue};
use sms_site::relay::{self, NextHop, Step};
use sms_site::Ctx;
use sms_trust::tls::Expect;
use sms_trust::{Identity, Name, Role};
use sms_types::SiteCode;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::Status;
use tower::{Service, ServiceExt};

use super::errors::status;
use crate::peers::{error_chain, Connector};
use crate::security::{PeerInfo, Security};

/// The site a call is for (`controller --site CODE`).
pub const SITE: &str = "sms-site";
/// The sites that relayed the call so far, first first, comma-separated.
pub const PATH: &str = "sms-relay-path";
/// The administrator a relay acts for (see [`RelayedCaller::encode`]).
pub const CALLER: &str = "sms-relay-caller";

/// How long one hop waits for the next one's answer (its response head: a
/// stream's messages flow as long as the stream lasts) unless the caller
/// set a shorter deadline (`grpc-timeout`).
pub const HOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Each hop gives the next this much less time, so the hop nearest the
/// trouble times out first and its error, naming the silent site, is what
/// comes back.
const HOP_MARGIN: Duration = Duration::from_secs(1);

/// The administrator a relayed call is made for, as the first hop saw
/// their certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayedCaller {
    pub name: String,
    pub role: Role,
    /// The path of the site that issued the certificate (own code first).
    pub scope: Vec<SiteCode>,
    /// Serials of the certificate and its issuers, for revocation checks.
    pub serials: Vec<String>,
}

/// What a relayed call's handler sees: who asked, through which sites.
#[derive(Clone, Debug)]
pub struct Relayed {
    /// `None` on plaintext nodes (`--insecure`), where nobody is known.
    pub caller: Option<RelayedCaller>,
    pub via: Vec<SiteCode>,
}

impl RelayedCaller {
    /// From a verified certificate: only an administrator's is relayed.
    pub fn of(id: &Identity, serials: &[String]) -> Result<RelayedCaller, Status> {
        if id.admin_role().is_none() {
            return Err(Status::permission_denied(format!(
                "{} is a {} certificate; only an administrator may address a site by its code",
                id.name.label, id.role
            )));
        }
        Ok(RelayedCaller {
            name: id.name.label.clone(),
            role: id.role,
            scope: id.name.ancestors.clone(),
            serials: serials.to_vec(),
        })
    }

    /// `name=otto; role=admin-operator; scope=P01,PRI; serials=1a,2b`
    /// (names, roles, site codes and hex serials need no escaping).
    pub fn encode(&self) -> String {
        format!(
            "name={}; role={}; scope={}; serials={}",
            self.name,
            self.role,
            join(&self.scope),
            self.serials.join(",")
        )
    }

    pub fn decode(s: &str) -> Result<RelayedCaller, String> {
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for part in s.split(';') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=value"))?;
            fields.insert(k, v);
        }
        let get = |k: &str| fields.get(k).copied().ok_or(format!("no {k}"));
        let name = get("name")?;
        sms_trust::names::check_label(name).map_err(|e| e.to_string())?;
        let role = Role::parse(get("role")?).ok_or("an unknown role")?;
        if !matches!(role, Role::Admin(_)) {
            return Err(format!("role {role} is not an administrator's"));
        }
        let serials: Vec<String> = split(get("serials")?)
            .map(|s| {
                if s.chars().all(|c| c.is_ascii_hexdigit()) {
                    Ok(s.to_string())
                } else {
                    Err(format!("serial {s:?} is not hex"))
                }
            })
            .collect::<Result<_, _>>()?;
        if serials.is_empty() {
            return Err("no certificate serials".into());
        }
        Ok(RelayedCaller {
            name: name.to_string(),
            role,
            scope: codes(get("scope")?)?,
            serials,
        })
    }

    /// The identity the Admin handlers check, as if the administrator had
    /// called this node. Validity dates are not relayed: the first hop's
    /// handshake checked them.
    pub fn identity(&self) -> Identity {
        Identity {
            role: self.role,
            name: Name {
                label: self.name.clone(),
                ancestors: self.scope.clone(),
            },
            serial: self.serials[0].clone(),
            not_after: 0,
            not_before: 0,
            subject: format!("CN={}", self.name),
        }
    }
}

fn join(codes: &[SiteCode]) -> String {
    codes
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

fn codes(s: &str) -> Result<Vec<SiteCode>, String> {
    split(s)
        .map(|c| c.parse::<SiteCode>().map_err(|e| format!("{c:?}: {e}")))
        .collect()
}

/// The relay headers of one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayHeaders {
    pub site: Option<SiteCode>,
    pub path: Vec<SiteCode>,
    pub caller: Option<RelayedCaller>,
}

impl RelayHeaders {
    /// Reads them; `None` when the call has none (a plain local call).
    pub fn parse(h: &HeaderMap) -> Result<Option<RelayHeaders>, Status> {
        let text = |name: &str| -> Result<Option<&str>, Status> {
            h.get(name)
                .map(|v| {
                    v.to_str()
                        .map_err(|_| Status::invalid_argument(format!("header {name} is not text")))
                })
                .transpose()
        };
        let (site, path, caller) = (text(SITE)?, text(PATH)?, text(CALLER)?);
        if site.is_none() && path.is_none() && caller.is_none() {
            return Ok(None);
        }
        let site = site
            .map(|s| {
                s.trim().parse::<SiteCode>().map_err(|e| {
                    Status::invalid_argument(format!(
                        "header {SITE}: {s:?} is not a site code: {e}"
                    ))
                })
            })
            .transpose()?;
        let path = codes(path.unwrap_or_default())
            .map_err(|e| Status::invalid_argument(format!("header {PATH}: {e}")))?;
        let caller = caller
            .map(|c| {
                RelayedCaller::decode(c)
                    .map_err(|e| Status::invalid_argument(format!("header {CALLER}: {e}")))
            })
            .transpose()?;
        Ok(Some(RelayHeaders { site, path, caller }))
    }

    /// Writes them for the next hop (replacing any that came in).
    pub fn write(&self, h: &mut HeaderMap) -> Result<(), Status> {
        let value = |s: String| {
            HeaderValue::from_str(&s).map_err(|e| Status::internal(format!("relay header: {e}")))
        };
        h.remove(SITE);
        h.remove(PATH);
        h.remove(CALLER);
        if let Some(s) = &self.site {
            h.insert(SITE, value(s.to_string())?);
        }
        h.insert(PATH, value(join(&self.path))?);
        if let Some(c) = &self.caller {
            h.insert(CALLER, value(c.encode())?);
        }
        Ok(())
    }
}

/// Who handed this node a call that carries relay headers, and so whether
/// they are believed: the first hop (an administrator, no path or caller
/// headers of their own), or a relay (a neighbouring site server, the last
/// site of the path). `neighbour` answers whether a site may relay here.
pub fn relayed_caller(
    peer: Option<&PeerInfo>,
    h: &RelayHeaders,
    neighbour: impl Fn(&SiteCode) -> Result<(), Status>,
) -> Result<Option<RelayedCaller>, Status> {
    let Some(peer) = peer.filter(|p| p.tls) else {
        // Plaintext: nobody is authenticated, nothing to carry.
        return Ok(None);
    };
    let Some(id) = &peer.identity else {
        return Err(Status::unauthenticated(
            "addressing a site by its code needs an administrator certificate of this hierarchy",
        ));
    };
    let from_relay = !h.path.is_empty() || h.caller.is_some();
    if !from_relay {
        return RelayedCaller::of(id, &peer.chain_serials).map(Some);
    }
    let Some(site) = id.site() else {
        return Err(Status::permission_denied(format!(
            "{} ({}) sent relay headers ({PATH}, {CALLER}); only a neighbouring site server may \
             relay a call for an administrator",
            id.name.label, id.role
        )));
    };
    if h.path.last() != Some(&site) {
        return Err(Status::permission_denied(format!(
            "the relay path {} does not end at site {site}, whose server sent the call",
            relay::path_text(&h.path)
        )));
    }
    neighbour(&site)?;
    match &h.caller {
        Some(c) => Ok(Some(c.clone())),
        None => Err(Status::invalid_argument(format!(
            "site {site} relayed a call without the {CALLER} header"
        ))),
    }
}

/// Parses a `grpc-timeout` value (`100m`, `5S`, ...).
fn grpc_timeout(h: &HeaderMap) -> Option<Duration> {
    let v = h.get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The Admin service behind its relay.
#[derive(Clone)]
pub struct Relay<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What every call through the relay shares.
struct Shared {
    ctx: Arc<Ctx>,
    connector: Connector,
    /// One channel per next hop, made with the certificate in force (a
    /// renewed certificate starts new ones).
    channels: Mutex<HashMap<(SiteCode, String, usize), Channel>>,
}

impl<S> Relay<S> {
    pub fn new(inner: S, ctx: Arc<Ctx>, connector: Connector) -> Relay<S> {
        Relay {
            inner,
            shared: Arc::new(Shared {
                ctx,
                connector,
                channels: Mutex::default(),
            }),
        }
    }
}

impl<S: NamedService> NamedService for Relay<S> {
    const NAME: &'static str = S::NAME;
}

/// What the front door decided for one call.
enum Action {
    Local(http::Request<Body>),
    Answered(http::Response<Body>),
}

impl<S> Service<http::Request<Body>> for Relay<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The ready service serves this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            match shared.front_door(req).await {
                Ok(Action::Local(req)) => inner.call(req).await,
                Ok(Action::Answered(resp)) => Ok(resp),
                Err(s) => Ok(s.into_http()),
            }
        })
    }
}

impl Shared {
    /// The site this node's certificate names (`None` on plaintext).
    fn certified_as(&self) -> Option<SiteCode> {
        match &self.connector.security {
            Security::Tls(t) => t.current().identity.site(),
            Security::Plaintext => None,
        }
    }

    async fn front_door(&self, mut req: http::Request<Body>) -> Result<Action, Status> {
        let Some(h) = RelayHeaders::parse(req.headers())? else {
            return Ok(Action::Local(req));
        };
        let here = self.ctx.identity().map(|id| id.site_code);
        // An administrator naming this very site: a plain call.
        if h.path.is_empty() && h.caller.is_none() && h.site.is_some() && h.site == here {
            return Ok(Action::Local(req));
        }
        let peer = req.extensions().get::<PeerInfo>().cloned();
        let ctx = self.ctx.clone();
        let caller = relayed_caller(peer.as_ref(), &h, |site| {
            sms_site::relay::accept_from(&ctx, site).map_err(status)
        })?;
        if let Some(p) = &peer {
            let serials = p.chain_serials.iter().chain(
                caller
                    .as_ref()
                    .map(|c| c.serials.iter())
                    .into_iter()
                    .flatten(),
            );
            if let Some(serial) =
                sms_site::trust::any_revoked(&self.ctx, &serials.cloned().collect::<Vec<_>>())
                    .map_err(|e| Status::internal(e.to_string()))?
            {
                return Err(Status::permission_denied(format!(
                    "certificate {serial} was revoked here; a relayed call for it is refused"
                )));
            }
        }
        let Some(dest) = h.site.clone() else {
            return Err(Status::invalid_argument(format!(
                "a relayed call must name its site in the {SITE} header"
            )));
        };
        let certified = self.certified_as();
        match relay::step(&self.ctx, &dest, &h.path, certified.as_ref()).map_err(status)? {
            Step::Here => {
                if !h.path.is_empty() {
                    req.extensions_mut().insert(Relayed {
                        caller,
                        via: h.path.clone(),
                    });
                }
                Ok(Action::Local(req))
            }
            Step::Forward(hop) => {
                let me = here
                    .or(certified)
                    .ok_or_else(|| Status::failed_precondition("this node has no site"))?;
                let mut path = h.path.clone();
                path.push(me.clone());
                let next = RelayHeaders {
                    site: Some(dest.clone()),
                    path,
                    caller,
                };
                self.forward(req, &me, &dest, &hop, &next).await
            }
        }
    }

    async fn channel(&self, hop: &NextHop) -> Result<Channel, String> {
        let generation = match &self.connector.security {
            Security::Tls(t) => Arc::as_ptr(&t.current()) as usize,
            Security::Plaintext => 0,
        };
        let key = (hop.site.clone(), hop.server.clone(), generation);
        if let Some(c) = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let c = self
            .connector
            .connect_to(&hop.server, Expect::Site(hop.site.clone()))
            .await?;
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        // Channels made with a replaced certificate, or to an old address.
        map.retain(|(s, _, g), _| s != &hop.site && *g == generation);
        map.insert(key, c.clone());
        Ok(c)
    }

    fn forget(&self, hop: &NextHop) {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(s, _, _), _| s != &hop.site);
    }

    async fn forward(
        &self,
        req: http::Request<Body>,
        me: &SiteCode,
        dest: &SiteCode,
        hop: &NextHop,
        next: &RelayHeaders,
    ) -> Result<Action, Status> {
        let wait = grpc_timeout(req.headers())
            .map_or(HOP_TIMEOUT, |t| t.min(HOP_TIMEOUT))
            .max(HOP_MARGIN * 2);
        let (parts, body) = req.into_parts();
        let mut out = http::Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = parts.uri;
        *out.version_mut() = parts.version;
        *out.headers_mut() = parts.headers;
        next.write(out.headers_mut())?;
        let left = wait - HOP_MARGIN;
        out.headers_mut().insert(
            "grpc-timeout",
            HeaderValue::from_str(&format!("{}m", left.as_millis()))
                .map_err(|e| Status::internal(e.to_string()))?,
        );
        let unreachable = |why: String| {
            Status::unavailable(format!(
                "no route to site {dest}: site {me} cannot reach site {} at {}: {why}",
                hop.site, hop.server
            ))
        };
        let channel = tokio::time::timeout(wait, self.channel(hop))
            .await
            .map_err(|_| unreachable(format!("no connection within {wait:?}")))?
            .map_err(unreachable)?;
        tracing::debug!(dest = %dest, hop = %hop.site, path = %relay::path_text(&next.path), "relaying a call");
        match tokio::time::timeout(wait, channel.oneshot(out)).await {
            Err(_) => Err(Status::deadline_exceeded(format!(
                "site {} ({}) did not answer within {wait:?} (relaying to site {dest} from {me})",
                hop.site, hop.server
            ))),
            Ok(Err(e)) => {
                self.forget(hop);
                Err(unreachable(error_chain(&e)))
            }
            Ok(Ok(resp)) => Ok(Action::Answered(resp)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sms_trust::AdminRole;

    fn code(s: &str) -> SiteCode {
        s.parse().unwrap()
    }

    fn admin(role: AdminRole) -> Identity {
        RelayedCaller {
            name: "otto".into(),
            role: Role::Admin(role),
            scope: vec![code("PRI")],
            serials: vec!["0a".into(), "0b".into()],
        }
        .identity()
    }

    fn site_server(site: &str) -> Identity {
        Identity {
            role: Role::Secondary,
            name: Name {
                label: site.into(),
                ancestors: vec![code("PRI")],
            },
            serial: "01".into(),
            not_after: 0,
            not_before: 0,
            subject: format!("CN={site}"),
        }
    }

    fn tls_peer(id: Option<Identity>) -> PeerInfo {
        PeerInfo {
            remote: None,
            identity: id,
            tls: true,
            chain_serials: vec!["0a".into(), "0b".into()],
        }
    }

    fn caller() -> RelayedCaller {
        RelayedCaller {
            name: "otto".into(),
            role: Role::Admin(AdminRole::Operator),
            scope: vec![code("P01"), code("PRI")],
            serials: vec!["1f".into(), "2e".into()],
        }
    }

    /// PRI's parent-or-child rule for these tests: P01 and S01 are neighbours.
    fn neighbours(site: &SiteCode) -> Result<(), Status> {
        if ["P01", "S01"].contains(&site.as_str()) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{site} is not a neighbour"
            )))
        }
    }

    #[test]
    fn the_caller_header_round_trips_and_bad_ones_are_refused() {
        let c = caller();
        assert_eq!(
            c.encode(),
            "name=otto; role=admin-operator; scope=P01,PRI; serials=1f,2e"
        );
        assert_eq!(RelayedCaller::decode(&c.encode()), Ok(c.clone()));
        let id = c.identity();
        assert_eq!(id.admin_role(), Some(AdminRole::Operator));
        assert!(id.covers(&[code("S11"), code("P01"), code("PRI")]));
        assert!(!id.covers(&[code("PRI")]));
        for bad in [
            "name=otto; role=primary; scope=PRI; serials=1f",
            "name=Otto Smith; role=admin-full; scope=PRI; serials=1f",
            "name=otto; role=admin-full; scope=PRI; serials=",
            "name=otto; role=admin-full; scope=P R I; serials=1f",
            "name=otto; role=admin-full; serials=1f",
            "name=otto; role=admin-full; scope=PRI; serials=zz",
            "otto",
        ] {
            assert!(RelayedCaller::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_are_read_and_written_and_a_call_without_them_is_local() {
        assert_eq!(RelayHeaders::parse(&HeaderMap::new()).unwrap(), None);
        let h = RelayHeaders {
            site: Some(code("S11")),
            path: vec![code("PRI"), code("P01")],
            caller: Some(caller()),
        };
        let mut map = HeaderMap::new();
        map.insert(PATH, HeaderValue::from_static("XXX"));
        h.write(&mut map).unwrap();
        assert_eq!(map.get(PATH).unwrap(), "PRI,P01");
        assert_eq!(RelayHeaders::parse(&map).unwrap(), Some(h));
        let mut map = HeaderMap::new();
        map.insert(SITE, HeaderValue::from_static("s-11"));
        let e = RelayHeaders::parse(&map).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with("header sms-site: \"s-11\""), "{e}");
    }

    #[test]
    fn the_first_hop_relays_an_administrator_and_nobody_else() {
        let h = RelayHeaders {
            site: Some(code("S11")),
            ..Default::default()
        };
        let got = relayed_caller(
            Some(&tls_peer(Some(admin(AdminRole::ReadOnly)))),
            &h,
            neighbours,
        )
        .unwrap()
        .unwrap();
        assert_eq!(got.role, Role::Admin(AdminRole::ReadOnly));
        assert_eq!(got.serials, ["0a", "0b"], "the chain as presented");
        // A site server calling on its own behalf is not an administrator.
        let e =
            relayed_caller(Some(&tls_peer(Some(site_server("S01")))), &h, neighbours).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let e = relayed_caller(Some(&tls_peer(None)), &h, neighbours).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        // Plaintext: nobody to carry.
        let plain = PeerInfo {
            tls: false,
            ..tls_peer(None)
        };
        assert_eq!(relayed_caller(Some(&plain), &h, neighbours).unwrap(), None);
        assert_eq!(relayed_caller(None, &h, neighbours).unwrap(), None);
    }

    #[test]
    fn only_a_neighbouring_site_server_at_the_end_of_the_path_may_relay() {
        let relayed = |from: &str| RelayHeaders {
            site: Some(code("S11")),
            path: vec![code(from)],
            caller: Some(caller()),
        };
        assert_eq!(
            relayed_caller(
                Some(&tls_peer(Some(site_server("S01")))),
                &relayed("S01"),
                neighbours
            )
            .unwrap(),
            Some(caller())
        );
        // An administrator forging the headers.
        let e = relayed_caller(
            Some(&tls_peer(Some(admin(AdminRole::Full)))),
            &relayed("S01"),
            neighbours,
        )
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message().contains("only a neighbouring site server"),
            "{e}"
        );
        // Forged caller without a path, by an administrator: refused too.
        let forged = RelayHeaders {
            path: vec![],
            ..relayed("S01")
        };
        assert!(relayed_caller(
            Some(&tls_peer(Some(admin(AdminRole::Full)))),
            &forged,
            neighbours
        )
        .is_err());
        // A site server that is not a neighbour, or claims another's place.
        let e = relayed_caller(
            Some(&tls_peer(Some(site_server("S77")))),
            &relayed("S77"),
            neighbours,
        )
        .unwrap_err();
        assert!(e.message().contains("not a neighbour"), "{e}");
        let e = relayed_caller(
            Some(&tls_peer(Some(site_server("S01")))),
            &relayed("P01"),
            neighbours,
        )
        .unwrap_err();
        assert!(e.message().contains("does not end at site S01"), "{e}");
        // A relay must say whom it relays for.
        let bare = RelayHeaders {
            caller: None,
            ..relayed("S01")
        };
        let e = relayed_caller(Some(&tls_peer(Some(site_server("S01")))), &bare, neighbours)
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        let t = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", HeaderValue::from_static(v));
            grpc_timeout(&h)
        };
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(t("1M"), Some(Duration::from_secs(60)));
        assert_eq!(t("7u"), Some(Duration::from_micros(7)));
        assert_eq!(t("x"), None);
        assert_eq!(t("5"), None);
    }
}
