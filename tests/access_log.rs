//! Logs of the real binary: `--log-format json --access-log` writes one JSON object per line,
//! with one access line per request (method, path, status, cache status, duration, bytes), and
//! neither cookies nor the value of a `secret` query parameter.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::{get_with, Origin, Reply};

struct Running {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// The next JSON log line matching `pred`, within a few seconds.
    fn next_matching(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("expected log line did not appear");
            if pred(&line) {
                return line;
            }
        }
    }
}

fn start(origin: &str) -> Running {
    start_with(origin, &["--access-log"])
}

/// The binary with `--log-format json` and `extra` flags.
fn start_with(origin: &str, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_isr-edge"))
        .args([
            "--origin",
            origin,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
        ])
        .args(["--log-format", "json"])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("REVALIDATE_SECRET", support::SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start isr-edge");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            if sender.send(value).is_err() {
                return;
            }
        }
    });
    Running { child, lines }
}

/// The public address from the "isr-edge serving" line.
fn listen_address(serving: &Value) -> SocketAddr {
    serving["listen"]
        .as_str()
        .expect("listen field")
        .parse()
        .expect("address")
}

#[tokio::test]
async fn json_access_log_has_one_line_per_request_without_secrets() {
    let origin =
        Origin::start(|r| Reply::ok(format!("body of {}", r.path)).cc("s-maxage=60")).await;
    let proxy = start(&origin.url());
    let serving = proxy.next_matching(|v| v["message"] == "isr-edge serving");
    let addr = listen_address(&serving);
    assert_eq!(serving["level"], "INFO");
    assert!(serving["timestamp"].is_string());

    let headers = [
        ("cookie", "session=cookie-value-123"),
        ("authorization", "Bearer token-456"),
    ];
    let first = get_with(addr, "/page?secret=hunter2&x=1", &headers).await;
    assert_eq!(first.cache(), "MISS");
    let second = get_with(addr, "/page?secret=hunter2&x=1", &headers).await;
    assert_eq!(second.cache(), "HIT");

    let is_access = |v: &Value| v["target"] == "isr_edge::access";
    let miss = proxy.next_matching(is_access);
    let hit = proxy.next_matching(is_access);
    for (line, cache) in [(&miss, "MISS"), (&hit, "HIT")] {
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["path"], "/page?secret=***&x=1", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["cache"], cache, "{line}");
        assert_eq!(line["bytes"], "body of /page".len(), "{line}");
        assert!(
            line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
            "{line}"
        );
        let text = line.to_string();
        for secret in ["hunter2", "cookie-value-123", "token-456"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

/// A revalidation whose forward to the origin's cache failed is answered 502; its audit line
/// said `result="ok"` at INFO and the failed call was logged at INFO. The fields are plain
/// JSON values: they were Rust debug strings (`"status":"Some(200)"`, `"error":"None"`,
/// `"paths":"[\"/\"]"`).
#[tokio::test]
async fn a_failed_forward_is_audited_as_a_failure_in_plain_fields() {
    let origin =
        Origin::start(|r| Reply::ok(format!("body of {}", r.path)).cc("s-maxage=60")).await;
    let app = Origin::start(|_| Reply::ok(r#"{"success":true}"#)).await;
    // A port nothing listens on (bound, then released).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let dead = format!("http://{closed}/api/revalidate");
    let live = format!("{}/api/revalidate", app.url());
    let proxy = start_with(
        &origin.url(),
        &[
            "--origin-revalidate-url",
            &live,
            "--origin-revalidate-url",
            &dead,
        ],
    );
    let addr = listen_address(&proxy.next_matching(|v| v["message"] == "isr-edge serving"));
    let answer = support::revalidate(
        addr,
        serde_json::json!({"secret": support::SECRET, "paths": ["/", "/products"], "tags": ["products"]}),
    )
    .await;
    assert_eq!(answer.status, 502, "{}", answer.text());

    let is_audit = |v: &Value| v["target"] == "isr_edge::audit";
    // Both calls run at once, so their lines come in either order: collect both first.
    let (mut told, mut failed) = (None, None);
    while told.is_none() || failed.is_none() {
        let line = proxy.next_matching(|v| is_audit(v) && v.get("url").is_some());
        if line["url"] == live.as_str() {
            told = Some(line);
        } else {
            failed = Some(line);
        }
    }
    let told = told.expect("live forward line");
    assert_eq!(told["level"], "INFO", "{told}");
    assert_eq!(told["status"], 200, "{told}");
    assert_eq!(told["ok"], true, "{told}");
    assert!(told.get("error").is_none(), "{told}");
    let failed = failed.expect("dead forward line");
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert_eq!(failed["ok"], false, "{failed}");
    assert!(failed.get("status").is_none(), "{failed}");
    let error = failed["error"].as_str().expect("error text");
    assert!(!error.is_empty() && !error.starts_with("Some("), "{failed}");

    let audit = proxy.next_matching(|v| is_audit(v) && v["message"] == "revalidated");
    assert_eq!(audit["level"], "WARN", "{audit}");
    assert_eq!(audit["result"], "origin-failed", "{audit}");
    assert_eq!(audit["evicted"], 0, "{audit}");
    assert_eq!(audit["paths"], "/,/products", "{audit}");
    assert_eq!(audit["tags"], "products", "{audit}");
    assert_eq!(audit["origin_ok"], false, "{audit}");
}

/// With `--log-format json`, a failure to start once the configuration is read (the port in
/// use) is one JSON object on stdout like every other line; it was the one plain-text line, on
/// stderr, that a shipper parsing JSON could not read, and it says why the process exited.
#[test]
fn a_port_in_use_is_reported_as_a_json_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_isr-edge"))
        .args(["--origin", "http://127.0.0.1:1", "--admin-listen", "off"])
        .args(["--listen", &address, "--log-format", "json"])
        .env("RUST_LOG", "info")
        .env("REVALIDATE_SECRET", support::SECRET)
        .output()
        .expect("run isr-edge");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"))
        })
        .collect();
    let error = lines
        .iter()
        .find(|line| line["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR line in {stdout}"));
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("--listen {address}")) && message.contains("in use"),
        "{message}"
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
