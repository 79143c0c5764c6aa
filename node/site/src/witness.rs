//! The site witness: a small file beside the store that says which site
//! this data dir holds, which store it belongs to, and the highest site
//! control serial applied. At start it is checked against the store, so a
//! store that was deleted, emptied, replaced or rolled back (a damaged or
//! truncated file, a restored backup) is refused with the reason, instead
//! of starting silently as a bare node that takes an install from anyone,
//! or as a site with old site control.
//!
//! Written atomically (write, fsync, rename, fsync the directory) after
//! the store's own commit, so a crash between the two leaves the witness
//! behind the store, never ahead of it.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use sms_types::*;

/// The witness file's name in the data dir.
pub const WITNESS_FILE: &str = "site.witness";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    pub site_code: SiteCode,
    /// The store's permanent node id (a new store gets a new one).
    pub node_id: Uuid,
    /// The highest site control serial applied (0: none yet).
    pub ct0_serial: u64,
}

/// Reads the witness; None when there is none (a bare node, or a data dir
/// from before witnesses).
pub fn read(data_dir: &Path) -> std::io::Result<Option<Witness>> {
    match std::fs::read(data_dir.join(WITNESS_FILE)) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{WITNESS_FILE} is damaged: {e}"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the witness durably and atomically.
pub fn write(data_dir: &Path, w: &Witness) -> std::io::Result<()> {
    let tmp = data_dir.join(format!("{WITNESS_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(w).expect("a witness serialises"))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, data_dir.join(WITNESS_FILE))?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// Removes the witness (the site install is being removed on purpose).
pub fn remove(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(data_dir.join(WITNESS_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => std::fs::File::open(data_dir)?.sync_all(),
    }
}

/// What the store holds, to check against the witness.
pub struct Found<'a> {
    pub node_id: Uuid,
    pub identity: Option<&'a Identity>,
    pub ct0_serial: u64,
}

/// Checks the store against the witness; the error says what is wrong.
pub fn check(w: Option<&Witness>, found: &Found) -> Result<(), String> {
    let Some(w) = w else { return Ok(()) };
    if found.node_id != w.node_id {
        return Err(format!(
            "the store is not the one that held site {} (its node id is {}, the witness names {}): \
             it was deleted, emptied or replaced",
            w.site_code, found.node_id, w.node_id
        ));
    }
    let Some(id) = found.identity else {
        return Err(format!(
            "this data dir held site {}, but its store holds no site: the store lost its contents",
            w.site_code
        ));
    };
    if id.site_code != w.site_code {
        return Err(format!(
            "this data dir held site {}, but its store holds site {}",
            w.site_code, id.site_code
        ));
    }
    if found.ct0_serial < w.ct0_serial {
        return Err(format!(
            "site {}'s store is at site control serial {}, but serial {} had been applied: \
             the store was rolled back (a damaged or truncated file, or an old copy)",
            w.site_code, found.ct0_serial, w.ct0_serial
        ));
    }
    Ok(())
}

/// The refusal an operator sees: the problem, then the ways out.
pub fn refusal(data_dir: &Path, w: &Witness, problem: &str) -> String {
    format!(
        "refusing to start: {problem}. Nothing was changed. Restore {dir} from a backup \
         (taken at site control serial {serial} or later); or, to start this server over, \
         move {dir} aside and start a bare node there: at the parent, `controller upgrade-site \
         --site {site}` installs the site again, or `controller delete-site --site {site}` \
         removes it",
        dir = data_dir.display(),
        serial = w.ct0_serial,
        site = w.site_code,
    )
}

/// Records in the witness that `ctx`'s site is installed here with site
/// control at `serial` (called after the store's commit).
pub fn record(ctx: &crate::Ctx, serial: u64) -> std::io::Result<()> {
    let Some(id) = ctx.identity() else {
        return Ok(());
    };
    write(
        &ctx.data_dir,
        &Witness {
            site_code: id.site_code,
            node_id: ctx.node_id,
            ct0_serial: serial,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(code: &str) -> Identity {
        Identity {
            site_code: code.parse().unwrap(),
            site_name: "n".into(),
            kind: SiteKind::Secondary,
            parent: None,
            installed_unix_ms: 0,
            version: "v".into(),
            ancestors: vec![],
        }
    }

    fn witness(node: Uuid, serial: u64) -> Witness {
        Witness {
            site_code: "S01".parse().unwrap(),
            node_id: node,
            ct0_serial: serial,
        }
    }

    #[test]
    fn a_store_matching_its_witness_passes() {
        let n = Uuid::now_v7();
        let id = identity("S01");
        let found = Found {
            node_id: n,
            identity: Some(&id),
            ct0_serial: 5,
        };
        assert_eq!(check(Some(&witness(n, 5)), &found), Ok(()));
        assert_eq!(check(Some(&witness(n, 4)), &found), Ok(()), "ahead is fine");
        assert_eq!(check(None, &found), Ok(()), "no witness: nothing to check");
    }

    #[test]
    fn a_deleted_or_emptied_store_is_refused() {
        let n = Uuid::now_v7();
        let fresh = Found {
            node_id: Uuid::now_v7(),
            identity: None,
            ct0_serial: 0,
        };
        let e = check(Some(&witness(n, 5)), &fresh).unwrap_err();
        assert!(e.contains("deleted, emptied or replaced"), "{e}");
        let emptied = Found {
            node_id: n,
            identity: None,
            ct0_serial: 0,
        };
        let e = check(Some(&witness(n, 5)), &emptied).unwrap_err();
        assert!(e.contains("holds no site"), "{e}");
    }

    #[test]
    fn a_rolled_back_store_is_refused_with_both_serials() {
        let n = Uuid::now_v7();
        let id = identity("S01");
        let found = Found {
            node_id: n,
            identity: Some(&id),
            ct0_serial: 1,
        };
        let e = check(Some(&witness(n, 5)), &found).unwrap_err();
        assert!(e.contains("serial 1") && e.contains("serial 5"), "{e}");
        let other = identity("S02");
        let swapped = Found {
            identity: Some(&other),
            ..found
        };
        assert!(check(Some(&witness(n, 1)), &swapped).is_err());
    }

    #[test]
    fn the_witness_round_trips_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let w = witness(Uuid::now_v7(), 3);
        write(dir.path(), &w).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(w));
        std::fs::write(dir.path().join(WITNESS_FILE), b"{garbage").unwrap();
        assert!(read(dir.path()).is_err());
        remove(dir.path()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        remove(dir.path()).unwrap();
    }

    #[test]
    fn the_refusal_names_the_problem_and_the_ways_out() {
        let w = witness(Uuid::now_v7(), 7);
        let r = refusal(Path::new("/data/s01"), &w, "the store lost its contents");
        assert!(r.contains("refusing to start: the store lost its contents"));
        assert!(r.contains("serial 7") && r.contains("upgrade-site --site S01"));
        assert!(r.contains("delete-site --site S01") && r.contains("/data/s01"));
    }
}
