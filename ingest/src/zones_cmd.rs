//! Operator commands on zone files: `geoward zones validate FILE` and
//! `geoward zones locate --zones FILE --points FILE`.
//!
//! Zone files are GeoJSON, optionally gzipped (detected by the gzip magic
//! bytes, so `.geojson.gz` and `.geojson` both work). The geofence crate
//! parses; this module only reads files and writes reports.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use geoward_geofence::{ImportReport, ZoneSet, import_geojson_slice};

/// Reads a zone file, gunzipping when it starts with the gzip magic bytes.
fn read_zone_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let raw =
        std::fs::read(path).with_context(|| format!("reading zone file {}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 5);
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .with_context(|| format!("gunzipping zone file {}", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn load(path: &Path) -> anyhow::Result<(ZoneSet, ImportReport)> {
    let bytes = read_zone_file(path)?;
    import_geojson_slice(&bytes).with_context(|| format!("importing zone file {}", path.display()))
}

/// Prints every defect (rejected feature) and repair of a zone file, then a
/// summary line. Returns whether the file is clean (no defects; repairs are
/// fine).
pub fn validate(path: &Path, out: &mut impl Write) -> anyhow::Result<bool> {
    let (_, report) = load(path)?;
    for d in &report.defects {
        writeln!(out, "defect {d}")?;
    }
    for r in &report.repairs {
        writeln!(out, "repair {r}")?;
    }
    let repaired: usize = report.repairs.iter().map(|r| r.count).sum();
    writeln!(
        out,
        "{} features, {} zones accepted, {} rejected, {} repairs",
        report.features,
        report.accepted,
        report.defects.len(),
        repaired
    )?;
    Ok(report.is_clean())
}

/// Quotes a CSV field when needed (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Splits one CSV line into trimmed fields, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = fields.last_mut() {
                    f.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields.into_iter().map(|f| f.trim().to_owned()).collect()
}

/// For each point of a CSV file with header `id,lon,lat`, prints
/// `id,zones` where `zones` is the `;`-joined, sorted list of ids of the
/// zones containing the point (all versions), empty when none.
pub fn locate(zones: &Path, points: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let (set, _) = load(zones)?;
    let text = std::fs::read_to_string(points)
        .with_context(|| format!("reading points file {}", points.display()))?;
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l.trim().trim_start_matches('\u{feff}'));
    let columns: Vec<&str> = header.unwrap_or("").split(',').map(str::trim).collect();
    if columns != ["id", "lon", "lat"] {
        bail!(
            "points file {} must start with the header id,lon,lat",
            points.display()
        );
    }
    let mut w = std::io::BufWriter::new(out);
    writeln!(w, "id,zones")?;
    let mut row = String::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields = split_csv(line);
        let [id, lon, lat] = fields.as_slice() else {
            bail!("points file line {}: expected 3 fields id,lon,lat", n + 1);
        };
        let parse = |v: &str, what: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .with_context(|| {
                    format!("points file line {}: {what} {v:?} is not a number", n + 1)
                })
        };
        let (lon, lat) = (parse(lon, "lon")?, parse(lat, "lat")?);
        let mut ids: Vec<&str> = set
            .locate(lon, lat)
            .into_iter()
            .map(|z| set.zone(z).id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        row.clear();
        write!(row, "{},{}", csv_field(id), csv_field(&ids.join(";")))?;
        writeln!(w, "{row}")?;
    }
    w.flush()?;
    Ok(())
}
