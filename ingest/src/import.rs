//! `geoward import FILE`: a declarative TOML file of offices, subjects, devices,
//! zones and rules, applied idempotently (insert or update by id; running it twice
//! changes nothing). Devices that do not exist yet get fresh credentials, returned
//! once; existing devices keep theirs.
//!
//! ```toml
//! [[offices]]
//! id = "sh"
//! name = "Shanghai city bureau"
//! kind = "city_bureau"
//!
//! [[subjects]]
//! id = "s1"
//! office_id = "sh"
//! name = "Subject 1"
//! supervision_level = "normal"
//!
//! [[devices]]
//! id = "b1"
//! kind = "bracelet"
//! subject_id = "s1"
//!
//! [[zones]]
//! id = "home1"
//! office_id = "sh"
//! name = "home"
//! kind = "home"
//! geojson_file = "home1.geojson"   # relative to the import file, or `geojson = "..."`
//!
//! [[rules]]
//! id = "r1"
//! subject_id = "s1"
//! kind = "stay_inside"
//! zone_id = "home1"
//!
//! [[orders]]                        # nothing is monitored without an active order
//! id = "o1"
//! subject_id = "s1"
//! legal_basis = "warned_leaving_area"
//! approver = "judge wang"
//! starts_at = "2026-11-01T00:00:00Z"
//! ends_at = "2027-01-31T00:00:00Z"  # at most 3 months (art. 29)
//!
//! [[targets]]                       # where the office's notifications go
//! id = "sh-duty"
//! office_id = "sh"
//! kind = "webhook"                  # or "mqtt": geoward/v1/office/{office}/alerts
//! role = "duty"                     # or "police_liaison"
//! url = "https://duty.example/alerts"
//! secret = "at least sixteen characters"
//! ```

use std::path::Path;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::cli::IssuedCredentials;
use crate::store::{Store, Ts};
use crate::with_pool;

/// The import document.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFile {
    /// Offices, parents before children.
    #[serde(default)]
    pub offices: Vec<OfficeEntry>,
    /// Subjects.
    #[serde(default)]
    pub subjects: Vec<SubjectEntry>,
    /// Devices.
    #[serde(default)]
    pub devices: Vec<DeviceEntry>,
    /// Zones.
    #[serde(default)]
    pub zones: Vec<ZoneEntry>,
    /// Rules.
    #[serde(default)]
    pub rules: Vec<RuleEntry>,
    /// Monitoring orders.
    #[serde(default)]
    pub orders: Vec<OrderEntry>,
    /// Delivery targets of offices.
    #[serde(default)]
    pub targets: Vec<TargetEntry>,
}

/// A monitoring order (art. 29: at most 3 months, renewable).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderEntry {
    /// Id.
    pub id: String,
    /// Subject.
    pub subject_id: String,
    /// One of the five reasons of art. 29.
    pub legal_basis: String,
    /// Who approved it.
    pub approver: String,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End (exclusive).
    pub ends_at: DateTime<Utc>,
}

/// A delivery target of an office.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    /// Id.
    pub id: String,
    /// Office.
    pub office_id: String,
    /// `webhook` or `mqtt`.
    pub kind: String,
    /// `duty` or `police_liaison`.
    pub role: String,
    /// Webhook URL.
    pub url: Option<String>,
    /// Webhook signing secret.
    pub secret: Option<String>,
}

/// An office.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficeEntry {
    /// Id.
    pub id: String,
    /// Parent office.
    pub parent_id: Option<String>,
    /// Name.
    pub name: String,
    /// `city_bureau`, `county_bureau` or `justice_office`.
    pub kind: String,
}

/// A subject.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectEntry {
    /// Id.
    pub id: String,
    /// Office.
    pub office_id: String,
    /// Name.
    pub name: String,
    /// `strict`, `normal` or `lenient`.
    pub supervision_level: String,
    /// Reporting interval of the subject's devices when all is well, seconds.
    #[serde(default = "default_interval_s")]
    pub expected_interval_s: i64,
}

fn default_interval_s() -> i64 {
    60
}

/// A device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Id (letters and digits).
    pub id: String,
    /// `bracelet` or `phone`.
    pub kind: String,
    /// Wearer.
    pub subject_id: Option<String>,
}

