//! Command-line surface (kept in step with README's controller reference).
//! The command names are flat (`sever-link`, `restore-link`) as the README
//! documents them; [`Cli::run`] maps each to its noun's module, passing the
//! verb where one implementation serves several commands.

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
    Status(status::node::Args),
    /// The Hierarchy Manager's site list (at a primary).
    Sites(site::list::Args),
    /// A site's control image (CT0), or an ancestor's copy of a descendant's.
    SiteControl(site_control::show::Args),
    /// Status messages stored at the node's site.
    StatusMessages(status::messages::Args),
    /// Create a secondary site on a bare node (run against the parent primary).
    CreateSecondary(site::create::Args),
    /// Cut this node's link to a neighbouring site, in both directions, durably.
    SeverLink(link::SeverArgs),
    /// Restore a severed link.
    RestoreLink(link::RestoreArgs),
    /// The node's bootstrap log (works on bare nodes).
    BootstrapLog(logs::BootstrapArgs),
    /// Any component log of the node (sitectrl, hman, sched, sender, despool, ...).
    Log(logs::LogArgs),
    /// Inject a fault on the node: ct2-job-failure, bootstrap-failure --phase N.
    InjectFault(fault::InjectArgs),
    /// Clear an injected fault.
    ClearFault(fault::ClearArgs),
    /// Put a link's failed jobs back in its outbox.
    RetryJobs(jobs::RetryArgs),
    /// Jobs whose retries ran out, with the reason.
    FailedJobs(jobs::FailedArgs),
    /// Make the node's site re-process its CT0 and send a fresh CT2 (article 002).
    ForceCt2(site_control::force_ct2::Args),
    /// Re-run the install of a secondary site from its parent (upgrade or repair).
    UpgradeSite(site::upgrade::Args),
    /// Remove a secondary site from the hierarchy; its node returns to bare.
    DeleteSite(site::delete::Args),
    /// Explain why a site is not Active, from both ends, and the command that fixes it.
    Diagnose(site::diagnose::Args),
    /// Change a site's polling interval or name (at the site or an ancestor).
    SetSiteControl(site_control::set::Args),
    /// Change a site's address (route) settings to a neighbour.
    SetAddress(site_control::set_address::Args),
    /// Drop a CT1 (JSON file) into the node's site control inbox as it is.
    SubmitCt1(site_control::submit_ct1::Args),
    /// CT1s the Site Configuration Manager refused, with the reason.
    BadBox(site_control::bad_box::Args),
    /// At a logon server: SMS unique IDs from its range.
    AllocateId(ids::Args),
    /// Add a domain (with its browse list) to a site's control.
    AddDomain(domain::AddArgs),
    /// Remove a domain from a site's control.
    RemoveDomain(domain::RemoveArgs),
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
            Command::Status(a) => status::node::run(&node, &out, a).await,
            Command::Sites(a) => site::list::run(&node, &out, a).await,
            Command::SiteControl(a) => site_control::show::run(&node, &out, a).await,
            Command::StatusMessages(a) => status::messages::run(&node, &out, a).await,
            Command::CreateSecondary(a) => site::create::run(&node, &out, a).await,
            Command::SeverLink(a) => link::run(&node, &out, link::Verb::Sever, a.to).await,
            Command::RestoreLink(a) => link::run(&node, &out, link::Verb::Restore, a.to).await,
            Command::BootstrapLog(a) => logs::run(&node, &out, "bootstrap", a.tail).await,
            Command::Log(a) => logs::run(&node, &out, &a.name, a.tail).await,
            Command::InjectFault(a) => {
                fault::run(&node, &out, fault::Verb::Inject, a.name, a.phase).await
            }
            Command::ClearFault(a) => {
                fault::run(&node, &out, fault::Verb::Clear, a.name, None).await
            }
            Command::RetryJobs(a) => link::run(&node, &out, link::Verb::RetryJobs, a.to).await,
            Command::FailedJobs(a) => jobs::failed(&node, &out, a).await,
            Command::ForceCt2(a) => site_control::force_ct2::run(&node, &out, a).await,
            Command::UpgradeSite(a) => {
                site::run(&node, &out, site::Verb::Upgrade, a.site, a.wait, a.timeout).await
            }
            Command::Diagnose(a) => site::diagnose::run(&node, &out, a).await,
            Command::DeleteSite(a) => {
                site::run(&node, &out, site::Verb::Delete, a.site, a.wait, a.timeout).await
            }
            Command::SetSiteControl(a) => site_control::set::run(&node, &out, a).await,
            Command::SetAddress(a) => site_control::set_address::run(&node, &out, a).await,
            Command::AddDomain(a) => {
                domain::run(&node, &out, a.site, a.name, domain::Verb::Add(a.browse)).await
            }
            Command::AllocateId(a) => ids::run(&node, &out, a).await,
            Command::SubmitCt1(a) => site_control::submit_ct1::run(&node, &out, a).await,
            Command::BadBox(a) => site_control::bad_box::run(&node, &out, a).await,
            Command::RemoveDomain(a) => {
                domain::run(&node, &out, a.site, a.name, domain::Verb::Remove).await
            }
            Command::Probe(c) => probe::run(&node, &out, c).await,
            Command::Package(c) => package::run(&node, &out, c).await,
            Command::Up(a) => up::run(&out, a).await,
        }
    }
}
