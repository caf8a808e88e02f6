//! What a run reports besides its counters: the latency histogram plot.

use geoward_simulator::plot::{Bucket, latency_svg, log_buckets};
use geoward_simulator::wire::stats::new_histogram;
use quick_xml::events::Event;

/// Bars of the SVG, per panel: (title, [(lo_us, hi_us, count, y, height)]).
type Panel = (String, Vec<(f64, f64, u64, f64, f64)>);

fn parse_bars(svg: &str) -> Vec<Panel> {
    let mut reader = quick_xml::Reader::from_str(svg);
    let mut panels: Vec<Panel> = Vec::new();
    let mut root = None;
    loop {
        let event = reader.read_event().expect("well-formed XML");
        let e = match event {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            _ => continue,
        };
        let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
        root.get_or_insert(name.clone());
        let attr = |k: &str| {
            e.try_get_attribute(k)
                .unwrap()
                .map(|a| a.unescape_value().unwrap().to_string())
        };
        if name == "g" && attr("class").as_deref() == Some("panel") {
            panels.push((attr("data-title").unwrap(), Vec::new()));
        }
        if name == "rect" && attr("class").as_deref() == Some("bar") {
            let num = |k: &str| attr(k).unwrap().parse::<f64>().unwrap();
            panels.last_mut().expect("bar inside a panel").1.push((
                num("data-lo-us"),
                num("data-hi-us"),
                attr("data-count").unwrap().parse().unwrap(),
                num("y"),
                num("height"),
            ));
        }
    }
    assert_eq!(root.as_deref(), Some("svg"));
    panels
}

#[test]
fn svg_plot_is_well_formed_and_bars_match_the_histogram() {
    // Samples (µs) away from bucket bounds (10^(k/4)), with counts.
    let samples: [(u64, u64); 7] = [
        (150, 3),
        (250, 5),
        (400, 1),
        (700, 10),
        (1_200, 2),
        (4_000, 7),
        (40_000, 1),
    ];
    let mut ack = new_histogram();
    for (v, n) in samples {
        ack.record_n(v, n).unwrap();
    }
    let mut incident = new_histogram();
    incident.record_n(2_500_000, 2).unwrap();
    let empty = new_histogram();

    let buckets = log_buckets(&ack);
    // From [100, 177.8) to [31623, 56234): 11 buckets, empty ones included.
    assert_eq!(buckets.len(), 11);
    assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), ack.len());
    for b in &buckets {
        let expected: u64 = samples
            .iter()
            .filter(|(v, _)| (b.lo_us..b.hi_us).contains(&(*v as f64)))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(b.count, expected, "{b:?}");
    }
    let Bucket { lo_us, .. } = buckets[0];
    assert!((lo_us - 100.0).abs() < 1e-6);

    let svg = latency_svg(&[
        ("publish -> ack", &ack),
        ("publish -> incident", &incident),
        ("nothing", &empty),
    ]);
    let panels = parse_bars(&svg);
    assert_eq!(panels.len(), 3);
    assert_eq!(panels[0].0, "publish -> ack");
    let bars = &panels[0].1;
    assert_eq!(bars.len(), buckets.len());
    let tallest = bars.iter().map(|b| b.4).fold(0.0, f64::max);
    for (bar, b) in bars.iter().zip(&buckets) {
        assert_eq!(bar.2, b.count);
        assert!((bar.0 - b.lo_us).abs() < 0.1 && (bar.1 - b.hi_us).abs() < 0.1);
        // Heights proportional to counts (the fullest bucket, 10, is tallest).
        let want = tallest * b.count as f64 / 10.0;
        assert!((bar.4 - want).abs() < 0.02, "{bar:?} vs {want}");
    }
    // All bars stand on one baseline.
    let base: Vec<f64> = bars.iter().map(|b| b.3 + b.4).collect();
    assert!(base.iter().all(|y| (y - base[0]).abs() < 0.02), "{base:?}");
    assert_eq!(panels[1].1.len(), 1);
    assert_eq!(panels[1].1[0].2, 2);
    assert!(panels[2].1.is_empty());
    assert!(svg.contains("no samples"));
}
