//! Timestamps in trace files: RFC 3339 (GPX, CSV, JSON) or epoch milliseconds.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

use super::TraceErrorKind;

/// Parses RFC 3339 (`2020-12-18T06:15:50Z`, offsets and fractions allowed), a
/// zone-less `2020-12-18T06:15:50` taken as UTC (some GPX writers omit the
/// `Z`), or an integer of epoch milliseconds.
pub fn parse_time_ms(value: &str) -> Result<i64, TraceErrorKind> {
    let v = value.trim();
    let digits = v.strip_prefix('-').unwrap_or(v);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return v
            .parse::<i64>()
            .map_err(|_| TraceErrorKind::BadTime(super::truncate(v)));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp_millis())
        .map_err(|_| TraceErrorKind::BadTime(super::truncate(v)))
}

/// Formats epoch milliseconds as RFC 3339 UTC for messages and files.
pub fn format_time_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms}ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc3339_naive_and_epoch_ms() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time_ms("1970-01-01T08:00:01.5+08:00"), Ok(1500));
        assert_eq!(parse_time_ms("1970-01-01T00:00:02"), Ok(2000));
        assert_eq!(parse_time_ms(" 1234 "), Ok(1234));
        assert_eq!(parse_time_ms("-5"), Ok(-5));
        assert_eq!(parse_time_ms("yesterday").unwrap_err().reason(), "bad_time");
        assert_eq!(parse_time_ms("").unwrap_err().reason(), "bad_time");
        assert_eq!(format_time_ms(1500), "1970-01-01T00:00:01.500Z");
    }
}
