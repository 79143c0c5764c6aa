//! Received jobs: the despool transaction, deduplication by job id, probes.

#[allow(unused_imports)]
use crate::prelude::*;

/// Where the despooler puts a received job.
#[derive(Clone, Debug)]
pub enum Delivery {
    Inbox(Inbox),
    /// Route one hop on, keeping the job id.
    Forward(SiteCode),
    /// Test traffic addressed to this site.
    Probe,
    /// A chunk of a file package (destined here when `forward` is None).
    Chunk {
        index: u32,
        data: Vec<u8>,
        forward: Option<SiteCode>,
    },
}

/// What the despooler did with one received frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Despooled {
    Stored,
    Duplicate,
    /// Not stored, with the reason (the despooler words it for the peer).
    Refused(DespoolRefusal),
}

impl Store {
    /// Persists, deduplicates and delivers a batch of received jobs in one
    /// transaction: a job is either fully delivered and remembered, or not
    /// at all. The caller acknowledges after [`Store::durable`].
    pub fn despool(&self, batch: &[(Job, Delivery)]) -> Result<Vec<Despooled>> {
        let i = self.inner()?;
        let trees = (
            &i.seen,
            &i.sitectrl_inbox,
            &i.hman_inbox,
            &i.status_inbox,
            &i.outbox,
            &i.probes,
            &i.packages,
            &i.packages_completed,
        );
        let files = Chunks {
            files: &self.cell.files,
        };
        let out = trees
            .transaction(|(seen, sc, hm, st, ob, pr, pk, done)| {
                let mut out = Vec::with_capacity(batch.len());
                for (job, delivery) in batch {
                    let outcome = despool_one(
                        job,
                        delivery,
                        seen,
                        [sc, hm, st],
                        ob,
                        pr,
                        &files,
                        [pk, done],
                    )?;
                    out.push(outcome);
                }
                Ok(out)
            })
            .map_err(txn_err)
            .inspect_err(|e| {
                // A chunk file that cannot be written (a full disk), or sled
                // failing on its own: the store cannot take what peers
                // send, and says so until it can.
                if e.is_storage_fault() && !matches!(e, StoreError::Unavailable(_)) {
                    self.cell.fail(&e.to_string());
                }
            })?;
        Ok(out)
    }

    /// Counts probes stored by [`Store::despool`], once they are durable
    /// (a count polled during a transfer then includes the last flush).
    pub fn probes_durable(&self, n: usize) {
        self.cell
            .probes_received
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn probe_count(&self) -> usize {
        self.cell.probes_received.load(Ordering::Relaxed) as usize
    }

    /// Every received probe, with its payload's size.
    pub fn probes(&self) -> Result<Vec<(ReceivedProbe, usize)>> {
        self.inner()?
            .probes
            .iter()
            .values()
            .map(|v| {
                let v = v?;
                let (rec, rest) = postcard::take_from_bytes::<ReceivedProbe>(&v)?;
                Ok((rec, rest.len()))
            })
            .collect()
    }

    /// Forgets delivered job ids recorded before `before_ms`: a sender
    /// resends only within moments of a broken stream.
    pub fn prune_seen(&self, before_ms: u64) -> Result<usize> {
        let mut n = 0;
        for kv in self.inner()?.seen.iter() {
            let (k, v) = kv?;
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[..8.min(v.len())]);
            if u64::from_be_bytes(b) < before_ms {
                self.inner()?.seen.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Number of job ids the despooler remembers.
    pub fn seen_len(&self) -> usize {
        self.inner().map_or(0, |i| i.seen.len())
    }
}

/// Where received chunks go: the package's file in the package store (see
/// `package_files.rs`), each chunk at its place.
struct Chunks<'a> {
    files: &'a crate::package_files::PackageFiles,
}

impl Chunks<'_> {
    fn has(&self, id: &Uuid, (offset, len): (u64, usize)) -> bool {
        self.files.holds(id, offset, len)
    }

    /// Written before the record that counts it, and listed for the
    /// commit's sync (a transaction retried writes it again: same bytes).
    fn write(
        &self,
        id: &Uuid,
        (offset, _): (u64, usize),
        data: &[u8],
    ) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
        self.files
            .write_at(id, offset, data)
            .map_err(|e| ConflictableTransactionError::Abort(StoreError::Io(e)))
    }
}

