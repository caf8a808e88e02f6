//! Latency histogram plots as hand-written SVG: one panel per series
//! (publish → ack, publish → incident), bars over log-scale latency buckets
//! (four per decade), so a run's tail is visible next to its median.
//!
//! Pure: histogram in, text out. Every bar carries its bucket bounds and
//! count as `data-*` attributes, so the plot can be checked by a machine.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// Buckets per decade of latency.
pub const BUCKETS_PER_DECADE: u32 = 4;

/// One bar: samples with `lo_us <= latency < hi_us`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Lower bound, microseconds (inclusive).
    pub lo_us: f64,
    /// Upper bound, microseconds (exclusive).
    pub hi_us: f64,
    /// Samples in it.
    pub count: u64,
}

/// Index of the log bucket holding `us` (≥ 1).
fn bucket_of(us: u64) -> i32 {
    ((us.max(1) as f64).log10() * f64::from(BUCKETS_PER_DECADE)).floor() as i32
}

fn bound(k: i32) -> f64 {
    10f64.powf(f64::from(k) / f64::from(BUCKETS_PER_DECADE))
}

/// The histogram over log-scale buckets, from the lowest to the highest
/// occupied bucket (empty ones in between included). The counts add up to
/// the histogram's length. Values are hdrhistogram's representative values
/// (3 significant digits), so a sample lands in the bucket of its value to
/// within 0.1 %.
pub fn log_buckets(h: &Histogram<u64>) -> Vec<Bucket> {
    let mut counts: Vec<(i32, u64)> = Vec::new();
    for v in h.iter_recorded() {
        let k = bucket_of(v.value_iterated_to());
        match counts.last_mut() {
            Some((last, c)) if *last == k => *c += v.count_at_value(),
            _ => counts.push((k, v.count_at_value())),
        }
    }
    let (Some(&(first, _)), Some(&(last, _))) = (counts.first(), counts.last()) else {
        return Vec::new();
    };
    (first..=last)
        .map(|k| Bucket {
            lo_us: bound(k),
            hi_us: bound(k + 1),
            count: counts.iter().filter(|(b, _)| *b == k).map(|(_, c)| c).sum(),
        })
        .collect()
}

/// A latency in readable units.
fn label(us: f64) -> String {
    let trim = |x: String| {
        if x.contains('.') {
            x.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            x
        }
    };
    if us >= 1e6 {
        format!("{} s", trim(format!("{:.2}", us / 1e6)))
    } else if us >= 1e3 {
        format!("{} ms", trim(format!("{:.2}", us / 1e3)))
    } else {
        format!("{} µs", trim(format!("{us:.1}")))
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// An SVG document with one panel per `(title, histogram)`; an empty
/// histogram gets a panel saying so.
pub fn latency_svg(series: &[(&str, &Histogram<u64>)]) -> String {
    let height = PANEL_HEIGHT * series.len().max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    for (i, (title, h)) in series.iter().enumerate() {
        panel(&mut s, i as f64 * PANEL_HEIGHT, title, h);
    }
    s.push_str("</svg>\n");
    s
}

fn panel(s: &mut String, y0: f64, title: &str, h: &Histogram<u64>) {
    let buckets = log_buckets(h);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = PANEL_HEIGHT - TOP - BOTTOM;
    let base = y0 + TOP + plot_h;
    let _ = writeln!(s, r#"<g class="panel" data-title="{}">"#, escape(title));
    let summary = if h.is_empty() {
        "no samples".to_string()
    } else {
        format!(
            "{} samples, p50 {}, p99 {}, max {}",
            h.len(),
            label(h.value_at_quantile(0.5) as f64),
            label(h.value_at_quantile(0.99) as f64),
            label(h.max() as f64)
        )
    };
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{}" font-size="14" font-weight="bold">{} ({})</text>"#,
        y0 + 22.0,
        escape(title),
        escape(&summary)
    );
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#333333"/>"##,
        LEFT + plot_w
    );
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{}" x2="{LEFT}" y2="{base}" stroke="#333333"/>"##,
        base - plot_h
    );
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0);
    if max == 0 {
        s.push_str("</g>\n");
        return;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{max}</text>"#,
        LEFT - 6.0,
        base - plot_h + 4.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">0</text>"#,
        LEFT - 6.0,
        base + 4.0
    );
    let slot = plot_w / buckets.len() as f64;
    for (i, b) in buckets.iter().enumerate() {
        let x = LEFT + i as f64 * slot;
        let bar_h = plot_h * b.count as f64 / max as f64;
        let _ = writeln!(
            s,
            r##"<rect class="bar" x="{x:.2}" y="{:.2}" width="{:.2}" height="{bar_h:.2}" fill="#4477aa" data-lo-us="{:.1}" data-hi-us="{:.1}" data-count="{}"><title>{} – {}: {}</title></rect>"##,
            base - bar_h,
            (slot - 1.0).max(0.5),
            b.lo_us,
            b.hi_us,
            b.count,
            escape(&label(b.lo_us)),
            escape(&label(b.hi_us)),
            b.count
        );
        // Label every decade boundary, plus the first bucket.
        let k = (b.lo_us.log10() * f64::from(BUCKETS_PER_DECADE)).round() as i32;
        if i == 0 || k.rem_euclid(BUCKETS_PER_DECADE as i32) == 0 {
            let _ = writeln!(
                s,
                r#"<text x="{x:.2}" y="{}" text-anchor="middle">{}</text>"#,
                base + 16.0,
                escape(&label(b.lo_us))
            );
        }
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">latency (log scale, {BUCKETS_PER_DECADE} buckets per decade)</text>"#,
        LEFT + plot_w / 2.0,
        base + 36.0
    );
    s.push_str("</g>\n");
}
