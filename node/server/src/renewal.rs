//! Automatic certificate renewal: each node renews its own certificate at
//! two thirds of its life, over the links it already has, so a hierarchy
//! keeps running past any certificate's expiry without an operator.
//!
//! - A secondary site or member server sends a signing request for a new key
//!   to the site that issued its certificate (its parent, or for a member the
//!   join token's issuer), authenticated by the certificate it renews; the
//!   answer carries the same name and role.
//! - A child primary renews its authority the same way (the request is for
//!   the authority's own key, so everything it issued stays valid), then
//!   issues its site server a new certificate itself.
//! - The central site issues its site server a new certificate from the root.
//!   (The root itself lasts ten years and is not renewed automatically.)
//!
//! A new certificate is stored and committed before it is used; the TLS
//! settings are then swapped for new connections while established links
//! carry on. A crash at any point leaves either the old certificate (still
//! valid: renewal starts a third of a life early) or the new one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use sms_proto::v1 as pb;
use sms_site::Ctx;
use sms_trust::tls::Expect;
use sms_trust::{ca, Credentials, Identity};
use sms_types::fault::Fault;

use crate::peers::Connector;
use crate::security::NodeTls;

/// The shortest and longest wait between two checks.
const MIN_CHECK: Duration = Duration::from_secs(1);
const MAX_CHECK: Duration = Duration::from_secs(3600);

/// How often to look: a tenth of the certificate's life, so a renewal
/// (due at two thirds) has several chances before expiry.
fn check_every(id: &Identity) -> Duration {
    let life = (id.not_after - id.not_before).max(1) as u64;
    Duration::from_secs(life / 10).clamp(MIN_CHECK, MAX_CHECK)
}

