//! Decoding and verifying one uplink with `geoward-proto`, and converting it into the
//! pipeline's storage-neutral [`Accepted`] form.
//!
//! Identity rules enforced here (the broker cannot, see `broker.rs`):
//! - a topic with a tenant prefix must name the same device as its tenant. Over
//!   mTLS the broker only lets a client publish under its own certificate's prefix;
//!   but a plain-TCP client has no tenant and rumqttd lets it publish anywhere,
//!   including under `/tenants/<other>/`, so the prefix alone proves nothing here
//!   (the local link does not say which listener a publish came from);
//! - therefore every payload must prove the topic device's secret (MAC or OwnTracks
//!   encryption) unless `require_authenticated_payloads` is off, which is only safe
//!   when plain TCP is firewalled off and devices use mTLS.
//!
//! A wrong MAC, a tenant mismatch or a missing tag on plain TCP is a security event:
//! counted in `geoward_security_events_total` and never stored.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::RwLock;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use geoward_proto::{
    DecodeError, DecodeOptions, DeviceId, Downlink, Encoding, EventKind, KeyLookup, PositionSource,
    Timestamp, Topic, Uplink,
};

use super::plan::{Accepted, Item};
use crate::metrics::Metrics;
use crate::store::Store;

/// Decodes uplinks; holds the payload keys of devices seen so far.
#[derive(Debug)]
pub struct Decoder {
    store: Store,
    metrics: Metrics,
    opts: DecodeOptions,
    require_authenticated: bool,
    keys: RwLock<HashMap<DeviceId, Vec<u8>>>,
}

struct Keys<'a>(&'a HashMap<DeviceId, Vec<u8>>);

impl KeyLookup for Keys<'_> {
    fn device_secret(&self, device: &DeviceId) -> Option<Cow<'_, [u8]>> {
        self.0.get(device).map(|k| Cow::Borrowed(k.as_slice()))
    }
}

impl Decoder {
    /// A decoder over the device registry.
    pub fn new(
        store: Store,
        metrics: Metrics,
        max_payload_bytes: usize,
        require_authenticated: bool,
    ) -> Self {
        Self {
            store,
            metrics,
            opts: DecodeOptions {
                max_payload_bytes,
                // Checked per listener below, not by proto.
                require_authenticated: false,
                ..DecodeOptions::default()
            },
            require_authenticated,
            keys: RwLock::new(HashMap::new()),
        }
    }

    /// Forgets a device's cached key (after its credentials changed).
    pub fn forget(&self, device: &DeviceId) {
        if let Ok(mut k) = self.keys.write() {
            k.remove(device);
        }
    }

    async fn ensure_key(&self, device: &DeviceId) -> Result<(), &'static str> {
        if self
            .keys
            .read()
            .map(|k| k.contains_key(device))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let creds = self
            .store
            .device_credentials(device.as_str())
            .await
            .map_err(|e| {
                tracing::warn!(error = %format!("{e:#}"), "device key lookup failed");
                "registry_unavailable"
            })?;
        let Some(creds) = creds else {
            return Err("unknown_device");
        };
        let key = hex::decode(&creds.payload_key).map_err(|_| "bad_key")?;
        if let Ok(mut k) = self.keys.write() {
            k.insert(device.clone(), key);
        }
        Ok(())
    }

    /// Decodes one publish. On success returns the accepted message and its kind
    /// label; on rejection the reason code (already counted as a security event
    /// where it is one).
    pub async fn decode(
        &self,
        topic: &[u8],
        payload: Bytes,
        received_at: DateTime<Utc>,
    ) -> Result<(Accepted, &'static str), &'static str> {
        let topic_str = std::str::from_utf8(topic).map_err(|_| "bad_topic")?;
        let parsed = Topic::parse(topic_str).map_err(|e| DecodeError::from(e).reason())?;
        let device = match &parsed.route {
            geoward_proto::Route::Uplink { device, .. }
            | geoward_proto::Route::OwnTracks { device, .. } => device.clone(),
            _ => return Err("topic_mismatch"),
        };
        if let Some(tenant) = &parsed.tenant
            && tenant.as_str() != device.as_str()
        {
            self.metrics
                .security_events
                .with_label_values(&["tenant_mismatch"])
                .inc();
            return Err("tenant_mismatch");
        }
        // Unknown devices have no key; proto then rejects authenticated payloads as
        // unknown_key and plain ones fail the check below.
        if let Err(reason) = self.ensure_key(&device).await {
            if reason == "unknown_device" {
                self.metrics
                    .security_events
                    .with_label_values(&["unknown_device"])
                    .inc();
            }
            return Err(reason);
        }
        let now = Timestamp(received_at.timestamp_millis());
        let decoded = {
            let keys = self.keys.read().map_err(|_| "internal")?;
            geoward_proto::decode_uplink(&parsed, &payload, &self.opts, now, &Keys(&keys))
        };
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                let reason = e.reason();
                if matches!(reason, "bad_mac" | "decrypt_failed" | "device_mismatch") {
                    self.metrics
                        .security_events
                        .with_label_values(&[reason])
                        .inc();
                }
                return Err(reason);
            }
        };
        if self.require_authenticated && !decoded.authenticated {
            self.metrics
                .security_events
                .with_label_values(&["unauthenticated"])
                .inc();
            return Err("unauthenticated");
        }
        if !decoded.rejected_fixes.is_empty() {
            for r in &decoded.rejected_fixes {
                self.metrics
                    .messages_rejected
                    .with_label_values(&[r.error.reason()])
                    .inc();
            }
        }
        let kind = decoded.message.kind();
        let items = items_of(&decoded.message)?;
        let mut down = Topic::downlink(device.clone());
        down.tenant = parsed.tenant.clone();
        Ok((
            Accepted {
                device_id: device.as_str().to_owned(),
                topic: topic_str.to_owned(),
                ack_topic: down.to_string(),
                payload,
                received_at,
                sparse_sequence: decoded.encoding == Encoding::OwnTracks,
                items,
            },
            kind,
        ))
    }
}

