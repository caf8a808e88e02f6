//! Device messages: contact, GNSS fixes, battery, tamper, power, and
//! bracelet–phone separation.
//!
//! Any message is contact: it clears lost contact and power-off of that
//! device. Raising and lowering a cause is ordered per cause by device time,
//! so a late "strap opened" uploaded after "strap closed" opens nothing.

use super::pairing::{Compared, PairRule};
use super::{Effect, IncidentEngine, RuleTrack};
use crate::ids::{DeviceId, SubjectId};
use crate::incident::{IncidentKind, TimelineEvent};
use crate::signal::{DeviceEventKind, DeviceKind, Position, SignalBody};
use crate::time::Timestamp;

impl IncidentEngine {
    pub(super) fn on_device(
        &mut self,
        subject: &SubjectId,
        body: &SignalBody,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        let (device, device_kind, at) = match body {
            SignalBody::DeviceSeen {
                device,
                device_kind,
                at,
                ..
            }
            | SignalBody::DeviceEvent {
                device,
                device_kind,
                at,
                ..
            } => (device, *device_kind, *at),
            SignalBody::ZoneBreach { .. } => return,
        };
        let late = now.since(at) > self.policy.late_after_ms;
        {
            let s = self.subject_state_mut(subject);
            s.last_contact = s.last_contact.max(now);
        }
        if let Some(id) = self
            .subject_state(subject)
            .episodes
            .get(&IncidentKind::LostContact)
            .cloned()
        {
            self.clear(&id, now, now, "contact_restored", fx);
        }
        let is_power_off = matches!(
            body,
            SignalBody::DeviceEvent {
                event: DeviceEventKind::PowerOff,
                ..
            }
        );
        // Any other message means the device is on; only worth looking at
        // when it ever reported power-off.
        if !is_power_off && self.tracked(subject, IncidentKind::PowerOff, device.as_str()) {
            self.lower(
                subject,
                IncidentKind::PowerOff,
                device.as_str(),
                at,
                now,
                "device_on",
                fx,
            );
        }
        match body {
            SignalBody::DeviceSeen {
                position,
                has_gnss_fix,
                battery_pct,
                ..
            } => {
                if *has_gnss_fix {
                    let s = self.subject_state_mut(subject);
                    s.last_fix = s.last_fix.max(now);
                    if let Some(id) = s.episodes.get(&IncidentKind::NoFix).cloned() {
                        self.clear(&id, now, now, "fix_restored", fx);
                    }
                }
                if let Some(p) = position {
                    let s = self.subject_state_mut(subject);
                    if s.last_position.is_none_or(|(t, _)| t <= at) {
                        s.last_position = Some((at, *p));
                    }
                    self.separation(subject, device, device_kind, at, *p, late, now, fx);
                }
                if let Some(b) = battery_pct {
                    if *b <= self.policy.low_battery_pct {
                        self.raise(
                            subject,
                            IncidentKind::LowBattery,
                            device.as_str(),
                            at,
                            late,
                            now,
                            fx,
                        );
                    } else if *b >= self.policy.battery_ok_pct
                        && self.tracked(subject, IncidentKind::LowBattery, device.as_str())
                    {
                        self.lower(
                            subject,
                            IncidentKind::LowBattery,
                            device.as_str(),
                            at,
                            now,
                            "battery_ok",
                            fx,
                        );
                    }
                }
            }
            SignalBody::DeviceEvent { event, .. } => {
                let strap = format!("strap:{device}");
                let case = format!("case:{device}");
                let d = device.as_str();
                match event {
                    DeviceEventKind::StrapOpened => {
                        self.raise(subject, IncidentKind::Tamper, &strap, at, late, now, fx)
                    }
                    DeviceEventKind::StrapClosed => self.lower(
                        subject,
                        IncidentKind::Tamper,
                        &strap,
                        at,
                        now,
                        "tamper_closed",
                        fx,
                    ),
                    DeviceEventKind::CaseOpened => {
                        self.raise(subject, IncidentKind::Tamper, &case, at, late, now, fx)
                    }
                    DeviceEventKind::CaseClosed => self.lower(
                        subject,
                        IncidentKind::Tamper,
                        &case,
                        at,
                        now,
                        "tamper_closed",
                        fx,
                    ),
                    DeviceEventKind::LowBattery => {
                        self.raise(subject, IncidentKind::LowBattery, d, at, late, now, fx)
                    }
                    DeviceEventKind::BatteryOk => self.lower(
                        subject,
                        IncidentKind::LowBattery,
                        d,
                        at,
                        now,
                        "battery_ok",
                        fx,
                    ),
                    DeviceEventKind::PowerOff => {
                        self.raise(subject, IncidentKind::PowerOff, d, at, late, now, fx)
                    }
                }
            }
            SignalBody::ZoneBreach { .. } => {}
        }
    }

