//! The one error type of trace parsing: where (file, line, column) and what.

use thiserror::Error;

/// A trace file could not be read; names the place in the file.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{file}:{line}{}: {kind}", .column.map(|c| format!(":{c}")).unwrap_or_default())]
pub struct TraceError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line; 0 when the error concerns the whole file.
    pub line: usize,
    /// 1-based column where the format has a meaningful one.
    pub column: Option<usize>,
    /// What is wrong.
    pub kind: TraceErrorKind,
}

impl TraceError {
    pub(crate) fn new(
        file: &str,
        line: usize,
        column: Option<usize>,
        kind: TraceErrorKind,
    ) -> Self {
        Self {
            file: file.to_string(),
            line,
            column,
            kind,
        }
    }

    /// Stable low-cardinality code for metrics and tests.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }
}

/// What is wrong with a trace file.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TraceErrorKind {
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Io(String),
    /// The extension names no known format and none was given.
    #[error("unknown trace format (use .gpx, .csv, .ndjson or .json, or pass --format)")]
    UnknownFormat,
    /// XML is not well formed (includes truncated files).
    #[error("malformed xml: {0}")]
    Xml(String),
    /// The document is XML but not GPX.
    #[error("not a gpx document: {0}")]
    NotGpx(String),
    /// A required attribute or field is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A number did not parse.
    #[error("bad number in {field}: {value:?}")]
    BadNumber {
        /// Field name.
        field: &'static str,
        /// Offending text, shortened.
        value: String,
    },
    /// A timestamp did not parse.
    #[error("bad time: {0:?} (want RFC 3339 or epoch milliseconds)")]
    BadTime(String),
    /// A value parsed but is outside its domain.
    #[error("{field} out of range: {value}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// Offending value.
        value: String,
    },
    /// Unknown position source name.
    #[error("unknown source {0:?} (want gnss, cell, wifi or fused)")]
    BadSource(String),
    /// CSV without the required header line.
    #[error("missing header: first line must be {expected:?}, found {found:?}")]
    MissingHeader {
        /// The header we require.
        expected: &'static str,
        /// What the first line held, shortened.
        found: String,
    },
    /// A CSV row has the wrong number of columns.
    #[error("expected {expected} columns, found {found}")]
    WrongColumnCount {
        /// Columns in the header.
        expected: usize,
        /// Columns in this row.
        found: usize,
    },
    /// Invalid JSON or a JSON value of the wrong shape.
    #[error("bad json: {0}")]
    Json(String),
    /// The protocol decoder rejected a wire-format line; carries the
    /// protocol's own reason code.
    #[error("rejected by the wire decoder ({0}): {1}")]
    Wire(&'static str, String),
    /// A point inside a track-query page is bad; the reason is the inner
    /// error's.
    #[error("point {0}: {1}")]
    InPage(usize, Box<TraceErrorKind>),
    /// A track point is earlier than the one before it (GPX tracks are
    /// recorded in order, so this means a damaged file).
    #[error("time goes backwards: {time} is before the previous point {previous}")]
    TimeGoesBackwards {
        /// Time of this point, RFC 3339.
        time: String,
        /// Time of the previous point, RFC 3339.
        previous: String,
    },
    /// A track mixes timed and untimed points, so it cannot be replayed.
    #[error("track point without <time> in a timed track")]
    MissingTime,
    /// Nothing to replay.
    #[error("no timed points in file")]
    Empty,
}

impl TraceErrorKind {
    /// Stable low-cardinality code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io(_) => "io",
            Self::UnknownFormat => "unknown_format",
            Self::Xml(_) => "malformed_xml",
            Self::NotGpx(_) => "not_gpx",
            Self::Missing(_) => "missing_field",
            Self::BadNumber { .. } => "bad_number",
            Self::BadTime(_) => "bad_time",
            Self::OutOfRange { .. } => "out_of_range",
            Self::BadSource(_) => "bad_source",
            Self::MissingHeader { .. } => "missing_header",
            Self::WrongColumnCount { .. } => "wrong_column_count",
            Self::Json(_) => "bad_json",
            Self::Wire(..) => "wire_rejected",
            Self::InPage(_, inner) => inner.reason(),
            Self::TimeGoesBackwards { .. } => "time_goes_backwards",
            Self::MissingTime => "missing_time",
            Self::Empty => "empty",
        }
    }
}
