//! File packages give their space back: sent across a three-site chain
//! (S11 → P01 → PRI), each package is freed at the source and at the middle
//! once the next hop has all of it, while the destination keeps it until
//! its retention policy lets it go. Measured as the data dirs' size on disk.

use std::path::Path;
use std::time::{Duration, Instant};

use sms_proto::v1 as pb;
use sms_server::{Node, NodeConfig};

mod common;

use common::*;

const MIB: u64 = 1024 * 1024;
const PACKAGES: u64 = 5;
const PACKAGE_BYTES: u64 = 8 * MIB;

/// Bytes the files under `p` take on disk.
fn disk_usage(p: &Path) -> u64 {
    let mut n = 0;
    let Ok(entries) = std::fs::read_dir(p) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            n += disk_usage(&e.path());
        } else {
            n += std::os::unix::fs::MetadataExt::blocks(&m) * 512;
        }
    }
    n
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

/// PRI, P01 below it, and S11 (a secondary) below P01.
async fn chain(dir: &Path) -> (Node, Node, Node) {
    let pri = start(central(&dir.join("pri"))).await;
    let p01 = start(NodeConfig {
        install_primary: Some(code("P01")),
        parent_site: Some(code("PRI")),
        parent: Some(pri.local_addr.to_string()),
        ..config(&dir.join("p01"))
    })
    .await;
    let bare = start(config(&dir.join("s11"))).await;
    let (cpri, cp01) = (admin(&pri).await, admin(&p01).await);
    wait_active("PRI", &cpri, "P01").await;
    cp01.clone()
        .create_secondary(pb::CreateSecondaryRequest {
            site_code: "S11".into(),
            server: bare.local_addr.to_string(),
            sever_link_mid_bootstrap: false,
            site_name: String::new(),
        })
        .await
        .expect("create_secondary S11 at P01");
    wait_active("P01", &cp01, "S11").await;
    wait_active("PRI", &cpri, "S11").await;
    (pri, p01, bare)
}

async fn packages(c: &Admin) -> Vec<pb::ReceivedPackage> {
    c.clone()
        .list_packages(pb::ListPackagesRequest {})
        .await
        .expect("list_packages")
        .into_inner()
        .packages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_are_freed_at_every_hop_and_kept_at_the_destination() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (pri, p01, s11) = chain(dir.path()).await;
    let (cpri, cs11) = (admin(&pri).await, admin(&s11).await);
    let du = |who: &str| disk_usage(&dir.path().join(who));
    let base = [du("s11"), du("p01"), du("pri")];

    let mut sent = std::collections::HashMap::new();
    for i in 0..PACKAGES {
        let r = cs11
            .clone()
            .send_package(pb::SendPackageRequest {
                to: "PRI".into(),
                name: format!("pkg{i}"),
                source_path: String::new(),
                size_bytes: PACKAGE_BYTES,
                chunk_bytes: 0,
            })
            .await
            .expect("send_package")
            .into_inner();
        sent.insert(r.job_id, r.sha256);
    }
    eprintln!(
        "S11 holds {:.1} MiB once the packages are queued",
        mib(du("s11"))
    );
    wait_for(
        &format!("{PACKAGES} complete packages at PRI"),
        Duration::from_secs(60),
        || async {
            let got = packages(&cpri).await;
            let done = got.iter().filter(|p| p.complete).count() as u64;
            if done == PACKAGES {
                Ok(got)
            } else {
                Err(format!("{done} complete"))
            }
        },
    )
    .await
    .iter()
    .for_each(|p| {
        assert_eq!(
            sent.get(&p.job_id),
            Some(&p.sha256),
            "{} arrived whole",
            p.name
        )
    });

    let total = PACKAGES * PACKAGE_BYTES;
    // The source and the middle give everything back once the next hop has
    // it (a little slack for sled's own log and records).
    let slack = 4 * MIB;
    let freed = wait_for(
        "the source and the middle to shrink back",
        Duration::from_secs(30),
        || async {
            let now = [du("s11"), du("p01")];
            if now[0] <= base[0] + slack && now[1] <= base[1] + slack {
                Ok(now)
            } else {
                Err(format!(
                    "S11 {:.1} MiB (from {:.1}), P01 {:.1} MiB (from {:.1})",
                    mib(now[0]),
                    mib(base[0]),
                    mib(now[1]),
                    mib(base[1])
                ))
            }
        },
    )
    .await;
    let kept = du("pri");
    eprintln!(
        "data dirs, MiB (before -> after {PACKAGES} x {} MiB): S11 {:.1} -> {:.1}, P01 {:.1} -> {:.1}, PRI {:.1} -> {:.1}",
        PACKAGE_BYTES / MIB,
        mib(base[0]),
        mib(freed[0]),
        mib(base[1]),
        mib(freed[1]),
        mib(base[2]),
        mib(kept)
    );
    assert!(
        kept >= base[2] + total,
        "the destination keeps what it received: {:.1} -> {:.1} MiB",
        mib(base[2]),
        mib(kept)
    );

    // The retention policy decides at the destination: with the default
    // (30 days, 10 GiB) nothing goes; with nothing allowed, all of it.
    assert!(sms_site::retention::apply(&pri.ctx).unwrap().is_empty());
    *pri.ctx.package_retention.lock().unwrap() = sms_site::retention::PackageRetention {
        keep: Duration::ZERO,
        max_bytes: 0,
        min_keep: Duration::ZERO,
    };
    assert_eq!(
        sms_site::retention::apply(&pri.ctx).unwrap().len() as u64,
        PACKAGES
    );
    let after = du("pri");
    assert!(
        after + total <= kept,
        "expired packages gave their space back: {:.1} -> {:.1} MiB",
        mib(kept),
        mib(after)
    );
    assert!(packages(&cpri).await.is_empty());

    drop((cpri, cs11));
    stop("S11", s11).await;
    stop("P01", p01).await;
    stop("PRI", pri).await;
    // Stopped, the space stays given back.
    assert!(du("s11") <= base[0] + slack && du("p01") <= base[1] + slack);
    eprintln!("test took {:.2?}", t0.elapsed());
}
