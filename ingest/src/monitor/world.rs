//! What the decision engines must know, loaded from the registry: the office tree
//! with delivery targets, zones, and every subject under an active monitoring
//! order with its rules, leave permits and devices.
//!
//! Loading is separate from applying (see `mod.rs`) so that a broken row (a zone
//! that no longer imports, a curfew with bad parameters) costs only the subject
//! or zone concerned, with the reason logged and counted, never the whole reload.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use geoward_alerting::routing::{DeliveryTarget, Office, OfficeKind, TargetKind, TargetRole};
use geoward_alerting::signal::DeviceKind;
use geoward_alerting::{OfficeId, OfficeTree, SubjectConfig, SubjectId, TargetId};
use geoward_geofence::{
    Curfew, ImportReport, LeaveGrant, LeavePermit, RuleKind, SubjectRules, SupervisionLevel,
    ZoneSet,
};
use serde_json::{Value, json};

use crate::store::{Store, Ts};
use crate::with_pool;

/// One zone row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRow {
    /// Zone id.
    pub id: String,
    /// `permitted`, `exclusion`, `home` or `leave`.
    pub kind: String,
    /// The stored GeoJSON.
    pub geojson: String,
}
crate::from_row!(ZoneRow: id, kind, geojson);

/// A subject the engines watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    /// For the incident engine.
    pub config: SubjectConfig,
    /// For the zone engine.
    pub rules: SubjectRules,
}

