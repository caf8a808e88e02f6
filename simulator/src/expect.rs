//! Expectation files: which incidents a run must produce, and the check that
//! nothing else fired.
//!
//! Format (JSON, `version` 1; times are RFC 3339 or epoch milliseconds on
//! input, RFC 3339 on output):
//!
//! ```json
//! {
//!   "version": 1,
//!   "seed": 7,
//!   "incidents": [
//!     { "subject": "S0003", "device": "S0003-b", "kind": "zone_exit",
//!       "scenario": "leave_and_stay",
//!       "not_before": "2026-11-23T02:00:00.000Z",
//!       "not_after": "2026-11-23T02:41:15.000Z" }
//!   ],
//!   "subjects": [ ...the set-up the service needs, see fleet::SubjectSetup... ]
//! }
//! ```
//!
//! An observed incident matches an expected one with the same subject and
//! kind whose window holds the incident's start time. Each expected incident
//! matches at most one observed incident; everything unmatched on either side
//! is a difference, and any difference fails the run.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::trace::time::format_time_ms;

/// Incident kinds; the codes are the alerting engine's
/// (`geoward_alerting::IncidentKind::code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// 越界: left the permitted area.
    ZoneExit,
    /// 禁区: entered an exclusion zone.
    ExclusionEntry,
    /// Away from home during curfew hours.
    CurfewBreach,
    /// 信号丢失/失联: no message for longer than allowed.
    LostContact,
    /// Heartbeats arrive but no GNSS fix.
    NoFix,
    /// 拆卸/断带: strap or case opened.
    Tamper,
    /// 关机: device switched off.
    PowerOff,
    /// 人机分离: bracelet and phone apart.
    Separation,
    /// 低电: battery low.
    LowBattery,
    /// 脱管: a zone exit or lost contact that persisted (a promotion of an
    /// open incident; expectations name the kind the episode started as).
    Abscondment,
}

impl IncidentKind {
    /// The snake_case name used in files and on the alert feed.
    pub fn name(self) -> &'static str {
        match self {
            Self::ZoneExit => "zone_exit",
            Self::ExclusionEntry => "exclusion_entry",
            Self::CurfewBreach => "curfew_breach",
            Self::LostContact => "lost_contact",
            Self::NoFix => "no_fix",
            Self::Tamper => "tamper",
            Self::PowerOff => "power_off",
            Self::Separation => "separation",
            Self::LowBattery => "low_battery",
            Self::Abscondment => "abscondment",
        }
    }
}

/// One incident the run must produce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedIncident {
    /// Subject id.
    pub subject: String,
    /// The device whose data shows it.
    pub device: String,
    /// Incident kind.
    pub kind: IncidentKind,
    /// Scenario that provokes it (informational).
    #[serde(default)]
    pub scenario: Option<String>,
    /// Earliest acceptable incident start, epoch ms.
    #[serde(with = "time_field")]
    pub not_before: i64,
    /// Latest acceptable incident start, epoch ms.
    #[serde(with = "time_field")]
    pub not_after: i64,
    /// Device time of the message that, by the scenario, triggers the
    /// incident (the first fix outside, the tamper event, ...), epoch ms;
    /// publish → incident latency is measured from its publication. Absent
    /// when no single message triggers it (lost contact).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_time_field"
    )]
    pub trigger_at: Option<i64>,
}

/// An incident seen on the alert feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedIncident {
    /// Subject id.
    pub subject: String,
    /// Kind name as the service reports it.
    pub kind: String,
    /// Incident start (device time of the evidence), epoch ms.
    pub at_ms: i64,
    /// Last known position when the feed opened it, `[lat, lon]`: tells
    /// which device's fix confirmed it when every device stands still (a
    /// load run), since the feed names subjects, not devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<[f64; 2]>,
}

/// The expectation file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Format version, 1.
    pub version: u32,
    /// Seed the run was generated from, if synthetic.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Incidents that must fire; nothing else may.
    pub incidents: Vec<ExpectedIncident>,
    /// Set-up the service needs for the run (subjects, devices, rules), as
    /// free JSON so hand-written files can omit it.
    #[serde(default)]
    pub subjects: serde_json::Value,
}

/// An expectation file could not be read.
#[derive(Debug, Error)]
pub enum ExpectError {
    /// Unreadable file.
    #[error("cannot read expectation file: {0}")]
    Io(String),
    /// Invalid JSON or unknown field; serde names line and column.
    #[error("bad expectation file: {0}")]
    Invalid(String),
    /// Unsupported version.
    #[error("unsupported expectation file version {0} (want 1)")]
    Version(u32),
}

impl ExpectError {
    /// Stable low-cardinality code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io(_) => "io",
            Self::Invalid(_) => "invalid_expectations",
            Self::Version(_) => "unsupported_version",
        }
    }
}

impl Expectations {
    /// Parses an expectation file.
    pub fn parse(text: &str) -> Result<Self, ExpectError> {
        let e: Self =
            serde_json::from_str(text).map_err(|e| ExpectError::Invalid(e.to_string()))?;
        if e.version != 1 {
            return Err(ExpectError::Version(e.version));
        }
        Ok(e)
    }

