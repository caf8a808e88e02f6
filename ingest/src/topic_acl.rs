//! Who may publish and subscribe on which topic of the plain TCP listener.
//!
//! rumqttd 0.20 has no topic authorisation, so on plain TCP any authenticated
//! client could read every device's uplinks (everyone's location) and every
//! office's alerts, and could publish fake alerts on an office topic. The
//! vendored rumqttd (`vendor/rumqttd`, see its `GEOWARD-PATCH.md`) asks
//! [`allows`] for every publish topic, subscription filter and will topic of
//! a remote client. The client id is the authenticated identity: the auth hook
//! only admits a client whose id equals its username.
//!
//! Two kinds of clients connect:
//! - a device (client id = device id): publishes its own uplinks only
//!   (Geoward JSON/binary and OwnTracks), subscribes to its own downlink only
//!   (and to the `cmd` topic the stock OwnTracks app listens on);
//! - an office's alert consumer (client id `office:<office id>`, password an
//!   API token of that office): subscribes to that office's alert topic only,
//!   publishes nothing.
//!
//! A refused publish disconnects the client; a refused subscription gets a
//! failure return code. Both are counted as security events. The TLS listener
//! needs none of this: `validate-tenant-prefix` already confines a client to
//! its own `/tenants/<device id>/` topics.

use geoward_proto::{Route, Topic};
use rumqttd::AclAction;

/// Client id prefix of an office's alert consumer; device ids cannot contain
/// `:`, so the two never collide.
pub const OFFICE_CLIENT_PREFIX: &str = "office:";

/// True when `client_id` may do `action` on `topic` (a topic name for
/// publishes, a filter for subscriptions).
pub fn allows(client_id: &str, action: AclAction, topic: &str) -> bool {
    if let Some(office) = client_id.strip_prefix(OFFICE_CLIENT_PREFIX) {
        return action == AclAction::Subscribe && is_office_alerts(topic, office);
    }
    match action {
        AclAction::Publish => is_own_uplink(topic, client_id),
        AclAction::Subscribe => is_own_downlink(topic, client_id),
    }
}

fn is_own_uplink(topic: &str, device: &str) -> bool {
    match Topic::parse(topic) {
        Ok(Topic {
            tenant: None,
            route: Route::Uplink { device: d, .. } | Route::OwnTracks { device: d, .. },
        }) => d.as_str() == device,
        _ => false,
    }
}

fn is_own_downlink(filter: &str, device: &str) -> bool {
    if let Ok(Topic {
        tenant: None,
        route: Route::Downlink { device: d },
    }) = Topic::parse(filter)
    {
        return d.as_str() == device;
    }
    // The stock OwnTracks app listens on `owntracks/<user>/<device>/cmd`.
    let mut parts = filter.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("owntracks"), Some(user), Some(d), Some("cmd"), None)
            if d == device && geoward_proto::ids::validate_id(user).is_ok()
    )
}

fn is_office_alerts(filter: &str, office: &str) -> bool {
    matches!(
        Topic::parse(filter),
        Ok(Topic { tenant: None, route: Route::OfficeAlerts { office: o } }) if o.as_str() == office
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclAction::{Publish, Subscribe};

    #[test]
    fn a_device_publishes_only_its_own_uplinks() {
        assert!(allows("devA", Publish, "geoward/v1/dev/devA/up/json"));
        assert!(allows("devA", Publish, "geoward/v1/dev/devA/up/bin"));
        assert!(allows("devA", Publish, "owntracks/alice/devA"));
        for t in [
            "geoward/v1/dev/devB/up/json",
            "owntracks/alice/devB",
            "/tenants/devA/geoward/v1/dev/devA/up/json",
            "geoward/v1/dev/devA/down",
            "geoward/v1/office/zz/alerts",
            "anything/else",
            "",
        ] {
            assert!(!allows("devA", Publish, t), "{t}");
        }
    }

    #[test]
    fn a_device_subscribes_only_to_its_own_downlink() {
        assert!(allows("devA", Subscribe, "geoward/v1/dev/devA/down"));
        assert!(allows("devA", Subscribe, "owntracks/alice/devA/cmd"));
        for f in [
            "geoward/v1/dev/devB/down",
            "geoward/v1/dev/+/down",
            "geoward/v1/dev/+/up/+",
            "geoward/v1/dev/devA/up/json",
            "owntracks/+/+",
            "owntracks/+/devA/cmd",
            "owntracks/alice/devB/cmd",
            "geoward/v1/office/zz/alerts",
            "geoward/v1/office/+/alerts",
            "#",
            "$share/g/geoward/v1/dev/devA/down",
        ] {
            assert!(!allows("devA", Subscribe, f), "{f}");
        }
    }

    #[test]
    fn an_office_consumer_reads_only_its_office_alerts_and_publishes_nothing() {
        assert!(allows(
            "office:zz",
            Subscribe,
            "geoward/v1/office/zz/alerts"
        ));
        for f in [
            "geoward/v1/office/zy/alerts",
            "geoward/v1/office/+/alerts",
            "geoward/v1/dev/+/up/+",
            "#",
        ] {
            assert!(!allows("office:zz", Subscribe, f), "{f}");
        }
        assert!(!allows("office:zz", Publish, "geoward/v1/office/zz/alerts"));
        assert!(!allows("office:zz", Publish, "geoward/v1/dev/zz/up/json"));
    }
}
