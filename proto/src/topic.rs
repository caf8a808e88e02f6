//! The MQTT topic scheme (see PROTOCOL.md), parsed and formatted.
//!
//! ```text
//! geoward/v1/dev/{device_id}/up/json     uplink, Geoward JSON
//! geoward/v1/dev/{device_id}/up/bin      uplink, binary frames
//! geoward/v1/dev/{device_id}/down        downlink (always JSON)
//! geoward/v1/office/{office_id}/alerts   alerts for one justice office
//! owntracks/{user}/{device_id}           uplink, OwnTracks JSON
//! ```
//!
//! Each may carry rumqttd's tenant prefix `/tenants/{tenant}/` (note the
//! leading slash): with the `validate-tenant-prefix` feature, rumqttd 0.20
//! only lets a TLS client whose certificate names Organization `{tenant}`
//! publish and subscribe under `"/tenants/" + tenant + "/"`
//! (`router/routing.rs`, `router/connection.rs`). The parsed [`Topic`] keeps
//! the tenant beside the device id so the service can check that the device
//! belongs to the tenant that the broker authenticated.

use std::fmt;
use std::str::FromStr;

use crate::error::TopicError;
use crate::ids::{DeviceId, OfficeId, OwnTracksUser, TenantId};
use crate::message::Encoding;

/// The rumqttd tenant prefix before the tenant id.
pub const TENANT_PREFIX: &str = "/tenants/";

/// Filters that subscribe to every uplink, with and without tenant prefix.
pub const UPLINK_FILTERS: [&str; 4] = [
    "geoward/v1/dev/+/up/+",
    "owntracks/+/+",
    "/tenants/+/geoward/v1/dev/+/up/+",
    "/tenants/+/owntracks/+/+",
];

/// Filters that match every device's downlink, with and without tenant
/// prefix (each device subscribes to its own downlink topic).
pub const DOWNLINK_FILTERS: [&str; 2] =
    ["geoward/v1/dev/+/down", "/tenants/+/geoward/v1/dev/+/down"];

/// What a topic is for, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// Uplink from a Geoward device; `encoding` is `Json` or `Binary`.
    Uplink {
        /// The publishing device.
        device: DeviceId,
        /// Payload encoding named by the last segment (`json` or `bin`).
        encoding: Encoding,
    },
    /// Downlink to a device (always Geoward JSON).
    Downlink {
        /// The receiving device.
        device: DeviceId,
    },
    /// Alerts for one justice office.
    OfficeAlerts {
        /// The office.
        office: OfficeId,
    },
    /// OwnTracks uplink; the Geoward device id is the `{device}` segment.
    OwnTracks {
        /// The OwnTracks user name (not part of the device identity).
        user: OwnTracksUser,
        /// The device.
        device: DeviceId,
    },
}

/// A parsed MQTT topic: an optional rumqttd tenant and a [`Route`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    /// The tenant from a `/tenants/{tenant}/` prefix, if any.
    pub tenant: Option<TenantId>,
    /// What the topic is for.
    pub route: Route,
}

fn seg<T>(
    s: &str,
    segment: &'static str,
    make: impl FnOnce(&str) -> Result<T, crate::error::IdError>,
) -> Result<T, TopicError> {
    make(s).map_err(|error| TopicError::BadId { segment, error })
}

