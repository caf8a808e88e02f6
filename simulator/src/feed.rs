//! Follows the officers' live alert feed (Server-Sent Events over plain
//! HTTP/1.1) while a run is published, collecting opened incidents for the
//! expectation check.
//!
//! A deliberately small client: `http://` only, one GET with a bearer
//! token, identity or chunked transfer encoding. The service's feed route is
//! not final; any URL serving [`crate::expect::parse_observed`]'s SSE shape
//! works.

use std::future::Future;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::expect::{ObservedIncident, parse_observed};

/// An incident as it arrived on the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// What the feed said.
    pub incident: ObservedIncident,
    /// When its frame was read, for publish → incident latency.
    pub arrived: Instant,
}

/// The feed could not be followed.
#[derive(Debug, Error)]
pub enum FeedError {
    /// Only `http://host[:port]/path` is supported.
    #[error("unsupported feed url {0:?} (want http://host[:port]/path)")]
    Url(String),
    /// Connecting or reading failed.
    #[error("feed connection: {0}")]
    Io(String),
    /// The server answered something other than 200.
    #[error("feed answered {0}")]
    Status(String),
    /// A frame did not parse.
    #[error("feed frame: {0}")]
    Frame(String),
}

impl FeedError {
    /// Stable low-cardinality code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Url(_) => "bad_url",
            Self::Io(_) => "io",
            Self::Status(_) => "bad_status",
            Self::Frame(_) => "bad_frame",
        }
    }
}

fn io(e: std::io::Error) -> FeedError {
    FeedError::Io(e.to_string())
}

/// Splits `http://host:port/path` into (`host:port`, host, `/path`).
fn split_url(url: &str) -> Result<(String, String, String), FeedError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| FeedError::Url(url.to_string()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(FeedError::Url(url.to_string()));
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((addr, host.to_string(), path.to_string()))
}

/// Follows the feed at `url` until `stop` completes (or the server closes),
/// returning the incidents opened meanwhile with their arrival times.
pub async fn follow(
    url: &str,
    token: Option<&str>,
    stop: impl Future<Output = ()>,
) -> Result<Vec<Seen>, FeedError> {
    let (addr, host, path) = split_url(url)?;
    let mut stream = TcpStream::connect(&addr).await.map_err(io)?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n{auth}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).await.map_err(io)?;
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(FeedError::Status(status.trim().to_string()));
    }
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await.map_err(io)? == 0 {
            return Ok(Vec::new());
        }
        let h = h.trim();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("transfer-encoding")
            && v.trim().eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    let mut body = String::new();
    let mut out = Vec::new();
    tokio::pin!(stop);
    loop {
        let piece = tokio::select! {
            () = &mut stop => break,
            p = next_piece(&mut reader, chunked) => p?,
        };
        let Some(piece) = piece else { break };
        body.push_str(&piece);
        // Hand over complete lines; keep a partial last line for later.
        if let Some(end) = body.rfind('\n') {
            let arrived = Instant::now();
            let complete: String = body.drain(..=end).collect();
            let incidents =
                parse_observed(&complete).map_err(|e| FeedError::Frame(e.to_string()))?;
            out.extend(
                incidents
                    .into_iter()
                    .map(|incident| Seen { incident, arrived }),
            );
        }
    }
    Ok(out)
}

/// The next piece of body text; `None` at the end of the stream.
async fn next_piece(
    reader: &mut BufReader<TcpStream>,
    chunked: bool,
) -> Result<Option<String>, FeedError> {
    if !chunked {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await.map_err(io)?;
        return Ok((n > 0).then_some(line));
    }
    let mut size = String::new();
    if reader.read_line(&mut size).await.map_err(io)? == 0 {
        return Ok(None);
    }
    let hex = size.trim().split(';').next().unwrap_or_default();
    let len = usize::from_str_radix(hex, 16)
        .map_err(|_| FeedError::Frame(format!("bad chunk size {:?}", size.trim())))?;
    if len == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; len + 2];
    reader.read_exact(&mut buf).await.map_err(io)?;
    buf.truncate(len);
    String::from_utf8(buf)
        .map(Some)
        .map_err(|e| FeedError::Frame(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_or_are_refused() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/api/feed?office=o1").unwrap(),
            (
                "127.0.0.1:8080".into(),
                "127.0.0.1".into(),
                "/api/feed?office=o1".into()
            )
        );
        assert_eq!(split_url("http://svc").unwrap().0, "svc:80");
        assert_eq!(split_url("https://svc/x").unwrap_err().reason(), "bad_url");
        assert_eq!(split_url("http:///x").unwrap_err().reason(), "bad_url");
    }
}
