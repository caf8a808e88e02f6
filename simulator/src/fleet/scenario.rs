//! Scripted violations: how each kind changes a subject's day, and which
//! incident that must produce.

use rand_chacha::ChaCha8Rng;

use super::{Circle, DAY_MS, FleetConfig, FleetError, MINUTE_MS, Path, Room, ScenarioSpec};
use crate::expect::{ExpectedIncident, IncidentKind};
use crate::geo::{Area, LatLon};
use crate::plan::Send;
use geoward_proto::EventKind;

/// The scripted behaviours the issue lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScenarioKind {
    /// Leaves the county and stays away.
    LeaveAndStay,
    /// Crosses the boundary and turns straight back, outside for less than
    /// half the service's exit confirmation time: no incident.
    BriefExcursion,
    /// Away from home at night.
    CurfewBreach,
    /// Walks into an exclusion zone.
    ExclusionEntry,
    /// Cuts the strap.
    StrapCut,
    /// Switches the bracelet off (says so first).
    PowerOff,
    /// Stops sending without a word.
    GoesSilent,
    /// Leaves the phone at home while the bracelet moves.
    PhoneLeftAtHome,
}

impl ScenarioKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ScenarioKind; 8] = [
        Self::LeaveAndStay,
        Self::BriefExcursion,
        Self::CurfewBreach,
        Self::ExclusionEntry,
        Self::StrapCut,
        Self::PowerOff,
        Self::GoesSilent,
        Self::PhoneLeftAtHome,
    ];

    /// snake_case name (CLI and files).
    pub fn name(self) -> &'static str {
        match self {
            Self::LeaveAndStay => "leave_and_stay",
            Self::BriefExcursion => "brief_excursion",
            Self::CurfewBreach => "curfew_breach",
            Self::ExclusionEntry => "exclusion_entry",
            Self::StrapCut => "strap_cut",
            Self::PowerOff => "power_off",
            Self::GoesSilent => "goes_silent",
            Self::PhoneLeftAtHome => "phone_left_at_home",
        }
    }

    /// Parses a snake_case name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The one incident this scenario must produce (none for a brief
    /// excursion: too short to confirm an exit).
    pub fn incident(self) -> Option<IncidentKind> {
        Some(match self {
            Self::BriefExcursion => return None,
            Self::LeaveAndStay => IncidentKind::ZoneExit,
            Self::CurfewBreach => IncidentKind::CurfewBreach,
            Self::ExclusionEntry => IncidentKind::ExclusionEntry,
            Self::StrapCut => IncidentKind::Tamper,
            Self::PowerOff => IncidentKind::PowerOff,
            Self::GoesSilent => IncidentKind::LostContact,
            Self::PhoneLeftAtHome => IncidentKind::Separation,
        })
    }

    /// Default local start time, minutes after midnight: chosen so the
    /// routine (home at night, work by day) makes the scenario meaningful.
    pub fn default_minute(self) -> u32 {
        match self {
            Self::LeaveAndStay => 10 * 60,
            Self::BriefExcursion => 14 * 60,
            Self::CurfewBreach => 23 * 60,
            Self::ExclusionEntry => 11 * 60,
            Self::StrapCut => 15 * 60,
            Self::PowerOff => 16 * 60,
            Self::GoesSilent => 13 * 60,
            Self::PhoneLeftAtHome => 6 * 60 + 30,
        }
    }
}

pub(super) struct Context<'a> {
    pub cfg: &'a FleetConfig,
    pub area: &'a Area,
    pub subject: &'a str,
    pub home: LatLon,
    pub routine: &'a Path,
}

/// How a scenario changes a subject's devices.
pub(super) struct Script {
    pub start_ms: i64,
    pub bracelet: Path,
    pub phone: Option<Path>,
    pub events: Vec<(i64, EventKind)>,
    /// Devices send nothing from here on.
    pub stop_ms: Option<i64>,
    /// Violation cadence from here on.
    pub fast_from_ms: Option<i64>,
    pub exclusion: Option<Circle>,
}

