//! The purge client in the same binary: `isr-edge revalidate --url http://edge:8080/api/revalidate
//! --path / --tag products`. It POSTs the JSON body `/api/revalidate` takes, with the secret from
//! `REVALIDATE_SECRET` or `--secret-file` in an `Authorization: Bearer` header (never in the
//! body, never printed), prints the JSON answer and fails with a one-line reason on a connection
//! error, an HTTP error or `"success": false`. This is what a deploy script runs.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::config::parse_positive_duration;
use crate::logging::masked_url;

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Purge pages or tags on a running isr-edge (POST to its revalidation endpoint) and print
    /// the answer. The secret comes from REVALIDATE_SECRET or --secret-file.
    Revalidate(RevalidateArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RevalidateArgs {
    /// The revalidation endpoint, e.g. http://edge:8080/api/revalidate.
    #[arg(
        long,
        env = "ISR_EDGE_REVALIDATE_URL",
        default_value = "http://127.0.0.1:8080/api/revalidate"
    )]
    pub url: String,

    /// A page to purge (repeatable; Next.js patterns like /products/[slug] allowed).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,

    /// A cache tag to purge (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,

    /// Purge everything (for this --host only, when given).
    #[arg(long)]
    pub all: bool,

    /// Mark stale instead of removing: the next visitor gets the old page while it refreshes.
    #[arg(long)]
    pub soft: bool,

    /// Treat each --path as a layout: the page and everything below it.
    #[arg(long)]
    pub layout: bool,

    /// Report what would be purged without purging.
    #[arg(long)]
    pub dry_run: bool,

    /// Re-fetch the purged pages right away so the next visitor gets a HIT.
    #[arg(long)]
    pub warm: bool,

    /// Only purge pages stored for this host (e.g. shop.example).
    #[arg(long)]
    pub host: Option<String>,

    /// File holding the secret (first non-empty line) instead of REVALIDATE_SECRET.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,

    /// Give up after this long.
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    pub timeout: Duration,
}

/// What the client printed and whether it succeeded.
#[derive(Debug)]
pub struct Outcome {
    /// The answer body, pretty-printed, when it is JSON.
    pub answer: Option<String>,
    /// `None` on success; else the one-line reason.
    pub failure: Option<String>,
    /// The failure is in the command line or environment (nothing to purge, no secret, a bad
    /// `--url`): nothing was sent, and retrying cannot help. Exit status 2, as for a bad flag.
    pub usage: bool,
}

/// The JSON body for the endpoint (without the secret).
pub fn request_body(args: &RevalidateArgs) -> Value {
    let mut body = json!({});
    if !args.paths.is_empty() {
        body["paths"] = json!(args.paths);
    }
    if !args.tags.is_empty() {
        body["tags"] = json!(args.tags);
    }
    if args.all {
        body["all"] = json!(true);
    }
    if args.layout {
        body["type"] = json!("layout");
    }
    if args.soft {
        body["mode"] = json!("soft");
    }
    if args.dry_run {
        body["dry_run"] = json!(true);
    }
    if args.warm {
        body["warm"] = json!(true);
    }
    if let Some(host) = &args.host {
        body["host"] = json!(host);
    }
    body
}

/// The secret: `--secret-file`'s first non-empty line, else the first of `REVALIDATE_SECRET`'s
/// comma-separated values (as the server reads it).
fn secret(args: &RevalidateArgs, env_secret: Option<String>) -> Result<String, String> {
    let (text, source) = match &args.secret_file {
        Some(path) => (
            crate::config::secrets::read_secret_file(path)
                .map_err(|e| format!("--secret-file {}: {e}", path.display()))?,
            "--secret-file is empty",
        ),
        None => match env_secret {
            Some(text) => (text, "REVALIDATE_SECRET is empty"),
            None => (String::new(), "REVALIDATE_SECRET is not set"),
        },
    };
    // As the server reads them: a file holds one secret per line (commas included), the
    // variable a comma-separated list.
    let separator: &[char] = if args.secret_file.is_some() {
        &['\n']
    } else {
        &[',', '\n']
    };
    text.split(separator)
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("no secret: set REVALIDATE_SECRET or pass --secret-file ({source})"))
}