    /// `cause` now holds for episode kind `kind` (since device time `at`).
    #[allow(clippy::too_many_arguments)]
    fn raise(
        &mut self,
        subject: &SubjectId,
        kind: IncidentKind,
        cause: &str,
        at: Timestamp,
        late: bool,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        let track = self.track(subject, kind, cause);
        if track.last_ended.is_some_and(|e| e > at) {
            return;
        }
        track.last_confirmed = Some(track.last_confirmed.map_or(at, |c| c.max(at)));
        match self.subject_state(subject).episodes.get(&kind).cloned() {
            Some(id) => {
                if self.inc_mut(&id).header.causes.insert(cause.to_owned()) {
                    let ev = TimelineEvent::Evidence {
                        cause: cause.to_owned(),
                        evidence: Vec::new(),
                        late,
                    };
                    self.record(&id, now, ev, fx);
                }
            }
            None => {
                self.open(
                    subject,
                    kind,
                    cause.to_owned(),
                    at,
                    late,
                    Vec::new(),
                    now,
                    fx,
                );
            }
        }
    }

    /// `cause` no longer holds; the episode clears when no cause is left.
    #[allow(clippy::too_many_arguments)]
    fn lower(
        &mut self,
        subject: &SubjectId,
        kind: IncidentKind,
        cause: &str,
        at: Timestamp,
        now: Timestamp,
        reason: &str,
        fx: &mut Vec<Effect>,
    ) {
        let track = self.track(subject, kind, cause);
        if track.last_confirmed.is_some_and(|c| c > at) {
            return;
        }
        track.last_ended = Some(track.last_ended.map_or(at, |e| e.max(at)));
        if let Some(id) = self.subject_state(subject).episodes.get(&kind).cloned() {
            let inc = self.inc_mut(&id);
            if inc.header.causes.remove(cause) && inc.header.causes.is_empty() {
                let at = at.max(inc.header.opened_at);
                self.clear(&id, at, now, reason, fx);
            }
        }
    }

    fn track(&mut self, subject: &SubjectId, kind: IncidentKind, cause: &str) -> &mut RuleTrack {
        self.subject_state_mut(subject).rules.track(kind, cause)
    }

    /// True when `cause` of `kind` was ever raised or lowered explicitly.
    fn tracked(&self, subject: &SubjectId, kind: IncidentKind, cause: &str) -> bool {
        self.subject_state(subject).rules.contains(kind, cause)
    }

    /// Pairs the fix with the other device's fix nearest in device time;
    /// apart beyond both accuracies plus the margin for the sustain time
    /// opens a separation incident, together again clears it.
    #[allow(clippy::too_many_arguments)]
    fn separation(
        &mut self,
        subject: &SubjectId,
        device: &DeviceId,
        kind: DeviceKind,
        at: Timestamp,
        p: Position,
        late: bool,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        let rule = PairRule {
            window_ms: self.policy.separation_pair_window_ms,
            margin_m: self.policy.separation_margin_m,
        };
        let sustain = self.policy.separation_sustain_ms;
        let s = self.subject_state_mut(subject);
        let compared = s.pairing.add(kind, device, at, p, rule);
        let episode = s.episodes.get(&IncidentKind::Separation).cloned();
        match (compared, episode) {
            (
                Compared::Apart {
                    since,
                    at,
                    evidence,
                },
                None,
            ) if at.since(since) >= sustain => {
                self.open(
                    subject,
                    IncidentKind::Separation,
                    "bracelet_phone".to_owned(),
                    since,
                    late,
                    evidence.into(),
                    now,
                    fx,
                );
            }
            (Compared::Together { at, latest: true }, Some(id)) => {
                self.clear(&id, at, now, "devices_together", fx);
            }
            _ => {}
        }
    }
}