pub(super) fn script(
    ctx: &Context<'_>,
    spec: ScenarioSpec,
    rng: &mut ChaCha8Rng,
    room: &Room<'_>,
) -> Result<Script, FleetError> {
    let cfg = ctx.cfg;
    let fail = |message: String| FleetError::Scenario {
        kind: spec.kind.name(),
        subject: ctx.subject.to_string(),
        message,
    };
    let minute = spec.at_minute.unwrap_or(spec.kind.default_minute());
    let start_ms = cfg.start_ms + i64::from(spec.day) * DAY_MS + i64::from(minute) * MINUTE_MS;
    let end_ms = cfg.start_ms + cfg.duration_ms;
    if minute >= 24 * 60 || start_ms >= end_ms - 30 * MINUTE_MS {
        return Err(fail(
            "starts too late for the run (needs 30 minutes)".into(),
        ));
    }
    let mut s = Script {
        start_ms,
        bracelet: ctx.routine.clone(),
        phone: None,
        events: Vec::new(),
        stop_ms: None,
        fast_from_ms: None,
        exclusion: None,
    };
    let speed = cfg.speed_mps;
    match spec.kind {
        ScenarioKind::LeaveAndStay => {
            let from = ctx.routine.at(start_ms);
            let dest = outside_point(ctx.area, from, 3_000.0)
                .ok_or_else(|| fail("no point outside the zone found".into()))?;
            let p = &mut s.bracelet;
            p.truncate_at(start_ms);
            p.go(dest, speed);
            p.stay_until(end_ms);
            s.fast_from_ms = Some(start_ms);
        }
        ScenarioKind::BriefExcursion => {
            // Out and straight back, shallow enough that even with the
            // noise model's largest error the subject is seen outside for
            // at most half the time the service needs to confirm an exit.
            let from = ctx.routine.at(start_ms);
            let err = cfg.noise.max_error_m();
            let budget = cfg.exit_confirm_ms / 2;
            let path = [400.0, 250.0, 150.0, 100.0, 60.0, 30.0]
                .into_iter()
                .filter_map(|beyond| {
                    let dest = outside_point(ctx.area, from, beyond)?;
                    let mut p = ctx.routine.clone();
                    p.truncate_at(start_ms);
                    p.go(dest, speed);
                    p.go(from, speed);
                    p.go(ctx.home, speed);
                    let (back, _) = p.last();
                    let seen_outside = (start_ms..=back)
                        .step_by(1000)
                        .filter(|&t| {
                            let q = p.at(t);
                            [(0.0, 0.0), (err, 0.0), (-err, 0.0), (0.0, err), (0.0, -err)]
                                .iter()
                                .any(|&(e, n)| !ctx.area.contains(q.moved(e, n)))
                        })
                        .count() as i64
                        * 1000;
                    let really_outside = (start_ms..=back)
                        .step_by(1000)
                        .any(|t| !ctx.area.contains(p.at(t)));
                    (really_outside && seen_outside <= budget).then_some(p)
                })
                .next()
                .ok_or_else(|| {
                    fail("no excursion short enough for the exit confirmation time".into())
                })?;
            s.bracelet = path;
            s.bracelet.stay_until(end_ms);
            s.fast_from_ms = Some(start_ms);
        }
        ScenarioKind::CurfewBreach => {
            let home = ctx.home;
            let dest = room
                .near(rng, home, 2_000.0, 3_000.0)
                .ok_or_else(|| fail("no place 2-3 km from home inside the zone".into()))?;
            let p = &mut s.bracelet;
            p.truncate_at(start_ms);
            p.go(dest, speed);
            let (t, _) = p.last();
            p.stay_until(t + 60 * MINUTE_MS);
            p.go(home, speed);
            p.stay_until(end_ms);
            s.fast_from_ms = Some(start_ms);
        }
        ScenarioKind::ExclusionEntry => {
            let r = cfg.exclusion_radius_m;
            let clear = r + cfg.noise.max_error_m() + 300.0;
            let centre = (0..500)
                .find_map(|_| {
                    let from = ctx.routine.at(start_ms);
                    let c = room.near(rng, from, 1_500.0, 5_000.0)?;
                    route_clear_of(ctx.routine, c, clear).then_some(c)
                })
                .ok_or_else(|| fail("no exclusion zone clear of the routine".into()))?;
            s.exclusion = Some(Circle {
                lat: centre.lat,
                lon: centre.lon,
                radius_m: r,
            });
            let p = &mut s.bracelet;
            p.truncate_at(start_ms);
            p.go(centre, speed);
            let (t, _) = p.last();
            p.stay_until(t + 20 * MINUTE_MS);
            p.go(ctx.home, speed);
            p.stay_until(end_ms);
            s.fast_from_ms = Some(start_ms);
        }
        ScenarioKind::StrapCut => s.events.push((start_ms, EventKind::StrapOpened)),
        ScenarioKind::PowerOff => {
            s.events.push((start_ms, EventKind::PowerOff));
            s.stop_ms = Some(start_ms + 1);
        }
        ScenarioKind::GoesSilent => s.stop_ms = Some(start_ms),
        ScenarioKind::PhoneLeftAtHome => {
            let mut phone = ctx.routine.clone();
            phone.truncate_at(start_ms);
            phone.stay_until(end_ms);
            s.phone = Some(phone);
        }
    }
    Ok(s)
}