/// Sends the request and judges the answer.
pub async fn run(args: &RevalidateArgs, env_secret: Option<String>) -> Outcome {
    let failed = |reason: String, usage: bool| Outcome {
        answer: None,
        failure: Some(reason),
        usage,
    };
    let usage = |reason: String| failed(reason, true);
    let fail = |reason: String| failed(reason, false);
    if args.paths.is_empty() && args.tags.is_empty() && !args.all {
        return usage("nothing to purge: give --path, --tag or --all".into());
    }
    let secret = match secret(args, env_secret) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    // Refused here, as the mistake in the environment it is: building the request failed with
    // "failed to parse header value", exit 1, as if a retry could help.
    if http::HeaderValue::from_str(&secret).is_err() {
        return usage(
            "the secret holds a control character, which no HTTP header can carry; \
             check REVALIDATE_SECRET or --secret-file"
                .into(),
        );
    }
    let uri: Uri = match args.url.parse() {
        Ok(uri) => uri,
        Err(e) => return usage(format!("--url {:?}: {e}", masked_url(&args.url))),
    };
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return usage(format!(
            "--url {:?}: expected http://host:port/api/revalidate (https: put it behind your TLS proxy's internal address)",
            masked_url(&args.url)
        ));
    }
    if let Some(problem) = url_problem(&uri) {
        return usage(format!("--url {:?}: {problem}", masked_url(&args.url)));
    }
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {secret}"))
        .body(Full::new(Bytes::from(request_body(args).to_string())));
    let request = match request {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot build the request: {e}")),
    };
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                message = format!("{message}: {inner}");
                source = inner.source();
            }
            format!("cannot reach {}: {message}", masked_url(&args.url))
        })?;
        let status = response.status();
        // Not held whole whatever its size: the endpoint's answers are a few KiB, and anything
        // this large is something else.
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!(
                        "the answer from {} is over {} MiB; is --url the revalidation endpoint \
                         (.../api/revalidate)?",
                        masked_url(&args.url),
                        MAX_ANSWER_BYTES >> 20
                    )
                } else {
                    format!("reading the answer from {}: {e}", masked_url(&args.url))
                }
            })?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = match tokio::time::timeout(args.timeout, exchange).await {
        Err(_) => {
            return fail(format!(
                "no answer from {} within {:?}",
                masked_url(&args.url),
                args.timeout
            ))
        }
        Ok(Err(e)) => return fail(e),
        Ok(Ok(answer)) => answer,
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    // Only JSON goes to stdout (escaped by the serialiser): an answer that is not JSON (an
    // HTML error page, a file) is quoted by the reason's short excerpt instead of being
    // written whole to the terminal, escape sequences and all.
    let answer = parsed
        .as_ref()
        .and_then(|value| serde_json::to_string_pretty(value).ok());
    Outcome {
        answer,
        failure: judge(status, parsed.as_ref(), &body),
        usage: false,
    }
}

/// Why an `http://` `--url` cannot be the revalidation endpoint, checked before the secret is
/// sent anywhere.
fn url_problem(uri: &Uri) -> Option<&'static str> {
    // The proxy passes `POST /` on to the origin like any form post, so the site's base URL
    // (the natural slip) handed the secret, in `Authorization`, to the app and its logs.
    if uri.path() == "/" {
        return Some(
            "names no endpoint path; give the revalidation endpoint, e.g. \
             http://edge:8080/api/revalidate (the secret would go to the site's home page)",
        );
    }
    // The secret takes the `Authorization` header, so a user:password part would be dropped
    // without a word (behind a proxy asking for Basic auth, every purge would be a 401).
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Some(
            "a user:password part cannot be sent (the secret uses the Authorization header); \
             remove it",
        );
    }
    None
}

/// Largest answer read: a dry run listing examples for 1,000 targets is well under it.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Longest part of an answer that is not JSON quoted in the one-line reason.
const EXCERPT_CHARS: usize = 80;

/// `None` when the endpoint reported success; else the one-line reason, which always says
/// something after its colon (a reverse proxy's HTML error page or an app's own route answering
/// 200 with HTML once gave `the endpoint did not report success: ` and nothing more).
fn judge(status: StatusCode, parsed: Option<&Value>, body: &[u8]) -> Option<String> {
    let message = parsed
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let succeeded = parsed
        .and_then(|v| v.get("success"))
        .and_then(Value::as_bool)
        == Some(true);
    if status.is_success() && succeeded {
        return None;
    }
    let why = match (message, parsed) {
        (Some(message), _) => printable(message),
        (None, Some(_)) if status.is_success() => {
            "the JSON answer has no \"success\": true and no message".to_string()
        }
        (None, Some(_)) => "the JSON answer has no message".to_string(),
        (None, None) if body.iter().all(u8::is_ascii_whitespace) => {
            "the answer was empty; is --url the revalidation endpoint (.../api/revalidate)?"
                .to_string()
        }
        (None, None) => format!(
            "the answer is not JSON ({}); is --url the revalidation endpoint (.../api/revalidate)?",
            excerpt(body)
        ),
    };
    Some(if status.is_success() {
        format!("the endpoint did not report success (HTTP {status}): {why}")
    } else {
        format!("HTTP {status}: {why}")
    })
}

