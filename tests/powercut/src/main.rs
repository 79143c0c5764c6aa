//! `sms-powercut`: the power-cut filesystem from the command line, and the
//! helpers the sled negative control runs in a process of their own (so a
//! cut can kill them like it kills a node).
//!
//! ```text
//! sms-powercut mount BACKING MOUNTPOINT [--posix]
//!     serve the filesystem; on stdin, `cut` cuts the power, `remount`
//!     powers up again, `stats` prints counters; EOF unmounts
//! sms-powercut sled-writer DIR BASE EXTRA flush|fdatasync
//!     open sled in DIR; write BASE keys and make them durable (flush,
//!     fdatasync of DIR/db, fsync of DIR and its parent); print `BASE`;
//!     write EXTRA keys, sled flush, and with `fdatasync` also the syncs;
//!     print `ACKED` and wait to be killed
//! sms-powercut sled-count DIR
//!     print how many base and extra keys the sled db in DIR holds
//! sms-powercut sled-chunks DIR
//!     list a node store's file package chunks: job id, index, length
//! ```

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sms_powercut::{Mount, Namespace};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["mount", backing, mnt, rest @ ..] => {
            let ns = if rest.contains(&"--posix") {
                Namespace::Posix
            } else {
                Namespace::Linked
            };
            serve(Path::new(backing), Path::new(mnt), ns)
        }
        ["sled-writer", dir, base, extra, mode] => {
            let sync = match *mode {
                "fdatasync" => true,
                "flush" => false,
                other => bail!("mode is flush or fdatasync, not {other}"),
            };
            sled_writer(Path::new(dir), base.parse()?, extra.parse()?, sync)
        }
        ["sled-chunks", dir] => {
            // The node store's "chunks" tree: job id (16 bytes) + index.
            let db = open(Path::new(dir))?;
            for kv in db.open_tree("chunks")?.iter() {
                let (k, v) = kv?;
                let hex: String = k[..16].iter().map(|b| format!("{b:02x}")).collect();
                let index = u32::from_be_bytes(k[16..20].try_into()?);
                println!("{hex} {index} {}", v.len());
            }
            Ok(())
        }
        ["sled-count", dir] => {
            let db = open(Path::new(dir))?;
            let count = |prefix: &str| db.scan_prefix(prefix).count();
            println!("{} {}", count("base-"), count("extra-"));
            Ok(())
        }
        _ => bail!("usage: see the documentation at the top of src/main.rs"),
    }
}

fn serve(backing: &Path, mnt: &Path, ns: Namespace) -> anyhow::Result<()> {
    let mut m = Mount::new(backing, mnt, ns).context("mounting")?;
    eprintln!(
        "mounted at {} ({ns:?}); commands: cut, remount, stats",
        mnt.display()
    );
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "cut" => eprintln!("cut: {:?}", m.cut()),
            "remount" => {
                m.remount()?;
                eprintln!("remounted");
            }
            "stats" => eprintln!("{:?}", m.stats()),
            "" => {}
            other => eprintln!("unknown command {other:?}"),
        }
    }
    Ok(())
}

fn open(dir: &Path) -> anyhow::Result<sled::Db> {
    Ok(sled::Config::new().path(dir).flush_every_ms(None).open()?)
}

/// What the store does after sled's flush (node/store/src/log_sync.rs),
/// plus the data dir itself, which this helper creates.
fn full_sync(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir.join("db"))?.sync_data()?;
    std::fs::File::open(dir)?.sync_all()?;
    let parent: PathBuf = dir.parent().context("dir has a parent")?.into();
    std::fs::File::open(parent)?.sync_all()?;
    Ok(())
}

fn sled_writer(dir: &Path, base: u32, extra: u32, sync: bool) -> anyhow::Result<()> {
    let db = open(dir)?;
    for i in 0..base {
        db.insert(format!("base-{i:06}"), vec![b'b'; 100])?;
    }
    db.flush()?;
    full_sync(dir)?;
    println!("BASE");
    for i in 0..extra {
        db.insert(format!("extra-{i:06}"), vec![b'e'; 100])?;
    }
    // What a caller of sled alone would take as "durable".
    db.flush()?;
    if sync {
        full_sync(dir)?;
    }
    println!("ACKED");
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}
