//! `controller create-secondary`: a new secondary site on a bare node, and
//! [`wait_active`], which follows an install (also for `upgrade-site` and
//! `up`).

use std::time::{Duration, Instant};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use sms_proto::v1 as pb;
use sms_types::SiteStatus;

use crate::client::{admin, connect, Reply};
use crate::output::{time, Out};

/// Status message id the Hierarchy Manager reports a site status change with.
const STATUS_CHANGED: u32 = sms_types::catalog::HM_SITE_STATUS.id;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Code of the new site: 3 characters A-Z, 0-9.
    #[arg(long)]
    pub site_code: String,
    /// HOST:PORT of the bare node that becomes the site server.
    #[arg(long)]
    pub server: String,
    /// Site name (default: "<CODE> secondary site").
    #[arg(long)]
    pub site_name: Option<String>,
    /// Sever the parent-child link the moment the bootstrap has started
    /// (reproduces a secondary stuck at Pending).
    #[arg(long)]
    pub sever_link_mid_bootstrap: bool,
    /// Follow the install live until the site is Active.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait gives the install before failing (`90`, or a
    /// duration such as `5m`).
    #[arg(long, default_value_t = 120, value_name = "SECS",
          value_parser = crate::units::parse_secs)]
    pub timeout: u64,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let (addr, mut c) = connect(node).await?;
    let reply = c
        .create_secondary(pb::CreateSecondaryRequest {
            site_code: a.site_code.clone(),
            server: a.server.clone(),
            sever_link_mid_bootstrap: a.sever_link_mid_bootstrap,
            site_name: a.site_name.unwrap_or_default(),
        })
        .await
        .reply("create-secondary")?;
    let mut status = reply.status.clone();
    if a.wait {
        status = wait_active(
            &addr,
            &reply.site_code,
            &a.server,
            Duration::from_secs(a.timeout),
            !out.json,
        )
        .await?;
    }
    super::print_site_status(out, &reply.site_code, &status, || {
        if !a.wait {
            println!(
                "site {} created on {}: {}. Follow it with `controller --node {addr} sites`.",
                reply.site_code, a.server, status
            );
        }
    });
    Ok(())
}

/// Follows a site's status at its parent until `Active`; shows each phase.
/// Fails with what is known when the site stops progressing in time.
pub async fn wait_active(
    parent: &str,
    code: &str,
    server: &str,
    timeout: Duration,
    show: bool,
) -> anyhow::Result<String> {
    let mut client = admin(parent).await?;
    let bar = if show {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("template"),
        );
        b.enable_steady_tick(Duration::from_millis(100));
        b
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    let mut last = String::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let sites = super::list_sites(&mut client, "sites").await?;
        // Fetched after the site list: a change is recorded before the
        // site record moves, so this sees every change up to that status.
        // The parent records every status change as message 3101; replaying
        // them shows each phase even when the install outpaces this poll.
        let changes = client
            .list_status_messages(pb::ListStatusMessagesRequest {
                site: String::new(),
                id: STATUS_CHANGED,
                limit: 500,
                after_uid: vec![],
            })
            .await
            .reply("status-messages")?
            .messages;
        for m in changes {
            if m.insertion_strings.first().map(String::as_str) == Some(code)
                && seen.insert(m.uid.clone())
            {
                let to = m.insertion_strings.get(2).cloned().unwrap_or_default();
                let from = m.insertion_strings.get(1).cloned().unwrap_or_default();
                if show {
                    // Printed through the bar so it also shows when stdout is not a terminal.
                    bar.suspend(|| println!("{}  {code}: {from} -> {to}", time(m.time_unix_ms)));
                }
            }
        }
        let Some(site) = sites.into_iter().find(|s| s.site_code == code) else {
            bail!("site {code} is not in the site list of {parent}");
        };
        if site.status != last {
            last = site.status.clone();
            bar.set_message(format!("site {code}: {last}"));
        }
        match crate::wire::site_status(&site) {
            Some(SiteStatus::Active) => {
                bar.finish_and_clear();
                if show {
                    println!(
                        "site {code} is Active after {:.2}s",
                        start.elapsed().as_secs_f64()
                    );
                }
                return Ok(last);
            }
            Some(SiteStatus::Failed) => {
                bar.finish_and_clear();
                bail!("site {code} failed to install; read `controller --node {server} bootstrap-log`");
            }
            _ => {}
        }
        if start.elapsed() > timeout {
            bar.finish_and_clear();
            bail!(
                "site {code} is still {last} after {}s; the parent has heard nothing further. \
                 Read the child's log with `controller --node {server} bootstrap-log` \
                 and the link with `controller --node {parent} status`",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
