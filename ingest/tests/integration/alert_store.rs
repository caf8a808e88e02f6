//! The alerting side's storage on both backends: one decision step's effects,
//! stored in one transaction of multi-row statements, read back as they were
//! made, including an incident changed twice in the same step and more rows
//! than one statement takes.

use crate::common::{Db, fresh_pg_database};

use geoward_alerting::audit::verify_chain;
use geoward_alerting::outbox::OutboxRecord;
use geoward_alerting::routing::{DeliveryTarget, Office, OfficeKind, TargetKind, TargetRole};
use geoward_alerting::signal::{BreachPhase, EvidenceFix, Position, RuleKind};
use geoward_alerting::{
    Effect, IncidentEngine, OfficeTree, Policy, Signal, SignalBody, SubjectConfig,
    SupervisionLevel, Timestamp,
};
use geoward_ingest::config::StorageConfig;
use geoward_ingest::store::Store;
use geoward_ingest::store::alerts::{self, AuditLog, EffectBatch, FeedEvent};

const T0: i64 = 1_800_000_000_000;
const MIN: i64 = 60_000;

async fn open(db: Db, dir: &tempfile::TempDir) -> Store {
    let cfg = StorageConfig {
        database_url: match db {
            Db::Sqlite => String::new(),
            Db::Postgres(url) => url,
        },
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    };
    let store = Store::connect(&cfg).await.expect("open the store");
    store.migrate().await.expect("migrate");
    store
}

fn engine(subjects: usize) -> IncidentEngine {
    let office = |id: &str, parent: Option<&str>, kind| Office {
        id: id.into(),
        parent: parent.map(Into::into),
        kind,
        name: id.into(),
        targets: vec![DeliveryTarget {
            id: format!("{id}-mqtt").into(),
            kind: TargetKind::Mqtt,
            role: TargetRole::Duty,
        }],
    };
    let tree = OfficeTree::new(vec![
        office("county", None, OfficeKind::CountyBureau),
        office("jo1", Some("county"), OfficeKind::JusticeOffice),
    ])
    .expect("valid tree");
    let mut e = IncidentEngine::new(Policy::default(), tree);
    for i in 0..subjects {
        e.upsert_subject(
            SubjectConfig {
                id: format!("s{i}").into(),
                office: "jo1".into(),
                level: SupervisionLevel::Normal,
                expected_interval_ms: MIN,
            },
            Timestamp(T0),
        )
        .expect("valid subject");
    }
    e
}

/// A confirmed exit of subject `i` at `at`.
fn exit(i: usize, at: i64) -> Signal {
    Signal {
        subject: format!("s{i}").into(),
        body: SignalBody::ZoneBreach {
            rule: "stay".into(),
            rule_kind: RuleKind::PermittedArea,
            phase: BreachPhase::Confirmed,
            late: false,
            event_time: Timestamp(at),
            evidence: vec![EvidenceFix {
                device: format!("b{i}").into(),
                at: Timestamp(at),
                position: Position {
                    lat: 34.8,
                    lon: 113.7,
                    accuracy_m: 8.0,
                },
            }],
        },
    }
}

/// The effects as the monitor stores them, with one feed event per change on
/// office `jo1`'s feed.
fn batch_of(fx: Vec<Effect>) -> EffectBatch {
    let mut batch = EffectBatch::default();
    for effect in fx {
        match effect {
            Effect::Incident(change) => {
                batch.feed.push(FeedEvent {
                    office: "jo1".into(),
                    id: batch.feed.len() as u64 + 1,
                    at_ms: change.entry.at.millis(),
                    data: format!(
                        r#"{{"incident":"{}","seq":{}}}"#,
                        change.header.id.as_str(),
                        change.entry.seq
                    ),
                });
                batch.changes.push(*change);
            }
            Effect::Notify(n) => batch.outbox.push(OutboxRecord::new(*n, Timestamp(T0))),
            Effect::Audit(a) => batch.audit.push(a),
        }
    }
    batch
}

