//! `controller console-url`: a single-use sign-in link to a node's web
//! console, whose session acts with this administrator's certificate
//! subject and role (at that node only, until it expires).

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long the console session lasts (`30m`, `2h`; at most 8h).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    if a.ttl.as_secs() == 0 {
        anyhow::bail!("--ttl must be at least one second");
    }
    let (_, mut c) = connect(node).await?;
    let r = c
        .create_console_session(pb::ConsoleSessionRequest {
            ttl_secs: a.ttl.as_secs(),
        })
        .await
        .reply("console-url")?;
    out.print(
        &json!({"url": r.url, "console_url": r.console_url, "expires_unix": r.expires_unix,
                "subject": r.subject, "role": r.role}),
        || {
            println!("{}", r.url);
            eprintln!(
                "opens one console session as {} ({}) until unix time {}; the link works once",
                r.subject, r.role, r.expires_unix
            );
        },
    );
    Ok(())
}