/// A zone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneEntry {
    /// Id.
    pub id: String,
    /// Office.
    pub office_id: String,
    /// Name.
    pub name: String,
    /// `permitted`, `exclusion`, `home` or `leave`.
    pub kind: String,
    /// Inline GeoJSON.
    pub geojson: Option<String>,
    /// GeoJSON file relative to the import file.
    pub geojson_file: Option<String>,
}

/// A subject rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// Id.
    pub id: String,
    /// Subject.
    pub subject_id: String,
    /// `stay_inside`, `keep_out` or `curfew`.
    pub kind: String,
    /// Zone.
    pub zone_id: String,
    /// Parameters as a JSON document.
    #[serde(default = "empty_json")]
    pub params: String,
}

fn empty_json() -> String {
    "{}".to_owned()
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Rows inserted or updated, per kind.
    pub upserted: Vec<(&'static str, usize)>,
    /// Credentials of devices created by this import.
    pub new_devices: Vec<IssuedCredentials>,
}

/// Applies an import file, parents first.
pub async fn import(store: &Store, path: &Path) -> anyhow::Result<ImportReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: ImportFile = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
    apply(store, &doc, path.parent().unwrap_or(Path::new("."))).await
}

/// Applies an import document; `geojson_file` paths are relative to `base`.
pub async fn apply(store: &Store, doc: &ImportFile, base: &Path) -> anyhow::Result<ImportReport> {
    let now = Ts(Utc::now());
    let mut report = ImportReport::default();

    for o in &doc.offices {
        geoward_proto::ids::validate_id(&o.id).with_context(|| format!("office id {:?}", o.id))?;
        with_pool!(store, p => sqlx::query(
            "INSERT INTO offices (id, parent_id, name, kind, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET parent_id = excluded.parent_id, name = excluded.name, kind = excluded.kind"
        ).bind(&o.id).bind(&o.parent_id).bind(&o.name).bind(&o.kind).bind(now).execute(p).await.map(drop))
        .with_context(|| format!("office {}", o.id))?;
    }
    report.upserted.push(("offices", doc.offices.len()));

    for s in &doc.subjects {
        geoward_proto::ids::validate_id(&s.id).with_context(|| format!("subject id {:?}", s.id))?;
        with_pool!(store, p => sqlx::query(
            "INSERT INTO subjects (id, office_id, name, supervision_level, expected_interval_s, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET office_id = excluded.office_id, name = excluded.name, \
             supervision_level = excluded.supervision_level, expected_interval_s = excluded.expected_interval_s"
        ).bind(&s.id).bind(&s.office_id).bind(&s.name).bind(&s.supervision_level).bind(s.expected_interval_s)
        .bind(now).execute(p).await.map(drop))
        .with_context(|| format!("subject {}", s.id))?;
    }
    report.upserted.push(("subjects", doc.subjects.len()));

    for d in &doc.devices {
        let exists = store.device_credentials(&d.id).await?.is_some();
        if exists {
            with_pool!(store, p => sqlx::query("UPDATE devices SET kind = $1, subject_id = $2 WHERE id = $3")
                .bind(&d.kind).bind(&d.subject_id).bind(&d.id).execute(p).await.map(drop))
            .with_context(|| format!("device {}", d.id))?;
        } else {
            report.new_devices.push(
                crate::cli::add_device(store, &d.id, &d.kind, d.subject_id.as_deref()).await?,
            );
        }
    }
    report.upserted.push(("devices", doc.devices.len()));

    for z in &doc.zones {
        let geojson = match (&z.geojson, &z.geojson_file) {
            (Some(g), None) => g.clone(),
            (None, Some(f)) => std::fs::read_to_string(base.join(f))
                .with_context(|| format!("zone {}: reading {f}", z.id))?,
            _ => bail!("zone {}: give exactly one of geojson or geojson_file", z.id),
        };
        serde_json::from_str::<serde_json::Value>(&geojson)
            .with_context(|| format!("zone {}: geojson is not json", z.id))?;
        with_pool!(store, p => sqlx::query(
            "INSERT INTO zones (id, office_id, name, kind, geojson, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET office_id = excluded.office_id, name = excluded.name, kind = excluded.kind, \
             geojson = excluded.geojson"
        ).bind(&z.id).bind(&z.office_id).bind(&z.name).bind(&z.kind).bind(&geojson).bind(now).execute(p).await.map(drop))
        .with_context(|| format!("zone {}", z.id))?;
    }
    report.upserted.push(("zones", doc.zones.len()));

    for r in &doc.rules {
        with_pool!(store, p => sqlx::query(
            "INSERT INTO subject_rules (id, subject_id, kind, zone_id, params, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET subject_id = excluded.subject_id, kind = excluded.kind, \
             zone_id = excluded.zone_id, params = excluded.params"
        ).bind(&r.id).bind(&r.subject_id).bind(&r.kind).bind(&r.zone_id).bind(&r.params).bind(now).execute(p).await.map(drop))
        .with_context(|| format!("rule {}", r.id))?;
    }
    report.upserted.push(("rules", doc.rules.len()));

    for o in &doc.orders {
        anyhow::ensure!(
            o.ends_at > o.starts_at && o.ends_at - o.starts_at <= chrono::Duration::days(92),
            "order {}: must end after it starts and last at most 3 months (art. 29)",
            o.id
        );
        with_pool!(store, p => sqlx::query(
            "INSERT INTO monitoring_orders (id, subject_id, legal_basis, approver, starts_at, ends_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET subject_id = excluded.subject_id, legal_basis = excluded.legal_basis, \
             approver = excluded.approver, starts_at = excluded.starts_at, ends_at = excluded.ends_at"
        ).bind(&o.id).bind(&o.subject_id).bind(&o.legal_basis).bind(&o.approver).bind(Ts(o.starts_at))
        .bind(Ts(o.ends_at)).bind(now).execute(p).await.map(drop))
        .with_context(|| format!("order {}", o.id))?;
    }
    report.upserted.push(("orders", doc.orders.len()));

    for t in &doc.targets {
        with_pool!(store, p => sqlx::query(
            "INSERT INTO delivery_targets (id, office_id, kind, role, url, secret) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET office_id = excluded.office_id, kind = excluded.kind, role = excluded.role, \
             url = excluded.url, secret = excluded.secret"
        ).bind(&t.id).bind(&t.office_id).bind(&t.kind).bind(&t.role).bind(&t.url).bind(&t.secret)
        .execute(p).await.map(drop))
        .with_context(|| format!("target {}", t.id))?;
    }
    report.upserted.push(("targets", doc.targets.len()));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn import_is_idempotent_and_issues_credentials_once() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::StorageConfig {
            data_dir: dir.path().join("data"),
            ..Default::default()
        };
        let store = Store::connect(&cfg).await.unwrap();
        store.migrate().await.unwrap();
        std::fs::write(
            dir.path().join("home.geojson"),
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#,
        )
        .unwrap();
        let file = dir.path().join("import.toml");
        std::fs::write(
            &file,
            r#"
[[offices]]
id = "sh"
name = "city"
kind = "city_bureau"
[[offices]]
id = "sh1"
parent_id = "sh"
name = "office"
kind = "justice_office"
[[subjects]]
id = "s1"
office_id = "sh1"
name = "one"
supervision_level = "normal"
[[devices]]
id = "b1"
kind = "bracelet"
subject_id = "s1"
[[zones]]
id = "home1"
office_id = "sh1"
name = "home"
kind = "home"
geojson_file = "home.geojson"
[[rules]]
id = "r1"
subject_id = "s1"
kind = "stay_inside"
zone_id = "home1"
[[orders]]
id = "o1"
subject_id = "s1"
legal_basis = "own_request"
approver = "judge"
starts_at = "2026-11-01T00:00:00Z"
ends_at = "2027-01-15T00:00:00Z"
[[targets]]
id = "t1"
office_id = "sh"
kind = "mqtt"
role = "duty"
"#,
        )
        .unwrap();
        let first = import(&store, &file).await.unwrap();
        assert_eq!(first.new_devices.len(), 1);
        let creds_before = store.device_credentials("b1").await.unwrap();
        let second = import(&store, &file).await.unwrap();
        assert!(second.new_devices.is_empty());
        assert_eq!(store.device_credentials("b1").await.unwrap(), creds_before);
        let n: i64 = with_pool!(&store, p => sqlx::query_scalar("SELECT COUNT(*) FROM offices").fetch_one(p).await).unwrap();
        assert_eq!(n, 2);
        let n: i64 = with_pool!(&store, p => sqlx::query_scalar("SELECT COUNT(*) FROM monitoring_orders").fetch_one(p).await).unwrap();
        assert_eq!(n, 1);

        std::fs::write(&file, "[[office]]\nid = \"x\"\n").unwrap();
        let err = import(&store, &file).await.unwrap_err();
        assert!(format!("{err:#}").contains("office"), "{err:#}");
    }
}
