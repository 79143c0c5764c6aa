//! The administrator's operations that are not one component's own: links,
//! retries, faults, test traffic (probes, packages, status load), CT1s put
//! straight in the inbox, and the ID counter calls a parent or logon
//! server makes. Each checks everything first and changes nothing when it
//! refuses.

use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use sms_types::views::{LinkView, PackageSent};
use sms_types::*;

use crate::core::Ctx;
use crate::error::Refused;
use crate::links::LinkStatus;
use crate::queries::{installed, link_view};
use crate::scheduler::{self, Route};

/// A neighbour of this site: its parent or a direct child.
pub fn neighbour(ctx: &Ctx, to: &SiteCode) -> Result<SiteCode, Refused> {
    let id = installed(ctx)?;
    let is_parent = id.parent.as_ref().is_some_and(|p| &p.site_code == to);
    let is_child = ctx
        .store
        .site(to)?
        .is_some_and(|r| r.parent_site_code.as_ref() == Some(&id.site_code));
    if !is_parent && !is_child {
        return Err(Refused::NotFound(format!(
            "site {to} is not a neighbour of site {} (links exist only to the parent and direct children)",
            id.site_code
        )));
    }
    Ok(to.clone())
}

/// `sever-link`: cuts the link durably (no-op when already cut).
pub async fn sever_link(ctx: &Arc<Ctx>, to: &SiteCode) -> Result<LinkView, Refused> {
    let to = neighbour(ctx, to)?;
    if ctx.store.link_fault(&to)?.is_none() {
        scheduler::sever(ctx, &to).await?;
    }
    Ok(link_view(ctx, &to))
}

/// `restore-link`: lifts a cut and wakes the sender.
pub async fn restore_link(ctx: &Arc<Ctx>, to: &SiteCode) -> Result<LinkView, Refused> {
    let to = neighbour(ctx, to)?;
    if ctx.store.link_fault(&to)?.is_some() {
        ctx.store.set_link_fault(&to, None)?;
        ctx.store.durable().await?;
        tracing::info!(to = %to, "link restored by an administrator");
        crate::status::emit(ctx, &catalog::LINK_RESTORED, &[to.to_string()])?;
        let link = scheduler::ensure_link(ctx, &to);
        link.set_state(LinkStatus::Idle, "restored by an administrator");
        link.wake.notify_one();
    }
    Ok(link_view(ctx, &to))
}

/// `inject-fault`: records a fault durably; returns every fault in force.
pub async fn inject_fault(ctx: &Ctx, name: &str, phase: u32) -> Result<Vec<Fault>, Refused> {
    let fault = Fault::parse(name, phase).map_err(|e| Refused::Invalid(e.to_string()))?;
    ctx.store.set_fault(&fault)?;
    ctx.store.durable().await?;
    crate::mp_setup::fault_injected(ctx, &fault)
        .map_err(|e| Refused::Internal(format!("applying fault {}: {e}", fault.name())))?;
    tracing::warn!(fault = fault.name(), "fault injected");
    Ok(ctx.store.faults()?)
}

/// `clear-fault`: lifts a fault and wakes every link (a held CT2 may go).
pub async fn clear_fault(ctx: &Ctx, name: &str) -> Result<Vec<Fault>, Refused> {
    let name = Fault::check_name(name).map_err(|e| Refused::Invalid(e.to_string()))?;
    if ctx.store.clear_fault(name)? {
        ctx.store.durable().await?;
        crate::mp_setup::fault_cleared(ctx, name)
            .map_err(|e| Refused::Internal(format!("clearing fault {name}: {e}")))?;
        tracing::info!(fault = %name, "fault cleared");
        for l in ctx.links.links() {
            l.wake.notify_one();
        }
    }
    Ok(ctx.store.faults()?)
}

/// `retry-jobs`: puts the failed jobs for `to` back with fresh retries.
pub async fn retry_failed_jobs(ctx: &Arc<Ctx>, to: &SiteCode) -> Result<LinkView, Refused> {
    let id = installed(ctx)?;
    let n = ctx.store.retry_failed(to)?;
    ctx.store.durable().await?;
    if n > 0 {
        tracing::info!(to = %to, jobs = n, site = %id.site_code, "failed jobs put back in the outbox");
        crate::status::emit(
            ctx,
            &catalog::JOBS_RETRIED,
            &[n.to_string(), to.to_string()],
        )?;
        scheduler::ensure_link(ctx, to).wake.notify_one();
    }
    Ok(link_view(ctx, to))
}

