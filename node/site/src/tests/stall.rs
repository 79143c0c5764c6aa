//! The stall watchdog: a session whose frames get no answer for much
//! longer than usual replaces its connection, charging nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use sms_types::link::*;
use sms_types::*;

use super::support::*;
use crate::links::Link;
use crate::ports::{LinkStream, Peers};
use crate::sender::Session;

/// Opens links that take every frame and never answer (packets vanishing
/// behind a stalled TCP connection).
struct Silent;

#[async_trait]
impl Peers for Silent {
    async fn open_link(
        &self,
        _server: &str,
        _hello: &LinkHello,
        _window: usize,
        _opts: &LinkOptions,
    ) -> Result<Box<dyn LinkStream>, LinkError> {
        Ok(Box::new(Mute))
    }
    async fn install_bootstrap(&self, _: &str, _: &Job) -> Result<(), BootstrapError> {
        unreachable!("not used here")
    }
    async fn attach_primary(
        &self,
        _: &str,
        _: &SiteCode,
        _: &str,
        _: &str,
    ) -> Result<Attached, String> {
        unreachable!("not used here")
    }
    async fn probe(&self, _: &str) -> Result<NodeProbe, String> {
        unreachable!("not used here")
    }
    async fn prepare_delete(&self, _: &str, _: &SiteCode) -> Result<u64, String> {
        unreachable!("not used here")
    }
    async fn logon_describe(&self, _: &str) -> Result<LogonView, String> {
        unreachable!("not used here")
    }
    async fn logon_install(&self, _: &str, _: LogonInstallRequest) -> Result<LogonView, String> {
        unreachable!("not used here")
    }
    async fn logon_uninstall(&self, _: &str, _: &SiteCode) -> Result<LogonView, String> {
        unreachable!("not used here")
    }
    async fn logon_refresh(&self, _: &str, _: LogonScript) -> Result<LogonView, String> {
        unreachable!("not used here")
    }
    async fn request_id_range(&self, _: &str, _: &SiteCode, _: &str) -> Result<(u64, u64), String> {
        unreachable!("not used here")
    }
}

/// A central primary whose remote calls go to `peers`.
fn central_with_peers(site: &str, peers: Arc<dyn Peers>, dir: &std::path::Path) -> Arc<crate::Ctx> {
    let store = sms_store::Store::open(dir).unwrap();
    let ctx = Arc::new(
        crate::Ctx::new(crate::CoreConfig {
            store,
            data_dir: dir.to_path_buf(),
            advertise: "127.0.0.1:7001".into(),
            node_id: uuid::Uuid::now_v7(),
            identity: None,
            tasks: sms_runtime::TaskCenter::new(),
            peers,
        })
        .unwrap(),
    );
    crate::wiring::wire(&ctx);
    let id = Identity {
        site_code: code(site),
        site_name: format!("{site} site"),
        kind: SiteKind::Primary,
        parent: None,
        installed_unix_ms: now_ms(),
        version: SOFTWARE_VERSION.to_string(),
        ancestors: vec![],
    };
    ctx.store.install_site(&id, &ct0(site, None)).unwrap();
    ctx.set_identity(id).unwrap();
    ctx.publish_config(ct0(site, None));
    ctx
}

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
    let dir = tempfile::tempdir().unwrap();
    let node = central_with_peers("PRI", Arc::new(Silent), dir.path());
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
