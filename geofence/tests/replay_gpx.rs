//! Replays a real GPS track (GPX), moved so that it crosses a real county
//! boundary, and checks the tracker reports exactly one confirmed breach
//! without flapping.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::load_zones;
use geoward_geofence::{Fix, Shape, Source, SubjectRules, Thresholds, Tracker, TransitionKind};

/// Track points `(lat, lon, time)` of a GPX file, parsed minimally.
fn parse_gpx(text: &str) -> Vec<(f64, f64, DateTime<Utc>)> {
    let mut out = Vec::new();
    for chunk in text.split("<trkpt ").skip(1) {
        let Some(end) = chunk.find("</trkpt>") else {
            continue;
        };
        let body = &chunk[..end];
        let attr = |name: &str| {
            let start = body.find(&format!("{name}=\""))? + name.len() + 2;
            let len = body[start..].find('"')?;
            body[start..start + len].parse::<f64>().ok()
        };
        let time = body
            .find("<time>")
            .and_then(|s| {
                body[s + 6..]
                    .find("</time>")
                    .map(|e| &body[s + 6..s + 6 + e])
            })
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        if let (Some(lat), Some(lon), Some(time)) = (attr("lat"), attr("lon"), time) {
            out.push((lat, lon, time.with_timezone(&Utc)));
        }
    }
    out
}

#[test]
fn moved_real_track_crossing_a_county_boundary_gives_one_breach() {
    let text = std::fs::read_to_string(common::data().join("traces/cerknicko-jezero.gpx"))
        .expect("trace present");
    let track = parse_gpx(&text);
    assert!(track.len() > 200, "{} points", track.len());
    let (set, _) = load_zones("he2_nan2_zheng4_zhou1.geojson");

    // Find a placement: the track's middle point on a boundary vertex, the
    // first 20 % inside the zone and the last 20 % outside, one real
    // crossing, preferring one where the raw inside/outside sequence flips
    // more than once (jitter along the boundary, which the hysteresis must
    // absorb).
    let n = track.len();
    let mut best = None;
    'zones: for i in 0..set.len() {
        let Shape::Polygons(mp) = &set.zones()[i].shape else {
            continue;
        };
        let zref = *set.versions(&set.zones()[i].id).first().expect("version");
        let ring = &mp.0[0].exterior().0;
        let anchors = [n * 4 / 10, n / 2, n * 6 / 10].map(|k| track[k]);
        for (v, mid) in ring
            .iter()
            .step_by((ring.len() / 200).max(1))
            .flat_map(|v| anchors.iter().map(move |a| (v, a)))
        {
            let (dlat, dlon) = (v.y - mid.0, v.x - mid.1);
            let inside: Vec<bool> = track
                .iter()
                .map(|p| set.contains(zref, p.1 + dlon, p.0 + dlat))
                .collect();
            let k = n / 5;
            if !inside[..k].iter().all(|b| *b) || inside[n - k..].iter().any(|b| *b) {
                continue;
            }
            // One real crossing: after dropping runs shorter than six fixes
            // (a couple of minutes of jitter), inside then outside.
            let mut runs: Vec<(bool, usize)> = Vec::new();
            for b in &inside {
                match runs.last_mut() {
                    Some((v, len)) if v == b => *len += 1,
                    _ => runs.push((*b, 1)),
                }
            }
            let mut long: Vec<bool> = runs.iter().filter(|r| r.1 >= 6).map(|r| r.0).collect();
            long.dedup();
            if long != [true, false] {
                continue;
            }
            let flips = runs.len() - 1;
            if best.as_ref().is_none_or(|(_, _, _, f)| flips > *f) {
                best = Some((set.zones()[i].id.clone(), dlat, dlon, flips));
            }
            if flips >= 3 {
                break 'zones;
            }
        }
    }
    let (zone, dlat, dlon, flips) = best.expect("a placement crossing a boundary exists");
    println!("placement on {zone}: {flips} raw inside/outside flips");
    assert!(flips > 1, "the placement should jitter across the boundary");

    let rules = SubjectRules {
        permitted: vec![zone.clone()],
        ..SubjectRules::default()
    };
    let mut tracker = Tracker::new(
        "hiker".into(),
        rules,
        Arc::new(set),
        Arc::new(Thresholds::default()),
    )
    .expect("rules");
    let mut transitions = Vec::new();
    for (seq, (lat, lon, time)) in track.iter().enumerate() {
        let fix = Fix {
            time: *time,
            lat: lat + dlat,
            lon: lon + dlon,
            accuracy_m: 5.0,
            source: Source::Gnss,
            device_seq: seq as u64,
        };
        transitions.extend(
            tracker
                .observe(fix, *time + Duration::seconds(2))
                .expect("valid fix"),
        );
    }
    let count = |pred: &dyn Fn(&TransitionKind) -> bool| {
        transitions.iter().filter(|t| pred(&t.kind)).count()
    };
    let confirmed = count(&|k| *k == TransitionKind::BreachConfirmed);
    let ended_confirmed = count(&|k| {
        *k == TransitionKind::BreachEnded {
            was_confirmed: true,
        }
    });
    let started = count(&|k| *k == TransitionKind::BreachStarted);
    let summary: Vec<String> = transitions
        .iter()
        .map(|t| format!("{} {}", t.kind.as_str(), t.event_time))
        .collect();
    assert_eq!(confirmed, 1, "zone {zone}, {flips} raw flips: {summary:?}");
    assert_eq!(ended_confirmed, 0, "{summary:?}");
    // At most one pending start that came to nothing before the real one.
    assert!(started <= 2, "flapping: {summary:?}");
    assert!(!transitions.iter().any(|t| t.late), "{summary:?}");
}
