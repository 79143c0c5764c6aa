//! A link to a neighbouring site: `sever-link` and `restore-link`, and
//! `retry-jobs` (see [`super::jobs`]), which all send the neighbour's code,
//! change the link and print how it stands afterwards.

use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::{print_link, Out};

#[derive(clap::Args, Debug)]
pub struct SeverArgs {
    /// The neighbouring site to cut off.
    #[arg(long)]
    pub to: String,
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The neighbouring site to reconnect.
    #[arg(long)]
    pub to: String,
}

/// What to do to the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Sever,
    Restore,
    /// Put its failed jobs back in its outbox.
    RetryJobs,
}

impl Verb {
    /// The command, as errors name it.
    pub fn command(self) -> &'static str {
        match self {
            Verb::Sever => "sever-link",
            Verb::Restore => "restore-link",
            Verb::RetryJobs => "retry-jobs",
        }
    }
}

/// Does `verb` to this node's link to `to` and prints the link.
pub async fn run(node: &Option<String>, out: &Out, verb: Verb, to: String) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    let req = pb::LinkRequest { to };
    let l = match verb {
        Verb::Sever => c.sever_link(req).await,
        Verb::Restore => c.restore_link(req).await,
        Verb::RetryJobs => c.retry_failed_jobs(req).await,
    }
    .reply(verb.command())?;
    print_link(out, &l);
    Ok(())
}