    /// Reads an expectation file.
    pub fn load(path: &std::path::Path) -> Result<Self, ExpectError> {
        let text = std::fs::read_to_string(path).map_err(|e| ExpectError::Io(e.to_string()))?;
        Self::parse(&text)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// Compares observed incidents with the expectations.
    pub fn check(&self, observed: &[ObservedIncident]) -> CheckReport {
        let mut used = vec![false; observed.len()];
        let mut matched = Vec::new();
        let mut missing = Vec::new();
        let mut pairs = Vec::new();
        for exp in &self.incidents {
            let hit = observed.iter().enumerate().position(|(i, o)| {
                !used[i]
                    && o.subject == exp.subject
                    && o.kind == exp.kind.name()
                    && (exp.not_before..=exp.not_after).contains(&o.at_ms)
            });
            match hit {
                Some(i) => {
                    used[i] = true;
                    pairs.push((matched.len() + missing.len(), i));
                    matched.push((exp.clone(), observed[i].clone()));
                }
                None => missing.push(exp.clone()),
            }
        }
        let unexpected = observed
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(o, _)| o.clone())
            .collect();
        CheckReport {
            matched,
            missing,
            unexpected,
            pairs,
        }
    }
}

/// Reads observed incidents from either NDJSON lines
/// `{"subject","kind","at_ms"}` or a capture of the officers' SSE feed
/// (`curl -N .../feed > feed.sse`): every `data:` line whose payload has
/// `change == "opened"` counts once, as its `incident.subject`,
/// `incident.episode_kind` (the kind the episode started as, so a later
/// promotion to abscondment does not hide it) and `incident.opened_at`.
/// Other feed changes (acknowledged, escalated, cleared) are not incidents.
pub fn parse_observed(text: &str) -> Result<Vec<ObservedIncident>, ExpectError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let bad = |m: String| ExpectError::Invalid(format!("observed line {}: {m}", i + 1));
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        if let Some(data) = line.strip_prefix("data:") {
            let v: serde_json::Value =
                serde_json::from_str(data.trim()).map_err(|e| bad(e.to_string()))?;
            if v.get("change").and_then(|c| c.as_str()) != Some("opened") {
                continue;
            }
            let inc = v.get("incident").ok_or_else(|| bad("no incident".into()))?;
            let text_field = |k: &str| {
                inc.get(k)
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("incident.{k} missing")))
            };
            let at_ms = match inc.get("opened_at") {
                Some(serde_json::Value::Number(n)) => n.as_i64(),
                Some(serde_json::Value::String(t)) => crate::trace::parse_time_ms(t).ok(),
                _ => None,
            }
            .ok_or_else(|| bad("incident.opened_at missing or bad".into()))?;
            let position = inc
                .get("last_position")
                .and_then(|p| Some([p.get("lat")?.as_f64()?, p.get("lon")?.as_f64()?]));
            out.push(ObservedIncident {
                subject: text_field("subject")?,
                kind: text_field("episode_kind").or_else(|_| text_field("kind"))?,
                at_ms,
                position,
            });
        } else if line.starts_with('{') {
            out.push(serde_json::from_str(line).map_err(|e| bad(e.to_string()))?);
        }
        // Other SSE fields (`id:`, `event:`, `retry:`) carry nothing to check.
    }
    Ok(out)
}

/// Result of [`Expectations::check`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckReport {
    /// Expected and seen.
    pub matched: Vec<(ExpectedIncident, ObservedIncident)>,
    /// Expected, not seen in its window.
    pub missing: Vec<ExpectedIncident>,
    /// Seen, not expected: false alerts (or real ones out of their window).
    pub unexpected: Vec<ObservedIncident>,
    /// For each match: index of the expected incident in
    /// [`Expectations::incidents`] and of the observed one in the input.
    pub pairs: Vec<(usize, usize)>,
}

impl CheckReport {
    /// True when the run produced exactly what was expected.
    pub fn passed(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }

    /// Readable lines for the terminal.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "incidents: {} matched, {} missing, {} unexpected\n",
            self.matched.len(),
            self.missing.len(),
            self.unexpected.len()
        );
        for m in &self.missing {
            s += &format!(
                "  missing    {} {} between {} and {}\n",
                m.subject,
                m.kind.name(),
                format_time_ms(m.not_before),
                format_time_ms(m.not_after)
            );
        }
        for u in &self.unexpected {
            s += &format!(
                "  unexpected {} {} at {}\n",
                u.subject,
                u.kind,
                format_time_ms(u.at_ms)
            );
        }
        s
    }
}

