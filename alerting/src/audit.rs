//! The append-only audit log as a SHA-256 hash chain.
//!
//! Every officer action and every escalation becomes an [`AuditEntry`] whose
//! hash covers its content and the previous entry's hash. Editing, deleting
//! or reordering any entry breaks the chain at that point; truncating the
//! tail is detected only against a separately kept head
//! ([`verify_chain_with_head`]), which is why the service should record the
//! latest `(seq, hash)` outside the table (metrics, logs, the procuratorate).
//!
//! Canonical encoding: the domain tag `geoward-audit-v1`, then each field as
//! an 8-byte big-endian length followed by its UTF-8 bytes, in the order seq
//! (decimal), at (decimal ms), actor, action, incident (empty when none),
//! detail, prev_hash. Length prefixes make the encoding unambiguous.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::IncidentId;
use crate::time::Timestamp;

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const DOMAIN: &[u8] = b"geoward-audit-v1";

/// Something to audit, before it is chained (what the engine emits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When (engine `now`).
    pub at: Timestamp,
    /// `system` or `officer:<id>`.
    pub actor: String,
    /// Stable action code (`incident_opened`, `acknowledged`, `escalated`, …).
    pub action: String,
    /// The incident concerned.
    pub incident: Option<IncidentId>,
    /// JSON details.
    pub detail: String,
}

/// One chained entry, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 0, no gaps.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On which incident.
    pub incident: Option<IncidentId>,
    /// JSON details.
    pub detail: String,
    /// Hash of the previous entry ([`GENESIS_HASH`] for seq 0), lower hex.
    pub prev_hash: String,
    /// SHA-256 of the canonical encoding, lower hex.
    pub hash: String,
}

impl AuditEntry {
    /// Chains `event` after `prev` (or starts the log when `None`).
    pub fn next(prev: Option<&AuditEntry>, event: AuditEvent) -> Self {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq.saturating_add(1), p.hash.clone()),
            None => (0, GENESIS_HASH.to_owned()),
        };
        let mut entry = Self {
            seq,
            at: event.at,
            actor: event.actor,
            action: event.action,
            incident: event.incident,
            detail: event.detail,
            prev_hash,
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        entry
    }

    /// The hash this entry should carry given its content and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        let seq = self.seq.to_string();
        let at = self.at.millis().to_string();
        let incident = self.incident.as_ref().map(|i| i.as_str()).unwrap_or("");
        for field in [
            seq.as_str(),
            at.as_str(),
            self.actor.as_str(),
            self.action.as_str(),
            incident,
            self.detail.as_str(),
            self.prev_hash.as_str(),
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// Appends events to a chain kept in memory; the service does the same
/// against its table with [`AuditEntry::next`].
#[derive(Debug, Clone, Default)]
pub struct AuditChain {
    entries: Vec<AuditEntry>,
}

impl AuditChain {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends and returns the new entry.
    pub fn append(&mut self, event: AuditEvent) -> &AuditEntry {
        let entry = AuditEntry::next(self.entries.last(), event);
        self.entries.push(entry);
        self.entries.last().expect("just pushed")
    }

    /// All entries.
    pub fn entries(&self) -> &[AuditEntry] {
        &self.entries
    }
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {kind}")]
pub struct ChainError {
    /// The first entry that does not verify (or the expected seq when an
    /// entry is missing).
    pub seq: u64,
    /// What is wrong.
    pub kind: ChainErrorKind,
}

/// What is wrong with a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainErrorKind {
    /// Sequence numbers skip or repeat: an entry was deleted or reordered.
    #[error("sequence gap or reorder")]
    SequenceGap,
    /// `prev_hash` does not match the previous entry's hash.
    #[error("previous hash mismatch")]
    PrevHashMismatch,
    /// The stored hash does not match the content: the entry was edited.
    #[error("content hash mismatch")]
    HashMismatch,
    /// The chain ends before the separately kept head: the tail was cut.
    #[error("chain ends before the recorded head")]
    Truncated,
    /// The head's hash differs from the recorded one.
    #[error("head hash differs from the recorded one")]
    HeadMismatch,
}

impl ChainError {
    /// Stable reason code for metrics and the CLI's exit message.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            ChainErrorKind::SequenceGap => "sequence_gap",
            ChainErrorKind::PrevHashMismatch => "prev_hash_mismatch",
            ChainErrorKind::HashMismatch => "hash_mismatch",
            ChainErrorKind::Truncated => "truncated",
            ChainErrorKind::HeadMismatch => "head_mismatch",
        }
    }
}

/// Verifies a whole chain from seq 0, in stored order.
pub fn verify_chain(entries: &[AuditEntry]) -> Result<(), ChainError> {
    verify_segment(entries, 0, GENESIS_HASH)
}

/// Verifies a contiguous segment starting at `first_seq` whose first entry
/// must point at `prev_hash` (lets the CLI verify a large table in pages:
/// pass the last verified entry's seq + 1 and hash).
pub fn verify_segment(
    entries: &[AuditEntry],
    first_seq: u64,
    prev_hash: &str,
) -> Result<(), ChainError> {
    let mut expected_seq = first_seq;
    let mut prev = prev_hash.to_owned();
    for e in entries {
        if e.seq != expected_seq {
            return Err(ChainError {
                seq: expected_seq,
                kind: ChainErrorKind::SequenceGap,
            });
        }
        if e.prev_hash != prev {
            return Err(ChainError {
                seq: e.seq,
                kind: ChainErrorKind::PrevHashMismatch,
            });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainError {
                seq: e.seq,
                kind: ChainErrorKind::HashMismatch,
            });
        }
        prev.clone_from(&e.hash);
        expected_seq = expected_seq.saturating_add(1);
    }
    Ok(())
}

/// Verifies the chain and that it still contains the recorded head
/// `(seq, hash)` unchanged, which also catches deletion of the newest
/// entries (entries appended after the head was recorded are fine).
pub fn verify_chain_with_head(entries: &[AuditEntry], head: (u64, &str)) -> Result<(), ChainError> {
    verify_chain(entries)?;
    let (head_seq, head_hash) = head;
    // After verify_chain, entry i has seq i.
    match usize::try_from(head_seq).ok().and_then(|i| entries.get(i)) {
        Some(e) if e.hash == head_hash => Ok(()),
        Some(_) => Err(ChainError {
            seq: head_seq,
            kind: ChainErrorKind::HeadMismatch,
        }),
        None => Err(ChainError {
            seq: entries.len() as u64,
            kind: ChainErrorKind::Truncated,
        }),
    }
}
