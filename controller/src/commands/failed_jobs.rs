//! `controller failed-jobs --to C`: jobs whose retries ran out, kept for
//! inspection and `retry-jobs`.

use serde_json::json;
use sms_proto::v1 as pb;
use uuid::Uuid;

use crate::client::{admin, node_addr, status_err};
use crate::output::{table, time, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The neighbour whose outbox to look at.
    #[arg(long)]
    to: String,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let jobs = admin(&addr)
        .await?
        .list_failed_jobs(pb::LinkRequest { to: a.to.clone() })
        .await
        .map_err(|e| status_err("failed-jobs", e))?
        .into_inner()
        .jobs;
    let id = |b: &[u8]| {
        Uuid::from_slice(b)
            .map(|u| u.to_string())
            .unwrap_or_default()
    };
    let v = json!({"to": a.to, "jobs": jobs.iter().map(|j| json!({
        "job_id": id(&j.job_id), "kind": j.kind, "dest_site": j.dest_site,
        "attempts": j.attempts, "reason": j.reason, "failed": time(j.failed_unix_ms),
    })).collect::<Vec<_>>()});
    out.print(&v, || {
        if jobs.is_empty() {
            println!("no failed jobs for {}", a.to);
            return;
        }
        let mut t = table(&["job", "kind", "for", "attempts", "failed (UTC)", "reason"]);
        for j in &jobs {
            t.add_row(vec![
                id(&j.job_id),
                j.kind.clone(),
                j.dest_site.clone(),
                j.attempts.to_string(),
                time(j.failed_unix_ms),
                j.reason.clone(),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}
