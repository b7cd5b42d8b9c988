//! Logs through `tracing`: the subscriber the binary installs (human-readable or JSON lines,
//! level from `RUST_LOG`, default `info`) and the access-log line, one per request when
//! `--access-log` is on (target `isr_edge::access`).
//!
//! The access line carries method, path, status, cache status, duration and bytes; never
//! headers (so no cookies or `Authorization`), and the value of a `secret` query parameter
//! is replaced by `***`.

use std::borrow::Cow;
use std::time::Instant;

use http::{HeaderMap, Method, Uri};
use http_body::Body as _;

use crate::body::Body;
use crate::config::LogFormat;

/// Installs the global subscriber. Fails only if one is already installed.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: escape codes in files and journald break grep
    // and log shippers.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let result = match format {
        LogFormat::Text => builder.try_init(),
        // Fields at the top level of each object, so shippers need no nested paths.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|e| e.to_string())
}

/// What the access line needs from the request; captured only when the access log is on.
pub struct AccessStart {
    pub method: Method,
    pub uri: Uri,
    pub started: Instant,
}

/// Writes the access line for one answered request. `bytes` is the body length when it is
/// known up front (stored, buffered and canned responses; streamed ones with a
/// `Content-Length`), else absent. `duration_ms` runs to the response head.
pub fn access(start: &AccessStart, response: &http::Response<Body>) {
    let headers = response.headers();
    let bytes = response
        .body()
        .size_hint()
        .exact()
        .or_else(|| content_length(headers));
    let cache = headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let duration_ms = start.started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "isr_edge::access",
        method = %start.method,
        path = %redacted_target(&start.uri),
        status = response.status().as_u16(),
        cache,
        duration_ms = (duration_ms * 1000.0).round() / 1000.0,
        bytes,
        "request"
    );
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Path and query with the value of every `secret` parameter replaced by `***`.
pub fn redacted_target(uri: &Uri) -> Cow<'_, str> {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return Cow::Borrowed(path);
    };
    let mut out = String::with_capacity(path.len() + query.len() + 1);
    out.push_str(path);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("secret") => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_redacted() {
        let uri: Uri = "/api/revalidate?path=/a&secret=hunter2&SECRET=x&x=1"
            .parse()
            .expect("uri");
        assert_eq!(
            redacted_target(&uri),
            "/api/revalidate?path=/a&secret=***&SECRET=***&x=1"
        );
        let plain: Uri = "/blog/post".parse().expect("uri");
        assert_eq!(redacted_target(&plain), "/blog/post");
    }
}
