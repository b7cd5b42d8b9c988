//! End to end with a real Next.js app (`tests/nextjs-app`, `next start` on 127.0.0.1) behind the
//! proxy: HTML and RSC never mixed, and one revalidation POST to the proxy makes both the proxy
//! and Next serve the new data on the very next request, including a page of the dynamic route
//! `/products/[slug]` (which Next 16's `revalidatePath` alone leaves stale; the proxy's
//! `x-prerender-revalidate` regeneration refreshes it). A page past its freshness is refreshed
//! conditionally, and Next's 304 renews the proxy's copy.
//!
//! `.ci/test.sh` installs the app's packages (`npm install --no-save`, see there why not `npm ci`); this test does so itself when they are
//! missing, builds the app when the build is older than its sources, and kills `next start` at
//! the end. One test function, so npm never runs twice at once in the app's folder.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::json;
use support::{get, get_with, metric, metrics_text, revalidate, send, Edge, Resp, SECRET};

/// What the app's own route checks (`REVALIDATE_SECRET` of the Next process).
const APP_SECRET: &str = "next-app-secret-0123456789abcdef0123456789";

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nextjs-app")
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    use std::os::unix::process::CommandExt;
    // Its own process group and no terminal: build tools that signal their whole group must not
    // reach the test runner.
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .process_group(0)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .env_remove("FIXTURE_DATA_FILE")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {program} (Node.js and npm are needed): {e}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// Newest modification time among the app's sources.
fn newest_source(dir: &Path) -> SystemTime {
    fn walk(path: &Path, newest: &mut SystemTime) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if let Ok(modified) = meta.modified() {
            *newest = (*newest).max(modified);
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        }
    }
    let mut newest = SystemTime::UNIX_EPOCH;
    for name in [
        "app",
        "lib",
        "package.json",
        "package-lock.json",
        "next.config.mjs",
    ] {
        walk(&dir.join(name), &mut newest);
    }
    newest
}

/// Installs (when missing) and builds (when stale) the fixture app.
fn prepare_app(dir: &Path) {
    if !dir.join("node_modules/next/package.json").exists() {
        run(
            dir,
            "npm",
            &["install", "--no-audit", "--no-fund", "--no-save"],
        );
    }
    let built = std::fs::metadata(dir.join(".next/BUILD_ID")).and_then(|m| m.modified());
    if built.map_or(true, |at| at < newest_source(dir)) {
        run(dir, "node", &["node_modules/next/dist/bin/next", "build"]);
    }
}

/// `next start`, killed when dropped.
struct NextServer {
    child: Child,
    port: u16,
}

