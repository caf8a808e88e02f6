//! The live feed as far as this crate goes: a subject leaves, their justice
//! office's feed gets exactly one incident, which escalates to the county
//! bureau when nobody acknowledges; a reconnecting browser resumes with
//! `Last-Event-ID` and misses nothing. (The end-to-end version over HTTP
//! lives with the service.)

use crate::support::*;
use geoward_alerting::incident::IncidentKind;
use geoward_alerting::signal::{BreachPhase, RuleKind};
use geoward_alerting::sse::{FeedLog, FeedPayload, parse_last_event_id};
use geoward_alerting::{Effect, OfficeId, Timestamp};

fn parse(frame: &str) -> (u64, FeedPayload) {
    let mut id = None;
    let mut data = String::new();
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(parse_last_event_id(v).unwrap());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
        }
    }
    (id.unwrap(), serde_json::from_str(&data).unwrap())
}

#[test]
fn one_incident_on_the_office_feed_escalating_to_the_county() {
    let mut e = engine();
    let mut feed = FeedLog::new(100);
    let tree = tree();
    let publish = |fx: Vec<Effect>, feed: &mut FeedLog| {
        for f in fx {
            if let Effect::Incident(c) = f {
                feed.publish(&tree, &c);
            }
        }
    };
    // The subject keeps reporting while outside, so only the exit matters.
    let mut at = 0;
    let fx = e
        .apply(
            &breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Confirmed,
                T0,
                false,
            ),
            Timestamp(T0),
        )
        .unwrap();
    publish(fx, &mut feed);
    let jo1: OfficeId = "jo1".into();
    let first = feed.replay(&jo1, None);
    let seen_before_drop = first.frames.len();
    while at < 16 * MIN {
        at += 30_000;
        let mut fx = e
            .apply(
                &seen(
                    geoward_alerting::signal::DeviceKind::Bracelet,
                    T0 + at,
                    None,
                    true,
                ),
                Timestamp(T0 + at),
            )
            .unwrap();
        fx.extend(e.tick(Timestamp(T0 + at)));
        publish(fx, &mut feed);
    }

    let frames = feed.replay(&jo1, None).frames;
    let events: Vec<_> = frames.iter().map(|f| parse(f)).collect();
    let opened: Vec<_> = events
        .iter()
        .filter(|(_, p)| p.change == "opened")
        .collect();
    assert_eq!(opened.len(), 1, "exactly one incident");
    assert_eq!(opened[0].1.incident.kind, IncidentKind::ZoneExit);
    let escalated: Vec<_> = events
        .iter()
        .filter(|(_, p)| p.change == "escalated")
        .collect();
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0].1.incident.escalated_to.as_str(), "county");
    // Ids are 1, 2, 3, … on each office's feed.
    let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    // The county sees its subtree, including the escalation.
    let county = feed.replay(&"county".into(), None).frames;
    assert!(county.iter().any(|f| parse(f).1.change == "escalated"));

    // A browser that saw the first frame(s) and reconnects gets the rest.
    let resumed = feed.replay(&jo1, Some(seen_before_drop as u64));
    assert!(!resumed.gap);
    assert_eq!(resumed.frames, frames[seen_before_drop..].to_vec());
    // An id from the future (a restart without persistence) asks for reload.
    assert!(feed.replay(&jo1, Some(10_000)).gap);
}

#[test]
fn a_browser_too_far_behind_is_told_to_reload() {
    let mut e = engine();
    let mut feed = FeedLog::new(2);
    let tree = tree();
    for i in 0..3 {
        let t = T0 + i * 1_000;
        let phase = if i % 2 == 0 {
            BreachPhase::Confirmed
        } else {
            BreachPhase::Ended
        };
        let fx = e
            .apply(
                &breach("home", RuleKind::PermittedArea, phase, t, false),
                Timestamp(t),
            )
            .unwrap();
        for f in fx {
            if let Effect::Incident(c) = f {
                feed.publish(&tree, &c);
            }
        }
    }
    let jo1: OfficeId = "jo1".into();
    let r = feed.replay(&jo1, Some(0));
    assert!(r.gap);
    assert_eq!(r.frames.len(), 2);
    assert!(!feed.replay(&jo1, Some(1)).gap);
}
