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
            self.inner
                .chunks
                .insert(Self::chunk_key(&job.id, i as u32), c)?;
        }
        self.enqueue(hop, job)?;
        Ok(())
    }

    /// Frees chunks that belong to no queued, failed or received package.
    /// Returns the number of packages whose chunks were dropped.
    pub fn drop_orphan_chunks(&self) -> Result<usize> {
        let mut owners = std::collections::HashSet::new();
        for tree in [&self.inner.outbox, &self.inner.failed] {
            for v in tree.iter().values() {
                let v = v?;
                let job = if std::ptr::eq(tree, &self.inner.failed) {
                    dec::<FailedJob>(&v)?.job
                } else {
                    dec::<Job>(&v)?
                };
                if matches!(job.payload, Payload::File(_)) {
                    owners.insert(job.id);
                }
            }
        }
        for k in self.inner.packages.iter().keys() {
            if let Ok(id) = Uuid::from_slice(&k?) {
                owners.insert(id);
            }
        }
        let mut orphans = std::collections::HashSet::new();
        for k in self.inner.chunks.iter().keys() {
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
        Ok(self
            .inner
            .chunks
            .get(Self::chunk_key(id, index))?
            .map(|v| v.to_vec()))
    }

    /// Frees the chunks of a package once it has left this node for good.
    pub fn drop_chunks(&self, id: &Uuid) -> Result<()> {
        let mut batch = sled::Batch::default();
        for k in self.inner.chunks.scan_prefix(id.as_bytes()).keys() {
            batch.remove(k?);
        }
        self.inner.chunks.apply_batch(batch)?;
        Ok(())
    }

    pub fn packages(&self) -> Result<Vec<ReceivedPackage>> {
        self.inner
            .packages
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    pub fn package(&self, id: &Uuid) -> Result<Option<ReceivedPackage>> {
        Self::get(&self.inner.packages, id.as_bytes())
    }
}