impl Topic {
    /// Parses a topic name (not a filter: wildcards are invalid id characters).
    pub fn parse(s: &str) -> Result<Topic, TopicError> {
        let (tenant, rest) = match s.strip_prefix(TENANT_PREFIX) {
            Some(r) => {
                let (t, rest) = r.split_once('/').ok_or(TopicError::UnknownScheme)?;
                (Some(TenantId::new(t).map_err(TopicError::BadTenant)?), rest)
            }
            None => (None, s),
        };
        let mut parts = [""; 6];
        let mut n = 0;
        for p in rest.split('/') {
            if n == parts.len() {
                return Err(TopicError::UnknownScheme);
            }
            parts[n] = p;
            n += 1;
        }
        let route = match &parts[..n] {
            ["geoward", "v1", "dev", dev, "up", enc] => {
                let encoding = match *enc {
                    "json" => Encoding::Json,
                    "bin" => Encoding::Binary,
                    _ => return Err(TopicError::UnknownScheme),
                };
                Route::Uplink {
                    device: seg(dev, "device", |s| DeviceId::new(s))?,
                    encoding,
                }
            }
            ["geoward", "v1", "dev", dev, "down"] => Route::Downlink {
                device: seg(dev, "device", |s| DeviceId::new(s))?,
            },
            ["geoward", "v1", "office", office, "alerts"] => Route::OfficeAlerts {
                office: seg(office, "office", |s| OfficeId::new(s))?,
            },
            ["owntracks", user, dev] => Route::OwnTracks {
                user: seg(user, "user", |s| OwnTracksUser::new(s))?,
                device: seg(dev, "device", |s| DeviceId::new(s))?,
            },
            _ => return Err(TopicError::UnknownScheme),
        };
        Ok(Topic { tenant, route })
    }

    /// The uplink topic of a Geoward device (`encoding` `Json` or `Binary`;
    /// `OwnTracks` gives the OwnTracks topic with the device id as user).
    pub fn uplink(device: DeviceId, encoding: Encoding) -> Topic {
        let route = match encoding {
            Encoding::OwnTracks => Route::OwnTracks {
                user: OwnTracksUser::new(device.as_str())
                    .unwrap_or_else(|_| unreachable!("device ids are valid user names")),
                device,
            },
            _ => Route::Uplink { device, encoding },
        };
        Topic {
            tenant: None,
            route,
        }
    }

    /// The downlink topic of a device.
    pub fn downlink(device: DeviceId) -> Topic {
        Topic {
            tenant: None,
            route: Route::Downlink { device },
        }
    }

    /// The alert topic of an office.
    pub fn office_alerts(office: OfficeId) -> Topic {
        Topic {
            tenant: None,
            route: Route::OfficeAlerts { office },
        }
    }

    /// The OwnTracks topic `owntracks/{user}/{device}`.
    pub fn owntracks(user: OwnTracksUser, device: DeviceId) -> Topic {
        Topic {
            tenant: None,
            route: Route::OwnTracks { user, device },
        }
    }

    /// The same topic under a rumqttd tenant prefix.
    pub fn with_tenant(self, tenant: TenantId) -> Topic {
        Topic {
            tenant: Some(tenant),
            ..self
        }
    }

    /// The tenant, if the topic has a tenant prefix.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }

    /// The device the topic belongs to (uplink, downlink, OwnTracks).
    pub fn device_id(&self) -> Option<&DeviceId> {
        match &self.route {
            Route::Uplink { device, .. }
            | Route::Downlink { device }
            | Route::OwnTracks { device, .. } => Some(device),
            Route::OfficeAlerts { .. } => None,
        }
    }

    /// The payload encoding if this is an uplink topic.
    pub fn uplink_encoding(&self) -> Option<Encoding> {
        match &self.route {
            Route::Uplink { encoding, .. } => Some(*encoding),
            Route::OwnTracks { .. } => Some(Encoding::OwnTracks),
            _ => None,
        }
    }

    /// The downlink topic of this topic's device (same tenant), if it has a
    /// Geoward device. OwnTracks devices get no downlink.
    pub fn reply_topic(&self) -> Option<Topic> {
        match &self.route {
            Route::Uplink { device, .. } | Route::Downlink { device } => Some(Topic {
                tenant: self.tenant.clone(),
                route: Route::Downlink {
                    device: device.clone(),
                },
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.tenant {
            write!(f, "{TENANT_PREFIX}{t}/")?;
        }
        match &self.route {
            Route::Uplink { device, encoding } => {
                let enc = match encoding {
                    Encoding::Binary => "bin",
                    _ => "json",
                };
                write!(f, "geoward/v1/dev/{device}/up/{enc}")
            }
            Route::Downlink { device } => write!(f, "geoward/v1/dev/{device}/down"),
            Route::OfficeAlerts { office } => write!(f, "geoward/v1/office/{office}/alerts"),
            Route::OwnTracks { user, device } => write!(f, "owntracks/{user}/{device}"),
        }
    }
}

impl FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Topic, TopicError> {
        Topic::parse(s)
    }
}
