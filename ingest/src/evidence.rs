//! The per-device SHA-256 hash chain over raw payloads.
//!
//! Every accepted message is kept verbatim as evidence. Row `idx` (1, 2, ...) of a
//! device's chain stores `hash = SHA-256(prev_hash ‖ fields)`, with `prev_hash` of row 1
//! all zeros, so editing any stored field, deleting or reordering rows breaks the chain
//! from that point. Deleting the newest rows is caught against `evidence_heads`, which
//! the writer updates in the same transaction. This module is pure: the store feeds it
//! rows and it says where the chain breaks.

use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 digest.
pub type Hash = [u8; 32];

/// The `prev_hash` of the first row of every chain.
pub const GENESIS: Hash = [0u8; 32];

/// The fields of one evidence row that the hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFields<'a> {
    /// Device the chain belongs to.
    pub device_id: &'a str,
    /// Position in the chain, from 1.
    pub idx: i64,
    /// Lowest device sequence number in the message.
    pub seq_min: i64,
    /// Highest device sequence number in the message.
    pub seq_max: i64,
    /// Receive time as unix microseconds (the precision both databases keep).
    pub received_at_micros: i64,
    /// MQTT topic the message arrived on.
    pub topic: &'a str,
    /// The raw payload.
    pub payload: &'a [u8],
}

/// Hash of a row given the previous row's hash. Variable-length fields are length
/// prefixed so no two different rows hash the same input.
pub fn chain_hash(prev: &Hash, f: &EvidenceFields<'_>) -> Hash {
    let mut h = Sha256::new();
    h.update(b"geoward-evidence-v1");
    h.update(prev);
    h.update((f.device_id.len() as u64).to_be_bytes());
    h.update(f.device_id.as_bytes());
    h.update(f.idx.to_be_bytes());
    h.update(f.seq_min.to_be_bytes());
    h.update(f.seq_max.to_be_bytes());
    h.update(f.received_at_micros.to_be_bytes());
    h.update((f.topic.len() as u64).to_be_bytes());
    h.update(f.topic.as_bytes());
    h.update((f.payload.len() as u64).to_be_bytes());
    h.update(f.payload);
    h.finalize().into()
}

/// One stored row as read back for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvidence {
    /// Position in the chain.
    pub idx: i64,
    /// Lowest sequence number in the message.
    pub seq_min: i64,
    /// Highest sequence number in the message.
    pub seq_max: i64,
    /// Receive time, unix microseconds.
    pub received_at_micros: i64,
    /// Topic.
    pub topic: String,
    /// Raw payload.
    pub payload: Vec<u8>,
    /// Stored previous hash.
    pub prev_hash: Vec<u8>,
    /// Stored hash.
    pub hash: Vec<u8>,
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// A row is missing: the chain jumps from one index to a later one.
    #[error("row {expected} is missing (next stored row is {found})")]
    Missing {
        /// The index that should have come next.
        expected: i64,
        /// The index that came instead.
        found: i64,
    },
    /// A row's content does not match its hash (edited).
    #[error("row {idx} was altered: its content does not match its hash")]
    Altered {
        /// The row.
        idx: i64,
    },
    /// A row's stored previous hash does not match the row before it.
    #[error("row {idx} does not link to the row before it")]
    Unlinked {
        /// The row.
        idx: i64,
    },
    /// The newest rows were deleted: the chain ends before its recorded head.
    #[error("chain ends at row {last} but its head says {head}")]
    Truncated {
        /// Last row present.
        last: i64,
        /// Head index recorded.
        head: i64,
    },
    /// The last row's hash differs from the recorded head.
    #[error("the head hash does not match row {idx}")]
    HeadMismatch {
        /// The row.
        idx: i64,
    },
}

impl ChainBreak {
    /// Stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            ChainBreak::Missing { .. } => "missing",
            ChainBreak::Altered { .. } => "altered",
            ChainBreak::Unlinked { .. } => "unlinked",
            ChainBreak::Truncated { .. } => "truncated",
            ChainBreak::HeadMismatch { .. } => "head_mismatch",
        }
    }
}

/// Incremental verifier: feed rows in `idx` order, then [`Verifier::finish`] with the
/// recorded head. Rows before `first_idx` may have been removed by retention; the
/// verifier then starts from the first row present and trusts its `prev_hash`.
#[derive(Debug)]
pub struct Verifier {
    device_id: String,
    prev: Option<(i64, Hash)>,
    rows: u64,
}

impl Verifier {
    /// A verifier for one device's chain.
    pub fn new(device_id: impl Into<String>) -> Self {
        Self {
            device_id: device_id.into(),
            prev: None,
            rows: 0,
        }
    }

