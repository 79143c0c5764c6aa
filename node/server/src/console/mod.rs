//! The web console, on the node's HTTP listener (`--http-listen`) under
//! `/console/`: the hierarchy as a tree updated live (server-sent events),
//! a page per site, a status message viewer with a live tail, and the
//! administrator's actions. The page is plain HTML, CSS and JS compiled
//! into the binary; everything it shows comes from the JSON endpoints
//! here, which read the site's read models ([`views`]), and every action
//! makes the same domain call as the gRPC admin service and is recorded
//! in the same audit trail ([`crate::audit`]).
//!
//! Who may do what: actions need a console session ([`session`]), bought
//! with a sign-in link an administrator gets with their certificate
//! (`controller console-url`); the session carries their role, checked per
//! action as the gRPC service checks it, and a CSRF token the page sends in
//! a header. Reading is open without a session only on a loopback
//! listener; anywhere else every endpoint needs one.

pub mod session;
pub mod views;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use sms_site::error::Refused;
use sms_site::hierarchy::{self, ControlChange, CreateSecondary};
use sms_site::queries::{self, StatusQuery};
use sms_site::{ops, Ctx};
use sms_trust::AdminRole;
use sms_types::{Severity, SiteCode};
use tokio::sync::{broadcast, watch, Semaphore};

use session::{Grant, SessionError, SessionView, Sessions};

/// How often the tree is looked at while someone watches it.
const TREE_POLL: Duration = Duration::from_secs(1);
/// How long a child primary may take to describe its links for the tree;
/// a silent one is shown as such rather than holding the tree up.
const FAR_LINKS_WITHIN: Duration = Duration::from_secs(2);
/// How long the child primaries' answer is shown before they are asked
/// again.
const FAR_LINKS_FRESH: Duration = Duration::from_secs(3);
/// Live streams (tree or status tail) one node serves at once.
pub const MAX_STREAMS: usize = 32;
/// The header an action must carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-sms-csrf";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// What the console shares with the gRPC admin service: the sessions
/// (which `CreateConsoleSession` issues) and where the console is served.
#[derive(Default)]
pub struct Console {
    pub sessions: Sessions,
    url: OnceLock<String>,
}

impl Console {
    /// Records the listener's URL once it is bound.
    pub fn set_url(&self, base: &str) {
        let _ = self.url.set(format!("{base}/console/"));
    }

    /// The console's URL (`…/console/`), if this node serves one.
    pub fn url(&self) -> Option<&str> {
        self.url.get().map(String::as_str)
    }
}

#[derive(Clone)]
struct St {
    ctx: Arc<Ctx>,
    console: Arc<Console>,
    /// A loopback listener lets reads through without a session.
    loopback: bool,
    /// Cookies are `Secure` on a TLS listener.
    tls: bool,
    /// The session cookie's name: one per listener port, so consoles of
    /// two nodes on one host keep their own sessions.
    cookie: String,
    tree: watch::Sender<Arc<String>>,
    rates: Arc<Mutex<views::Rates>>,
    /// The child primaries' links and when they were asked: reused for
    /// [`FAR_LINKS_FRESH`], so a watched tree does not open a connection
    /// to each child primary every second.
    far: Arc<tokio::sync::Mutex<Option<FarLinks>>>,
    streams: Arc<Semaphore>,
}

/// The child primaries' links, and when they were asked.
type FarLinks = (std::time::Instant, Arc<Vec<queries::ChildLinks>>);

/// The console's routes, for a listener bound at `bound`.
pub fn router(ctx: Arc<Ctx>, console: Arc<Console>, bound: SocketAddr, tls: bool) -> Router {
    let (tree, _) = watch::channel(Arc::new(String::new()));
    let st = St {
        ctx: ctx.clone(),
        console,
        loopback: bound.ip().is_loopback(),
        tls,
        cookie: format!("sms_console_{}", bound.port()),
        tree,
        rates: Arc::new(Mutex::new(views::Rates::default())),
        far: Arc::default(),
        streams: Arc::new(Semaphore::new(MAX_STREAMS)),
    };
    ctx.tasks
        .spawn_until_shutdown("console tree feed", feed_tree(st.clone()));
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|| asset(INDEX_HTML, "text/html; charset=utf-8")),
        )
        .route(
            "/console/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/console/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route("/console/login", get(login))
        .route("/console/api/session", get(session_info))
        .route("/console/api/logout", post(logout))
        .route("/console/api/tree", get(tree_json))
        .route("/console/api/events", get(tree_events))
        .route("/console/api/sites/{code}", get(site))
        .route("/console/api/sites/{code}/diff", get(diff))
        .route("/console/api/status", get(status))
        .route("/console/api/status/tail", get(status_tail))
        .route("/console/api/actions/{action}", post(action))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(st)
}

