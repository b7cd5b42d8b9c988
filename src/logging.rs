//! Logs through `tracing`: the subscriber the binary installs (human-readable or JSON lines,
//! level from `RUST_LOG`, default `info`) and the access-log line, one per request when
//! `--access-log` is on (target `isr_edge::access`).
//!
//! The access line carries method, path, status, cache status, duration and bytes; never
//! headers (so no cookies or `Authorization`), and the value of every credential query
//! parameter (`secret`, tokens, passwords, signatures, keys) is replaced by `***`. URLs printed
//! or logged anywhere go through [`masked_url`].

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::{HeaderMap, Method, Uri};
use http_body::Body as _;

use crate::body::Body;
use crate::config::LogFormat;

/// One line a second at most for an event that can come once per request or connection (an
/// origin down under load, a flood of connections over the limit): a line per event would
/// flood the log. A `static` per kind of line.
pub struct EverySecond {
    /// Seconds since the process's first line of any kind (`u64::MAX`: none yet).
    last_second: AtomicU64,
    held_back: AtomicU64,
}

impl Default for EverySecond {
    fn default() -> EverySecond {
        EverySecond::new()
    }
}

impl EverySecond {
    pub const fn new() -> EverySecond {
        EverySecond {
            last_second: AtomicU64::new(u64::MAX),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(events held back since the last line)` when this event gets a line; `None` when
    /// it is only counted.
    pub fn admit(&self) -> Option<u64> {
        static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let second = STARTED.get_or_init(Instant::now).elapsed().as_secs();
        if self.last_second.swap(second, Ordering::Relaxed) == second {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.held_back.swap(0, Ordering::Relaxed))
    }
}

/// The level filter for a `RUST_LOG` value, and a warning to log when the value was not
/// used. Unset or empty is the default, `info`: an empty filter logged nothing at all, not even
/// errors (`RUST_LOG=${RUST_LOG}` in a compose file sets it empty). A value that does not
/// parse (`isr_edge=debugg`) is `info` too, with the reason, where it fell back to `info`
/// without a word.
pub fn log_filter(rust_log: Option<&str>) -> (tracing_subscriber::EnvFilter, Option<String>) {
    let default = || tracing_subscriber::EnvFilter::new("info");
    let value = match rust_log.map(str::trim) {
        None | Some("") => return (default(), None),
        Some(value) => value,
    };
    match tracing_subscriber::EnvFilter::try_new(value) {
        Ok(filter) => (filter, None),
        Err(error) => (
            default(),
            Some(format!(
                "RUST_LOG={value:?} is not a valid filter ({error}); logging at info. \
                 Write e.g. RUST_LOG=info or RUST_LOG=warn,isr_edge::access=info"
            )),
        ),
    }
}

/// Installs the global subscriber. Fails only if one is already installed.
pub fn init(format: LogFormat) -> Result<(), String> {
    let rust_log = std::env::var_os("RUST_LOG");
    let (filter, warning) = match rust_log.as_ref().map(|v| v.to_str()) {
        Some(None) => (
            tracing_subscriber::EnvFilter::new("info"),
            Some("RUST_LOG is not UTF-8; logging at info".to_string()),
        ),
        Some(Some(value)) => log_filter(Some(value)),
        None => log_filter(None),
    };
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
    if let (Ok(()), Some(warning)) = (&result, warning) {
        tracing::warn!("{warning}");
    }
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
/// `Content-Length`), else absent. `duration_ms` runs to the response head. `cache`: the
/// response's `X-Cache` value, `-` without one.
pub fn access(start: &AccessStart, response: &http::Response<Body>, cache: &str) {
    let headers = response.headers();
    let bytes = response
        .body()
        .size_hint()
        .exact()
        .or_else(|| content_length(headers));
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

/// Whether a query parameter with this name carries a credential. Errs on masking: a
/// parameter masked needlessly costs a log reader a value, one missed leaks a login.
fn is_credential_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    const PARTS: [&str; 10] = [
        "secret",
        "token",
        // password, passwd, passphrase, pass
        "pass",
        "signature",
        "credential",
        "apikey",
        "api_key",
        "jwt",
        // session, JSESSIONID, PHPSESSID: whoever holds it is logged in
        "session",
        "sessid",
    ];
    PARTS.iter().any(|part| name.contains(part))
        || matches!(
            name.as_str(),
            // `code`: an OAuth authorization code, exchanged for a token
            "auth" | "pwd" | "sig" | "key" | "api-key" | "code" | "otp" | "sid"
        )
}

/// Appends `query` with the value of every credential parameter replaced by `***`. Names are
/// compared decoded and trimmed, as the control API and most origins read them: `%73ecret=`
/// and `sig%20=` are credentials too. `;` separates parameters as `&` does (some frameworks
/// read it so). Returns whether anything was masked.
fn push_masked_query(out: &mut String, query: &str) -> bool {
    let mut masked = false;
    for piece in query.split_inclusive(['&', ';']) {
        let pair = piece.strip_suffix(['&', ';']).unwrap_or(piece);
        let separator = &piece[pair.len()..];
        match pair.split_once('=') {
            Some((name, _))
                if is_credential_parameter(
                    crate::revalidate::request::decode_component(name).trim(),
                ) =>
            {
                out.push_str(name);
                out.push_str("=***");
                masked = true;
            }
            _ => out.push_str(pair),
        }
        out.push_str(separator);
    }
    masked
}

/// Path and query with the value of every credential parameter (see [`is_credential_parameter`])
/// replaced by `***`: [`masked_url`] of the request target.
pub fn redacted_target(uri: &Uri) -> Cow<'_, str> {
    uri.path_and_query()
        .map_or(Cow::Borrowed(uri.path()), |target| {
            masked_url(target.as_str())
        })
}

/// A URL as printed and logged: its user info (a password, or a token used as the user name)
/// and the value of every credential query parameter replaced by `***`. Text without a scheme
/// is read as a path and query (`edge:8080/x?secret=..` and `/x?secret=..` are masked too).
pub fn masked_url(url: &str) -> Cow<'_, str> {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    let mut masked = false;
    let mut rest = before_fragment;
    if let Some((scheme, after)) = before_fragment.split_once("://") {
        let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme {
            out.push_str(scheme);
            out.push_str("://");
            let authority_len = after.find(['/', '?']).unwrap_or(after.len());
            let (authority, path_and_query) = after.split_at(authority_len);
            match authority.rsplit_once('@') {
                Some((user_info, host)) => {
                    match user_info.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None => out.push_str("***"),
                    }
                    out.push('@');
                    out.push_str(host);
                    masked = true;
                }
                None => out.push_str(authority),
            }
            rest = path_and_query;
        }
    }
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            masked |= push_masked_query(&mut out, query);
        }
        None => out.push_str(rest),
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    if masked {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_values() {
        for unset in [None, Some(""), Some("  ")] {
            let (filter, warning) = log_filter(unset);
            assert_eq!(filter.to_string(), "info", "{unset:?}");
            assert_eq!(warning, None, "{unset:?}");
        }
        let (filter, warning) = log_filter(Some("warn,isr_edge::access=info"));
        assert_eq!(warning, None);
        assert!(
            filter.to_string().contains("isr_edge::access=info"),
            "{filter}"
        );
        for typo in ["isr_edge=debugg", "foo=bar=baz"] {
            let (filter, warning) = log_filter(Some(typo));
            assert_eq!(filter.to_string(), "info", "{typo}");
            let warning = warning.unwrap_or_default();
            assert!(
                warning.contains(typo) && warning.contains("logging at info"),
                "{warning}"
            );
        }
    }

    #[test]
    fn secret_values_are_redacted() {
        let uri: Uri = "/api/revalidate?path=/a&secret=hunter2&SECRET=x&x=1"
            .parse()
            .expect("uri");
        assert_eq!(
            redacted_target(&uri),
            "/api/revalidate?path=/a&secret=***&SECRET=***&x=1"
        );
        let encoded: Uri = "/api/revalidate?%73ecret=hunter2&%53ECRE%54=x&path=/a"
            .parse()
            .expect("uri");
        assert_eq!(
            redacted_target(&encoded),
            "/api/revalidate?%73ecret=***&%53ECRE%54=***&path=/a"
        );
        let separated: Uri = "/p?x=1;secret=hunter2&sig%20=abc;;y=2&"
            .parse()
            .expect("uri");
        assert_eq!(
            redacted_target(&separated),
            "/p?x=1;secret=***&sig%20=***;;y=2&"
        );
        let plain: Uri = "/blog/post".parse().expect("uri");
        assert_eq!(redacted_target(&plain), "/blog/post");
    }

    #[test]
    fn urls_lose_passwords_and_credential_parameters_only() {
        assert_eq!(
            masked_url("http://user:pa55@origin:3000/api/revalidate?secret=s3&path=/a#f"),
            "http://user:***@origin:3000/api/revalidate?secret=***&path=/a#f"
        );
        assert_eq!(
            masked_url("https://hooks.example/x?access_token=abc&%73ecret=y&sig=z"),
            "https://hooks.example/x?access_token=***&%73ecret=***&sig=***"
        );
        // A token as the user name.
        assert_eq!(masked_url("http://ghp_TOKEN@origin/"), "http://***@origin/");
        // No scheme: still a path and query.
        assert_eq!(
            masked_url("edge:8080/api/revalidate?secret=x"),
            "edge:8080/api/revalidate?secret=***"
        );
        assert_eq!(
            masked_url("/x?next=http://a&token=t"),
            "/x?next=http://a&token=***"
        );
        assert_eq!(
            masked_url("/cb?code=c&state=s&jwt=j&PHPSESSID=p&pass=w&otp=1&promo_code=x"),
            "/cb?code=***&state=s&jwt=***&PHPSESSID=***&pass=***&otp=***&promo_code=x"
        );
        for unchanged in [
            "http://127.0.0.1:3000",
            "http://origin/a?page=2&author=me",
            "127.0.0.1:8080",
            "",
        ] {
            assert!(
                matches!(masked_url(unchanged), Cow::Borrowed(_)),
                "{unchanged}"
            );
        }
    }
}