    /// Checks the next row.
    pub fn push(&mut self, row: &StoredEvidence) -> Result<(), ChainBreak> {
        let prev_hash: Hash = match self.prev {
            Some((prev_idx, prev_hash)) => {
                if row.idx != prev_idx + 1 {
                    return Err(ChainBreak::Missing {
                        expected: prev_idx + 1,
                        found: row.idx,
                    });
                }
                if row.prev_hash != prev_hash {
                    return Err(ChainBreak::Unlinked { idx: row.idx });
                }
                prev_hash
            }
            None => {
                if row.idx == 1 && row.prev_hash != GENESIS {
                    return Err(ChainBreak::Unlinked { idx: row.idx });
                }
                row.prev_hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| ChainBreak::Unlinked { idx: row.idx })?
            }
        };
        let computed = chain_hash(
            &prev_hash,
            &EvidenceFields {
                device_id: &self.device_id,
                idx: row.idx,
                seq_min: row.seq_min,
                seq_max: row.seq_max,
                received_at_micros: row.received_at_micros,
                topic: &row.topic,
                payload: &row.payload,
            },
        );
        if row.hash != computed {
            return Err(ChainBreak::Altered { idx: row.idx });
        }
        self.prev = Some((row.idx, computed));
        self.rows += 1;
        Ok(())
    }

    /// Checks the end of the chain against the recorded head; returns rows checked.
    pub fn finish(self, head: Option<(i64, Vec<u8>)>) -> Result<u64, ChainBreak> {
        match (self.prev, head) {
            (None, None) => Ok(0),
            (None, Some((head_idx, _))) => Err(ChainBreak::Truncated {
                last: 0,
                head: head_idx,
            }),
            (Some((last, _)), None) => Err(ChainBreak::Truncated { last, head: 0 }),
            (Some((last, hash)), Some((head_idx, head_hash))) => {
                if last != head_idx {
                    Err(ChainBreak::Truncated {
                        last,
                        head: head_idx,
                    })
                } else if head_hash != hash {
                    Err(ChainBreak::HeadMismatch { idx: last })
                } else {
                    Ok(self.rows)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<StoredEvidence> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|idx| {
                let payload = format!("payload {idx}").into_bytes();
                let f = EvidenceFields {
                    device_id: "dev1",
                    idx,
                    seq_min: idx,
                    seq_max: idx,
                    received_at_micros: 1_000 * idx,
                    topic: "t",
                    payload: &payload,
                };
                let hash = chain_hash(&prev, &f);
                let row = StoredEvidence {
                    idx,
                    seq_min: idx,
                    seq_max: idx,
                    received_at_micros: 1_000 * idx,
                    topic: "t".into(),
                    payload: payload.clone(),
                    prev_hash: prev.to_vec(),
                    hash: hash.to_vec(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn verify(rows: &[StoredEvidence], head: Option<(i64, Vec<u8>)>) -> Result<u64, ChainBreak> {
        let mut v = Verifier::new("dev1");
        for r in rows {
            v.push(r)?;
        }
        v.finish(head)
    }

    fn head(rows: &[StoredEvidence]) -> Option<(i64, Vec<u8>)> {
        rows.last().map(|r| (r.idx, r.hash.clone()))
    }

    #[test]
    fn intact_chain_verifies() {
        let rows = chain(5);
        assert_eq!(verify(&rows, head(&rows)), Ok(5));
    }

    #[test]
    fn edit_delete_and_truncation_are_detected() {
        let rows = chain(5);
        let h = head(&rows);

        let mut edited = rows.clone();
        edited[2].payload[0] ^= 1;
        assert_eq!(
            verify(&edited, h.clone()),
            Err(ChainBreak::Altered { idx: 3 })
        );

        let mut deleted = rows.clone();
        deleted.remove(1);
        assert_eq!(
            verify(&deleted, h.clone()),
            Err(ChainBreak::Missing {
                expected: 2,
                found: 3
            })
        );

        assert_eq!(
            verify(&rows[..4], h.clone()),
            Err(ChainBreak::Truncated { last: 4, head: 5 })
        );

        let mut relinked = rows.clone();
        relinked[3].prev_hash = vec![7; 32];
        assert_eq!(verify(&relinked, h), Err(ChainBreak::Unlinked { idx: 4 }));
    }

    #[test]
    fn a_chain_whose_oldest_rows_expired_still_verifies() {
        let rows = chain(6);
        assert_eq!(verify(&rows[2..], head(&rows)), Ok(4));
    }
}
