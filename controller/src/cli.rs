//! Command-line surface (kept in step with README's controller reference).

use clap::{Parser, Subcommand};

use crate::commands::*;
use crate::output::Out;

/// Administer an SMS site hierarchy: inspect nodes, create secondary sites,
/// sever and restore links, inject faults. Talks gRPC to one node.
#[derive(Parser, Debug)]
#[command(name = "controller", version)]
pub struct Cli {
    /// Node to talk to (HOST:PORT); falls back to $SMS_NODE.
    #[arg(long, global = true, env = "SMS_NODE")]
    pub node: Option<String>,
    /// Print one JSON document instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Role, site, components and links of a node.
    Status(status::Args),
    /// The Hierarchy Manager's site list (at a primary).
    Sites(sites::Args),
    /// A site's control image (CT0), or an ancestor's copy of a descendant's.
    SiteControl(site_control::Args),
    /// Status messages stored at the node's site.
    StatusMessages(status_messages::Args),
    /// Create a secondary site on a bare node (run against the parent primary).
    CreateSecondary(create_secondary::Args),
    /// Cut this node's link to a neighbouring site, in both directions, durably.
    SeverLink(sever_link::Args),
    /// Restore a severed link.
    RestoreLink(restore_link::Args),
    /// The node's bootstrap log (works on bare nodes).
    BootstrapLog(bootstrap_log::Args),
    /// Any component log of the node (sitectrl, hman, sched, sender, despool, ...).
    Log(log::Args),
    /// Inject a fault on the node: ct2-job-failure, bootstrap-failure --phase N.
    InjectFault(inject_fault::Args),
    /// Clear an injected fault.
    ClearFault(clear_fault::Args),
    /// Put a link's failed jobs back in its outbox.
    RetryJobs(retry_jobs::Args),
    /// Jobs whose retries ran out, with the reason.
    FailedJobs(failed_jobs::Args),
    /// Make the node's site re-process its CT0 and send a fresh CT2 (article 002).
    ForceCt2(force_ct2::Args),
    /// Re-run the install of a secondary site from its parent (upgrade or repair).
    UpgradeSite(upgrade_site::Args),
    /// Remove a secondary site from the hierarchy; its node returns to bare.
    DeleteSite(delete_site::Args),
    /// Explain why a site is not Active, from both ends, and the command that fixes it.
    Diagnose(diagnose::Args),
    /// Change a site's polling interval or name (at the site or an ancestor).
    SetSiteControl(set_site_control::Args),
    /// Change a site's address (route) settings to a neighbour.
    SetAddress(set_address::Args),
    /// Drop a CT1 (JSON file) into the node's site control inbox as it is.
    SubmitCt1(submit_ct1::Args),
    /// CT1s the Site Configuration Manager refused, with the reason.
    BadBox(bad_box::Args),
    /// At a logon server: SMS unique IDs from its range.
    AllocateId(allocate_id::Args),
    /// Add a domain (with its browse list) to a site's control.
    AddDomain(add_domain::Args),
    /// Remove a domain from a site's control.
    RemoveDomain(remove_domain::Args),
    /// Send test jobs to another site, or list the ones received here.
    #[command(subcommand)]
    Probe(probe::Cmd),
    /// Send a file package in chunks, or list packages received here.
    #[command(subcommand)]
    Package(package::Cmd),
    /// Launch a local demo hierarchy (central primary + one secondary) on loopback.
    Up(up::Args),
}

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> anyhow::Result<()> {
        let out = Out { json: self.json };
        let node = self.node;
        match self.command {
            Command::Status(a) => status::run(&node, &out, a).await,
            Command::Sites(a) => sites::run(&node, &out, a).await,
            Command::SiteControl(a) => site_control::run(&node, &out, a).await,
            Command::StatusMessages(a) => status_messages::run(&node, &out, a).await,
            Command::CreateSecondary(a) => create_secondary::run(&node, &out, a).await,
            Command::SeverLink(a) => sever_link::run(&node, &out, a).await,
            Command::RestoreLink(a) => restore_link::run(&node, &out, a).await,
            Command::BootstrapLog(a) => bootstrap_log::run(&node, &out, a).await,
            Command::Log(a) => log::run(&node, &out, a).await,
            Command::InjectFault(a) => inject_fault::run(&node, &out, a).await,
            Command::ClearFault(a) => clear_fault::run(&node, &out, a).await,
            Command::RetryJobs(a) => retry_jobs::run(&node, &out, a).await,
            Command::FailedJobs(a) => failed_jobs::run(&node, &out, a).await,
            Command::ForceCt2(a) => force_ct2::run(&node, &out, a).await,
            Command::UpgradeSite(a) => upgrade_site::run(&node, &out, a).await,
            Command::Diagnose(a) => diagnose::run(&node, &out, a).await,
            Command::DeleteSite(a) => delete_site::run(&node, &out, a).await,
            Command::SetSiteControl(a) => set_site_control::run(&node, &out, a).await,
            Command::SetAddress(a) => set_address::run(&node, &out, a).await,
            Command::AddDomain(a) => add_domain::run(&node, &out, a).await,
            Command::AllocateId(a) => allocate_id::run(&node, &out, a).await,
            Command::SubmitCt1(a) => submit_ct1::run(&node, &out, a).await,
            Command::BadBox(a) => bad_box::run(&node, &out, a).await,
            Command::RemoveDomain(a) => remove_domain::run(&node, &out, a).await,
            Command::Probe(c) => probe::run(&node, &out, c).await,
            Command::Package(c) => package::run(&node, &out, c).await,
            Command::Up(a) => up::run(&out, a).await,
        }
    }
}