/// The ack a device receives on its downlink topic.
pub fn encode_ack(seq: i64) -> Vec<u8> {
    geoward_proto::encode_downlink(&Downlink::Ack(geoward_proto::Ack {
        seq: u64::try_from(seq).unwrap_or(0),
    }))
}

fn time(t: Timestamp) -> Result<DateTime<Utc>, &'static str> {
    DateTime::from_timestamp_millis(t.as_millis()).ok_or("out_of_range")
}

fn seq(s: u64) -> Result<i64, &'static str> {
    i64::try_from(s).map_err(|_| "out_of_range")
}

fn source(s: PositionSource) -> &'static str {
    match s {
        PositionSource::Gnss => "gnss",
        PositionSource::Wifi => "wifi",
        PositionSource::Cell => "cell",
        PositionSource::Fused => "fused",
    }
}

fn event_kind(k: EventKind) -> &'static str {
    match k {
        EventKind::StrapOpened => "strap_opened",
        EventKind::StrapClosed => "strap_closed",
        EventKind::CaseOpened => "case_opened",
        EventKind::LowBattery => "low_battery",
        EventKind::PowerOff => "power_off",
        EventKind::Sos => "sos",
        EventKind::JammingSuspected => "jamming_suspected",
        EventKind::PhoneLinkLost => "phone_link_lost",
        EventKind::PhoneLinkRestored => "phone_link_restored",
    }
}

fn fix_item(f: &geoward_proto::Fix) -> Result<Item, &'static str> {
    Ok(Item::Fix {
        seq: seq(f.seq)?,
        time: time(f.time)?,
        lat: f.lat,
        lon: f.lon,
        accuracy_m: Some(f.accuracy_m),
        source: source(f.source),
    })
}

fn items_of(m: &Uplink) -> Result<Vec<Item>, &'static str> {
    Ok(match m {
        Uplink::Fix(f) => vec![fix_item(f)?],
        Uplink::Batch(b) => b.fixes.iter().map(fix_item).collect::<Result<_, _>>()?,
        Uplink::Heartbeat(h) => vec![Item::Event {
            seq: seq(h.seq)?,
            time: time(h.time)?,
            kind: "heartbeat",
            detail: serde_json::json!({
                "battery_pct": h.battery_pct,
                "charging": h.charging,
                "strap": format!("{:?}", h.strap).to_lowercase(),
                "case_tamper": h.case_tamper,
                "signal_dbm": h.signal_dbm,
                "gnss": format!("{:?}", h.gnss).to_lowercase(),
            })
            .to_string(),
        }],
        Uplink::Event(e) => vec![Item::Event {
            seq: seq(e.seq)?,
            time: time(e.time)?,
            kind: event_kind(e.kind),
            detail: "{}".to_owned(),
        }],
    })
}