/// The next hop towards `dest`, for test traffic (never this site itself).
fn hop(ctx: &Ctx, dest: &SiteCode) -> Result<(Identity, SiteCode), Refused> {
    let id = installed(ctx)?;
    match scheduler::route(ctx, dest) {
        Ok(Route::Hop(h)) => Ok((id, h)),
        Ok(Route::Local) => Err(Refused::Invalid(
            "jobs cannot be sent to this site itself".into(),
        )),
        Err(e) => Err(Refused::NotFound(e.to_string())),
    }
}

/// Most probes one call queues, and the largest probe.
pub const MAX_PROBES: u32 = 1_000_000;
pub const MAX_PROBE_BYTES: u32 = 1024 * 1024;

/// `probe send`: queues `count` test jobs of `bytes` each for `dest`.
pub async fn send_probes(
    ctx: &Arc<Ctx>,
    dest: &SiteCode,
    count: u32,
    bytes: u32,
    priority: Priority,
) -> Result<Vec<Uuid>, Refused> {
    if count == 0 || count > MAX_PROBES {
        return Err(Refused::Invalid(format!(
            "count must be between 1 and {MAX_PROBES}"
        )));
    }
    if bytes > MAX_PROBE_BYTES {
        return Err(Refused::Invalid("a probe carries at most 1 MiB".into()));
    }
    let (id, hop) = hop(ctx, dest)?;
    let data = vec![0x5a_u8; bytes as usize];
    let mut ids = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let job = Job::new(
            id.site_code.clone(),
            dest.clone(),
            priority,
            Payload::Probe(data.clone()),
        );
        ctx.store.enqueue(&hop, &job)?;
        ids.push(job.id);
    }
    ctx.store.durable().await?;
    scheduler::ensure_link(ctx, &hop).wake.notify_one();
    Ok(ids)
}

/// Where a package's content comes from.
pub enum PackageSource {
    /// A file on this node's host.
    Path(String),
    /// This many random bytes (for tests and benchmarks).
    Random(u64),
}

/// Largest package and chunk `package send` takes. The package is built in
/// memory before it is stored in chunks, so the bound keeps a request from
/// exhausting the node's memory.
pub const MAX_PACKAGE_BYTES: u64 = 1024 * 1024 * 1024;

/// The one directory, inside the data dir, that `package send --path` may
/// read from: a request never names an arbitrary file on the node's host.
pub const PACKAGE_SOURCE_DIR: &str = "package-sources";

/// Resolves `name` inside the data dir's package source directory, or says
/// why not.
pub fn package_source(
    data_dir: &std::path::Path,
    name: &str,
) -> Result<std::path::PathBuf, Refused> {
    use std::path::Component;
    let rel = std::path::Path::new(name);
    let plain = !name.is_empty()
        && name.len() <= 255
        && rel.components().all(|c| matches!(c, Component::Normal(_)));
    let dir = data_dir.join(PACKAGE_SOURCE_DIR);
    if !plain {
        return Err(Refused::Invalid(format!(
            "--path names a file inside the node's {} directory (a relative name without ..);              copy the file there first",
            dir.display()
        )));
    }
    let path = dir.join(rel);
    let meta = std::fs::symlink_metadata(&path)
        .map_err(|e| Refused::Invalid(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Refused::Invalid(format!(
            "{} is not a regular file (links are not followed)",
            path.display()
        )));
    }
    if meta.len() > MAX_PACKAGE_BYTES {
        return Err(Refused::Invalid(format!(
            "{} is {} bytes; a package is at most 1 GiB",
            path.display(),
            meta.len()
        )));
    }
    Ok(path)
}
pub const MAX_CHUNK_BYTES: usize = 3 * 1024 * 1024;
pub const DEFAULT_CHUNK_BYTES: usize = 1024 * 1024;