impl Drop for NextServer {
    fn drop(&mut self) {
        // `next start` serves from this one process, so only this pid is signalled. No external
        // `kill -TERM -<pgid>`: runs that used it coincided with every process on the machine
        // being killed (cause not established), so nothing here signals by group any more.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_next(dir: &Path, data_file: &Path) -> NextServer {
    use std::os::unix::process::CommandExt;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new("node")
        .args(["node_modules/next/dist/bin/next", "start"])
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .env("FIXTURE_DATA_FILE", data_file)
        .env("REVALIDATE_SECRET", APP_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("start next");
    NextServer { child, port }
}

fn write_data(file: &Path, version: &str) {
    let data = json!({
        "home": format!("{version}-home"),
        "products": {"a": format!("{version}-a"), "b": format!("{version}-b")},
    });
    std::fs::write(file, data.to_string()).expect("write data file");
}

/// A request with `RSC: 1`, following Next's 307 to the `_rsc` URL once.
async fn get_rsc(addr: std::net::SocketAddr, path: &str) -> Resp {
    let response = get_with(addr, path, &[("rsc", "1")]).await;
    if response.status == 307 {
        let location = response.header("location").to_string();
        return get_with(addr, &location, &[("rsc", "1")]).await;
    }
    response
}

fn assert_html(response: &Resp, what: &str) {
    assert_eq!(response.status, 200, "{what}: {}", response.text());
    assert!(
        response.header("content-type").starts_with("text/html"),
        "{what}: got {} ({})",
        response.header("content-type"),
        response.cache()
    );
    assert!(response.text().contains("<html"), "{what}");
}

fn assert_rsc(response: &Resp, what: &str) {
    assert_eq!(response.status, 200, "{what}: {}", response.text());
    assert_eq!(
        response.header("content-type"),
        "text/x-component",
        "{what} ({})",
        response.cache()
    );
    assert!(!response.text().contains("<html"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nextjs_behind_the_proxy() {
    let dir = app_dir();
    tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || prepare_app(&dir)
    })
    .await
    .expect("prepare app");

    let data_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("isr-edge-next-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let data_file = data_dir.join("data.json");
    write_data(&data_file, "v1");

    let next = start_next(&dir, &data_file);
    let next_addr: std::net::SocketAddr = ([127, 0, 0, 1], next.port).into();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(next_addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "next start did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let origin = format!("http://{next_addr}");
    let route = format!("{origin}/api/revalidate");
    let manifest = dir.join(".next/prerender-manifest.json");
    let manifest = manifest.to_string_lossy();
    let edge = Edge::start(
        &origin,
        &[
            "--origin-revalidate-url",
            &route,
            "--origin-revalidate-secret",
            APP_SECRET,
            "--next-prerender-manifest",
            &manifest,
        ],
    )
    .await;

    // HTML and RSC never mixed, whichever comes first, from the cache or not.
    for round in 0..3 {
        for path in ["/", "/products/a", "/products/b"] {
            if round % 2 == 0 {
                assert_html(&get(edge.addr, path).await, path);
                assert_rsc(&get_rsc(edge.addr, path).await, path);
            } else {
                assert_rsc(&get_rsc(edge.addr, path).await, path);
                assert_html(&get(edge.addr, path).await, path);
            }
        }
        // The very URL of the RSC payload, asked for without `RSC: 1`, is HTML.
        let same_url = get(edge.addr, "/products/a?_rsc").await;
        assert_html(&same_url, "/products/a?_rsc without RSC");
        assert_rsc(
            &get_with(edge.addr, "/products/a?_rsc", &[("rsc", "1")]).await,
            "/products/a?_rsc",
        );
    }
    let again = get(edge.addr, "/products/a").await;
    assert_eq!(again.cache(), "HIT", "{:?}", again.headers);

    // New data (unique to this run: Next keeps regenerated pages in `.next` across runs) alone
    // changes nothing in either cache.
    let version = format!(
        "r{}x{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let (home, product_a, product_b) = (
        format!("{version}-home"),
        format!("{version}-a"),
        format!("{version}-b"),
    );
    write_data(&data_file, &version);
    for (path, marker) in [("/", &home), ("/products/a", &product_a)] {
        assert!(
            !get(edge.addr, path).await.text().contains(marker),
            "{path}"
        );
        assert!(
            !get(next_addr, path).await.text().contains(marker),
            "{path}"
        );
    }

    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/", "/products/a"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["origins"][0]["ok"], true, "{answer}");
    assert_eq!(answer["origins"][0]["status"], 200);
    let regenerated = answer["regenerated"].as_array().expect("regenerated");
    assert_eq!(regenerated.len(), 2, "{answer}");
    for result in regenerated {
        assert_eq!(result["ok"], true, "{answer}");
        assert_eq!(result["cache"], "REVALIDATED", "{answer}");
    }

    // The very next request, through the proxy and at Next directly, has the new data.
    for (path, marker) in [("/", &home), ("/products/a", &product_a)] {
        let via_proxy = get(edge.addr, path).await;
        assert_html(&via_proxy, path);
        assert!(
            via_proxy.text().contains(marker),
            "proxy {path}: {}",
            via_proxy.text()
        );
        let direct = get(next_addr, path).await;
        assert!(
            direct.text().contains(marker),
            "next {path}: {}",
            direct.text()
        );
        let rsc = get_rsc(edge.addr, path).await;
        assert_rsc(&rsc, path);
        assert!(rsc.text().contains(marker.as_str()), "proxy RSC {path}");
    }
    // A page nobody revalidated keeps its stored copy in both caches.
    let b = get(edge.addr, "/products/b").await;
    assert_eq!(b.cache(), "HIT");
    assert!(!b.text().contains(&product_b));
    assert!(!get(next_addr, "/products/b")
        .await
        .text()
        .contains(&product_b));

    // Our API's additive forms reach the seed's route as the plain paths it understands (an
    // object in `paths`, forwarded as received, made its `revalidatePath` throw: a 500 there,
    // a 502 here).
    let answer = send(
        edge.addr,
        "POST",
        "/api/revalidate",
        &[("authorization", &format!("Bearer {SECRET}"))],
        json!({"paths": [{"path": "/products/b", "type": "page"}], "tags": ["products"]})
            .to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["origins"][0]["ok"], true);
    let b = get(edge.addr, "/products/b").await;
    assert!(b.text().contains(&product_b), "{}", b.text());

    // A page past its freshness is refreshed with its validators, and Next confirms the copy
    // with a 304 (its own `Vary` then lacks `Accept-Encoding`, which must not reject it). Over
    // a few periods: the page Next built may differ from the one it regenerates (another ETag,
    // rightly a 200), but regenerations of unchanged data are identical.
    assert_html(&get(edge.addr, "/fast").await, "/fast");
    let mut confirmed = None;
    'periods: for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_html(&get(edge.addr, "/fast").await, "/fast (stale)");
        for _ in 0..40 {
            confirmed = metric(
                &metrics_text(&edge).await,
                "isr_edge_origin_not_modified_total",
            );
            if confirmed.is_some_and(|n| n >= 1.0) {
                break 'periods;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        confirmed.is_some_and(|n| n >= 1.0),
        "Next did not confirm the copy: {confirmed:?}"
    );
    let renewed = get(edge.addr, "/fast").await;
    assert_html(&renewed, "/fast (renewed)");
    assert!(
        renewed.header("vary").contains("Accept-Encoding"),
        "{:?}",
        renewed.headers
    );

    drop(next);
    let _ = std::fs::remove_dir_all(data_dir);
}
