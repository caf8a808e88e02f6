//! Plans from traces: time control, placement and store-and-forward faults.

use std::path::{Path, PathBuf};

use geoward_proto::Uplink;
use geoward_simulator::geo::LatLon;
use geoward_simulator::plan::Plan;
use geoward_simulator::schedule::{
    Crossing, Faults, Gap, GapModel, fan_out, place_across, translate_to,
};
use geoward_simulator::trace::{self, Trace};
use geoward_simulator::zones;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
}

fn real_trace(name: &str) -> Trace {
    let mut t = trace::load(&data().join("traces").join(name), None).expect("real trace");
    t.remove(0)
}

fn pos(p: &trace::TracePoint) -> LatLon {
    LatLon::new(p.lat, p.lon)
}

/// Item sequence numbers of one device in delivery order (batches flattened).
fn seqs(plan: &Plan, device: &str) -> Vec<u64> {
    plan.for_device(device)
        .flat_map(|s| match &s.message {
            Uplink::Batch(b) => b.fixes.iter().map(|f| f.seq).collect(),
            m => vec![m.max_seq().unwrap_or(0)],
        })
        .collect()
}

fn time_ms(m: &Uplink) -> i64 {
    geoward_simulator::plan::message_time_ms(m)
}

#[test]
fn plan_from_traces_keeps_each_devices_order_and_numbers_it() {
    let traces = fan_out(&real_trace("cerknicko-jezero.gpx"), 3, 50.0, 7_000);
    let plan = Plan::from_traces(&traces);
    assert_eq!(plan.fix_count(), 3 * 296);
    assert!(plan.sends.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    for d in plan.devices() {
        let s = seqs(&plan, &d);
        assert_eq!(s, (1..=296).collect::<Vec<u64>>(), "{d}");
    }
}

#[test]
fn a_plan_can_go_on_from_an_earlier_sequence() {
    let traces = fan_out(&real_trace("cerknicko-jezero.gpx"), 2, 50.0, 7_000);
    let mut plan = Plan::from_traces(&traces);
    plan.assign_seqs_from(297);
    for d in plan.devices() {
        assert_eq!(seqs(&plan, &d), (297..=592).collect::<Vec<u64>>(), "{d}");
    }
    plan.assign_seqs();
    for d in plan.devices() {
        assert_eq!(seqs(&plan, &d), (1..=296).collect::<Vec<u64>>(), "{d}");
    }
}

#[test]
fn shift_to_now_moves_send_and_device_times_together() {
    let mut plan = Plan::from_traces(&[real_trace("around-visnjan-with-car.gpx")]);
    let before = plan.clone();
    let now = 1_800_000_000_000;
    plan.shift_start_to(now);
    assert_eq!(plan.start_ms(), Some(now));
    let delta = now - before.start_ms().unwrap();
    for (a, b) in before.sends.iter().zip(&plan.sends) {
        assert_eq!(b.at_ms - a.at_ms, delta);
        assert_eq!(time_ms(&b.message) - time_ms(&a.message), delta);
    }
    plan.shift_end_to(now);
    assert_eq!(plan.sends.last().map(|s| s.at_ms), Some(now));
}

#[test]
fn translate_preserves_distances_and_timing() {
    let t = real_trace("korita-zbevnica.gpx");
    let target = LatLon::new(38.47, 106.28);
    let moved = translate_to(&t, target);
    assert_eq!(pos(&moved.points[0]), target);
    for (w0, w1) in t.points.windows(2).zip(moved.points.windows(2)) {
        let (d0, d1) = (
            pos(&w0[0]).distance_m(pos(&w0[1])),
            pos(&w1[0]).distance_m(pos(&w1[1])),
        );
        assert!((d0 - d1).abs() < 0.01 * d0.max(1.0), "{d0} vs {d1}");
        assert_eq!(w0[1].time_ms, w1[1].time_ms);
    }
}

#[test]
fn real_track_placed_across_real_county_boundary() {
    let file = data().join("zones/ning2_xia4_yin2_chuan1.geojson");
    let areas = zones::load(&file).expect("zone file");
    assert_eq!(areas.len(), 6);
    let county = zones::find(&areas, "兴庆区", "yinchuan").expect("county");
    let t = real_trace("korita-zbevnica.gpx");

    let exit = place_across(&t, county, Crossing::Exit, 0).expect("exit placement");
    assert!(county.contains(pos(&exit.points[0])));
    assert!(!county.contains(pos(exit.points.last().unwrap())));
    assert_eq!(exit.points.len(), t.points.len());

    // A car drive that is not a loop cannot make an excursion; a synthetic
    // out-and-back can.
    let mut back = t.clone();
    back.points.extend(t.points.iter().rev().map(|p| {
        let mut q = *p;
        q.time_ms = 2 * t.points.last().unwrap().time_ms - p.time_ms + 1000;
        q
    }));
    let exc = place_across(&back, county, Crossing::Excursion, 17).expect("excursion");
    let inside: Vec<bool> = exc.points.iter().map(|p| county.contains(pos(p))).collect();
    assert!(inside[0] && *inside.last().unwrap() && inside.contains(&false));

    let mut empty = t.clone();
    empty.points.clear();
    assert_eq!(
        place_across(&empty, county, Crossing::Exit, 0)
            .unwrap_err()
            .reason(),
        "empty_trace"
    );
}

#[test]
fn gap_batches_contain_exactly_the_gapped_fixes() {
    let t = real_trace("cerknicko-jezero.gpx");
    let plan = Plan::from_traces(std::slice::from_ref(&t));
    let start = t.points[20].time_ms;
    let end = t.points[150].time_ms;
    let faults = Faults {
        gaps: vec![Gap {
            device: None,
            start_ms: start,
            end_ms: end,
        }],
        max_batch: 50,
        ..Faults::default()
    };
    let out = faults.apply(&plan, 1);
    let gapped: Vec<i64> = t
        .points
        .iter()
        .map(|p| p.time_ms)
        .filter(|&tm| (start..end).contains(&tm))
        .collect();
    assert_eq!(gapped.len(), 130);
    let batches: Vec<_> = out
        .sends
        .iter()
        .filter(|s| matches!(s.message, Uplink::Batch(_)))
        .collect();
    assert_eq!(batches.len(), 3, "130 fixes in batches of at most 50");
    assert!(batches.iter().all(|b| b.at_ms == end));
    let batched: Vec<i64> = batches
        .iter()
        .flat_map(|b| match &b.message {
            Uplink::Batch(b) => b.fixes.iter().map(|f| f.time.0).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(batched, gapped);
    // No live fix inside the gap, all the others unchanged, nothing lost.
    assert!(out.sends.iter().all(|s| match &s.message {
        Uplink::Fix(fix) => !(start..end).contains(&fix.time.0),
        _ => true,
    }));
    assert_eq!(out.fix_count(), plan.fix_count());
    // Batched fixes keep their creation seqs: contiguous in delivery order.
    assert_eq!(seqs(&out, &t.device), (1..=296).collect::<Vec<u64>>());
}

#[test]
fn faults_are_deterministic_for_a_seed_and_differ_across_seeds() {
    let traces = fan_out(&real_trace("korita-zbevnica.gpx"), 4, 30.0, 1_000);
    let plan = Plan::from_traces(&traces);
    let faults = Faults {
        random_gaps: Some(GapModel {
            mean_interval_ms: 20 * 60_000,
            mean_duration_ms: 5 * 60_000,
        }),
        duplicate_probability: 0.05,
        reorder_probability: 0.05,
        ..Faults::default()
    };
    let a = faults.apply(&plan, 42);
    assert_eq!(a, faults.apply(&plan, 42));
    assert_ne!(a, faults.apply(&plan, 43));
    assert!(a.sends.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    // Gaps hold fixes but lose none; duplicates only add.
    assert!(a.fix_count() >= plan.fix_count());
    assert!(
        a.sends
            .iter()
            .any(|s| matches!(s.message, Uplink::Batch(_)))
    );
    for d in a.devices() {
        let mut s = seqs(&a, &d);
        let delivered_in_order = s.windows(2).all(|w| w[0] < w[1]);
        assert!(!delivered_in_order, "{d}: duplicates/reordering expected");
        s.sort_unstable();
        s.dedup();
        assert_eq!(
            s,
            (1..=s.len() as u64).collect::<Vec<_>>(),
            "{d}: contiguous"
        );
    }
}

#[test]
fn without_faults_apply_keeps_the_plan() {
    let plan = Plan::from_traces(&[real_trace("around-visnjan-with-car.gpx")]);
    assert_eq!(Faults::default().apply(&plan, 9), plan);
}