#[allow(clippy::too_many_arguments)]
fn despool_one(
    job: &Job,
    delivery: &Delivery,
    seen: &TransactionalTree,
    inboxes: [&TransactionalTree; 3],
    outbox: &TransactionalTree,
    probes: &TransactionalTree,
    chunks: &Chunks<'_>,
    [packages, completed]: [&TransactionalTree; 2],
) -> std::result::Result<Despooled, ConflictableTransactionError<StoreError>> {
    let id = job.id.as_bytes();
    if let Delivery::Chunk {
        index,
        data,
        forward,
    } = delivery
    {
        let Payload::File(pkg) = &job.payload else {
            return Ok(Despooled::Refused(DespoolRefusal::ChunkWithoutPackage));
        };
        // The wire checked the layout and the chunk's length; a caller
        // inside the node gets the same answer.
        let place = match pkg.chunk_range(*index) {
            Some(place) if place.1 == data.len() && pkg.check_layout().is_ok() => place,
            _ => {
                return Ok(Despooled::Refused(DespoolRefusal::Unroutable(format!(
                    "chunk {index} of package {} does not fit the package's layout",
                    job.id
                ))))
            }
        };
        let mut rec: ReceivedPackage = match packages.get(id)? {
            Some(v) => dec(&v).map_err(ConflictableTransactionError::Abort)?,
            None => ReceivedPackage {
                job_id: job.id,
                package: pkg.clone(),
                source: job.source.clone(),
                dest: job.dest.clone(),
                priority: job.priority,
                created_unix_ms: job.created_unix_ms,
                chunks_received: 0,
                complete: false,
            },
        };
        if *index < rec.chunks_received {
            // A resend of a chunk already counted is a duplicate only if the
            // chunk is really there: had a power cut kept the package
            // record and lost the chunk's bytes, this resend would be the
            // only copy left.
            if !chunks.has(&job.id, place) {
                chunks.write(&job.id, place, data)?;
                return Ok(Despooled::Stored);
            }
            return Ok(Despooled::Duplicate);
        }
        if *index > rec.chunks_received {
            return Ok(Despooled::Refused(DespoolRefusal::ChunkOutOfOrder {
                package: job.id,
                index: *index,
                expected: rec.chunks_received,
            }));
        }
        chunks.write(&job.id, place, data)?;
        rec.chunks_received += 1;
        if rec.chunks_received == pkg.chunk_count {
            rec.complete = true;
            if let Some(hop) = forward {
                let key = OutboxKey {
                    hop: hop_bytes(hop),
                    priority: job.priority as u8,
                    seq: outbox.generate_id()?,
                };
                outbox.insert(&key.to_bytes(), enc(job))?;
            } else {
                // Kept here: retention counts from now, by this site's clock.
                completed.insert(id, &now_ms().to_be_bytes())?;
            }
        }
        packages.insert(id, enc(&rec))?;
        return Ok(Despooled::Stored);
    }
    // Checked before the job is remembered as seen: a refused job must not
    // turn its resend into a "duplicate".
    if matches!(delivery, Delivery::Probe) && !matches!(job.payload, Payload::Probe(_)) {
        return Ok(Despooled::Refused(DespoolRefusal::NotAProbe));
    }
    // One write that also tells whether the id was already there. A
    // repeat refreshes the time it is remembered from, which only keeps
    // it longer.
    if seen.insert(id, &now_ms().to_be_bytes())?.is_some() {
        return Ok(Despooled::Duplicate);
    }
    match delivery {
        Delivery::Inbox(inbox) => {
            let tree = match inbox {
                Inbox::SiteControl => inboxes[0],
                Inbox::Hierarchy => inboxes[1],
                Inbox::Status => inboxes[2],
            };
            let seq = tree.generate_id()?;
            tree.insert(&seq.to_be_bytes(), enc(job))?;
        }
        Delivery::Forward(hop) => {
            let key = OutboxKey {
                hop: hop_bytes(hop),
                priority: job.priority as u8,
                seq: outbox.generate_id()?,
            };
            outbox.insert(&key.to_bytes(), enc(job))?;
        }
        Delivery::Probe => {
            let arrival = probes.generate_id()?;
            let rec = ReceivedProbe {
                job_id: job.id,
                source: job.source.clone(),
                priority: job.priority,
                arrival,
                received_unix_us: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as u64)
                    .unwrap_or(0),
            };
            // The payload is kept too, as any delivered job's is: the
            // record, then the raw bytes (records written before payloads
            // were kept simply end after the record).
            let mut value = enc(&rec);
            if let Payload::Probe(data) = &job.payload {
                value.extend_from_slice(data);
            }
            probes.insert(&arrival.to_be_bytes(), value)?;
        }
        Delivery::Chunk { .. } => unreachable!("handled above"),
    }
    Ok(Despooled::Stored)
}
