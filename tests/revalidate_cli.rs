//! The purge client (`isr-edge revalidate ...`): the real binary against the real proxy in front
//! of a scripted origin. Success prints the answer and exits 0; a wrong secret, an unreachable
//! URL or a missing secret exit non-zero with one line saying why.

mod support;

use std::process::Stdio;

use serde_json::Value;
use support::{get, get_with, Edge, Origin, Reply, SECRET};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_isr-edge");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `isr-edge revalidate ARGS` with only `env` set (and PATH).
async fn client(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(BIN);
    command
        .arg("revalidate")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().await.expect("run isr-edge revalidate");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn cached_site() -> (Origin, Edge, String) {
    let origin = Origin::start(|r| {
        Reply::ok(format!("{} #{}", r.path, r.count))
            .cc("s-maxage=600")
            .header("cache-tag", "products")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let url = edge.url("/api/revalidate");
    (origin, edge, url)
}

#[tokio::test]
async fn purges_prints_the_answer_and_exits_zero() {
    let (origin, edge, url) = cached_site().await;
    for page in ["/", "/products/a", "/about"] {
        get(edge.addr, page).await;
        assert_eq!(get(edge.addr, page).await.cache(), "HIT");
    }
    let run = client(
        &["--url", &url, "--path", "/", "--tag", "nothing-tagged"],
        &[("REVALIDATE_SECRET", SECRET)],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let answer = run.json();
    assert_eq!(answer["success"], true);
    assert_eq!(answer["evicted"], 1);
    assert_eq!(answer["revalidated"]["paths"][0], "/");
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));
    assert_eq!(get(edge.addr, "/").await.text(), "/ #2");
    assert_eq!(get(edge.addr, "/about").await.cache(), "HIT");

    // Tags, from a secret file.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("isr-edge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret");
    let run = client(
        &[
            "--url",
            &url,
            "--tag",
            "products",
            "--secret-file",
            secret_file.to_str().expect("path"),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["evicted"], 3, "{}", run.stdout);
    assert_eq!(origin.count("/products/a"), 1);
    assert_eq!(get(edge.addr, "/products/a").await.text(), "/products/a #2");
}

#[tokio::test]
async fn dry_run_layout_and_host_are_sent() {
    let (_origin, edge, url) = cached_site().await;
    for page in ["/blog", "/blog/a", "/blog/a/b"] {
        get_with(edge.addr, page, &[("host", "shop.example")]).await;
    }
    get_with(edge.addr, "/blog/a", &[("host", "other.example")]).await;
    let env = [("REVALIDATE_SECRET", SECRET)];
    let run = client(
        &[
            "--url",
            &url,
            "--path",
            "/blog",
            "--layout",
            "--dry-run",
            "--host",
            "shop.example",
        ],
        &env,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let answer = run.json();
    assert_eq!(
        (answer["dry_run"].clone(), answer["would_evict"].clone()),
        (Value::Bool(true), Value::from(3))
    );
    let run = client(
        &[
            "--url",
            &url,
            "--path",
            "/blog",
            "--layout",
            "--soft",
            "--host",
            "shop.example",
        ],
        &env,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["mode"], "soft");
    assert_eq!(
        get_with(edge.addr, "/blog/a", &[("host", "shop.example")])
            .await
            .cache(),
        "STALE"
    );
    assert_eq!(
        get_with(edge.addr, "/blog/a", &[("host", "other.example")])
            .await
            .cache(),
        "HIT"
    );
}

#[tokio::test]
async fn wrong_secret_exits_non_zero_and_purges_nothing() {
    let (_origin, edge, url) = cached_site().await;
    get(edge.addr, "/").await;
    let run = client(
        &["--url", &url, "--path", "/"],
        &[("REVALIDATE_SECRET", "not-the-secret-at-all-0123456789")],
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("HTTP 401") && run.stderr.contains("Invalid secret"),
        "{}",
        run.stderr
    );
    assert_eq!(run.json()["success"], false, "the answer is still printed");
    assert_eq!(get(edge.addr, "/").await.cache(), "HIT");
}

#[tokio::test]
async fn unreachable_url_and_missing_secret_exit_non_zero() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let url = format!("http://{closed}/api/revalidate");
    let run = client(
        &["--url", &url, "--path", "/"],
        &[("REVALIDATE_SECRET", SECRET)],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with("isr-edge revalidate: cannot reach"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());

    // A mistake in the command line or environment is 2, as a bad flag is: a deploy script
    // can tell it from a failure worth retrying.
    let run = client(&["--url", &url, "--path", "/"], &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no secret"), "{}", run.stderr);

    let run = client(&["--url", &url], &[("REVALIDATE_SECRET", SECRET)]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("nothing to purge"), "{}", run.stderr);

    let run = client(
        &[
            "--url",
            "https://edge.example/api/revalidate",
            "--path",
            "/",
        ],
        &[("REVALIDATE_SECRET", SECRET)],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);

    // A secret no header can carry is a mistake in the environment, not worth a retry.
    let run = client(
        &["--url", &url, "--path", "/"],
        &[(
            "REVALIDATE_SECRET",
            "tab\tis-fine-but-\u{1}-is-not-0123456789",
        )],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("control character"), "{}", run.stderr);
    assert!(!run.stderr.contains("is-not"), "{}", run.stderr);

    // A deadline of 0 failed every purge with "no answer within 0ns".
    let run = client(
        &["--url", &url, "--path", "/", "--timeout", "0"],
        &[("REVALIDATE_SECRET", SECRET)],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--timeout") && run.stderr.contains("more than 0"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

/// The client reads a secret file as the server does: one secret per line, commas included.
#[tokio::test]
async fn a_secret_file_line_with_a_comma_is_one_secret() {
    let origin = Origin::start(|r| Reply::ok(r.path.clone()).cc("s-maxage=60")).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("isr-edge-cli-comma-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let secret_file = dir.join("secret");
    std::fs::write(
        &secret_file,
        "first-half-0123456789abcdef,second-half-0123456789\n",
    )
    .expect("write secret");
    let file = secret_file.to_str().expect("path");
    let edge = Edge::start_with_secret(&origin.url(), &["--secret-file", file], None).await;
    let url = edge.url("/api/revalidate");
    let run = client(&["--url", &url, "--path", "/", "--secret-file", file], &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    assert_eq!(run.json()["success"], true);
}

/// A secret file with a UTF-8 byte order mark (Windows Notepad, PowerShell 5): the client sent
/// the mark as part of the secret, and the proxy answered 401.
#[tokio::test]
async fn a_secret_file_with_a_byte_order_mark_sends_the_secret_without_it() {
    let (_origin, _edge, url) = cached_site().await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("isr-edge-cli-bom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("\u{feff}{SECRET}\r\n")).expect("write secret");
    let file = secret_file.to_str().expect("path");
    let run = client(&["--url", &url, "--path", "/", "--secret-file", file], &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    assert_eq!(run.json()["success"], true);
}

/// A URL that answers 200 with something other than the endpoint's JSON (an app's home page):
/// the reason said `the endpoint did not report success: ` and nothing after it.
#[tokio::test]
async fn an_answer_that_is_not_json_is_named_in_the_reason() {
    let app = Origin::start(|_| {
        Reply::ok("<!doctype html>\n<html><title>Shop</title></html>\x1b]0;owned\x07\x1b[2J")
            .header("content-type", "text/html")
    })
    .await;
    let url = format!("{}/home", app.url());
    let run = client(
        &["--url", &url, "--path", "/"],
        &[("REVALIDATE_SECRET", SECRET)],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    for expected in ["HTTP 200 OK", "not JSON", "<!doctype html> <html>", "--url"] {
        assert!(run.stderr.contains(expected), "{expected}: {}", run.stderr);
    }
    assert!(!run.stderr.contains(SECRET));
    // The page itself was written whole to stdout, its escape sequences (a new window title,
    // a cleared screen) reaching the terminal; the reason's escaped excerpt names it instead.
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
}

/// An endpoint answering far more than any revalidation answer is refused once past the
/// bound, not read whole into memory.
#[tokio::test]
async fn an_answer_too_large_to_be_the_endpoints_is_refused() {
    let app = Origin::start(|_| Reply::ok(vec![b' '; 17 << 20])).await;
    let url = format!("{}/files/big", app.url());
    let run = client(
        &["--url", &url, "--path", "/"],
        &[("REVALIDATE_SECRET", SECRET)],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("over 16 MiB"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

/// `--url http://edge:8080`, the site's address rather than its endpoint: the client posted to
/// `/`, which the proxy passes on to the app like any form post, secret in `Authorization`
/// and all. A user:password part was dropped without a word. Both are refused before anything
/// is sent.
#[tokio::test]
async fn a_url_that_cannot_be_the_endpoint_is_refused_before_the_secret_is_sent() {
    let (origin, edge, _) = cached_site().await;
    let base = format!("http://{}", edge.addr);
    let with_user = format!("http://ops:pa55word@{}/api/revalidate", edge.addr);
    for url in [base.clone(), format!("{base}/"), with_user] {
        let run = client(
            &["--url", &url, "--path", "/"],
            &[("REVALIDATE_SECRET", SECRET)],
        )
        .await;
        assert_eq!(run.code, 2, "{url}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains("--url"), "{}", run.stderr);
        assert!(!run.stderr.contains("pa55word"), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    assert!(
        origin.seen().is_empty(),
        "the app was sent {:?}",
        origin.seen().iter().map(|s| &s.path).collect::<Vec<_>>()
    );
}
