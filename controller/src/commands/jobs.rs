//! Jobs whose retries ran out: `failed-jobs --to C` lists them, kept for
//! inspection; `retry-jobs --to C` puts them back in the outbox.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::{failed_job_json, failed_jobs_table, Out};

#[derive(clap::Args, Debug)]
pub struct FailedArgs {
    /// The neighbour whose outbox to look at.
    #[arg(long)]
    pub to: String,
}

/// `retry-jobs` changes the link's queue and answers with the link, so it
/// runs as a [`super::link::Verb`].
#[derive(clap::Args, Debug)]
pub struct RetryArgs {
    /// The site whose failed jobs go back in the outbox.
    #[arg(long)]
    pub to: String,
}

pub async fn failed(node: &Option<String>, out: &Out, a: FailedArgs) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    let jobs = c
        .list_failed_jobs(pb::LinkRequest { to: a.to.clone() })
        .await
        .reply("failed-jobs")?
        .jobs;
    let v = json!({"to": a.to, "jobs": jobs.iter().map(failed_job_json).collect::<Vec<_>>()});
    out.print(&v, || {
        if jobs.is_empty() {
            println!("no failed jobs for {}", a.to);
            return;
        }
        println!("{}", failed_jobs_table(&jobs));
    });
    Ok(())
}
