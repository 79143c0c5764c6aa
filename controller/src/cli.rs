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
#[command(name = "controller", version = sms_build_info::LONG_VERSION)]
pub struct Cli {
    /// Node to talk to (HOST:PORT); falls back to $SMS_NODE.
    #[arg(long, global = true, env = "SMS_NODE")]
    pub node: Option<String>,
    /// Print one JSON document instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Directory with the administrator certificate (ca.pem, admin.pem,
    /// admin.key) [default: .sms-up/admin, written by `controller up`].
    #[arg(long, global = true, env = "SMS_TLS_DIR", value_name = "DIR")]
    pub tls_dir: Option<std::path::PathBuf>,
    /// Talk plaintext to nodes started with --insecure.
    #[arg(long, global = true, env = "SMS_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
    pub insecure: bool,
    /// Address the command to site CODE: the node (--node) relays it hop by
    /// hop between neighbouring site servers, up or down the hierarchy, to
    /// that site's server, which answers it and checks your role. Goes
    /// before the command (`controller --site S11 status`): after it,
    /// `--site` is the command's own argument. Falls back to $SMS_SITE.
    #[arg(long = "site", env = "SMS_SITE", value_name = "CODE")]
    pub site: Option<String>,
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
    /// Status messages stored at the node's site, oldest first by the time
    /// they were reported; --follow then prints new ones as they arrive.
    StatusMessages(status::messages::Args),
    /// Create a secondary site on a bare node (run against the parent primary).
    CreateSecondary(site::create::Args),
    /// Cut this node's link to a neighbouring site, in both directions, durably.
    SeverLink(link::SeverArgs),
    /// Restore a severed link.
    RestoreLink(link::RestoreArgs),
    /// The node's bootstrap log (works on bare nodes).
    BootstrapLog(logs::BootstrapArgs),
    /// Any component log of the node (sitectrl, hman, sched, sender, despool, ...), with its
    /// rotated history: tailed from the end, filtered by time, or followed.
    Log(logs::LogArgs),
    /// Inject a fault on the node: ct2-job-failure, bootstrap-failure --phase N, renewal-crash,
    /// cert-exchange-failure.
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
    /// Remove a direct child site (and the sites below it) from the hierarchy:
    /// a secondary's node returns to bare; an installed primary is detached
    /// and carries on as a central site with its own sites.
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
    /// Management points: add, remove, list, check (the troubleshooter), and
    /// act as a client (get-policy, register, post-status).
    #[command(subcommand)]
    Mp(mp::Cmd),
    /// Status filter rules of a site: list, add (matchers and actions as
    /// flags) and remove; they travel in site control.
    #[command(subcommand)]
    StatusRules(status_rules::Cmd),
    /// Launch a local demo hierarchy (central primary + one secondary) on loopback.
    Up(up::Args),
    /// Join tokens: make one for a new site or member server (at its parent primary).
    #[command(subcommand)]
    Token(trust::TokenCmd),
    /// Administrator certificates: issue one (the key is made here and never sent).
    #[command(subcommand)]
    Admin(trust::AdminCmd),
    /// The node's certificates with their expiry, and the join tokens it issued.
    Certs,
    /// A single-use sign-in link to the node's web console (needs sms-node
    /// --http-listen): the session acts with this certificate's role.
    ConsoleUrl(console::Args),
    /// The controller's version and git commit, and the node's version when
    /// one is reachable (--node or SMS_NODE); exits 0 either way.
    Version(version::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the controller(1) man page, or write one page per command into
    /// a directory (--out DIR).
    Man(docs::ManArgs),
}

impl Command {
    /// The commands a site server cannot relay (`--site`): what they do
    /// happens here, or at a server they name themselves.
    fn local_only(&self) -> Option<&'static str> {
        match self {
            Command::Up(_) => Some("up"),
            Command::Mp(mp::Cmd::Check(_)) => Some("mp check"),
            Command::Mp(mp::Cmd::GetPolicy(_)) => Some("mp get-policy"),
            Command::Mp(mp::Cmd::Register(_)) => Some("mp register"),
            Command::Mp(mp::Cmd::PostStatus(_)) => Some("mp post-status"),
            _ => None,
        }
    }
}

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> anyhow::Result<()> {
        let out = Out { json: self.json };
        let node = self.node;
        crate::client::init_security(self.tls_dir, self.insecure);
        if self.site.as_deref().is_some_and(|s| !s.is_empty()) {
            if let Some(what) = self.command.local_only() {
                anyhow::bail!(
                    "--site cannot be used with `{what}`: it does not talk to a site server's \
                     administration service (drop --site, or unset SMS_SITE)"
                );
            }
        }
        crate::client::set_site(self.site)?;
        match self.command {
            Command::Status(a) => status::node::run(&node, &out, a).await,
            Command::Sites(a) => site::list::run(&node, &out, a).await,
            Command::SiteControl(a) => site_control::show::run(&node, &out, a).await,
            Command::StatusMessages(a) => status::messages::run(&node, &out, a).await,
            Command::CreateSecondary(a) => site::create::run(&node, &out, a).await,
            Command::SeverLink(a) => link::run(&node, &out, link::Verb::Sever, a.to).await,
            Command::RestoreLink(a) => link::run(&node, &out, link::Verb::Restore, a.to).await,
            Command::BootstrapLog(a) => logs::run(&node, &out, "bootstrap", a.read).await,
            Command::Log(a) => logs::run(&node, &out, &a.name, a.read).await,
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
            Command::Mp(c) => mp::run(&node, &out, c).await,
            Command::StatusRules(c) => status_rules::run(&node, &out, c).await,
            Command::Up(a) => up::run(&out, a).await,
            Command::Token(c) => trust::token(&node, &out, c).await,
            Command::Admin(c) => trust::admin(&node, &out, c).await,
            Command::Certs => trust::certs(&node, &out).await,
            Command::ConsoleUrl(a) => console::run(&node, &out, a).await,
            Command::Version(a) => version::run(&node, &out, a).await,
            Command::Completions(a) => docs::completions(a),
            Command::Man(a) => docs::man(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Command {
        let argv = std::iter::once("controller").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.command,
            Err(e) => panic!("{args:?} should parse: {e}"),
        }
    }

    fn refuse(args: &[&str]) -> clap::Error {
        let argv = std::iter::once("controller").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => panic!("{args:?} should be refused, parsed as {:?}", cli.command),
            Err(e) => e,
        }
    }

    #[test]
    fn tokens_for_several_nodes_need_an_output_directory() {
        match parse(&[
            "token",
            "create",
            "--site",
            "S01",
            "--member",
            "m1",
            "--out-dir",
            "/t",
        ]) {
            Command::Token(trust::TokenCmd::Create {
                site,
                member,
                out_dir,
                ..
            }) => {
                assert_eq!(site, ["S01"]);
                assert_eq!(member, ["m1"]);
                assert_eq!(out_dir.as_deref(), Some(std::path::Path::new("/t")));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert_eq!(
            refuse(&["token", "create"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refuse(&["admin", "issue", "--name", "x", "--role", "root", "--out", "d"]).kind(),
            ErrorKind::InvalidValue
        );
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_keeps_its_name_and_order() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "status",
                "sites",
                "site-control",
                "status-messages",
                "create-secondary",
                "sever-link",
                "restore-link",
                "bootstrap-log",
                "log",
                "inject-fault",
                "clear-fault",
                "retry-jobs",
                "failed-jobs",
                "force-ct2",
                "upgrade-site",
                "delete-site",
                "diagnose",
                "set-site-control",
                "set-address",
                "submit-ct1",
                "bad-box",
                "allocate-id",
                "add-domain",
                "remove-domain",
                "probe",
                "package",
                "mp",
                "status-rules",
                "up",
                "token",
                "admin",
                "certs",
                "console-url",
                "version",
                "completions",
                "man",
            ]
        );
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        for args in [
            ["--node", "h:1", "--json", "status"],
            ["status", "--json", "--node", "h:1"],
        ] {
            let cli = Cli::try_parse_from(std::iter::once("controller").chain(args)).unwrap();
            assert_eq!(cli.node.as_deref(), Some("h:1"));
            assert!(cli.json);
            assert!(matches!(cli.command, Command::Status(_)));
        }
    }

    #[test]
    fn the_site_to_reach_goes_before_the_command_and_a_command_keeps_its_own_site() {
        let cli = Cli::try_parse_from(["controller", "--site", "S11", "diagnose", "--site", "S12"])
            .unwrap();
        assert_eq!(cli.site.as_deref(), Some("S11"));
        let Command::Diagnose(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.site, "S12");
        let cli = Cli::try_parse_from(["controller", "--site", "S11", "status"]).unwrap();
        assert_eq!(cli.site.as_deref(), Some("S11"));
        // After a command without a --site of its own, it is not taken.
        assert_eq!(
            refuse(&["status", "--site", "S11"]).kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            Cli::try_parse_from(["controller", "--site", "S11", "up"])
                .unwrap()
                .command
                .local_only(),
            Some("up")
        );
        assert_eq!(parse(&["sites"]).local_only(), None);
    }

    #[test]
    fn commands_without_arguments_parse_bare() {
        for (args, ok) in [
            (
                vec!["status"],
                matches!(parse(&["status"]), Command::Status(_)),
            ),
            (
                vec!["sites"],
                matches!(parse(&["sites"]), Command::Sites(_)),
            ),
            (
                vec!["bad-box"],
                matches!(parse(&["bad-box"]), Command::BadBox(_)),
            ),
            (
                vec!["force-ct2"],
                matches!(parse(&["force-ct2"]), Command::ForceCt2(_)),
            ),
            (
                vec!["package", "list"],
                matches!(
                    parse(&["package", "list"]),
                    Command::Package(package::Cmd::List)
                ),
            ),
        ] {
            assert!(ok, "{args:?}");
        }
        // and they take no stray arguments
        assert_eq!(refuse(&["sites", "S01"]).kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn link_job_and_fault_commands_take_their_site_or_fault() {
        let to = |args: &[&str]| match parse(args) {
            Command::SeverLink(a) => ("sever", a.to),
            Command::RestoreLink(a) => ("restore", a.to),
            Command::RetryJobs(a) => ("retry", a.to),
            Command::FailedJobs(a) => ("failed", a.to),
            other => panic!("{other:?}"),
        };
        assert_eq!(to(&["sever-link", "--to", "S01"]), ("sever", "S01".into()));
        assert_eq!(
            to(&["restore-link", "--to", "S01"]),
            ("restore", "S01".into())
        );
        assert_eq!(to(&["retry-jobs", "--to", "PRI"]), ("retry", "PRI".into()));
        assert_eq!(to(&["failed-jobs", "--to=PRI"]), ("failed", "PRI".into()));
        let Command::InjectFault(a) = parse(&["inject-fault", "bootstrap-failure", "--phase", "3"])
        else {
            panic!()
        };
        assert_eq!((a.name.as_str(), a.phase), ("bootstrap-failure", Some(3)));
        let Command::InjectFault(a) = parse(&["inject-fault", "ct2-job-failure"]) else {
            panic!()
        };
        assert_eq!(a.phase, None);
        let Command::ClearFault(a) = parse(&["clear-fault", "ct2-job-failure"]) else {
            panic!()
        };
        assert_eq!(a.name, "ct2-job-failure");
        assert_eq!(
            refuse(&["clear-fault", "bootstrap-failure", "--phase", "1"]).kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            refuse(&["sever-link"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refuse(&["inject-fault", "x", "--phase", "two"]).kind(),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn site_commands_keep_their_flags_and_defaults() {
        let Command::CreateSecondary(a) = parse(&[
            "create-secondary",
            "--site-code",
            "S01",
            "--server",
            "127.0.0.1:7001",
        ]) else {
            panic!()
        };
        assert_eq!(
            (a.site_code.as_str(), a.server.as_str()),
            ("S01", "127.0.0.1:7001")
        );
        assert_eq!(a.site_name, None);
        assert!(!a.wait && !a.sever_link_mid_bootstrap);
        assert_eq!(a.timeout, 120);
        let Command::CreateSecondary(a) = parse(&[
            "create-secondary",
            "--site-code",
            "S01",
            "--server",
            "h:1",
            "--site-name",
            "North",
            "--sever-link-mid-bootstrap",
            "--wait",
            "--timeout",
            "5",
        ]) else {
            panic!()
        };
        assert_eq!(a.site_name.as_deref(), Some("North"));
        assert!(a.wait && a.sever_link_mid_bootstrap);
        assert_eq!(a.timeout, 5);
        let Command::UpgradeSite(a) = parse(&["upgrade-site", "--site", "S01", "--wait"]) else {
            panic!()
        };
        assert_eq!((a.site.as_str(), a.wait, a.timeout), ("S01", true, 120));
        let Command::DeleteSite(a) = parse(&["delete-site", "--site", "S01", "--timeout", "9"])
        else {
            panic!()
        };
        assert_eq!((a.site.as_str(), a.wait, a.timeout), ("S01", false, 9));
        let Command::Diagnose(a) = parse(&["diagnose", "--site", "S01"]) else {
            panic!()
        };
        assert_eq!(a.site, "S01");
        assert_eq!(
            refuse(&["create-secondary", "--site-code", "S01"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refuse(&["delete-site", "--site", "S01", "--timeout", "-1"]).kind(),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn site_control_flags_parse_and_diff_takes_two_serials_and_no_serial() {
        let Command::SiteControl(a) = parse(&["site-control"]) else {
            panic!()
        };
        assert_eq!((a.serial, a.site, a.diff), (None, None, None));
        let Command::SiteControl(a) = parse(&["site-control", "--site", "S01", "--diff", "2", "5"])
        else {
            panic!()
        };
        assert_eq!(a.diff, Some(vec![2, 5]));
        assert_eq!(a.site.as_deref(), Some("S01"));
        let e = refuse(&["site-control", "--diff", "2"]);
        assert_eq!(e.kind(), ErrorKind::WrongNumberOfValues);
        assert!(e
            .to_string()
            .contains("2 values required for '--diff <A> <B>'"));
        let e = refuse(&["site-control", "--serial", "1", "--diff", "1", "2"]);
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn site_control_changes_parse_their_settings() {
        let Command::SetSiteControl(a) = parse(&[
            "set-site-control",
            "--polling-interval-ms",
            "500",
            "--site-name",
            "N",
        ]) else {
            panic!()
        };
        assert_eq!((a.site, a.polling_interval_ms), (None, Some(500)));
        assert_eq!(a.site_name.as_deref(), Some("N"));
        let Command::SetAddress(a) = parse(&[
            "set-address",
            "--to",
            "PRI",
            "--retry-count",
            "4",
            "--retry-delay-ms",
            "100",
            "--concurrent-sendings",
            "2",
            "--rate-limit-bytes-per-sec",
            "0",
            "--schedule",
            "8-18:high",
            "--keepalive-secs",
            "default",
        ]) else {
            panic!()
        };
        assert_eq!(a.to, "PRI");
        assert_eq!((a.retry_count, a.retry_delay_ms), (Some(4), Some(100)));
        assert_eq!(
            (a.concurrent_sendings, a.rate_limit_bytes_per_sec),
            (Some(2), Some(0))
        );
        assert_eq!(a.schedule.as_deref(), Some("8-18:high"));
        assert_eq!(
            a.keepalive_secs,
            Some(crate::commands::site_control::set_address::Keepalive::Default)
        );
        let Command::AddDomain(a) = parse(&[
            "add-domain",
            "--site",
            "S01",
            "--name",
            "NORTH",
            "--browse",
            "10.0.0.1,dc.north",
        ]) else {
            panic!()
        };
        assert_eq!(a.browse, ["10.0.0.1", "dc.north"]);
        let Command::RemoveDomain(a) =
            parse(&["remove-domain", "--site", "S01", "--name", "NORTH"])
        else {
            panic!()
        };
        assert_eq!((a.site.as_str(), a.name.as_str()), ("S01", "NORTH"));
        let Command::SubmitCt1(a) = parse(&["submit-ct1", "--file", "ct1.json"]) else {
            panic!()
        };
        assert_eq!(a.file, std::path::PathBuf::from("ct1.json"));
        let e = refuse(&["add-domain", "--site", "S01", "--name", "NORTH"]);
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--browse <BROWSE>"));
        assert_eq!(
            refuse(&["set-address", "--retry-count", "3"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refuse(&["set-address", "--to", "PRI", "--retry-count", "many"]).kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refuse(&["set-address", "--to", "PRI", "--keepalive-secs", "soon"]).kind(),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn human_durations_and_sizes_sit_beside_the_ms_and_byte_flags() {
        let Command::SetSiteControl(a) = parse(&["set-site-control", "--polling-interval", "5s"])
        else {
            panic!()
        };
        assert_eq!(
            (a.polling_interval, a.polling_interval_ms),
            (Some(5000), None)
        );
        let e = refuse(&[
            "set-site-control",
            "--polling-interval",
            "5s",
            "--polling-interval-ms",
            "5000",
        ]);
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
        let e = refuse(&["set-site-control", "--polling-interval", "5"]);
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("has no unit"), "{e}");
        let Command::SetAddress(a) = parse(&[
            "set-address",
            "--to",
            "PRI",
            "--retry-delay",
            "2m",
            "--rate-limit-bytes-per-sec",
            "512KiB",
        ]) else {
            panic!()
        };
        assert_eq!((a.retry_delay, a.retry_delay_ms), (Some(120_000), None));
        assert_eq!(a.rate_limit_bytes_per_sec, Some(512 * 1024));
        assert_eq!(
            refuse(&[
                "set-address",
                "--to",
                "P",
                "--retry-delay",
                "1s",
                "--retry-delay-ms",
                "1"
            ])
            .kind(),
            ErrorKind::ArgumentConflict
        );
        let Command::Package(package::Cmd::Send {
            size, chunk_bytes, ..
        }) = parse(&[
            "package",
            "send",
            "--to",
            "S01",
            "--size",
            "10MiB",
            "--chunk-bytes",
            "64KiB",
        ])
        else {
            panic!()
        };
        assert_eq!((size, chunk_bytes), (Some(10 << 20), Some(65_536)));
        let e = refuse(&["package", "send", "--to", "S01", "--size", "10M"]);
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("unknown unit \"M\""), "{e}");
        let Command::Probe(probe::Cmd::Send { bytes, .. }) =
            parse(&["probe", "send", "--to", "S01", "--bytes", "4KiB"])
        else {
            panic!()
        };
        assert_eq!(bytes, 4096);
        let Command::CreateSecondary(a) = parse(&[
            "create-secondary",
            "--site-code",
            "S01",
            "--server",
            "h:1",
            "--timeout",
            "5m",
        ]) else {
            panic!()
        };
        assert_eq!(a.timeout, 300);
    }

    #[test]
    fn sites_and_status_watch_every_two_seconds_unless_told() {
        let Command::Sites(a) = parse(&["sites", "--watch"]) else {
            panic!()
        };
        assert_eq!(a.watch.watch, Some(std::time::Duration::from_secs(2)));
        assert_eq!(a.watch.count, None);
        let Command::Status(a) = parse(&["status", "--watch", "5", "--count", "3"]) else {
            panic!()
        };
        assert_eq!(a.watch.watch, Some(std::time::Duration::from_secs(5)));
        assert_eq!(a.watch.count, Some(3));
        let Command::Sites(a) = parse(&["sites"]) else {
            panic!()
        };
        assert_eq!(a.watch.watch, None);
        assert_eq!(
            refuse(&["sites", "--count", "3"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refuse(&["status", "--watch", "0"]).kind(),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn version_completions_and_man_parse() {
        assert!(matches!(parse(&["version"]), Command::Version(_)));
        let Command::Completions(a) = parse(&["completions", "fish"]) else {
            panic!()
        };
        assert_eq!(a.shell, clap_complete::Shell::Fish);
        assert_eq!(
            refuse(&["completions", "tcsh"]).kind(),
            ErrorKind::InvalidValue
        );
        let Command::Man(a) = parse(&["man", "--out", "/tmp/m"]) else {
            panic!()
        };
        assert_eq!(a.out.as_deref(), Some(std::path::Path::new("/tmp/m")));
    }

    #[test]
    fn logs_messages_and_ids_keep_their_defaults() {
        let Command::Log(a) = parse(&["log", "hman"]) else {
            panic!()
        };
        assert_eq!(
            (a.name.as_str(), a.read.tail, a.read.since, a.read.follow),
            ("hman", 0, None, false)
        );
        let Command::Log(a) = parse(&["log", "sched", "-f", "--since", "10m"]) else {
            panic!()
        };
        assert!(a.read.follow && a.read.since.is_some());
        let Command::BootstrapLog(a) = parse(&["bootstrap-log", "--tail", "15"]) else {
            panic!()
        };
        assert_eq!(a.read.tail, 15);
        let Command::StatusMessages(a) = parse(&["status-messages"]) else {
            panic!()
        };
        assert_eq!((a.site, a.id, a.limit, a.follow), (None, None, 1000, false));
        let Command::StatusMessages(a) = parse(&[
            "status-messages",
            "--site",
            "S01",
            "--id",
            "3101",
            "--limit",
            "5",
            "--follow",
        ]) else {
            panic!()
        };
        assert_eq!(
            (a.site.as_deref(), a.id, a.limit, a.follow),
            (Some("S01"), Some(3101), 5, true)
        );
        let Command::AllocateId(a) = parse(&["allocate-id"]) else {
            panic!()
        };
        assert_eq!(a.count, 1);
        assert_eq!(refuse(&["log"]).kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            refuse(&["allocate-id", "--count", "-1"]).kind(),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn probe_and_package_subcommands_keep_their_defaults() {
        let Command::Probe(probe::Cmd::Send {
            to,
            count,
            bytes,
            priority,
        }) = parse(&["probe", "send", "--to", "S01"])
        else {
            panic!()
        };
        assert_eq!(
            (to.as_str(), count, bytes, priority.as_str()),
            ("S01", 1, 1024, "medium")
        );
        assert!(matches!(
            parse(&["probe", "received", "--summary"]),
            Command::Probe(probe::Cmd::Received { summary: true })
        ));
        let Command::Package(package::Cmd::Send {
            to,
            path,
            size,
            name,
            chunk_bytes,
        }) = parse(&["package", "send", "--to", "S01", "--size", "4096"])
        else {
            panic!()
        };
        assert_eq!((to.as_str(), path, size), ("S01", None, Some(4096)));
        assert_eq!((name.as_str(), chunk_bytes), ("package", None));
        assert_eq!(
            refuse(&["package", "send", "--to", "S01", "--path", "f", "--size", "1"]).kind(),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            refuse(&["probe"]).kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }

    #[test]
    fn unknown_commands_are_refused_with_a_suggestion() {
        let e = refuse(&["sever_link"]);
        assert_eq!(e.kind(), ErrorKind::InvalidSubcommand);
        assert!(e.to_string().contains("sever-link"), "{e}");
        assert_eq!(
            refuse(&[]).kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }
}