/// The registry as the engines need it.
#[derive(Debug, Clone)]
pub struct World {
    /// Offices with their delivery targets.
    pub tree: OfficeTree,
    /// Webhook secrets by target id.
    pub webhook_secrets: HashMap<TargetId, Vec<u8>>,
    /// Zone rows (compared to decide whether the zone set must be rebuilt).
    pub zones: Vec<ZoneRow>,
    /// Subjects under an active order.
    pub subjects: BTreeMap<SubjectId, Watched>,
    /// Device id → (subject, kind), for devices of watched subjects.
    pub devices: HashMap<String, (SubjectId, DeviceKind)>,
    /// Order periods `[starts_at, ends_at)` of watched subjects: data taken
    /// outside all of them has no legal basis and is never judged.
    pub orders: OrderPeriods,
    /// Subjects skipped, with the reason code (counted as a metric).
    pub skipped: Vec<(String, &'static str)>,
}

/// Order periods `[starts_at, ends_at)` by subject.
pub type OrderPeriods = HashMap<SubjectId, Vec<(DateTime<Utc>, DateTime<Utc>)>>;

type OfficeRow = (String, Option<String>, String, String);
type TargetRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);
type SubjectRow = (String, String, String, i64);
type RuleRow = (String, String, String, String, String);
type LeaveRow = (
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// Loads the registry as of `now` (orders and leave permits are judged at `now`).
pub async fn load(store: &Store, now: DateTime<Utc>) -> anyhow::Result<World> {
    let offices: Vec<OfficeRow> = with_pool!(store, p => sqlx::query_as(
        "SELECT id, parent_id, name, kind FROM offices ORDER BY id"
    ).fetch_all(p).await)
    .context("loading offices")?;
    let targets: Vec<TargetRow> = with_pool!(store, p => sqlx::query_as(
        "SELECT id, office_id, kind, role, url, secret FROM delivery_targets ORDER BY id"
    ).fetch_all(p).await)
    .context("loading delivery targets")?;
    let zones: Vec<ZoneRow> = with_pool!(store, p => sqlx::query_as(
        "SELECT id, kind, geojson FROM zones ORDER BY id"
    ).fetch_all(p).await)
    .context("loading zones")?;
    let subjects: Vec<SubjectRow> = with_pool!(store, p => sqlx::query_as(
        "SELECT s.id, s.office_id, s.supervision_level, s.expected_interval_s FROM subjects s \
         WHERE EXISTS (SELECT 1 FROM monitoring_orders o WHERE o.subject_id = s.id AND o.starts_at <= $1 AND o.ends_at > $1) \
         ORDER BY s.id"
    ).bind(Ts(now)).fetch_all(p).await)
    .context("loading subjects")?;
    let rules: Vec<RuleRow> = with_pool!(store, p => sqlx::query_as(
        "SELECT subject_id, id, kind, zone_id, params FROM subject_rules ORDER BY subject_id, id"
    ).fetch_all(p).await)
    .context("loading rules")?;
    let leaves: Vec<LeaveRow> = with_pool!(store, p => sqlx::query_as(
        "SELECT subject_id, destination_zone_id, suspends_rule_id, starts_at, ends_at FROM leave_permits \
         WHERE ends_at > $1 ORDER BY subject_id, starts_at"
    ).bind(Ts(now)).fetch_all(p).await)
    .context("loading leave permits")?;
    let devices: Vec<(String, String, String)> = with_pool!(store, p => sqlx::query_as(
        "SELECT id, kind, subject_id FROM devices WHERE subject_id IS NOT NULL AND enabled ORDER BY id"
    ).fetch_all(p).await)
    .context("loading devices")?;

    let orders: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = with_pool!(store, p => sqlx::query_as(
        "SELECT subject_id, starts_at, ends_at FROM monitoring_orders ORDER BY subject_id, starts_at"
    ).fetch_all(p).await)
    .context("loading orders")?;

    let (tree, webhook_secrets) = office_tree(offices, targets)?;
    let mut world = World {
        tree,
        webhook_secrets,
        zones,
        subjects: BTreeMap::new(),
        devices: HashMap::new(),
        orders: HashMap::new(),
        skipped: Vec::new(),
    };
    let mut rules_of: HashMap<String, Vec<RuleRow>> = HashMap::new();
    for r in rules {
        rules_of.entry(r.0.clone()).or_default().push(r);
    }
    let mut leaves_of: HashMap<String, Vec<LeaveRow>> = HashMap::new();
    for l in leaves {
        leaves_of.entry(l.0.clone()).or_default().push(l);
    }
    for (id, office, level, interval_s) in subjects {
        let rules = rules_of.remove(&id).unwrap_or_default();
        let leaves = leaves_of.remove(&id).unwrap_or_default();
        match watched(&id, &office, &level, interval_s, &rules, &leaves) {
            Ok(w) => {
                world.subjects.insert(SubjectId(id), w);
            }
            Err(reason) => {
                tracing::warn!(subject = %id, reason, "subject not monitored: its rules cannot be enforced");
                world.skipped.push((id, reason));
            }
        }
    }
    for (subject, starts_at, ends_at) in orders {
        let subject = SubjectId(subject);
        if world.subjects.contains_key(&subject) {
            world
                .orders
                .entry(subject)
                .or_default()
                .push((starts_at, ends_at));
        }
    }
    for (device, kind, subject) in devices {
        let subject = SubjectId(subject);
        if world.subjects.contains_key(&subject) {
            let kind = if kind == "phone" {
                DeviceKind::Phone
            } else {
                DeviceKind::Bracelet
            };
            world.devices.insert(device, (subject, kind));
        }
    }
    Ok(world)
}

fn office_tree(
    offices: Vec<OfficeRow>,
    targets: Vec<TargetRow>,
) -> anyhow::Result<(OfficeTree, HashMap<TargetId, Vec<u8>>)> {
    let mut secrets = HashMap::new();
    let mut by_office: HashMap<String, Vec<DeliveryTarget>> = HashMap::new();
    for (id, office, kind, role, url, secret) in targets {
        let kind = match (kind.as_str(), url) {
            ("webhook", Some(url)) => TargetKind::Webhook { url },
            ("mqtt", _) => TargetKind::Mqtt,
            _ => continue,
        };
        let role = if role == "police_liaison" {
            TargetRole::PoliceLiaison
        } else {
            TargetRole::Duty
        };
        if let Some(s) = secret {
            secrets.insert(TargetId(id.clone()), s.into_bytes());
        }
        by_office.entry(office).or_default().push(DeliveryTarget {
            id: TargetId(id),
            kind,
            role,
        });
    }
    let offices = offices
        .into_iter()
        .map(|(id, parent, name, kind)| Office {
            targets: by_office.remove(&id).unwrap_or_default(),
            id: OfficeId(id),
            parent: parent.map(OfficeId),
            kind: match kind.as_str() {
                "city_bureau" => OfficeKind::CityBureau,
                "county_bureau" => OfficeKind::CountyBureau,
                _ => OfficeKind::JusticeOffice,
            },
            name,
        })
        .collect();
    let tree = OfficeTree::new(offices).context("the office tree is not valid")?;
    Ok((tree, secrets))
}

fn level_of(level: &str) -> (SupervisionLevel, geoward_alerting::SupervisionLevel) {
    match level {
        "strict" => (
            SupervisionLevel::Strict,
            geoward_alerting::SupervisionLevel::Strict,
        ),
        "lenient" => (
            SupervisionLevel::Lenient,
            geoward_alerting::SupervisionLevel::Lenient,
        ),
        _ => (
            SupervisionLevel::Normal,
            geoward_alerting::SupervisionLevel::Normal,
        ),
    }
}

/// The parameters of a `curfew` rule: the weekly window, and optionally the time
/// zone of the window (IANA name, Asia/Shanghai by default).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurfewParams {
    /// The window.
    #[serde(flatten)]
    pub window: Curfew,
    /// Time zone of the window.
    pub time_zone: Option<geoward_geofence::chrono_tz::Tz>,
}