/// `package send`: stores a file package in chunks and queues it for `dest`.
pub async fn send_package(
    ctx: &Arc<Ctx>,
    dest: &SiteCode,
    name: &str,
    source: PackageSource,
    chunk_bytes: usize,
) -> Result<PackageSent, Refused> {
    let chunk_bytes = if chunk_bytes == 0 {
        DEFAULT_CHUNK_BYTES
    } else {
        chunk_bytes
    };
    if chunk_bytes > MAX_CHUNK_BYTES {
        return Err(Refused::Invalid("chunk size is at most 3 MiB".into()));
    }
    let (id, hop) = hop(ctx, dest)?;
    // Copied into the package store a piece at a time while it is hashed:
    // a package of any size costs one piece of memory.
    let job_id = Uuid::now_v7();
    let copied = tokio::task::block_in_place(|| copy_into_store(ctx, &job_id, source));
    let (size, sha) = match copied {
        Ok(done) => done,
        Err(e) => {
            // Nothing is queued; what was copied goes.
            let _ = ctx.store.drop_chunks(&job_id);
            return Err(e);
        }
    };
    let pkg = FilePackage {
        name: if name.is_empty() { "package" } else { name }.to_string(),
        total_size: size,
        chunk_count: size.div_ceil(chunk_bytes as u64) as u32,
        chunk_size: chunk_bytes as u32,
        sha256: sha.clone(),
    };
    let chunk_count = pkg.chunk_count;
    let mut job = Job::new(
        id.site_code,
        dest.clone(),
        Priority::Low,
        Payload::File(pkg),
    );
    job.id = job_id;
    if let Err(e) = ctx.store.enqueue_written_file(&hop, &job) {
        let _ = ctx.store.drop_chunks(&job_id);
        return Err(e.into());
    }
    ctx.store.durable().await?;
    scheduler::ensure_link(ctx, &hop).wake.notify_one();
    Ok(PackageSent {
        job_id: job.id,
        size_bytes: size,
        chunk_count,
        sha256_hex: hex::encode(sha),
    })
}

/// One piece of a package copied into the store at a time.
const COPY_PIECE: usize = 1 << 20;

/// Copies a package's bytes from its source into the package store under
/// `id`, hashing them on the way: (size, SHA-256).
fn copy_into_store(ctx: &Ctx, id: &Uuid, source: PackageSource) -> Result<(u64, Vec<u8>), Refused> {
    use std::io::Read;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; COPY_PIECE];
    let mut size: u64 = 0;
    match source {
        PackageSource::Path(p) => {
            let path = package_source(&ctx.data_dir, &p)?;
            let cannot = |e: std::io::Error| {
                Refused::Invalid(format!("cannot read {}: {e}", path.display()))
            };
            let mut f = std::fs::File::open(&path).map_err(cannot)?;
            loop {
                let n = f.read(&mut buf).map_err(cannot)?;
                if n == 0 {
                    break;
                }
                if size + n as u64 > MAX_PACKAGE_BYTES {
                    return Err(Refused::Invalid(format!(
                        "{} grew past 1 GiB while it was read; a package is at most 1 GiB",
                        path.display()
                    )));
                }
                h.update(&buf[..n]);
                ctx.store.write_package(id, size, &buf[..n])?;
                size += n as u64;
            }
        }
        PackageSource::Random(total) if total > 0 && total <= MAX_PACKAGE_BYTES => {
            while size < total {
                let n = (total - size).min(COPY_PIECE as u64) as usize;
                rand::rng().fill_bytes(&mut buf[..n]);
                h.update(&buf[..n]);
                ctx.store.write_package(id, size, &buf[..n])?;
                size += n as u64;
            }
        }
        PackageSource::Random(_) => {
            return Err(Refused::Invalid(
                "give a source path or a size between 1 byte and 1 GiB".into(),
            ))
        }
    }
    if size == 0 {
        return Err(Refused::Invalid(
            "the package is empty; there is nothing to send".into(),
        ));
    }
    Ok((size, h.finalize().to_vec()))
}