/// No framing, no foreign script or style, no referrer (a sign-in URL
/// must not travel), nothing cached.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// An endpoint's refusal: a status and `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> Self {
        let code = match &e {
            Refused::Invalid(_) => StatusCode::BAD_REQUEST,
            Refused::NotFound(_) => StatusCode::NOT_FOUND,
            Refused::Exists(_) | Refused::Precondition(_) => StatusCode::CONFLICT,
            Refused::Unreachable(_) => StatusCode::BAD_GATEWAY,
            Refused::Denied(_) => StatusCode::FORBIDDEN,
            Refused::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let code = match e {
            SessionError::Role { .. } | SessionError::Csrf => StatusCode::FORBIDDEN,
            SessionError::Full => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError(code, e.to_string())
    }
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, m.into())
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The value of cookie `name` in a request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl St {
    /// The request's session, if it has a live one.
    fn session(&self, headers: &HeaderMap) -> Option<SessionView> {
        cookie(headers, &self.cookie).and_then(|id| self.console.sessions.get(id).ok())
    }

    /// Reading: open on a loopback listener, else a session is needed.
    fn may_read(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.loopback || self.session(headers).is_some() {
            return Ok(());
        }
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "this console is served off loopback: sign in with the link `controller console-url` \
             prints"
                .into(),
        ))
    }

    /// Acting: a live session with the CSRF token and at least `need`,
    /// whose certificate was not revoked since.
    fn may_act(&self, headers: &HeaderMap, need: AdminRole) -> Result<Grant, ApiError> {
        let id = cookie(headers, &self.cookie);
        let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let grant = self.console.sessions.authorize(id, csrf, need)?;
        match sms_site::trust::any_revoked(&self.ctx, &grant.chain_serials) {
            Ok(None) => Ok(grant),
            Ok(Some(serial)) => {
                if let Some(id) = id {
                    self.console.sessions.end(id);
                }
                Err(ApiError(
                    StatusCode::FORBIDDEN,
                    format!("certificate {serial} of this session was revoked here"),
                ))
            }
            Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    }

    /// A live stream slot, or 503 when [`MAX_STREAMS`] are open.
    fn stream_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("this node already serves {MAX_STREAMS} live console streams"),
            )
        })
    }

    /// The tree now, with the edges one tier down as the child primaries
    /// holding them report them (each asked within [`FAR_LINKS_WITHIN`]).
    async fn tree_now(&self) -> Result<Value, Refused> {
        let far = {
            // One asker at a time: concurrent requests share its answer.
            let mut cached = self.far.lock().await;
            match &*cached {
                Some((at, far)) if at.elapsed() < FAR_LINKS_FRESH => far.clone(),
                _ => {
                    let far =
                        Arc::new(queries::child_primaries_links(&self.ctx, FAR_LINKS_WITHIN).await);
                    *cached = Some((std::time::Instant::now(), far.clone()));
                    far
                }
            }
        };
        let rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        views::tree(&self.ctx, &rates, &far)
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    ticket: Option<String>,
}