/// The endpoint's own message as one printable line: whitespace runs (newlines included)
/// become one space, other control characters (terminal escapes) are shown escaped.
fn printable(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut shown = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// The start of a body as one printable line: whitespace runs (newlines included) become one
/// space, other control characters (terminal escapes) are escaped by `{:?}`.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let words: Vec<&str> = text.split_whitespace().collect();
    let line = words.join(" ");
    let mut short: String = line.chars().take(EXCERPT_CHARS).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    format!("{short:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> RevalidateArgs {
        let mut argv = vec!["isr-edge", "revalidate"];
        argv.extend_from_slice(args);
        match Wrapper::try_parse_from(argv).expect("valid").command {
            Command::Revalidate(args) => args,
        }
    }

    #[test]
    fn body_from_flags() {
        let args = parse(&[
            "--path",
            "/",
            "--path",
            "/blog",
            "--tag",
            "posts",
            "--layout",
            "--soft",
            "--host",
            "a.example",
        ]);
        assert_eq!(
            request_body(&args),
            json!({"paths": ["/", "/blog"], "tags": ["posts"], "type": "layout", "mode": "soft", "host": "a.example"})
        );
        let args = parse(&["--tag", "x", "--dry-run", "--warm"]);
        assert_eq!(
            request_body(&args),
            json!({"tags": ["x"], "dry_run": true, "warm": true})
        );
    }

    /// Every failure says why after its colon, in one line, and quotes no more than a short,
    /// escaped excerpt of an answer that is not JSON.
    #[test]
    fn reasons_are_never_empty() {
        let ok = StatusCode::OK;
        let html = b"<!doctype html>\n<html><body>\x1b[31mWelcome</body></html>";
        let reason = judge(ok, None, html).expect("not JSON is a failure");
        assert!(
            reason.starts_with(
                "the endpoint did not report success (HTTP 200 OK): the answer is not JSON"
            ),
            "{reason}"
        );
        assert!(reason.contains("<!doctype html> <html>"), "{reason}");
        assert!(
            !reason.contains('\n') && !reason.contains('\x1b'),
            "{reason}"
        );
        let long = "x".repeat(5000);
        let reason = judge(ok, None, long.as_bytes()).expect("failure");
        assert!(reason.len() < 300, "{reason}");
        let reason = judge(ok, None, b"").expect("empty is a failure");
        assert!(reason.contains("the answer was empty"), "{reason}");
        let reason = judge(ok, Some(&json!({"success": false})), b"").expect("failure");
        assert!(
            reason.ends_with("no \"success\": true and no message"),
            "{reason}"
        );
        let reason = judge(StatusCode::BAD_GATEWAY, None, b"<html>502</html>").expect("failure");
        assert!(
            reason.starts_with("HTTP 502 Bad Gateway: the answer is not JSON"),
            "{reason}"
        );
        let refused = json!({"success": false, "message": "Invalid secret"});
        assert_eq!(
            judge(StatusCode::UNAUTHORIZED, Some(&refused), b"").as_deref(),
            Some("HTTP 401 Unauthorized: Invalid secret")
        );
        assert_eq!(judge(ok, Some(&json!({"success": true})), b""), None);
        // The endpoint's message cannot move the terminal's cursor or span lines.
        let hostile = json!({"success": false, "message": "bad\n\u{1b}[2Jsecret\u{7}"});
        let reason = judge(StatusCode::BAD_REQUEST, Some(&hostile), b"").expect("failure");
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
        assert!(reason.contains("bad \\u{1b}[2Jsecret\\u{7}"), "{reason:?}");
    }

    #[test]
    fn secret_sources() {
        let args = parse(&["--path", "/"]);
        assert_eq!(
            secret(&args, Some(" new, old".into())).as_deref(),
            Ok("new")
        );
        assert!(secret(&args, None).is_err());
    }
}
