//! The MQTT topic scheme, including rumqttd's tenant prefix.

use geoward_proto::{DeviceId, Encoding, OfficeId, Route, TenantId, Topic};

fn check(s: &str, expect: &str) {
    let got = match Topic::parse(s) {
        Ok(t) => {
            assert_eq!(t.to_string(), s, "formats back");
            format!(
                "{:?} {:?} {:?}",
                t.tenant().map(TenantId::as_str),
                t.device_id().map(DeviceId::as_str),
                t.route
            )
        }
        Err(e) => format!("error {}: {e}", e.reason()),
    };
    assert_eq!(got, expect, "{s}");
}

#[test]
fn parses_and_formats_every_scheme() {
    check(
        "geoward/v1/dev/bracelet-0001/up/json",
        r#"None Some("bracelet-0001") Uplink { device: DeviceId("bracelet-0001"), encoding: Json }"#,
    );
    check(
        "geoward/v1/dev/B_7/up/bin",
        r#"None Some("B_7") Uplink { device: DeviceId("B_7"), encoding: Binary }"#,
    );
    check(
        "geoward/v1/dev/B_7/down",
        r#"None Some("B_7") Downlink { device: DeviceId("B_7") }"#,
    );
    check(
        "geoward/v1/office/sfs-310101/alerts",
        r#"None None OfficeAlerts { office: OfficeId("sfs-310101") }"#,
    );
    check(
        "owntracks/alice/phone",
        r#"None Some("phone") OwnTracks { user: OwnTracksUser("alice"), device: DeviceId("phone") }"#,
    );
}

/// rumqttd 0.20 (`router/routing.rs`): with `validate-tenant-prefix`, a TLS
/// client whose certificate Organization is `T` may only publish to topics
/// starting with `format!("/tenants/{T}/")`, and `T` must be alphanumeric.
#[test]
fn tenant_prefix_is_rumqttd_form() {
    check(
        "/tenants/acme/geoward/v1/dev/bracelet-0001/up/bin",
        r#"Some("acme") Some("bracelet-0001") Uplink { device: DeviceId("bracelet-0001"), encoding: Binary }"#,
    );
    check(
        "/tenants/上海/owntracks/u/d",
        r#"Some("上海") Some("d") OwnTracks { user: OwnTracksUser("u"), device: DeviceId("d") }"#,
    );
    let t = Topic::uplink(DeviceId::new("x1").expect("valid"), Encoding::Json)
        .with_tenant(TenantId::new("acme").expect("valid"));
    let rumqttd_prefix = format!("/tenants/{}/", "acme");
    assert!(t.to_string().starts_with(&rumqttd_prefix));
    assert_eq!(
        t.reply_topic().map(|r| r.to_string()).as_deref(),
        Some("/tenants/acme/geoward/v1/dev/x1/down")
    );
    check(
        "/tenants/ac-me/geoward/v1/dev/x/up/json",
        "error bad_tenant: bad tenant prefix: id contains the character '-' outside its charset",
    );
    check(
        "/tenants//geoward/v1/dev/x/up/json",
        "error bad_tenant: bad tenant prefix: id is empty",
    );
    check(
        "tenants/acme/geoward/v1/dev/x/up/json",
        "error unknown_scheme: topic does not match any known scheme",
    );
}

#[test]
fn rejects_bad_ids_and_unknown_schemes() {
    check(
        "geoward/v1/dev/a+b/up/json",
        "error bad_id: bad device id in topic: id contains the character '+' outside its charset",
    );
    check(
        "geoward/v1/dev//up/json",
        "error bad_id: bad device id in topic: id is empty",
    );
    check(
        &format!("geoward/v1/dev/{}/down", "x".repeat(65)),
        "error bad_id: bad device id in topic: id is 65 bytes long, more than allowed",
    );
    check(
        &format!("geoward/v1/dev/{}/down", "x".repeat(64)),
        &format!(
            "None Some(\"{0}\") Downlink {{ device: DeviceId(\"{0}\") }}",
            "x".repeat(64)
        ),
    );
    check(
        "geoward/v1/dev/x/up/xml",
        "error unknown_scheme: topic does not match any known scheme",
    );
    check(
        "geoward/v2/dev/x/up/json",
        "error unknown_scheme: topic does not match any known scheme",
    );
    check(
        "geoward/v1/dev/x/up/json/extra",
        "error unknown_scheme: topic does not match any known scheme",
    );
    check(
        "owntracks/alice/phone/event",
        "error unknown_scheme: topic does not match any known scheme",
    );
    check(
        "",
        "error unknown_scheme: topic does not match any known scheme",
    );
    assert!(OfficeId::new("é").is_err());
}

#[test]
fn uplink_encoding_and_route_helpers() {
    let d = DeviceId::new("d1").expect("valid");
    assert_eq!(
        Topic::uplink(d.clone(), Encoding::Binary).uplink_encoding(),
        Some(Encoding::Binary)
    );
    assert_eq!(
        Topic::uplink(d.clone(), Encoding::OwnTracks).to_string(),
        "owntracks/d1/d1"
    );
    assert_eq!(Topic::downlink(d.clone()).uplink_encoding(), None);
    assert!(matches!(Topic::downlink(d).route, Route::Downlink { .. }));
    for f in geoward_proto::topic::UPLINK_FILTERS {
        assert!(Topic::parse(f).is_err(), "filters are not topic names: {f}");
    }
}

/// MQTT matching for filters with `+` only (all the filters above use).
fn matches_filter(topic: &str, filter: &str) -> bool {
    let (t, f): (Vec<_>, Vec<_>) = (topic.split('/').collect(), filter.split('/').collect());
    t.len() == f.len() && t.iter().zip(&f).all(|(t, f)| *f == "+" || t == f)
}

#[test]
fn uplink_and_downlink_filters_match_exactly_their_topics() {
    use geoward_proto::topic::{DOWNLINK_FILTERS, UPLINK_FILTERS};
    let tenant = TenantId::new("d1").expect("valid");
    let d = DeviceId::new("d1").expect("valid");
    let downlinks = [
        Topic::downlink(d.clone()),
        Topic::downlink(d.clone()).with_tenant(tenant.clone()),
    ];
    let mut uplinks = Vec::new();
    for e in [Encoding::Json, Encoding::Binary, Encoding::OwnTracks] {
        uplinks.push(Topic::uplink(d.clone(), e));
        uplinks.push(Topic::uplink(d.clone(), e).with_tenant(tenant.clone()));
    }
    let alerts = Topic::office_alerts(OfficeId::new("zz").expect("valid"));
    let count = |topic: &Topic, filters: &[&str]| {
        let topic = topic.to_string();
        filters.iter().filter(|f| matches_filter(&topic, f)).count()
    };
    for t in &downlinks {
        assert_eq!(count(t, &DOWNLINK_FILTERS), 1, "{t}");
        assert_eq!(count(t, &UPLINK_FILTERS), 0, "{t}");
    }
    for t in &uplinks {
        assert_eq!(count(t, &UPLINK_FILTERS), 1, "{t}");
        assert_eq!(count(t, &DOWNLINK_FILTERS), 0, "{t}");
    }
    assert_eq!(
        count(&alerts, &UPLINK_FILTERS) + count(&alerts, &DOWNLINK_FILTERS),
        0
    );
}