async fn count(store: &Store, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    match store {
        Store::Sqlite(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(p)
            .await
            .unwrap(),
        Store::Postgres(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(p)
            .await
            .unwrap(),
    }
}

/// One row per incident and per timeline entry, and each of the batch's
/// notifications and feed events once.
async fn assert_rows(store: &Store, incidents: usize, entries: usize, batch: &EffectBatch) {
    assert_eq!(count(store, "incidents").await, incidents as i64);
    assert_eq!(count(store, "incident_timeline").await, entries as i64);
    assert_eq!(count(store, "outbox").await, batch.outbox.len() as i64);
    assert_eq!(count(store, "feed_events").await, batch.feed.len() as i64);
}

async fn one_step_with_an_incident_changed_twice_and_many_rows(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(db, &dir).await;
    let audit = AuditLog::open(&store).await.unwrap();
    // 700 subjects leave (more rows than one statement takes); subject 0's
    // incident gets more evidence a minute later and is acknowledged, in the
    // same step.
    let subjects = 700;
    let mut e = engine(subjects);
    let mut fx = Vec::new();
    for i in 0..subjects {
        fx.extend(e.apply(&exit(i, T0 + MIN), Timestamp(T0 + MIN)).unwrap());
    }
    fx.extend(
        e.apply(&exit(0, T0 + 2 * MIN), Timestamp(T0 + 2 * MIN))
            .unwrap(),
    );
    let id0 = match &fx[0] {
        Effect::Incident(c) => c.header.id.clone(),
        other => panic!("the first effect opens an incident: {other:?}"),
    };
    fx.extend(
        e.acknowledge(&id0, &"jo1-duty".into(), Timestamp(T0 + 2 * MIN + 1))
            .unwrap(),
    );
    let batch = batch_of(fx);
    assert_eq!(batch.changes.len(), subjects + 2, "700 opened, 2 updates");
    assert!(batch.outbox.len() >= subjects, "{}", batch.outbox.len());
    assert!(!batch.audit.is_empty(), "the acknowledgement is audited");

    alerts::commit_effects(&store, &audit, &batch)
        .await
        .unwrap();

    assert_rows(&store, subjects, subjects + 2, &batch).await;
    // Subject 0's incident is stored as its last change left it, with all
    // three entries.
    let changes0: Vec<_> = batch
        .changes
        .iter()
        .filter(|c| c.header.id == id0)
        .collect();
    assert_eq!(changes0.len(), 3);
    let stored = alerts::incident(&store, id0.as_str())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.header, changes0[2].header);
    assert!(stored.header.is_acknowledged());
    assert_eq!(
        stored.timeline,
        changes0.iter().map(|c| c.entry.clone()).collect::<Vec<_>>()
    );
    let fed = alerts::feed_after(&store, "jo1", 0, 10_000).await.unwrap();
    assert_eq!(fed, batch.feed);
    let chain = alerts::audit_entries(&store).await.unwrap();
    assert_eq!(chain.len(), batch.audit.len());
    verify_chain(&chain).expect("an unbroken chain");
    assert_eq!(
        audit.head().await.map(|(seq, _)| seq),
        chain.last().map(|e| e.seq),
        "the head moved to the newest entry"
    );

    // The same step stored again (a retry after a commit whose reply was lost):
    // nothing is doubled but the audit entries, which are chained anew.
    alerts::commit_effects(&store, &audit, &batch)
        .await
        .unwrap();
    assert_rows(&store, subjects, subjects + 2, &batch).await;
    verify_chain(&alerts::audit_entries(&store).await.unwrap()).expect("still unbroken");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_step_with_an_incident_changed_twice_and_many_rows() {
    one_step_with_an_incident_changed_twice_and_many_rows(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_step_with_an_incident_changed_twice_and_many_rows() {
    one_step_with_an_incident_changed_twice_and_many_rows(Db::Postgres(fresh_pg_database().await))
        .await;
}
