//! File package chunks and the packages received here.

#[allow(unused_imports)]
use crate::prelude::*;

impl Store {
    pub(crate) fn chunk_key(id: &Uuid, index: u32) -> [u8; 20] {
        let mut k = [0u8; 20];
        k[..16].copy_from_slice(id.as_bytes());
        k[16..].copy_from_slice(&index.to_be_bytes());
        k
    }

    /// Stores the chunks of a package this node originates, and its job.
    /// Chunks first, job last: a crash in between leaves chunks without a
    /// job, which [`Store::drop_orphan_chunks`] frees at the next start.
    pub fn enqueue_file(&self, hop: &SiteCode, job: &Job, chunks: Vec<Vec<u8>>) -> Result<()> {
        for (i, c) in chunks.into_iter().enumerate() {
            self.cell.files.write(&job.id, i as u32, &c)?;
        }
        self.enqueue(hop, job)?;
        Ok(())
    }

    /// Frees chunks that belong to no queued or failed package, nor to one
    /// being received or kept here (a package passed on whose job left the
    /// outbox is freed: a crash came between its acknowledgement and its
    /// freeing). Returns the number of packages whose chunks were dropped.
    pub fn drop_orphan_chunks(&self) -> Result<usize> {
        let inner = self.inner()?;
        let mut owners = std::collections::HashSet::new();
        for tree in [&inner.outbox, &inner.failed] {
            for v in tree.iter().values() {
                let v = v?;
                let job = if std::ptr::eq(tree, &inner.failed) {
                    dec::<FailedJob>(&v)?.job
                } else {
                    dec::<Job>(&v)?
                };
                if matches!(job.payload, Payload::File(_)) {
                    owners.insert(job.id);
                }
            }
        }
        // Kept here: being received, or received for this site (listed
        // for retention, or from before that list existed).
        let me = self.identity()?.map(|i| i.site_code);
        for v in inner.packages.iter().values() {
            let rec: ReceivedPackage = dec(&v?)?;
            if !rec.complete
                || Some(&rec.dest) == me.as_ref()
                || inner
                    .packages_completed
                    .contains_key(rec.job_id.as_bytes())?
            {
                owners.insert(rec.job_id);
            }
        }
        let mut orphans = std::collections::HashSet::new();
        for id in self.cell.files.ids()? {
            if !owners.contains(&id) {
                orphans.insert(id);
            }
        }
        for k in inner.chunks.iter().keys() {
            let k = k?;
            if let Ok(id) = Uuid::from_slice(&k[..16]) {
                if !owners.contains(&id) {
                    orphans.insert(id);
                }
            }
        }
        for id in &orphans {
            self.drop_chunks(id)?;
        }
        Ok(orphans.len())
    }

    pub fn chunk(&self, id: &Uuid, index: u32) -> Result<Option<Vec<u8>>> {
        if let Some(c) = self.cell.files.read(id, index)? {
            return Ok(Some(c));
        }
        // A chunk stored in sled by an older build.
        Ok(self
            .inner()?
            .chunks
            .get(Self::chunk_key(id, index))?
            .map(|v| v.to_vec()))
    }

    /// Frees the chunks of a package once it has left this node for good
    /// (its space is back on return).
    pub fn drop_chunks(&self, id: &Uuid) -> Result<()> {
        self.cell.files.remove(id)?;
        let inner = self.inner()?;
        for k in inner.chunks.scan_prefix(id.as_bytes()).keys() {
            inner.chunks.remove(k?)?;
        }
        Ok(())
    }

    /// Bytes of chunks held for one package.
    pub fn package_bytes(&self, id: &Uuid) -> u64 {
        self.cell.files.size(id)
    }

    /// Packages whose destination is this site, completed here, with when
    /// (by this site's clock), oldest first.
    pub fn completed_packages(&self) -> Result<Vec<(Uuid, u64)>> {
        let mut out: Vec<(Uuid, u64)> = self
            .inner()?
            .packages_completed
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let id = Uuid::from_slice(&k).unwrap_or_default();
                let mut b = [0u8; 8];
                b.copy_from_slice(&v[..8.min(v.len())]);
                Ok((id, u64::from_be_bytes(b)))
            })
            .collect::<Result<_>>()?;
        out.sort_by_key(|(id, t)| (*t, *id));
        Ok(out)
    }

    /// Removes a received package: its chunks, its record and its place in
    /// the retention order (the retention policy's decision, made by the
    /// caller).
    pub fn expire_package(&self, id: &Uuid) -> Result<()> {
        let inner = self.inner()?;
        inner.packages_completed.remove(id.as_bytes())?;
        inner.packages.remove(id.as_bytes())?;
        self.drop_chunks(id)
    }

    pub fn packages(&self) -> Result<Vec<ReceivedPackage>> {
        self.inner()?
            .packages
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    pub fn package(&self, id: &Uuid) -> Result<Option<ReceivedPackage>> {
        Self::get(&self.inner()?.packages, id.as_bytes())
    }
}
