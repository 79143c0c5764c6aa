//! Logon server records and the SMS unique ID counter.

#[allow(unused_imports)]
use crate::prelude::*;

impl Store {
    fn logon_key(domain: &str, server: &str) -> Vec<u8> {
        [
            domain.to_ascii_lowercase().as_bytes(),
            &[0],
            server.as_bytes(),
        ]
        .concat()
    }

    pub fn logon_records(&self) -> Result<Vec<LogonRecord>> {
        self.inner()?
            .logon_servers
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    pub fn put_logon_record(&self, r: &LogonRecord) -> Result<()> {
        self.inner()?
            .logon_servers
            .insert(Self::logon_key(&r.domain, &r.server), enc(r))?;
        Ok(())
    }

    pub fn remove_logon_record(&self, domain: &str, server: &str) -> Result<()> {
        self.inner()?
            .logon_servers
            .remove(Self::logon_key(domain, server))?;
        Ok(())
    }

    /// The site's next SMS unique ID (never below `floor`, the CT0's value).
    pub fn next_unique_id(&self, floor: u64) -> Result<u64> {
        Ok(Self::get::<u64>(&self.inner()?.meta, META_UNIQUE_ID)?
            .unwrap_or(0)
            .max(floor)
            .max(1))
    }

    /// Takes the next `size` IDs of the site's counter. Flush before
    /// handing the range out: a range is never given twice.
    pub fn allocate_range(&self, size: u64, floor: u64) -> Result<(u64, u64)> {
        // Atomic: concurrent callers (stage 3 installs, range requests)
        // never get the same range.
        let next = self.inner()?.meta.update_and_fetch(META_UNIQUE_ID, |old| {
            let cur = old
                .and_then(|b| postcard::from_bytes::<u64>(b).ok())
                .unwrap_or(0);
            Some(enc(&(cur.max(floor).max(1) + size)))
        })?;
        let end: u64 = dec(&next.expect("just written"))?;
        Ok((end - size, end))
    }

    /// Set when the parent starts deleting this site: no more ID ranges.
    pub fn ids_frozen(&self) -> Result<bool> {
        Ok(self.inner()?.meta.get(META_IDS_FROZEN)?.is_some())
    }

    pub fn freeze_ids(&self) -> Result<()> {
        self.inner()?.meta.insert(META_IDS_FROZEN, &[1u8])?;
        Ok(())
    }

    pub fn logon_install(&self) -> Result<Option<LogonInstall>> {
        Self::get(&self.inner()?.meta, META_LOGON)
    }

    pub fn set_logon_install(&self, l: Option<&LogonInstall>) -> Result<()> {
        Self::put_or_remove(&self.inner()?.meta, META_LOGON, l)
    }
}
