//! Identifiers, all plain strings chosen by the service.
//!
//! The core never parses them; it only compares and copies them, so the
//! service can use database keys, UUIDs or human codes as it likes.

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps a string.
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            /// The string form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// A supervised person (社区矫正对象).
    SubjectId
);
string_id!(
    /// A bracelet or phone.
    DeviceId
);
string_id!(
    /// A geofence rule (permitted area, exclusion zone, curfew).
    RuleId
);
string_id!(
    /// A justice office or bureau.
    OfficeId
);
string_id!(
    /// A delivery target (webhook, MQTT topic, live feed) of an office.
    TargetId
);
string_id!(
    /// An officer acting on an incident.
    OfficerId
);
string_id!(
    /// An incident; derived deterministically from subject, kind and opening time.
    IncidentId
);
