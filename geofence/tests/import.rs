//! Import never panics, and reports what it repaired or rejected.

use expect_test::expect;
use geoward_geofence::import_geojson;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON biased towards GeoJSON-looking shapes.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-200.0f64..200.0).prop_map(|f| json!(f)),
        any::<i64>().prop_map(|i| json!(i)),
        prop_oneof![
            Just("Feature"),
            Just("Polygon"),
            Just("MultiPolygon"),
            Just("Point"),
            Just("exclusion"),
            Just("2024-01-01T00:00:00Z"),
            Just("x"),
            Just("@@T@@TS@"),
            Just("@@T"),
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("type"),
                        Just("coordinates"),
                        Just("geometry"),
                        Just("properties"),
                        Just("id"),
                        Just("kind"),
                        Just("radius_m"),
                        Just("valid_from"),
                        Just("version"),
                        Just("encodeOffsets"),
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn import_never_panics(geometry in arb_json(), props in arb_json(), id in arb_json()) {
        let doc = json!({
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "id": id, "properties": props, "geometry": geometry}]
        });
        if let Ok((set, report)) = import_geojson(&doc.to_string()) {
            prop_assert_eq!(set.len(), report.accepted);
            prop_assert_eq!(report.accepted + report.defects.len(), report.features);
            for z in set.zones() {
                let _ = set.locate(0.0, 0.0);
                let _ = set.relate(set.versions(&z.id)[0], 0.5, 0.5, 10.0);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = import_geojson(&text);
    }
}

fn report_of(doc: Value) -> String {
    let (_, report) = import_geojson(&doc.to_string()).expect("geojson");
    let mut out = format!("accepted {} of {}\n", report.accepted, report.features);
    for r in &report.repairs {
        out += &format!("{r}\n");
    }
    for d in &report.defects {
        out += &format!("{d}\n");
    }
    out
}

#[test]
fn repairs_and_defects_name_the_feature() {
    let square = json!([[[0, 0], [1, 0], [1, 0], [1, 1], [0, 1]]]);
    let doc = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "ok", "properties": {}, "geometry": {"type": "Polygon", "coordinates": square}},
        {"type": "Feature", "properties": {"adcode": 410102, "kind": "exclusion"},
         "geometry": {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [2, 0], [0, 0]]], square]}},
        {"type": "Feature", "id": "flat", "properties": null,
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}},
        {"type": "Feature", "id": "line", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
        {"type": "Feature", "id": "far", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 95], [1, 1], [0, 0]]]}},
        {"type": "Feature", "id": "c", "properties": {"radius_m": -5}, "geometry": {"type": "Point", "coordinates": [1, 1]}},
        {"type": "Feature", "id": "c2", "properties": {"radius_m": 50, "kind": "prison"}, "geometry": {"type": "Point", "coordinates": [1, 1]}},
        {"type": "Feature", "id": "ok", "properties": {}, "geometry": {"type": "Polygon", "coordinates": square}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": square}},
    ]});
    expect![[r#"
        accepted 2 of 9
        feature 0 (id "ok"): repaired repeated_vertex x1
        feature 0 (id "ok"): repaired unclosed_ring x1
        feature 1 (id "410102"): repaired repeated_vertex x1
        feature 1 (id "410102"): repaired unclosed_ring x1
        feature 1 (id "410102"): repaired zero_area_part x1
        feature 2 (id "flat"): geometry has no area left after repair (empty_geometry)
        feature 3 (id "line"): unsupported geometry type "LineString" (want Polygon, MultiPolygon or Point with radius_m) (unsupported_geometry)
        feature 4 (id "far"): invalid coordinates: position (1, 95) is not a longitude/latitude (invalid_coordinates)
        feature 5 (id "c"): invalid circle radius: -5 m is not in (0, 100000] (invalid_radius)
        feature 6 (id "c2"): invalid property kind: "prison" is not permitted, exclusion or home (invalid_property)
        feature 7 (id "ok"): duplicate zone id and version 1 (duplicate_id)
        feature 8: no zone id (feature id, or property id, zone_id, adcode or name) (missing_id)
    "#]].assert_eq(&report_of(doc));
}
