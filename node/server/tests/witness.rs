//! A store that was deleted, emptied or rolled back is refused at start
//! with the reason and the ways out, and nothing is changed; it never
//! starts as a bare node or with old site control.

use std::path::Path;

use sms_proto::v1 as pb;

mod common;

use common::*;

async fn bump_polling_interval(node: &sms_server::Node, ms: u64) {
    admin(node)
        .await
        .change_site_control(pb::ChangeSiteControlRequest {
            polling_interval_ms: Some(ms),
            ..Default::default()
        })
        .await
        .unwrap();
    let want = ms;
    wait_for("the change applied", WAIT, || async {
        let c = node.ctx.config().unwrap();
        (c.polling_interval_ms == want)
            .then_some(())
            .ok_or(format!("serial {}", c.serial))
    })
    .await;
}

async fn refused(dir: &Path) -> String {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await;
    let err = start_with(central(dir), listener, sms_server::Connector::default())
        .await
        .expect_err("the node must refuse to start");
    format!("{err:#}")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_emptied_store_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pri");
    let pri = start(central(&data)).await;
    stop("PRI", pri).await;

    // Deleted: refused, and no empty store is created in its place.
    std::fs::rename(data.join("db"), dir.path().join("db.saved")).unwrap();
    let e = refused(&data).await;
    assert!(e.contains("held site PRI") && e.contains("is gone"), "{e}");
    assert!(e.contains("upgrade-site --site PRI"), "{e}");
    assert!(!data.join("db").exists(), "a store was created");

    // Emptied log: refused too.
    std::fs::create_dir_all(data.join("db")).unwrap();
    std::fs::write(data.join("db").join("db"), b"").unwrap();
    let e = refused(&data).await;
    assert!(e.contains("is empty"), "{e}");

    // Put back: it starts as PRI again.
    std::fs::remove_dir_all(data.join("db")).unwrap();
    std::fs::rename(dir.path().join("db.saved"), data.join("db")).unwrap();
    let pri = start(central(&data)).await;
    assert_eq!(pri.ctx.site_code().unwrap().as_str(), "PRI");
    stop("PRI", pri).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_store_is_refused_with_both_serials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pri");
    let pri = start(central(&data)).await;
    stop("PRI", pri).await;
    copy_dir(&data.join("db"), &dir.path().join("old-db"));

    let pri = start(central(&data)).await;
    bump_polling_interval(&pri, 2_000).await;
    bump_polling_interval(&pri, 3_000).await;
    let serial = pri.ctx.config().unwrap().serial;
    assert_eq!(serial, 3);
    stop("PRI", pri).await;

    // An old copy of the store comes back (a restored backup, or a damaged
    // log that sled reads only up to serial 1).
    std::fs::remove_dir_all(data.join("db")).unwrap();
    copy_dir(&dir.path().join("old-db"), &data.join("db"));
    let e = refused(&data).await;
    assert!(
        e.contains("serial 1") && e.contains("serial 3 had been applied"),
        "{e}"
    );
}