/// Trades a sign-in ticket for a session cookie and sends the browser on
/// to the console, so the ticket leaves the address bar.
async fn login(State(st): State<St>, Query(q): Query<LoginQuery>) -> Response {
    let Some(ticket) = q.ticket else {
        return (StatusCode::BAD_REQUEST, "the sign-in link has no ticket\n").into_response();
    };
    match st.console.sessions.redeem(&ticket) {
        Ok((id, view)) => {
            let max_age = view.expires_unix.saturating_sub(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            );
            let secure = if st.tls { "; Secure" } else { "" };
            let cookie = format!(
                "{}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
                st.cookie
            );
            tracing::info!(subject = %view.grant.subject, role = %view.grant.role, "console: signed in");
            (
                StatusCode::SEE_OTHER,
                [
                    (header::SET_COOKIE, cookie),
                    (header::LOCATION, "/console/".to_string()),
                ],
            )
                .into_response()
        }
        Err(e) => (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response(),
    }
}

/// Who the page acts for, and the CSRF token its actions send.
async fn session_info(State(st): State<St>, headers: HeaderMap) -> Json<Value> {
    let site = st.ctx.identity().map(|i| i.site_code.to_string());
    Json(match st.session(&headers) {
        Some(s) => json!({
            "signed_in": true,
            "subject": s.grant.subject,
            "role": s.grant.role.as_str(),
            "csrf": s.csrf,
            "expires_unix": s.expires_unix,
            "read_open": st.loopback,
            "site": site,
        }),
        None => json!({"signed_in": false, "read_open": st.loopback, "site": site}),
    })
}

async fn logout(State(st): State<St>, headers: HeaderMap) -> Result<Response, ApiError> {
    // A forged sign-out is harmless but still needs the page's token.
    let id = cookie(&headers, &st.cookie).ok_or(SessionError::NoSession)?;
    st.console.sessions.authorize(
        Some(id),
        headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
        AdminRole::ReadOnly,
    )?;
    st.console.sessions.end(id);
    let clear = format!(
        "{}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        st.cookie
    );
    Ok((
        [(header::SET_COOKIE, clear)],
        Json(json!({"signed_in": false})),
    )
        .into_response())
}

async fn tree_json(State(st): State<St>, headers: HeaderMap) -> ApiResult {
    st.may_read(&headers)?;
    Ok(Json(st.tree_now().await?))
}

/// Keeps the tree feed current while anyone watches it: the tree is made
/// every [`TREE_POLL`] and sent on only when it changed.
async fn feed_tree(st: St) {
    loop {
        {
            let mut rates = st.rates.lock().unwrap_or_else(|p| p.into_inner());
            rates.sample(&st.ctx);
        }
        if st.tree.receiver_count() > 0 {
            let text = match st.tree_now().await {
                Ok(v) => v.to_string(),
                Err(e) => json!({"error": e.to_string()}).to_string(),
            };
            st.tree.send_if_modified(|cur| {
                if **cur == text {
                    false
                } else {
                    *cur = Arc::new(text);
                    true
                }
            });
        }
        tokio::time::sleep(TREE_POLL).await;
    }
}

/// The tree now, then each time it changes (event `tree`).
async fn tree_events(
    State(st): State<St>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    st.may_read(&headers)?;
    let permit = st.stream_slot()?;
    let first = st.tree_now().await?.to_string();
    let rx = st.tree.subscribe();
    let cancel = st.ctx.tasks.token();
    let stream = futures::stream::unfold(
        (Some(first), rx, permit),
        move |(first, mut rx, permit)| {
            let cancel = cancel.clone();
            async move {
                if let Some(text) = first {
                    return Some((
                        Ok(Event::default().event("tree").data(text)),
                        (None, rx, permit),
                    ));
                }
                tokio::select! {
                    _ = cancel.cancelled() => None,
                    r = rx.changed() => {
                        r.ok()?;
                        let text = rx.borrow_and_update().clone();
                        Some((Ok(Event::default().event("tree").data(text.as_str())), (None, rx, permit)))
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn site(State(st): State<St>, headers: HeaderMap, Path(code): Path<String>) -> ApiResult {
    st.may_read(&headers)?;
    let code = site_code(&code, "site")?;
    Ok(Json(views::site_page(&st.ctx, &code)?))
}

#[derive(Deserialize)]
struct DiffQuery {
    a: Option<String>,
    b: Option<String>,
}

async fn diff(
    State(st): State<St>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(q): Query<DiffQuery>,
) -> ApiResult {
    st.may_read(&headers)?;
    let code = site_code(&code, "site")?;
    let serial = |v: Option<String>, name: &str| -> Result<u64, ApiError> {
        let v = v.ok_or_else(|| bad(format!("the diff needs two serials: {name}= is missing")))?;
        match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(format!(
                "{name}={v:?} is not a serial (serials start at 1)"
            ))),
        }
    };
    let (a, b) = (serial(q.a, "a")?, serial(q.b, "b")?);
    Ok(Json(views::diff(&st.ctx, &code, a, b)?))
}

fn site_code(s: &str, field: &str) -> Result<SiteCode, ApiError> {
    s.trim().parse().map_err(|e| bad(format!("{field}: {e}")))
}

/// The status viewer's filters as the page sends them (all optional).
#[derive(Deserialize, Default)]
struct StatusParams {
    site: Option<String>,
    severity: Option<String>,
    component: Option<String>,
    id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    text: Option<String>,
    limit: Option<String>,
}

/// A time as unix milliseconds or RFC 3339 (`2026-01-02T03:04:05Z`).
fn time_ms(v: &str, field: &str) -> Result<u64, ApiError> {
    if let Ok(ms) = v.parse::<u64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(v)
        .map_err(|_| {
            bad(format!(
                "{field}={v:?} is not a time: give unix milliseconds or RFC 3339 (2026-01-02T03:04:05Z)"
            ))
        })
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        })
}

impl StatusParams {
    fn query(&self) -> Result<StatusQuery, ApiError> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let q = StatusQuery {
            site: given(&self.site)
                .map(|s| site_code(&s, "site"))
                .transpose()?,
            id: given(&self.id)
                .map(|s| {
                    s.parse::<u32>()
                        .map_err(|_| bad(format!("id={s:?} is not a message id")))
                })
                .transpose()?,
            severity: given(&self.severity)
                .map(|s| s.parse::<Severity>().map_err(bad))
                .transpose()?,
            component: given(&self.component),
            text: given(&self.text),
            since_ms: given(&self.since)
                .map(|s| time_ms(&s, "since"))
                .transpose()?,
            until_ms: given(&self.until)
                .map(|s| time_ms(&s, "until"))
                .transpose()?,
        };
        if let (Some(a), Some(b)) = (q.since_ms, q.until_ms) {
            if a > b {
                return Err(bad("since is after until"));
            }
        }
        Ok(q)
    }

    fn limit(&self) -> Result<usize, ApiError> {
        match self
            .limit
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => Ok(200),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=5000).contains(&n) => Ok(n),
                _ => Err(bad(format!("limit={s:?}: give 1 to 5000"))),
            },
        }
    }
}