/// Times as RFC 3339 in files; epoch milliseconds accepted on input.
mod time_field {
    use super::*;

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time_ms(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum T {
            Ms(i64),
            Text(String),
        }
        match T::deserialize(d)? {
            T::Ms(ms) => Ok(ms),
            T::Text(t) => crate::trace::parse_time_ms(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Optional times, same rules as [`time_field`].
mod opt_time_field {
    use super::*;

    pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => time_field::serialize(ms, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        time_field::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(subject: &str, kind: IncidentKind, from: i64, to: i64) -> ExpectedIncident {
        ExpectedIncident {
            subject: subject.into(),
            device: format!("{subject}-b"),
            kind,
            scenario: None,
            not_before: from,
            not_after: to,
            trigger_at: None,
        }
    }

    fn obs(subject: &str, kind: &str, at_ms: i64) -> ObservedIncident {
        ObservedIncident {
            subject: subject.into(),
            kind: kind.into(),
            at_ms,
            position: None,
        }
    }

    #[test]
    fn check_matches_once_and_reports_both_sides() {
        let e = Expectations {
            version: 1,
            seed: Some(1),
            incidents: vec![
                exp("S1", IncidentKind::ZoneExit, 100, 200),
                exp("S2", IncidentKind::Tamper, 100, 200),
            ],
            subjects: serde_json::Value::Null,
        };
        let ok = e.check(&[obs("S2", "tamper", 150), obs("S1", "zone_exit", 200)]);
        assert!(ok.passed(), "{}", ok.summary());
        assert_eq!(ok.matched.len(), 2);
        assert_eq!(ok.pairs, vec![(0, 1), (1, 0)]);

        // Second exit of S1 is a false alert; S2's tamper is out of window.
        let bad = e.check(&[
            obs("S1", "zone_exit", 120),
            obs("S1", "zone_exit", 130),
            obs("S2", "tamper", 201),
        ]);
        assert!(!bad.passed());
        assert_eq!(bad.missing.len(), 1);
        assert_eq!(bad.missing[0].subject, "S2");
        assert_eq!(bad.pairs, vec![(0, 0)]);
        assert_eq!(bad.unexpected.len(), 2);
        assert!(
            bad.summary().contains("unexpected S1 zone_exit"),
            "{}",
            bad.summary()
        );
    }

    #[test]
    fn observed_incidents_from_ndjson_and_sse_capture() {
        let sse = "retry: 2000\n\nid: 1\nevent: incident\n\
            data: {\"schema\":1,\"change\":\"opened\",\"incident\":{\"subject\":\"S1\",\"kind\":\"abscondment\",\"episode_kind\":\"zone_exit\",\"opened_at\":1500,\
            \"last_position\":{\"lat\":34.7,\"lon\":113.6,\"accuracy_m\":8.0}}}\n\n\
            id: 2\nevent: incident\n\
            data: {\"schema\":1,\"change\":\"acknowledged\",\"incident\":{\"subject\":\"S1\",\"kind\":\"zone_exit\",\"episode_kind\":\"zone_exit\",\"opened_at\":1500}}\n\n\
            {\"subject\":\"S2\",\"kind\":\"tamper\",\"at_ms\":7}\n";
        let seen = parse_observed(sse).unwrap();
        assert_eq!(
            seen,
            vec![
                ObservedIncident {
                    position: Some([34.7, 113.6]),
                    ..obs("S1", "zone_exit", 1500)
                },
                obs("S2", "tamper", 7)
            ]
        );
        let e = parse_observed("data: {\"change\":\"opened\"}\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert_eq!(e.reason(), "invalid_expectations");
    }

    #[test]
    fn file_round_trips_and_rejects_bad_input() {
        let e = Expectations {
            version: 1,
            seed: None,
            incidents: vec![exp("S1", IncidentKind::CurfewBreach, 1_000, 61_000)],
            subjects: serde_json::json!([{"id": "S1"}]),
        };
        let text = e.to_json();
        assert!(text.contains("\"curfew_breach\"") && text.contains("1970-01-01T00:01:01.000Z"));
        assert_eq!(Expectations::parse(&text).unwrap(), e);
        let hand = r#"{"version":1,"incidents":[{"subject":"S","device":"d","kind":"tamper","not_before":0,"not_after":"1970-01-01T00:00:01Z"}]}"#;
        let parsed = Expectations::parse(hand).unwrap();
        assert_eq!(parsed.incidents[0].not_after, 1000);
        assert_eq!(parsed.incidents[0].trigger_at, None);
        let mut with_trigger = e.clone();
        with_trigger.incidents[0].trigger_at = Some(2_000);
        let text = with_trigger.to_json();
        assert!(
            text.contains(r#""trigger_at": "1970-01-01T00:00:02.000Z""#),
            "{text}"
        );
        assert_eq!(Expectations::parse(&text).unwrap(), with_trigger);
        assert_eq!(
            Expectations::parse(r#"{"version":2,"incidents":[]}"#)
                .unwrap_err()
                .reason(),
            "unsupported_version"
        );
        let err = Expectations::parse("{\"version\":1,\n\"incidents\":[{\"kind\":\"fire\"}]}")
            .unwrap_err();
        assert_eq!(err.reason(), "invalid_expectations");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
