//! Validated identifiers that appear in MQTT topics.
//!
//! Ids are topic segments, so they must never contain `/`, `+` or `#`; the
//! charset is kept deliberately small so an id is also safe in file names,
//! SQL, logs and URLs without escaping.

use std::fmt;
use std::sync::Arc;

use crate::error::IdError;

/// Longest device, office or OwnTracks user id, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Checks the id rule: 1 to [`MAX_ID_LEN`] characters from `A-Z a-z 0-9 _ -`.
pub fn validate_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: s.len() });
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(IdError::BadChar { c });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        ///
        /// Cheap to clone (shared, immutable): every decoded message carries one.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps an id.
            pub fn new(s: impl AsRef<str>) -> Result<Self, IdError> {
                let s = s.as_ref();
                $check(s)?;
                Ok(Self(Arc::from(s)))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

id_type!(
    /// A device id (bracelet or phone): 1 to 64 of `A-Z a-z 0-9 _ -`.
    DeviceId,
    validate_id
);
id_type!(
    /// A justice office id: same charset as [`DeviceId`].
    OfficeId,
    validate_id
);
id_type!(
    /// An OwnTracks user name (the `{user}` topic segment): same charset as
    /// [`DeviceId`]. It is not part of a device's identity.
    OwnTracksUser,
    validate_id
);
id_type!(
    /// A broker tenant: the Organization of a TLS client certificate, as
    /// rumqttd 0.20 accepts it (non-empty, every character alphanumeric in the
    /// Unicode sense), at most 64 bytes.
    TenantId,
    validate_tenant
);

/// The rumqttd rule (`char::is_alphanumeric` for every char) plus a length cap.
pub fn validate_tenant(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: s.len() });
    }
    if let Some(c) = s.chars().find(|c| !c.is_alphanumeric()) {
        return Err(IdError::BadChar { c });
    }
    Ok(())
}