/// The incidents a scripted subject must produce, with time windows taken
/// from the subject's true positions at its actual fix times: the scenario's
/// own incident, plus a curfew breach when the scenario keeps the subject
/// away from home into curfew hours (leaving the county at 10:00 and staying
/// away is also a curfew breach at 22:00).
pub(super) fn expected(
    ctx: &Context<'_>,
    spec: ScenarioSpec,
    s: &Script,
    fix_times: &[i64],
    bracelet: &Path,
    phone: &Path,
    sends: &[Send],
) -> Result<Vec<ExpectedIncident>, FleetError> {
    let cfg = ctx.cfg;
    let fail = |message: &str| FleetError::Scenario {
        kind: spec.kind.name(),
        subject: ctx.subject.to_string(),
        message: message.to_string(),
    };
    let first_fix = |pred: &dyn Fn(i64) -> bool| {
        fix_times
            .iter()
            .copied()
            .find(|&t| t >= s.start_ms && pred(t))
            .ok_or_else(|| fail("the run ends before the violation shows in a fix"))
    };
    let local_minute = |t: i64| ((t + cfg.utc_offset_ms).rem_euclid(DAY_MS) / MINUTE_MS) as u32;
    // (window start, window end, triggering message's device time)
    let (not_before, not_after, trigger) = match spec.kind {
        // Nothing to expect; the window is unused.
        ScenarioKind::BriefExcursion => (s.start_ms, s.start_ms, None),
        ScenarioKind::LeaveAndStay => {
            let t = first_fix(&|t| !ctx.area.contains(bracelet.at(t)))?;
            (s.start_ms, t + cfg.tolerance_ms, Some(t))
        }
        ScenarioKind::CurfewBreach => {
            let t = first_fix(&|t| {
                cfg.curfew.covers(local_minute(t))
                    && bracelet.at(t).distance_m(ctx.home) > cfg.curfew.radius_m
            })?;
            (s.start_ms, t + cfg.tolerance_ms, Some(t))
        }
        ScenarioKind::ExclusionEntry => {
            let c = s.exclusion.ok_or_else(|| fail("no exclusion zone"))?;
            let centre = LatLon::new(c.lat, c.lon);
            let t = first_fix(&|t| bracelet.at(t).distance_m(centre) <= c.radius_m)?;
            (s.start_ms, t + cfg.tolerance_ms, Some(t))
        }
        ScenarioKind::PhoneLeftAtHome => {
            let t = first_fix(&|t| bracelet.at(t).distance_m(phone.at(t)) > cfg.separation_m)?;
            (s.start_ms, t + cfg.tolerance_ms, Some(t))
        }
        // The event itself (strap_opened, power_off) triggers it.
        ScenarioKind::StrapCut | ScenarioKind::PowerOff => {
            (s.start_ms, s.start_ms + cfg.tolerance_ms, Some(s.start_ms))
        }
        ScenarioKind::GoesSilent => {
            let last = sends
                .iter()
                .map(|x| x.at_ms)
                .filter(|&t| t < s.start_ms)
                .max()
                .unwrap_or(cfg.start_ms);
            // Triggered by silence, not by a message.
            (last, last + cfg.silence_max_ms, None)
        }
    };
    let incident =
        |kind: IncidentKind, not_before: i64, not_after: i64, trigger_at| ExpectedIncident {
            subject: ctx.subject.to_string(),
            device: format!("{}b", ctx.subject),
            kind,
            scenario: Some(spec.kind.name().to_string()),
            not_before,
            not_after,
            trigger_at,
        };
    let mut out: Vec<ExpectedIncident> = spec
        .kind
        .incident()
        .map(|kind| incident(kind, not_before, not_after, trigger))
        .into_iter()
        .collect();
    if spec.kind != ScenarioKind::CurfewBreach {
        let away_at_night = fix_times.iter().copied().find(|&t| {
            t >= s.start_ms
                && s.stop_ms.is_none_or(|stop| t < stop)
                && cfg.curfew.covers(local_minute(t))
                && bracelet.at(t).distance_m(ctx.home) > cfg.curfew.radius_m
        });
        if let Some(t) = away_at_night {
            out.push(incident(
                IncidentKind::CurfewBreach,
                s.start_ms,
                t + cfg.tolerance_ms,
                Some(t),
            ));
        }
    }
    Ok(out)
}

/// A point `beyond_m` outside the zone, past the boundary vertex nearest to
/// `from`; tries further out if that lands in another part of the zone.
fn outside_point(area: &Area, from: LatLon, beyond_m: f64) -> Option<LatLon> {
    let ring = area.main_part()?.rings.first()?;
    let v = ring
        .iter()
        .copied()
        .min_by(|a, b| a.distance_m(from).total_cmp(&b.distance_m(from)))?;
    let (e, n) = v.offset_from(from);
    let len = e.hypot(n).max(1.0);
    [1.0, 2.0, 4.0, 8.0].into_iter().find_map(|k| {
        let d = beyond_m * k;
        let p = v.moved(e / len * d, n / len * d);
        (!area.contains(p)).then_some(p)
    })
}

/// Whether every leg of `routine` keeps `clear_m` from `centre`
/// (sampled every 100 m).
fn route_clear_of(routine: &Path, centre: LatLon, clear_m: f64) -> bool {
    routine.waypoints().windows(2).all(|w| {
        let (a, b) = (w[0].1, w[1].1);
        let steps = (a.distance_m(b) / 100.0).ceil().max(1.0) as usize;
        (0..=steps).all(|k| {
            let f = k as f64 / steps as f64;
            LatLon::new(a.lat + (b.lat - a.lat) * f, a.lon + (b.lon - a.lon) * f).distance_m(centre)
                > clear_m
        })
    })
}