/// `status-load`: checks the request, then runs the load generator.
pub async fn generate_status_load(
    ctx: &Ctx,
    count: u32,
    per_second: u32,
    tag: &str,
) -> Result<crate::status_manager::LoadRun, Refused> {
    installed(ctx)?;
    if count == 0 || count > 10_000_000 {
        return Err(Refused::Invalid(
            "count must be between 1 and 10000000".into(),
        ));
    }
    if per_second == 0 || per_second > 1_000_000 {
        return Err(Refused::Invalid(
            "per_second must be between 1 and 1000000".into(),
        ));
    }
    if count as u64 > per_second as u64 * 3600 {
        return Err(Refused::Invalid(
            "a load test lasts at most one hour (count / per_second <= 3600)".into(),
        ));
    }
    if tag.len() > 64 {
        return Err(Refused::Invalid("the tag is at most 64 characters".into()));
    }
    let tag = if tag.is_empty() {
        Uuid::now_v7().to_string()
    } else {
        tag.to_string()
    };
    crate::status_manager::generate_load(ctx, count, per_second, tag)
        .await
        .map_err(|e| Refused::Precondition(format!("{e:#}")))
}

/// `submit-ct1`: puts a CT1 in this site's own inbox, as if it had arrived
/// (the Site Configuration Manager validates it, and a bad one goes to the
/// bad box). Returns (site, base serial, the serial it would make).
pub async fn submit_ct1(ctx: &Ctx, ct1: Ct1) -> Result<(SiteCode, u64, u64), Refused> {
    let id = installed(ctx)?;
    let base = ct1.base_serial;
    crate::site_config::queue_own_ct1(ctx, &id, ct1).await?;
    ctx.scm.wake();
    Ok((id.site_code, base, base + 1))
}

/// Asked by the parent that deletes this site: no more ID ranges, ever;
/// returns the next unique ID, which the parent keeps.
pub async fn prepare_delete(ctx: &Ctx, site: &str) -> Result<u64, Refused> {
    let id = installed(ctx)?;
    if site != id.site_code.as_str() {
        return Err(Refused::Invalid(format!("this is site {}", id.site_code)));
    }
    ctx.store.freeze_ids()?;
    ctx.store.durable().await?;
    let floor = ctx.config().map(|c| c.next_unique_id).unwrap_or(1);
    let next = ctx.store.next_unique_id(floor)?;
    tracing::warn!(
        next,
        "the parent is deleting this site: no more ID ranges are granted"
    );
    Ok(next)
}

/// Most IDs one `allocate-id` call takes.
pub const MAX_ALLOCATE: u32 = 100_000;

/// `allocate-id` on a logon server: the IDs and their SMS form (site code
/// and eight digits).
pub async fn allocate_ids(ctx: &Arc<Ctx>, count: u32) -> Result<(Vec<u64>, Vec<String>), Refused> {
    if count == 0 || count > MAX_ALLOCATE {
        return Err(Refused::Invalid(format!(
            "count must be between 1 and {MAX_ALLOCATE}"
        )));
    }
    let ids = crate::logon::allocate(ctx, count as usize)
        .await
        .map_err(Refused::Precondition)?;
    let site = crate::logon::describe(ctx).site_code;
    let sms_ids = ids.iter().map(|n| sms_unique_id(&site, *n)).collect();
    Ok((ids, sms_ids))
}

/// An SMS unique ID as clients saw it: the site code, then eight digits.
pub fn sms_unique_id(site: &str, n: u64) -> String {
    format!("{site}{n:08}")
}

/// A logon server of this site asks for a new ID range.
pub async fn request_id_range(
    ctx: &Arc<Ctx>,
    site: &str,
    node_id: &str,
) -> Result<(u64, u64), Refused> {
    let id = installed(ctx)?;
    if site != id.site_code.as_str() {
        return Err(Refused::Invalid(format!(
            "this is site {}, not {site}",
            id.site_code
        )));
    }
    crate::logon::grant_range(ctx, node_id)
        .await
        .map_err(Refused::Denied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_unique_ids_are_the_site_code_and_eight_digits() {
        assert_eq!(sms_unique_id("PRI", 7), "PRI00000007");
        assert_eq!(sms_unique_id("S01", 12_345_678), "S0112345678");
        // Past eight digits the number is not cut.
        assert_eq!(sms_unique_id("S01", 123_456_789), "S01123456789");
    }
}