/// Runs until the node shuts down; the first check is at once (a node
/// restarted late in its certificate's life renews before anything else).
pub async fn run(ctx: Arc<Ctx>, tls: Arc<NodeTls>, connector: Connector) {
    let mut first = true;
    loop {
        let current = tls.current().identity.clone();
        // A child primary's authority may be shorter-lived than its own
        // certificate was when issued: watch whichever ends first.
        let authority = sms_site::trust::authority_identity(&ctx).ok().flatten();
        let wait = authority
            .iter()
            .map(check_every)
            .fold(check_every(&current), Duration::min);
        if !std::mem::take(&mut first) {
            tokio::select! {
                _ = ctx.tasks.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        match renew_if_due(&ctx, &tls, &connector).await {
            Ok(None) => {}
            Ok(Some(new)) => {
                tracing::info!(serial = %new.serial, old = %current.serial, until = new.not_after, "renewed this node's certificate");
                if ctx.identity().is_some() {
                    let _ = sms_site::status::emit(
                        &ctx,
                        &sms_types::catalog::TRUST_RENEWED,
                        &[
                            new.role.to_string(),
                            new.serial.clone(),
                            new.not_after.to_string(),
                            current.serial.clone(),
                        ],
                    );
                }
            }
            Err(e) => {
                tracing::warn!(serial = %current.serial, until = current.not_after, "could not renew this node's certificate: {e:#}");
                if ctx.identity().is_some() {
                    let _ = sms_site::status::emit(
                        &ctx,
                        &sms_types::catalog::TRUST_RENEWAL_FAILED,
                        &[
                            current.role.to_string(),
                            current.serial.clone(),
                            current.not_after.to_string(),
                            format!("{e:#}"),
                            wait.as_secs().to_string(),
                        ],
                    );
                }
            }
        }
    }
}

/// Renews what is due; the new site-server (or member) identity when the
/// node's own certificate changed.
async fn renew_if_due(
    ctx: &Arc<Ctx>,
    tls: &NodeTls,
    connector: &Connector,
) -> anyhow::Result<Option<Identity>> {
    let now = sms_site::trust::now_unix();
    let current = tls.current();
    let mine = current.identity.clone();
    if let Some(authority) = sms_site::trust::authority_identity(ctx)? {
        // A primary. A child primary's authority comes from its parent.
        let mut renewed_authority = false;
        if authority.renewal_due(now) && !authority.name.ancestors.is_empty() {
            let csr = sms_site::trust::authority_renewal_request(ctx)?
                .context("this primary holds no authority key")?;
            let chain = ask_issuer(ctx, connector, tls, csr).await?;
            let got = check_answer(&chain, &authority, current.creds.root())?;
            crash_if_asked(ctx).await?;
            sms_site::trust::set_authority_chain(ctx, chain)?;
            ctx.store.durable().await?;
            tracing::info!(serial = %got.serial, until = got.not_after, "renewed this primary's certificate authority");
            renewed_authority = true;
        }
        if !(renewed_authority || mine.renewal_due(now)) {
            return Ok(None);
        }
        let own = sms_site::trust::renew_own(ctx)?;
        ctx.store.durable().await?;
        let id = own.identity()?;
        tls.replace(own)?;
        return Ok(Some(id));
    }
    if !mine.renewal_due(now) {
        return Ok(None);
    }
    let key = ca::new_key()?;
    let chain = ask_issuer(ctx, connector, tls, ca::signing_request(&key)?).await?;
    check_answer(&chain, &mine, current.creds.root())?;
    crash_if_asked(ctx).await?;
    let creds = Credentials::new(&key, chain);
    sms_site::trust::set_node_credentials(&ctx.store, &creds)?;
    ctx.store.durable().await?;
    let id = creds.identity()?;
    tls.replace(creds)?;
    Ok(Some(id))
}

/// Sends a signing request to the site that issued this node's certificate,
/// over mutual TLS with the certificate being renewed.
async fn ask_issuer(
    ctx: &Ctx,
    connector: &Connector,
    tls: &NodeTls,
    csr: Vec<u8>,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let (addr, expect) = match ctx.identity().and_then(|i| i.parent) {
        Some(p) => (p.address, Expect::Site(p.site_code)),
        None => (
            ctx.store
                .issuer_address()?
                .context("this node does not know which site issued its certificate")?,
            Expect::Any,
        ),
    };
    let config = tls.client(expect).map_err(|e| anyhow!(e))?;
    let channel = connector
        .connect_with(&addr, Some(config))
        .await
        .map_err(|e| anyhow!("cannot reach the issuing site at {addr}: {e}"))?;
    let mut client = pb::bootstrap_client::BootstrapClient::new(channel);
    let reply = tokio::time::timeout(
        connector.request_timeout,
        client.renew(pb::RenewRequest { csr }),
    )
    .await
    .map_err(|_| anyhow!("the issuing site at {addr} did not answer in time"))?
    .map_err(|s| anyhow!("the issuing site at {addr} refused: {}", s.message()))?;
    Ok(reply.into_inner().certs)
}

/// The answer must be for the same name and role, under the same root.
fn check_answer(chain: &[Vec<u8>], was: &Identity, root: &[u8]) -> anyhow::Result<Identity> {
    let (Some(leaf), Some(got_root)) = (chain.first(), chain.last()) else {
        bail!("the issuing site answered an empty chain");
    };
    if got_root.as_slice() != root {
        bail!("the issuing site answered a chain under another root; nothing was kept");
    }
    let id = Identity::from_der(leaf)?;
    if id.name != was.name || id.role != was.role {
        bail!(
            "the issuing site answered a certificate for {} ({}), not {} ({}); nothing was kept",
            id.name.label,
            id.role,
            was.name.label,
            was.role
        );
    }
    Ok(id)
}

/// `inject-fault renewal-crash`: stops the process between the issuer's
/// answer and storing it, after clearing the fault durably.
async fn crash_if_asked(ctx: &Ctx) -> anyhow::Result<()> {
    if ctx.store.faults()?.contains(&Fault::RenewalCrash) {
        ctx.store.clear_fault(Fault::RenewalCrash.name())?;
        ctx.store.durable().await?;
        tracing::error!(
            "fault renewal-crash: stopping the process before the renewed certificate is stored"
        );
        std::process::abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_a_tenth_of_a_life_within_bounds() {
        let id = |life: i64| Identity {
            role: sms_trust::Role::Secondary,
            name: sms_trust::Name {
                label: "S01".into(),
                ancestors: vec![],
            },
            serial: "01".into(),
            not_before: 1_000,
            not_after: 1_000 + life,
            subject: String::new(),
        };
        assert_eq!(check_every(&id(60)), Duration::from_secs(6));
        assert_eq!(check_every(&id(5)), MIN_CHECK);
        assert_eq!(check_every(&id(397 * 86_400)), MAX_CHECK);
    }
}
