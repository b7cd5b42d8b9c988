//! The binary as operators run it: refusing the seed's sample secret, warning about a weak
//! one, and graceful shutdown on a real SIGTERM (in-flight requests finish; a second signal
//! exits at once).

mod support;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{Origin, Reply, SECRET};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn command(secret: &str, args: &[&str]) -> Command {
    command_via(&[], secret, args)
}

/// The binary started through `launcher` (e.g. `taskset -c 0`), or directly when it is empty.
fn command_via(launcher: &[&str], secret: &str, args: &[&str]) -> Command {
    let binary = env!("CARGO_BIN_EXE_isr-edge");
    let mut command = match launcher.split_first() {
        Some((program, launcher_args)) => {
            let mut command = Command::new(program);
            command.args(launcher_args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .args(args)
        // The admin listener's fixed default port would collide between parallel tests.
        .args(["--admin-listen", "off"])
        .env("REVALIDATE_SECRET", secret)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the binary and waits until its log says it serves; returns every log line so far.
async fn start(
    secret: &str,
    args: &[&str],
) -> (Child, tokio::sync::mpsc::UnboundedReceiver<String>) {
    start_command(command(secret, args)).await
}

/// Spawns the binary; every line it writes (stdout and stderr) arrives on the receiver.
fn spawn_logged(mut command: Command) -> (Child, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let mut child = command.spawn().expect("spawn isr-edge");
    let (lines_tx, lines) = tokio::sync::mpsc::unbounded_channel();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = lines_tx.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    (child, lines)
}

async fn start_command(command: Command) -> (Child, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (child, mut lines) = spawn_logged(command);
    let (forward_tx, forward_rx) = tokio::sync::mpsc::unbounded_channel();
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.recv().await {
            let serving = line.contains("isr-edge serving");
            let _ = forward_tx.send(line);
            if serving {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "isr-edge did not start");
    tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            let _ = forward_tx.send(line);
        }
    });
    (child, forward_rx)
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", name, &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// The start line's `workers=N`.
async fn workers_started(launcher: &[&str], args: &[&str]) -> String {
    let (mut child, mut lines) = start_command(command_via(launcher, SECRET, args)).await;
    let mut workers = String::new();
    while let Ok(line) = lines.try_recv() {
        // Logs piped to a file or a shipper carry no terminal colour codes.
        assert!(
            !line.contains('\u{1b}'),
            "escape codes in a piped log: {line:?}"
        );
        if line.contains("isr-edge serving") {
            workers = line
                .split_whitespace()
                .find(|field| field.starts_with("workers="))
                .unwrap_or("workers missing")
                .to_string();
        }
    }
    let _ = child.kill().await;
    workers
}

/// `--workers 0` (the default) follows the CPU affinity: pinned with `taskset`, as the
/// benchmark pins it, the proxy runs one worker; an explicit count wins over the affinity.
#[tokio::test]
async fn workers_follow_the_cpu_affinity() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let args = ["--origin", &origin.url(), "--listen", &listen];
    // The first CPU this test may use (a container's cpuset need not include CPU 0).
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let allowed = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    let first_cpu = allowed
        .trim()
        .split([',', '-'])
        .next()
        .expect("a CPU")
        .to_string();
    let pinned = ["taskset", "-c", first_cpu.as_str()];
    assert_eq!(workers_started(&pinned, &args).await, "workers=1");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(workers_started(&[], &args).await, format!("workers={cpus}"));
    let three = [&args[..], &["--workers", "3"]].concat();
    assert_eq!(workers_started(&pinned, &three).await, "workers=3");
}

/// Whether the proxy accepts connections on `addr` within 10 s.
async fn listening(addr: std::net::SocketAddr) -> bool {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

type Lines = tokio::sync::mpsc::UnboundedReceiver<String>;

/// The binary in front of `origin` on a free port, started as [`start`] does, with `extra`
/// flags; and the address it serves on.
async fn serve(origin: &str, extra: &[&str]) -> (Child, Lines, std::net::SocketAddr) {
    let listen = format!("127.0.0.1:{}", free_port());
    let args = [&["--origin", origin, "--listen", &listen][..], extra].concat();
    let (child, lines) = start(SECRET, &args).await;
    (child, lines, listen.parse().expect("address"))
}

/// Every log line containing `needle` that arrives within `window` (for the lines limited to
/// one a second: how many came, not only whether one did).
async fn lines_with(lines: &mut Lines, needle: &str, window: Duration) -> Vec<String> {
    let mut found = Vec::new();
    let _ = tokio::time::timeout(window, async {
        while let Some(line) = lines.recv().await {
            if line.contains(needle) {
                found.push(line);
            }
        }
    })
    .await;
    found
}

/// Waits for a log line containing `needle`.
async fn wait_for_line(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    needle: &str,
) -> bool {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.recv().await {
            if line.contains(needle) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

#[tokio::test]
async fn the_seed_sample_secret_refuses_to_start() {
    let output = command(
        "wincellar-secret-2025-change-in-production",
        &["--demo", "--listen", "127.0.0.1:0"],
    )
    .output()
    .await
    .expect("run isr-edge");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sample value") && stderr.contains("openssl rand"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wincellar-secret"),
        "the secret was echoed: {stderr}"
    );
}

#[tokio::test]
async fn a_weak_secret_starts_with_a_loud_warning() {
    let (mut child, mut lines) =
        start("short-secret", &["--demo", "--listen", "127.0.0.1:0"]).await;
    let mut seen = Vec::new();
    while let Ok(line) = lines.try_recv() {
        seen.push(line);
    }
    let logs = seen.join("\n");
    assert!(
        logs.contains("WEAK SECRET") && logs.contains("12 bytes"),
        "{logs}"
    );
    assert!(!logs.contains("short-secret"), "{logs}");
    child.kill().await.expect("kill");

    // A strong secret starts quietly.
    let (mut child, mut lines) = start(SECRET, &["--demo", "--listen", "127.0.0.1:0"]).await;
    while let Ok(line) = lines.try_recv() {
        assert!(!line.contains("WEAK SECRET"), "{line}");
    }
    child.kill().await.expect("kill");
}

#[tokio::test]
async fn sigterm_lets_a_slow_request_finish() {
    let origin = Origin::start(|_| Reply::ok("slow page").delay(Duration::from_secs(2))).await;
    let (mut child, mut lines, addr) = serve(&origin.url(), &[]).await;
    let request = tokio::spawn(async move { support::get(addr, "/slow").await });
    assert!(support::eventually(Duration::from_secs(10), || origin.total() == 1).await);
    signal(&child, "TERM");
    assert!(wait_for_line(&mut lines, "shutdown signal received").await);
    let response = request.await.expect("request task");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "slow page");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after the request")
        .expect("status");
    assert!(status.success(), "{status:?}");
}

/// SIGHUP (`systemctl reload`, `kill -HUP`: "reload" to nginx) killed the process on the spot,
/// cutting the requests in flight without a line in the log. It is logged and ignored.
#[tokio::test]
async fn sighup_is_logged_and_serving_goes_on() {
    let origin = Origin::start(|_| Reply::ok("slow page").delay(Duration::from_secs(2))).await;
    let (mut child, mut lines, addr) = serve(&origin.url(), &[]).await;
    let request = tokio::spawn(async move { support::get(addr, "/slow").await });
    assert!(support::eventually(Duration::from_secs(10), || origin.total() == 1).await);
    signal(&child, "HUP");
    assert!(wait_for_line(&mut lines, "SIGHUP ignored").await);
    let response = request.await.expect("request task");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "slow page");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still serving"
    );
    assert_eq!(support::get(addr, "/after").await.status, 200);
    let _ = child.kill().await;
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once() {
    let origin = Origin::start(|_| Reply::ok("never").delay(Duration::from_secs(600))).await;
    let (mut child, mut lines, addr) = serve(&origin.url(), &["--shutdown-timeout", "10min"]).await;
    let _hanging = tokio::spawn(async move { support::get(addr, "/hang").await });
    assert!(support::eventually(Duration::from_secs(10), || origin.total() == 1).await);
    signal(&child, "TERM");
    assert!(wait_for_line(&mut lines, "shutdown signal received").await);
    // Still draining: the hanging request holds the process up (for ten minutes).
    assert!(child.try_wait().expect("try_wait").is_none());
    signal(&child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("a second signal exits without waiting for the drain")
        .expect("status");
    assert_eq!(status.code(), Some(130));
}

/// `RUST_LOG` decides what is logged: `warn` silences the start-up lines while a target
/// directive keeps the access log.
#[tokio::test]
async fn rust_log_picks_what_is_logged() {
    let origin = Origin::start(|_| Reply::ok("x").cc("s-maxage=60")).await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut command = command(
        SECRET,
        &[
            "--origin",
            &origin.url(),
            "--listen",
            &listen,
            "--access-log",
        ],
    );
    command.env("RUST_LOG", "warn,isr_edge::access=info");
    let (mut child, mut lines) = spawn_logged(command);
    let addr: std::net::SocketAddr = listen.parse().expect("address");
    assert!(listening(addr).await, "isr-edge did not start listening");
    assert_eq!(support::get(addr, "/logged").await.status, 200);
    // Every line up to the access line, none of them skipped.
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.recv().await {
            let access = line.contains("path=/logged");
            seen.push(line);
            if access {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let _ = child.kill().await;
    assert!(
        found,
        "the access line is kept by its target directive: {seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("isr-edge serving")),
        "info lines logged under RUST_LOG=warn: {seen:?}"
    );
}

/// An empty `RUST_LOG` (a compose file's `RUST_LOG=${RUST_LOG}`) logs at the default, info: it
/// logged nothing at all, not even errors. One that does not parse logs at info too and says
/// so, where it fell back without a word.
#[tokio::test]
async fn an_empty_or_invalid_rust_log_logs_at_info() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let url = origin.url();
    let args = ["--origin", url.as_str(), "--listen", "127.0.0.1:0"];
    let mut empty = command(SECRET, &args);
    empty.env("RUST_LOG", "");
    let (mut child, _) = start_command(empty).await;
    let _ = child.kill().await;

    let mut typo = command(SECRET, &args);
    typo.env("RUST_LOG", "isr_edge=debugg");
    let (mut child, mut lines) = start_command(typo).await;
    let _ = child.kill().await;
    let mut seen = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(5), lines.recv()).await {
        seen.push(line);
    }
    assert!(
        seen.iter().any(|l| l.contains("WARN")
            && l.contains("RUST_LOG=\"isr_edge=debugg\" is not a valid filter")),
        "{seen:?}"
    );
}

/// An origin that cannot be reached is in the log, not only in the metrics and the client's
/// 502 (found by black-box QA: without `--access-log` nothing said so). A burst of failures is
/// one line a second with a count, not a line per request.
#[tokio::test]
async fn origin_failures_are_logged_once_a_second() {
    let closed = free_port();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let origin = format!("http://127.0.0.1:{closed}");
    let command = command(SECRET, &["--origin", &origin, "--listen", &listen]);
    let (mut child, mut lines) = spawn_logged(command);
    let addr: std::net::SocketAddr = listen.parse().expect("address");
    assert!(listening(addr).await, "isr-edge did not start listening");
    for n in 0..20 {
        let answer = support::get(addr, &format!("/down-{n}")).await;
        assert_eq!(answer.status, 502);
    }
    let failures = lines_with(&mut lines, "origin request failed", Duration::from_secs(3)).await;
    let _ = child.kill().await;
    assert!(!failures.is_empty(), "no line said the origin failed");
    assert!(
        failures.len() < 20,
        "one line per failed request: {failures:?}"
    );
    assert!(
        failures[0].contains("connect") && failures[0].contains(&origin),
        "{failures:?}"
    );
}

/// Connections refused over `--max-connections` are one warning a second with a count, not a
/// line each: a flood would otherwise write a line per connection.
#[tokio::test]
async fn refused_connections_are_logged_once_a_second() {
    let origin = Origin::start(|_| Reply::ok("page").cc("s-maxage=60")).await;
    let (mut child, mut lines, addr) = serve(&origin.url(), &["--max-connections", "1"]).await;
    // The one slot, held by a keep-alive connection.
    let mut held = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut held, b"GET /held HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = tokio::io::AsyncReadExt::read(&mut held, &mut buf)
        .await
        .expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    for _ in 0..20 {
        let refused = support::raw(addr, "GET /over HTTP/1.1\r\nhost: a\r\n\r\n").await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    }
    let refusals = lines_with(
        &mut lines,
        "connection limit reached",
        Duration::from_secs(3),
    )
    .await;
    let _ = child.kill().await;
    assert!(
        !refusals.is_empty(),
        "no line said connections were refused"
    );
    assert!(refusals.len() < 20, "one line per refusal: {refusals:?}");
}

/// A 304 to a fetch that sent no validators is an origin bug: the client gets a 502 (not an
/// empty page), nothing is stored, and the log says so, naming host and page but not the
/// query (it may carry a token), one line a second however many requests meet it. Only a
/// protocol-error count showed it.
#[tokio::test]
async fn a_304_to_a_request_without_conditions_is_logged() {
    let origin = Origin::start(|_| Reply::ok("").status(304).cc("s-maxage=60")).await;
    let (mut child, mut lines, addr) = serve(&origin.url(), &[]).await;
    let host = [("host", "shop.example")];
    for _ in 0..10 {
        let answer = support::get_with(addr, "/odd?token=s3cret", &host).await;
        assert_eq!(answer.status, 502, "{}", answer.text());
        assert!(answer.text().contains("304"), "{}", answer.text());
    }
    assert_eq!(origin.count("/odd?token=s3cret"), 10, "a 304 was stored");
    let warnings = lines_with(
        &mut lines,
        "304 Not Modified to a request without conditions",
        Duration::from_secs(2),
    )
    .await;
    let _ = child.kill().await;
    assert!(!warnings.is_empty(), "no line said the origin answered 304");
    assert!(warnings.len() < 10, "one line per request: {warnings:?}");
    assert!(
        warnings[0].contains("shop.example") && warnings[0].contains("page=/odd"),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|l| l.contains("s3cret")),
        "{warnings:?}"
    );
}

/// An origin that fails in the middle of a page being read for the cache (cut short, or too
/// slow to send it) is in the log too: the client gets a 502 or 504 and the metrics count an
/// origin error all the same, but only a failure before the response head was logged.
#[tokio::test]
async fn an_origin_body_failing_mid_way_is_logged() {
    // 100 bytes announced, 5 sent, then the connection closes.
    let origin = support::scripted_origin(|_| {
        "HTTP/1.1 200 OK\r\ncache-control: s-maxage=60\r\ncontent-length: 100\r\n\r\nshort"
            .to_string()
    })
    .await;
    let origin = format!("http://{origin}");
    let (mut child, mut lines, addr) = serve(&origin, &[]).await;
    let answer = support::get(addr, "/cut").await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    let logged = wait_for_line(&mut lines, "origin request failed").await;
    let _ = child.kill().await;
    assert!(logged, "no line said the origin failed");
}

/// A background refresh that fails names the page it was for: the line said only that some
/// refresh failed, and with many pages stale the operator could not tell which one. With the
/// origin down every stale page fails: one line a second with a count, not one per page.
#[tokio::test]
async fn a_failed_background_refresh_names_its_page() {
    let origin = Origin::start(|r| {
        if r.count == 1 {
            Reply::ok("first").cc("s-maxage=1, stale-while-revalidate=600")
        } else {
            Reply::ok("down").status(500)
        }
    })
    .await;
    let (mut child, mut lines, addr) = serve(&origin.url(), &[]).await;
    for n in 0..20 {
        let page = format!("/news/{n}?x=1");
        assert_eq!(support::get(addr, &page).await.cache(), "MISS");
    }
    // Past their second of freshness, inside their stale window.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for n in 0..20 {
        let page = format!("/news/{n}?x=1");
        assert_eq!(support::get(addr, &page).await.cache(), "STALE");
    }
    assert!(support::eventually(Duration::from_secs(10), || origin.seen().len() >= 40).await);
    let failed = lines_with(
        &mut lines,
        "background refresh failed",
        Duration::from_secs(3),
    )
    .await;
    let _ = child.kill().await;
    let line = failed.first().expect("a line says the refresh failed");
    assert!(line.contains("/news/"), "{line}");
    assert!(!line.contains("x=1"), "the query may carry a token: {line}");
    assert!(failed.len() < 20, "one line per failed refresh: {failed:?}");
}

/// With the origin down, every expired page served as stale-if-error would be a log line per
/// request: it is one line a second with a count, as the origin's own failure is.
#[tokio::test]
async fn stale_copies_served_for_a_failing_origin_are_one_line_a_second() {
    let failing = Arc::new(AtomicBool::new(false));
    let flag = failing.clone();
    let origin = Origin::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::ok("down").status(500)
        } else {
            Reply::ok("kept").cc("s-maxage=1, stale-if-error=300")
        }
    })
    .await;
    let (mut child, mut lines, addr) = serve(&origin.url(), &[]).await;
    assert_eq!(support::get(addr, "/page").await.text(), "kept");
    failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..10 {
        let answer = support::get(addr, "/page").await;
        assert_eq!((answer.status, answer.text().as_str()), (200, "kept"));
        assert_eq!(answer.cache(), "STALE");
    }
    let warnings = lines_with(&mut lines, "serving stale copy", Duration::from_secs(2)).await;
    let _ = child.kill().await;
    assert!(!warnings.is_empty(), "no line said a stale copy was served");
    assert!(warnings.len() < 10, "one line per request: {warnings:?}");
    assert!(warnings[0].contains("path=/page"), "{warnings:?}");
}