async fn status(
    State(st): State<St>,
    headers: HeaderMap,
    Query(p): Query<StatusParams>,
) -> ApiResult {
    st.may_read(&headers)?;
    let q = p.query()?;
    let msgs = queries::status_query(&st.ctx, &q, p.limit()?)?;
    Ok(Json(json!({
        "messages": msgs.iter().map(views::message_json).collect::<Vec<_>>(),
        "scanned_at_most": queries::STATUS_QUERY_SCAN,
    })))
}

/// Every message stored here from now on that matches the filters (event
/// `message`; `missed` with a count when the tail fell behind).
async fn status_tail(
    State(st): State<St>,
    headers: HeaderMap,
    Query(p): Query<StatusParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    st.may_read(&headers)?;
    queries::installed(&st.ctx)?;
    let q = p.query()?;
    let permit = st.stream_slot()?;
    let rx = sms_site::status::watch(&st.ctx);
    let cancel = st.ctx.tasks.token();
    let stream = futures::stream::unfold(
        (rx, Vec::<Event>::new(), permit),
        move |(mut rx, mut pending, permit)| {
            let (q, cancel) = (q.clone(), cancel.clone());
            async move {
                loop {
                    if let Some(ev) = pending.pop() {
                        return Some((Ok(ev), (rx, pending, permit)));
                    }
                    let got = tokio::select! {
                        _ = cancel.cancelled() => return None,
                        got = rx.recv() => got,
                    };
                    match got {
                        Ok(batch) => {
                            // Reversed: popped from the end, sent in order.
                            pending = batch
                                .messages
                                .iter()
                                .filter(|m| q.matches(m))
                                .rev()
                                .map(|m| {
                                    Event::default()
                                        .event("message")
                                        .data(views::message_json(m).to_string())
                                })
                                .collect();
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            pending = vec![Event::default().event("missed").data(n.to_string())];
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// An action's arguments (each action reads the ones it needs).
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    to: Option<String>,
    site: Option<String>,
    site_code: Option<String>,
    server: Option<String>,
    site_name: Option<String>,
    name: Option<String>,
    browse: Option<Vec<String>>,
}

fn need<'a>(v: &'a Option<String>, field: &str, action: &str) -> Result<&'a str, ApiError> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("{action} needs {field}")))
}

/// The role each action needs: the same as its gRPC call.
fn role_for(action: &str) -> Option<AdminRole> {
    Some(match action {
        "sever-link" | "restore-link" | "retry-jobs" | "force-ct2" => AdminRole::Operator,
        "create-secondary" | "add-domain" | "remove-domain" => AdminRole::Full,
        _ => return None,
    })
}

/// Runs one administrator action: checks the session, makes the domain
/// call the gRPC admin service makes (run to completion even if the
/// browser goes away), and records it in the audit trail if it took
/// effect.
async fn action(
    State(st): State<St>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Option<Json<ActionBody>>,
) -> ApiResult {
    let Some(role) = role_for(&name) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "{:?} is not a console action; use sever-link, restore-link, retry-jobs, \
                 force-ct2, create-secondary, add-domain or remove-domain",
                sms_trust::clip(&name)
            ),
        ));
    };
    let grant = st.may_act(&headers, role)?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let detail: String = format!("web console: {body:?}").chars().take(200).collect();
    let ctx = st.ctx.clone();
    let result: Result<Value, Refused> = match name.as_str() {
        "sever-link" | "restore-link" | "retry-jobs" => {
            let to = site_code(need(&body.to, "to", &name)?, "to")?;
            let kind = name.clone();
            detached(&st.ctx, async move {
                let l = match kind.as_str() {
                    "sever-link" => ops::sever_link(&ctx, &to).await?,
                    "restore-link" => ops::restore_link(&ctx, &to).await?,
                    _ => ops::retry_failed_jobs(&ctx, &to).await?,
                };
                Ok(views::link_json(&l, &ctx, None))
            })
            .await
        }
        "force-ct2" => {
            queries::installed(&ctx)?;
            detached(&st.ctx, async move {
                let (site, serial) = sms_site::site_config::force_ct2(&ctx)
                    .await
                    .map_err(|e| Refused::Precondition(format!("{e:#}")))?;
                Ok(json!({"site": site.as_str(), "serial": serial}))
            })
            .await
        }
        "create-secondary" => {
            let create = CreateSecondary {
                site_code: need(&body.site_code, "site_code", &name)?.to_string(),
                server: need(&body.server, "server", &name)?.to_string(),
                site_name: body.site_name.clone().filter(|s| !s.trim().is_empty()),
                sever_link_mid_bootstrap: false,
            };
            detached(&st.ctx, async move {
                let rec = hierarchy::create_secondary(&ctx, create).await?;
                Ok(json!({"site_code": rec.site_code.as_str(), "status": rec.status.to_string()}))
            })
            .await
        }
        _ => {
            let site = body
                .site
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| site_code(s, "site"))
                .transpose()?;
            let domain = need(&body.name, "name", &name)?.to_string();
            let change = if name == "add-domain" {
                ControlChange {
                    add_domain: Some((domain, body.browse.clone().unwrap_or_default())),
                    ..Default::default()
                }
            } else {
                ControlChange {
                    remove_domain: Some(domain),
                    ..Default::default()
                }
            };
            detached(&st.ctx, async move {
                let (site, base, serial) =
                    hierarchy::change_site_control(&ctx, site, &change).await?;
                Ok(json!({"site": site.as_str(), "base_serial": base, "serial": serial}))
            })
            .await
        }
    };
    let v = result?;
    crate::audit::record(&st.ctx, &grant.subject, &name, detail);
    Ok(Json(v))
}

/// Runs a state-changing call to completion even if the browser goes away.
async fn detached<F>(ctx: &Arc<Ctx>, fut: F) -> Result<Value, Refused>
where
    F: std::future::Future<Output = Result<Value, Refused>> + Send + 'static,
{
    ctx.tasks
        .run_detached("console action", fut)
        .await
        .map_err(Refused::Internal)?
}

#[cfg(test)]
mod tests;
