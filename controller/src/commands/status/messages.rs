//! `controller status-messages`: the status messages stored at the node's
//! site, listed once or followed as they arrive.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, status_err, Reply};
use crate::output::{message_json, message_line, messages_table, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only messages reported by this site.
    #[arg(long)]
    pub site: Option<String>,
    /// Only messages with this id.
    #[arg(long)]
    pub id: Option<u32>,
    /// The newest N messages at most (newest by when they were stored here).
    #[arg(long, default_value_t = 1000)]
    pub limit: u32,
    /// Keep printing new messages as they arrive (Ctrl-C stops).
    #[arg(long)]
    pub follow: bool,
}

/// Sorts messages oldest first by the time they were reported (a message
/// from a far site may be stored here after newer ones from near sites);
/// equal times keep the order they were stored in.
pub fn in_time_order(msgs: &mut [pb::StatusMessage]) {
    msgs.sort_by_key(|m| m.time_unix_ms);
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    let req = |after_uid: Vec<u8>, limit: u32| pb::ListStatusMessagesRequest {
        site: a.site.clone().unwrap_or_default(),
        id: a.id.unwrap_or(0),
        limit,
        after_uid,
    };
    // Following: watch before listing, so nothing stored in between is
    // missed. The watch sees every message as it is stored here, including
    // one that arrives late from a far site with an older time (a listing
    // by uid would skip it).
    let mut watch = if a.follow {
        Some(
            c.watch_status_messages(pb::WatchStatusMessagesRequest {
                site: a.site.clone().unwrap_or_default(),
                id: a.id.unwrap_or(0),
            })
            .await
            .reply("status-messages --follow")?,
        )
    } else {
        None
    };
    let mut msgs = c
        .list_status_messages(req(vec![], a.limit))
        .await
        .reply("status-messages")?
        .messages;
    in_time_order(&mut msgs);
    if let Some(watch) = watch.as_mut() {
        // One line per message (one JSON document per line with --json).
        let print = |m: &pb::StatusMessage| {
            if out.json {
                println!("{}", message_json(m));
            } else {
                println!("{}", message_line(m));
            }
        };
        let listed: std::collections::HashSet<Vec<u8>> =
            msgs.iter().map(|m| m.uid.clone()).collect();
        msgs.iter().for_each(print);
        loop {
            let item = tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                item = watch.message() => item.map_err(|e| status_err("status-messages --follow", e))?,
            };
            let Some(item) = item else {
                anyhow::bail!("the node closed the watch (it is stopping)");
            };
            if item.missed_batches > 0 {
                eprintln!(
                    "warning: this terminal fell behind; {} batches of messages were not shown (status-messages lists them)",
                    item.missed_batches
                );
            }
            item.messages
                .iter()
                .filter(|m| !listed.contains(&m.uid))
                .for_each(print);
        }
    }
    let v = json!({ "messages": msgs.iter().map(message_json).collect::<Vec<_>>() });
    out.print(&v, || println!("{}", messages_table(&msgs)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_list_oldest_first_by_reported_time() {
        let m = |t: u64, text: &str| pb::StatusMessage {
            time_unix_ms: t,
            text: text.into(),
            ..Default::default()
        };
        // Stored in arrival order: the far site's older message came last.
        let mut msgs = vec![
            m(20, "near b"),
            m(30, "near c"),
            m(10, "far a"),
            m(20, "near b2"),
        ];
        in_time_order(&mut msgs);
        let texts: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["far a", "near b", "near b2", "near c"]);
    }
}
