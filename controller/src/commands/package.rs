//! `controller package send|list`: chunked file packages.

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::{self, table, uuid, Out};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Send a file package to a site (a file on the node's host, or random bytes).
    Send {
        /// Destination site.
        #[arg(long)]
        to: String,
        /// File to send: a relative name in the node's DATA/package-sources
        /// directory (at most 1 GiB; nothing else on its host is read).
        #[arg(long, conflicts_with = "size")]
        path: Option<String>,
        /// Generate this many random bytes instead (at most 1 GiB): a number
        /// of bytes or a size such as `10MiB`.
        #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
        size: Option<u64>,
        #[arg(long, default_value = "package")]
        name: String,
        /// Chunk size (default 1 MiB): bytes, or a size such as `256KiB`.
        #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size_u32)]
        chunk_bytes: Option<u32>,
    },
    /// Packages received (or being received) at this node.
    List,
}

pub async fn run(node: &Option<String>, out: &Out, cmd: Cmd) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    match cmd {
        Cmd::Send {
            to,
            path,
            size,
            name,
            chunk_bytes,
        } => {
            if path.is_none() && size.is_none() {
                anyhow::bail!("give --path FILE or --size SIZE (e.g. --size 10MiB)");
            }
            let r = c
                .send_package(pb::SendPackageRequest {
                    to: to.clone(),
                    name,
                    source_path: path.unwrap_or_default(),
                    size_bytes: size.unwrap_or(0),
                    chunk_bytes: chunk_bytes.unwrap_or(0),
                })
                .await
                .reply("package send")?;
            let id = uuid(&r.job_id);
            out.print(
                &json!({"to": to, "job_id": id, "size_bytes": r.size_bytes, "chunk_count": r.chunk_count, "sha256": r.sha256}),
                || println!("queued package {id} for {to}: {} bytes in {} chunks, sha256 {}", r.size_bytes, r.chunk_count, r.sha256),
            );
        }
        Cmd::List => {
            let pk = c
                .list_packages(pb::ListPackagesRequest {})
                .await
                .reply("package list")?
                .packages;
            let v = json!({"packages": pk.iter().map(|p| json!({
                "job_id": uuid(&p.job_id),
                "name": p.name,
                "source_site": p.source_site,
                "size_bytes": p.size_bytes,
                "sha256": p.sha256,
                "chunks_received": p.chunks_received,
                "chunk_count": p.chunk_count,
                "complete": p.complete,
            })).collect::<Vec<_>>()});
            out.print(&v, || {
                let mut t = table(&[
                    "name",
                    "from",
                    "bytes",
                    "chunks",
                    "complete",
                    "sha256 (verified)",
                ]);
                for p in &pk {
                    t.add_row(vec![
                        output::shown(&p.name),
                        output::shown(&p.source_site),
                        p.size_bytes.to_string(),
                        format!("{}/{}", p.chunks_received, p.chunk_count),
                        p.complete.to_string(),
                        p.sha256.clone(),
                    ]);
                }
                println!("{t}");
            });
        }
    }
    Ok(())
}