/// Checks a rule's parameters; the API calls it before storing a rule.
pub fn check_rule_params(kind: &str, params: &str) -> Result<(), String> {
    if kind == "curfew" {
        serde_json::from_str::<CurfewParams>(params)
            .map(drop)
            .map_err(|e| format!("curfew params must be {{\"start\": \"22:00:00\", \"end\": \"06:00:00\", \"days\": [\"Mon\", ...]?, \"time_zone\": \"Asia/Shanghai\"?}}: {e}"))
    } else {
        Ok(())
    }
}

fn watched(
    id: &str,
    office: &str,
    level: &str,
    interval_s: i64,
    rules: &[RuleRow],
    leaves: &[LeaveRow],
) -> Result<Watched, &'static str> {
    let (geo_level, alert_level) = level_of(level);
    let mut r = SubjectRules {
        level: geo_level,
        ..SubjectRules::default()
    };
    let mut kind_of_rule: HashMap<&str, RuleKind> = HashMap::new();
    for (_, rule_id, kind, zone, params) in rules {
        match kind.as_str() {
            "stay_inside" => {
                r.permitted.push(zone.as_str().into());
                kind_of_rule.insert(rule_id, RuleKind::Permitted);
            }
            "keep_out" => {
                r.exclusions.push(zone.as_str().into());
                kind_of_rule.insert(rule_id, RuleKind::Exclusion);
            }
            "curfew" => {
                let p: CurfewParams =
                    serde_json::from_str(params).map_err(|_| "bad_curfew_params")?;
                if r.home.as_ref().is_some_and(|h| h.as_str() != zone) {
                    return Err("two_home_zones");
                }
                r.home = Some(zone.as_str().into());
                r.curfews.push(p.window);
                if let Some(tz) = p.time_zone {
                    r.time_zone = tz;
                }
                kind_of_rule.insert(rule_id, RuleKind::Curfew);
            }
            _ => return Err("unknown_rule_kind"),
        }
    }
    for (_, destination, suspends, from, until) in leaves {
        let grant = match (destination, suspends) {
            (Some(zone), _) => LeaveGrant::ExtraZone(zone.as_str().into()),
            (None, Some(rule)) => match kind_of_rule.get(rule.as_str()) {
                Some(k) => LeaveGrant::Suspend(*k),
                None => continue,
            },
            (None, None) => continue,
        };
        r.leaves.push(LeavePermit {
            from: *from,
            until: *until,
            grant,
        });
    }
    Ok(Watched {
        config: SubjectConfig {
            id: SubjectId(id.to_owned()),
            office: OfficeId(office.to_owned()),
            level: alert_level,
            expected_interval_ms: interval_s.max(1).saturating_mul(1000),
        },
        rules: r,
    })
}

/// Zones that imported, the import report, and rows that could not even be read.
pub type BuiltZones = (Arc<ZoneSet>, ImportReport, Vec<(String, String)>);

/// Builds the zone set from zone rows. Each row becomes one zone with the row's id
/// and kind (a `leave` zone is a permitted zone). Rows that do not import are
/// left out and reported.
pub fn zone_set(rows: &[ZoneRow]) -> anyhow::Result<BuiltZones> {
    let mut features = Vec::with_capacity(rows.len());
    let mut broken = Vec::new();
    for row in rows {
        match zone_feature(row) {
            Ok(f) => features.push(f),
            Err(e) => broken.push((row.id.clone(), e)),
        }
    }
    let doc = json!({ "type": "FeatureCollection", "features": features });
    let (set, report) = geoward_geofence::import_value(&doc).context("importing zones")?;
    Ok((Arc::new(set), report, broken))
}

/// The GeoJSON Feature of one zone row: the row's geometry (a Polygon,
/// MultiPolygon, circle Point with `radius_m`, or a Feature or one-feature
/// FeatureCollection of them) with the row's id and kind as properties.
pub fn zone_feature(row: &ZoneRow) -> Result<Value, String> {
    let doc: Value = serde_json::from_str(&row.geojson).map_err(|e| format!("not json: {e}"))?;
    let feature = match doc.get("type").and_then(Value::as_str) {
        Some("Feature") => doc,
        Some("FeatureCollection") => match doc.get("features").and_then(Value::as_array) {
            Some(fs) if fs.len() == 1 => fs[0].clone(),
            _ => return Err("a feature collection must hold exactly one feature".into()),
        },
        Some("Polygon" | "MultiPolygon") => {
            json!({ "type": "Feature", "geometry": doc, "properties": {} })
        }
        _ => {
            return Err(
                "must be a Polygon, MultiPolygon, Feature or one-feature FeatureCollection".into(),
            );
        }
    };
    let mut props = feature
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    props.insert("id".into(), json!(row.id));
    let kind = if row.kind == "leave" {
        "permitted"
    } else {
        row.kind.as_str()
    };
    props.insert("kind".into(), json!(kind));
    Ok(json!({
        "type": "Feature",
        "geometry": feature.get("geometry").cloned().unwrap_or(Value::Null),
        "properties": props,
    }))
}
