//! The service registry a fleet needs, as a `geoward import` TOML file:
//! offices are the operator's, everything else comes from the fleet's
//! subjects (subjects, their bracelets and phones, the permitted county, a
//! home zone with the curfew rule, exclusion circles with keep-out rules,
//! and an active monitoring order each). `geoward import FILE` prints the
//! devices' credentials once; saved, they are `--credentials` for the run.
//!
//! Order times are written as quoted RFC 3339 strings: the service reads
//! them with chrono, which does not take TOML's native datetime values
//! through the `toml` crate.

use std::fmt::Write;

use crate::fleet::{Circle, SubjectSetup};
use crate::geo::{Area, LatLon};
use crate::trace::time::format_time_ms;

/// What the registry needs besides the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryOptions {
    /// Office every subject belongs to (must exist or be imported too).
    pub office: String,
    /// Supervision level of every subject: `strict`, `normal`, `lenient`.
    pub supervision_level: String,
    /// Reporting interval the service expects of the subjects' devices,
    /// seconds (lost contact is a multiple of it, counted in wall time).
    pub expected_interval_s: i64,
    /// Monitoring orders run from here (epoch ms) ...
    pub order_starts_ms: i64,
    /// ... to here (at most three months later).
    pub order_ends_ms: i64,
}

/// Vertices of the polygons standing in for circles.
const CIRCLE_VERTICES: usize = 48;

/// The import file for `subjects` living in `area`.
pub fn import_toml(subjects: &[SubjectSetup], area: &Area, o: &RegistryOptions) -> String {
    let mut t = String::new();
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let zone_id = format!(
        "permitted{}",
        area.id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
    );
    let _ = writeln!(
        t,
        "[[zones]]\nid = {}\noffice_id = {}\nname = {}\nkind = \"permitted\"\ngeojson = {}\n",
        q(&zone_id),
        q(&o.office),
        q(&area.name),
        q(&area_geojson(area))
    );
    for s in subjects {
        let id = &s.id;
        let _ = writeln!(
            t,
            "[[subjects]]\nid = {}\noffice_id = {}\nname = {}\nsupervision_level = {}\nexpected_interval_s = {}\n",
            q(id),
            q(&o.office),
            q(&format!("Subject {id}")),
            q(&o.supervision_level),
            o.expected_interval_s
        );
        for d in &s.devices {
            let _ = writeln!(
                t,
                "[[devices]]\nid = {}\nkind = {}\nsubject_id = {}\n",
                q(&d.id),
                q(&d.kind),
                q(id)
            );
        }
        let home = LatLon::new(s.home.lat, s.home.lon);
        let home_circle = Circle {
            lat: home.lat,
            lon: home.lon,
            radius_m: s.curfew.radius_m,
        };
        let _ = writeln!(
            t,
            "[[zones]]\nid = {}\noffice_id = {}\nname = {}\nkind = \"home\"\ngeojson = {}\n",
            q(&format!("{id}home")),
            q(&o.office),
            q(&format!("home of {id}")),
            q(&circle_geojson(home_circle))
        );
        let hm = |m: u32| format!("{:02}:{:02}:00", m / 60, m % 60);
        let params = format!(
            "{{\"start\":\"{}\",\"end\":\"{}\"}}",
            hm(s.curfew.start_minute),
            hm(s.curfew.end_minute)
        );
        let rule = |t: &mut String, rid: String, kind: &str, zone: &str, params: &str| {
            let _ = writeln!(
                t,
                "[[rules]]\nid = {}\nsubject_id = {}\nkind = {}\nzone_id = {}\nparams = {}\n",
                q(&rid),
                q(id),
                q(kind),
                q(zone),
                q(params)
            );
        };
        rule(&mut t, format!("{id}stay"), "stay_inside", &zone_id, "{}");
        rule(
            &mut t,
            format!("{id}curfew"),
            "curfew",
            &format!("{id}home"),
            &params,
        );
        for (k, c) in s.exclusions.iter().enumerate() {
            let zid = format!("{id}x{k}");
            let _ = writeln!(
                t,
                "[[zones]]\nid = {}\noffice_id = {}\nname = {}\nkind = \"exclusion\"\ngeojson = {}\n",
                q(&zid),
                q(&o.office),
                q(&format!("exclusion {k} of {id}")),
                q(&circle_geojson(*c))
            );
            rule(&mut t, format!("{id}keepout{k}"), "keep_out", &zid, "{}");
        }
        let _ = writeln!(
            t,
            "[[orders]]\nid = {}\nsubject_id = {}\nlegal_basis = \"warned_leaving_area\"\napprover = \"geoward-sim\"\nstarts_at = {}\nends_at = {}\n",
            q(&format!("{id}order")),
            q(id),
            q(&format_time_ms(o.order_starts_ms)),
            q(&format_time_ms(o.order_ends_ms))
        );
    }
    t
}

fn ring_json(ring: &[LatLon]) -> Vec<[f64; 2]> {
    let mut out: Vec<[f64; 2]> = ring.iter().map(|p| [p.lon, p.lat]).collect();
    if let (Some(a), Some(b)) = (out.first().copied(), out.last().copied())
        && a != b
    {
        out.push(a);
    }
    out
}

/// The area as a GeoJSON MultiPolygon.
pub fn area_geojson(area: &Area) -> String {
    let polys: Vec<Vec<Vec<[f64; 2]>>> = area
        .polygons
        .iter()
        .map(|p| p.rings.iter().map(|r| ring_json(r)).collect())
        .collect();
    serde_json::json!({"type": "MultiPolygon", "coordinates": polys}).to_string()
}

/// A circle as a GeoJSON Polygon (counter-clockwise, inscribed vertices
/// pushed out so the polygon covers the circle).
pub fn circle_geojson(c: Circle) -> String {
    let centre = LatLon::new(c.lat, c.lon);
    let r = c.radius_m / (std::f64::consts::PI / CIRCLE_VERTICES as f64).cos();
    let ring: Vec<LatLon> = (0..CIRCLE_VERTICES)
        .map(|k| {
            let a = std::f64::consts::TAU * k as f64 / CIRCLE_VERTICES as f64;
            centre.moved(r * a.cos(), r * a.sin())
        })
        .collect();
    serde_json::json!({"type": "Polygon", "coordinates": [ring_json(&ring)]}).to_string()
}
