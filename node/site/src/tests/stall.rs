//! The stall watchdog: a session whose frames get no answer for much
//! longer than usual replaces its connection, charging nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use sms_types::link::*;
use sms_types::*;

use super::support::*;
use crate::links::Link;
use crate::ports::LinkStream;
use crate::sender::Session;

/// A stream that takes every frame and never answers (packets vanishing
/// behind a stalled TCP connection).
struct Mute;

#[async_trait]
impl LinkStream for Mute {
    async fn send(&self, _: &Job, _: Option<Chunk>) -> Result<(), LinkError> {
        Ok(())
    }
    async fn next(&mut self) -> Result<LinkEvent, LinkError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_silent_stream_is_replaced_and_nothing_is_charged() {
    let (node, _dir) = central_with_peers("PRI", Arc::new(LinkPeers::new(|| Box::new(Mute))));
    put_site(&node, "S01", Some("PRI"), SiteKind::Secondary);
    for _ in 0..5 {
        node.store
            .enqueue(&code("S01"), &probe("PRI", "S01", Priority::Medium))
            .unwrap();
    }
    let link = Arc::new(Link::new(code("S01")));
    let hello = LinkHello {
        source_site: code("PRI"),
        dest_site: code("S01"),
        source_address: String::new(),
        link_secret: String::new(),
        sent_unix_ms: 0,
    };
    let mut s = Session::new(&Address::new(code("S01"), "s01:1".into()));
    s.stall_floor = Duration::from_millis(200);
    let t0 = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        s.run(&node, &link, "s01:1", &hello),
    )
    .await
    .expect("the watchdog must end the session");
    let waited = t0.elapsed();
    match r {
        Err(LinkError::Stalled(m)) => {
            assert!(
                m.contains("5 frames out") && m.contains("reconnecting"),
                "{m}"
            )
        }
        other => panic!("expected a stall, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        node.store.outbox_len(&code("S01")),
        5,
        "nothing left the outbox"
    );
    assert!(node.store.failed_jobs(&code("S01")).unwrap().is_empty());
}
