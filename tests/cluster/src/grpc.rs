//! The admin gRPC side of the runner: a client, waiting for sites to be
//! Active, creating a secondary, the three-tier hierarchy; and a bridge so
//! synchronous tests can use them.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sms_proto::v1 as pb;
use tonic::transport::{Channel, Endpoint};

use crate::{Cluster, Node};

pub type Admin = pb::admin_client::AdminClient<Channel>;

/// An admin client for the node at `addr` (`HOST:PORT`). Replies may be
/// large (whole probe lists), hence the raised decoding limit.
/// A node this process started with TLS is reached with its hierarchy's
/// administrator certificate; any other in plaintext.
pub async fn admin(addr: &str) -> anyhow::Result<Admin> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))?;
    let ch = sms_connect::channel(ep, addr, crate::tls_for(addr), Duration::from_secs(10))
        .await
        .with_context(|| format!("cannot reach {addr}"))?;
    Ok(Admin::new(ch).max_decoding_message_size(256 * 1024 * 1024))
}

/// A join token for site `code` (a secondary) from the primary at `parent`.
pub async fn join_token(parent: &str, code: &str) -> anyhow::Result<String> {
    let r = admin(parent)
        .await?
        .create_token(pb::CreateTokenRequest {
            label: code.into(),
            role: "secondary".into(),
            ttl_secs: 0,
        })
        .await?
        .into_inner();
    Ok(r.token)
}

/// Polls the site list at `parent` (every `poll`) until every site in
/// `codes` is Active there; returns how long that took.
pub async fn wait_active<S: AsRef<str>>(
    parent: &str,
    codes: &[S],
    poll: Duration,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    wait_active_with(&mut admin(parent).await?, codes, poll, timeout).await
}

/// [`wait_active`] on a client the caller already has, so a timed wait
/// does not include connecting.
pub async fn wait_active_with<S: AsRef<str>>(
    client: &mut Admin,
    codes: &[S],
    poll: Duration,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        let sites = client
            .list_sites(pb::ListSitesRequest {})
            .await?
            .into_inner()
            .sites;
        let missing = missing_active(&sites, codes);
        if missing.is_empty() {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            bail!(
                "{} sites not Active after {timeout:?}: {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// The codes in `codes` that are not Active in `sites`, in order.
fn missing_active<'a, S: AsRef<str>>(sites: &[pb::SiteRecord], codes: &'a [S]) -> Vec<&'a str> {
    codes
        .iter()
        .map(AsRef::as_ref)
        .filter(|c| {
            !sites
                .iter()
                .any(|s| s.site_code == *c && s.status == "Active")
        })
        .collect()
}

/// Asks `parent` to create secondary `code` on the bare node at `server`,
/// then waits (polling every `poll`) until it is Active there. Returns the
/// time from the request to Active.
pub async fn create_secondary(
    parent: &str,
    code: &str,
    server: &str,
    poll: Duration,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let mut a = admin(parent).await?;
    let t0 = Instant::now();
    a.create_secondary(pb::CreateSecondaryRequest {
        site_code: code.into(),
        server: server.into(),
        sever_link_mid_bootstrap: false,
        site_name: String::new(),
    })
    .await?;
    wait_active_with(&mut a, &[code], poll, timeout)
        .await
        .with_context(|| format!("{code} did not become Active"))?;
    Ok(t0.elapsed())
}

/// Central primary PRI, child primary P01 attached below it, secondary S01
/// created below P01 (node data dirs `pri`, `p01`, `s01` under one dir).
pub struct ThreeTiers {
    pub pri: Node,
    pub p01: Node,
    pub s01: Node,
}

impl Cluster {
    /// Builds [`ThreeTiers`] in `dir` and waits until PRI sees S01 Active,
    /// i.e. reports travel both hops.
    pub async fn three_tiers(&self, dir: &Path) -> anyhow::Result<ThreeTiers> {
        let pri = self.start(&dir.join("pri"), &["--install-primary", "PRI"])?;
        let p01 = self.start(
            &dir.join("p01"),
            &[
                "--install-primary",
                "P01",
                "--parent-site",
                "PRI",
                "--parent",
                pri.addr(),
            ],
        )?;
        let s01 = self.start(&dir.join("s01"), &[])?;
        let poll = Duration::from_millis(25);
        create_secondary(
            p01.addr(),
            "S01",
            s01.addr(),
            poll,
            Duration::from_secs(120),
        )
        .await?;
        wait_active(pri.addr(), &["S01"], poll, Duration::from_secs(30))
            .await
            .context("S01 Active at P01 but not at PRI")?;
        Ok(ThreeTiers { pri, p01, s01 })
    }
}

/// Runs `fut` to completion from synchronous code. It gets a runtime of its
/// own on a scoped thread, so this also works inside a `#[tokio::test]`,
/// where a nested `block_on` on the current thread would panic.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a Tokio runtime")
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(code: &str, status: &str) -> pb::SiteRecord {
        pb::SiteRecord {
            site_code: code.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    #[test]
    fn missing_lists_what_is_absent_or_not_yet_active() {
        let sites = [site("S01", "Active"), site("S02", "Phase 2 Complete")];
        assert_eq!(
            missing_active(&sites, &["S01", "S02", "S03"]),
            ["S02", "S03"]
        );
        assert!(missing_active(&sites, &["S01"]).is_empty());
        assert!(missing_active(&sites, &[] as &[&str]).is_empty());
    }

    #[test]
    fn block_on_works_inside_a_runtime_too() {
        assert_eq!(block_on(async { 7 }), 7);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async { assert_eq!(block_on(async { 8 }), 8) });
    }
}
