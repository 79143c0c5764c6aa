//! File package chunks and the packages received here.

#[allow(unused_imports)]
use crate::prelude::*;

impl Store {
    /// Stores the bytes of a package this node originates in its package
    /// file, and its job (see [`Store::enqueue_written_file`]).
    pub fn enqueue_file(&self, hop: &SiteCode, job: &Job, content: &[u8]) -> Result<()> {
        self.write_package(&job.id, 0, content)?;
        self.enqueue_written_file(hop, job)
    }

    /// Writes bytes of a package this node originates at `offset` of its
    /// file, so a large package is copied in pieces, never held whole.
    pub fn write_package(&self, id: &Uuid, offset: u64, data: &[u8]) -> Result<()> {
        Ok(self.cell.files.write_at(id, offset, data)?)
    }

    /// Queues the job of a package whose bytes [`Store::write_package`]
    /// wrote, once the file holds exactly what the job describes. File
    /// first, job last: a crash in between leaves a file without a job,
    /// which [`Store::drop_orphan_chunks`] frees at the next start.
    pub fn enqueue_written_file(&self, hop: &SiteCode, job: &Job) -> Result<()> {
        let Payload::File(pkg) = &job.payload else {
            return Err(StoreError::Invalid(
                "only a file package has a package file".into(),
            ));
        };
        pkg.check_layout().map_err(StoreError::Invalid)?;
        let held = self.cell.files.size(&job.id);
        if held != pkg.total_size {
            return Err(StoreError::Invalid(format!(
                "the package holds {held} bytes, not the {} its description says",
                pkg.total_size
            )));
        }
        self.enqueue(hop, job)?;
        Ok(())
    }

    /// Frees package files that belong to no queued or failed package, nor
    /// to one being received or kept here (a package passed on whose job
    /// left the outbox is freed: a crash came between its acknowledgement
    /// and its freeing). Returns the number of packages dropped.
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
        let mut n = 0;
        for id in self.cell.files.ids()? {
            if !owners.contains(&id) {
                self.drop_chunks(&id)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// One chunk of a package from the package store, read in place; None
    /// if the store does not hold it.
    pub fn chunk(&self, id: &Uuid, pkg: &FilePackage, index: u32) -> Result<Option<Vec<u8>>> {
        let Some((offset, len)) = pkg.chunk_range(index) else {
            return Ok(None);
        };
        Ok(self.cell.files.read_at(id, offset, len)?)
    }

    /// A package's file, to read it whole (None if there is none).
    pub fn package_file(&self, id: &Uuid) -> Result<Option<std::fs::File>> {
        Ok(self.cell.files.open_read(id)?)
    }

    /// Frees a package's file once the package has left this node for good
    /// (its space is back on return).
    pub fn drop_chunks(&self, id: &Uuid) -> Result<()> {
        Ok(self.cell.files.remove(id)?)
    }

    /// Bytes held for one package.
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
