//! How many calls one connection may make per second: a token bucket per
//! connection (keyed by the peer's address and port), checked before any
//! handler runs. A connection over it is answered RESOURCE_EXHAUSTED, and
//! the refusal is counted and logged, so a client stuck in a loop (or a
//! hostile one) cannot take the node's time from its links.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use crate::security::PeerInfo;

/// Calls per second one connection may make, and the burst it may save up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_sec: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit {
            per_sec: 1000.0,
            burst: 2000.0,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Connections not heard from for this long are forgotten.
const FORGET_AFTER_SECS: f64 = 60.0;

/// The buckets of every connection, shared by all clones of the layer.
#[derive(Clone)]
pub struct PerConnection {
    limit: RateLimit,
    buckets: Arc<Mutex<HashMap<SocketAddr, Bucket>>>,
    on_refused: Arc<dyn Fn(SocketAddr) + Send + Sync>,
}

impl PerConnection {
    pub fn new(limit: RateLimit, on_refused: impl Fn(SocketAddr) + Send + Sync + 'static) -> Self {
        PerConnection {
            limit,
            buckets: Arc::default(),
            on_refused: Arc::new(on_refused),
        }
    }

    /// Takes one call's token for `peer`; false when its bucket is empty.
    fn take(&self, peer: SocketAddr, now: Instant) -> bool {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() > 4096 {
            b.retain(|_, x| now.duration_since(x.at).as_secs_f64() < FORGET_AFTER_SECS);
        }
        let x = b.entry(peer).or_insert(Bucket {
            tokens: self.limit.burst,
            at: now,
        });
        let refill = now.duration_since(x.at).as_secs_f64() * self.limit.per_sec;
        x.tokens = (x.tokens + refill).min(self.limit.burst);
        x.at = now;
        if x.tokens >= 1.0 {
            x.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl<S> tower::Layer<S> for PerConnection {
    type Service = Limited<S>;
    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            limits: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    limits: PerConnection,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Limited<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let peer = req.extensions().get::<PeerInfo>().and_then(|p| p.remote);
        if let Some(peer) = peer {
            if !self.limits.take(peer, Instant::now()) {
                (self.limits.on_refused)(peer);
                let status = tonic::Status::resource_exhausted(format!(
                    "this connection made more than {} calls a second (burst {}); slow down \
                     and retry",
                    self.limits.limit.per_sec, self.limits.limit.burst
                ));
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        }
        Box::pin(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_connection_gets_its_burst_then_its_rate() {
        let l = PerConnection::new(
            RateLimit {
                per_sec: 10.0,
                burst: 5.0,
            },
            |_| {},
        );
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1000".parse().unwrap(),
            "127.0.0.1:1001".parse().unwrap(),
        );
        let t0 = Instant::now();
        assert_eq!((0..8).filter(|_| l.take(a, t0)).count(), 5, "the burst");
        assert!(l.take(b, t0), "another connection has its own bucket");
        assert!(!l.take(a, t0));
        // A tenth of a second later: one more call's worth.
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.take(a, t1));
        assert!(!l.take(a, t1));
    }
}
