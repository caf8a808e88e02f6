//! The audit hash chain detects edits, deletions, reordering and truncation.

use crate::support::*;
use geoward_alerting::audit::{
    AuditChain, AuditEntry, AuditEvent, ChainErrorKind, GENESIS_HASH, verify_chain,
    verify_chain_with_head, verify_segment,
};
use geoward_alerting::signal::{BreachPhase, RuleKind};
use geoward_alerting::{Effect, Timestamp};
use proptest::prelude::*;

fn ev(i: i64) -> AuditEvent {
    AuditEvent {
        at: Timestamp(T0 + i),
        actor: format!("officer:o{}", i % 3),
        action: "acknowledged".into(),
        incident: Some(format!("s1:zone_exit:{i}").into()),
        detail: format!("{{\"n\":{i}}}"),
    }
}

fn chain(n: i64) -> Vec<AuditEntry> {
    let mut c = AuditChain::new();
    for i in 0..n {
        c.append(ev(i));
    }
    c.entries().to_vec()
}

#[test]
fn a_fresh_chain_verifies_and_starts_at_genesis() {
    let c = chain(5);
    assert_eq!(c[0].prev_hash, GENESIS_HASH);
    assert_eq!(c[3].prev_hash, c[2].hash);
    verify_chain(&c).unwrap();
    verify_chain_with_head(&c, (4, &c[4].hash)).unwrap();
    // A head recorded earlier is still fine after appends.
    verify_chain_with_head(&c, (2, &c[2].hash)).unwrap();
    verify_segment(&c[2..], 2, &c[1].hash).unwrap();
}

#[test]
fn engine_audit_events_chain_and_verify() {
    let mut e = engine();
    let mut log = AuditChain::new();
    let mut fx = e
        .apply(
            &breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Confirmed,
                T0,
                false,
            ),
            Timestamp(T0),
        )
        .unwrap();
    fx.extend(e.tick(Timestamp(T0 + 16 * MIN)));
    for f in fx {
        if let Effect::Audit(a) = f {
            log.append(a);
        }
    }
    let actions: Vec<_> = log.entries().iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["incident_opened", "incident_opened", "escalated"],
        "exit, lost contact, escalation"
    );
    verify_chain(log.entries()).unwrap();
}

#[test]
fn editing_any_field_is_detected_at_that_entry() {
    let base = chain(6);
    let edits: Vec<fn(&mut AuditEntry)> = vec![
        |e| e.actor.push('x'),
        |e| e.action = "resolved".into(),
        |e| e.detail = "{}".into(),
        |e| e.at = Timestamp(e.at.0 + 1),
        |e| e.incident = None,
    ];
    for edit in edits {
        let mut c = base.clone();
        edit(&mut c[3]);
        let err = verify_chain(&c).unwrap_err();
        assert_eq!((err.seq, err.kind), (3, ChainErrorKind::HashMismatch));
        assert_eq!(err.reason(), "hash_mismatch");
    }
    // Re-hashing the edited entry moves the break to the next one.
    let mut c = base.clone();
    c[3].detail = "{}".into();
    c[3].hash = c[3].compute_hash();
    let err = verify_chain(&c).unwrap_err();
    assert_eq!((err.seq, err.kind), (4, ChainErrorKind::PrevHashMismatch));
}

#[test]
fn deletion_and_reordering_are_detected() {
    let base = chain(6);
    let mut deleted = base.clone();
    deleted.remove(2);
    let err = verify_chain(&deleted).unwrap_err();
    assert_eq!((err.seq, err.kind), (2, ChainErrorKind::SequenceGap));

    let mut swapped = base.clone();
    swapped.swap(1, 2);
    assert_eq!(verify_chain(&swapped).unwrap_err().seq, 1);

    // Deleting then renumbering everything after still breaks the hashes.
    let mut renumbered = base.clone();
    renumbered.remove(2);
    for (i, e) in renumbered.iter_mut().enumerate() {
        e.seq = i as u64;
    }
    let err = verify_chain(&renumbered).unwrap_err();
    assert_eq!(err.seq, 2);

    // Cutting the tail is caught only against the recorded head.
    let cut = &base[..4];
    verify_chain(cut).unwrap();
    let err = verify_chain_with_head(cut, (5, &base[5].hash)).unwrap_err();
    assert_eq!((err.seq, err.kind), (4, ChainErrorKind::Truncated));
    let mut rewritten = base.clone();
    rewritten.truncate(5);
    rewritten.push(AuditEntry::next(rewritten.last(), ev(99)));
    let err = verify_chain_with_head(&rewritten, (5, &base[5].hash)).unwrap_err();
    assert_eq!(err.kind, ChainErrorKind::HeadMismatch);
}

proptest! {
    #[test]
    fn any_single_edit_delete_or_swap_is_detected(n in 2i64..30, pick in any::<usize>(), what in 0u8..3) {
        let base = chain(n);
        let i = pick % base.len();
        let mut c = base.clone();
        match what {
            0 => c[i].detail.push(' '),
            1 => { c.remove(i); }
            _ => {
                let j = (i + 1) % c.len();
                c.swap(i, j);
            }
        }
        let head = (base.len() as u64 - 1, base.last().unwrap().hash.as_str());
        prop_assert!(verify_chain_with_head(&c, head).is_err());
    }
}
