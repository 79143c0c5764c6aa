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
        let i = &self.inner;
        let trees = (
            &i.seen,
            &i.sitectrl_inbox,
            &i.hman_inbox,
            &i.status_inbox,
            &i.outbox,
            &i.probes,
            &i.chunks,
            &i.packages,
        );
        let out = trees
            .transaction(|(seen, sc, hm, st, ob, pr, ch, pk)| {
                let mut out = Vec::with_capacity(batch.len());
                for (job, delivery) in batch {
                    let outcome = despool_one(job, delivery, seen, [sc, hm, st], ob, pr, ch, pk)?;
                    out.push(outcome);
                }
                Ok(out)
            })
            .map_err(txn_err)?;
        Ok(out)
    }

    /// Counts probes stored by [`Store::despool`], once they are durable
    /// (a count polled during a transfer then includes the last flush).
    pub fn probes_durable(&self, n: usize) {
        self.inner
            .probes_received
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn probe_count(&self) -> usize {
        self.inner.probes_received.load(Ordering::Relaxed) as usize
    }

    /// Every received probe, with its payload's size.
    pub fn probes(&self) -> Result<Vec<(ReceivedProbe, usize)>> {
        self.inner
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
        for kv in self.inner.seen.iter() {
            let (k, v) = kv?;
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[..8.min(v.len())]);
            if u64::from_be_bytes(b) < before_ms {
                self.inner.seen.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Number of job ids the despooler remembers.
    pub fn seen_len(&self) -> usize {
        self.inner.seen.len()
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
    chunks: &TransactionalTree,
    packages: &TransactionalTree,
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
            // chunk is really there: after a power cut sled can keep the
            // package record and lose the chunk's blob, and this resend is
            // then the only copy left.
            let key = Store::chunk_key(&job.id, *index);
            if chunks.get(key)?.is_none() {
                chunks.insert(&key, data.as_slice())?;
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
        chunks.insert(&Store::chunk_key(&job.id, *index), data.as_slice())?;
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
