//! End to end with a real Next.js app (`tests/nextjs-app`, `next start` on 127.0.0.1) behind the
//! proxy: HTML and RSC never mixed, and one revalidation POST to the proxy makes both the proxy
//! and Next serve the new data on the very next request, including a page of the dynamic route
//! `/products/[slug]` (which Next 16's `revalidatePath` alone leaves stale; the proxy's
//! `x-prerender-revalidate` regeneration refreshes it). A page past its freshness is refreshed
//! conditionally, and Next's 304 renews the proxy's copy. Then what a site owner meets: a
//! tag revalidation of data-cache pages (`unstable_cache`, tags told by `Cache-Tag` from
//! next.config's `headers()`) renewing HTML and every client-navigation payload (full, route
//! tree and segment prefetches) and turning a kept 404 of a `dynamicParams` page into the new
//! post; a middleware rewrite renewed with its real path; draft mode, `cookies()` pages and
//! Server Actions never cached; redirects; a cached route handler; immutable assets,
//! `/_next/image`, compression, a browser reload after a revalidation; and a purge of
//! everything (`revalidatePath('/', 'layout')`) with assets and images stored.
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
        "public",
        "proxy.ts",
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

/// The site's data at `version`, with the blog post `late` when given (a slug of its own for
/// each run: Next keeps the pages it rendered in `.next` across runs).
fn write_data(file: &Path, version: &str, late: Option<&str>) {
    let mut posts = json!({"first": format!("{version}-first")});
    if let Some(slug) = late {
        posts[slug] = json!(format!("{version}-late"));
    }
    let data = json!({
        "home": format!("{version}-home"),
        "products": {"a": format!("{version}-a"), "b": format!("{version}-b")},
        "posts": posts,
    });
    std::fs::write(file, data.to_string()).expect("write data file");
}

/// A request with `RSC: 1`, following Next's 307 to the `_rsc` URL once.
async fn get_rsc(addr: std::net::SocketAddr, path: &str) -> Resp {
    get_rsc_with(addr, path, &[]).await
}

/// [`get_rsc`] with the router's other headers (a prefetch, a segment prefetch), which Next
/// hashes into the `_rsc` its 307 names.
async fn get_rsc_with(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    let headers = [&[("rsc", "1")], headers].concat();
    let response = get_with(addr, path, &headers).await;
    if response.status == 307 {
        let location = response.header("location").to_string();
        return get_with(addr, &location, &headers).await;
    }
    response
}

/// What a client-side navigation to `path` asks for: the full payload, the route tree prefetch
/// and the page segment's prefetch (Next 16's segment cache), each checked to be RSC.
async fn client_navigation(
    addr: std::net::SocketAddr,
    path: &str,
    page_segment: &str,
) -> Vec<Resp> {
    let prefetch = [("next-router-prefetch", "1")];
    let tree = [prefetch[0], ("next-router-segment-prefetch", "/_tree")];
    let segment = [prefetch[0], ("next-router-segment-prefetch", page_segment)];
    let mut answers = Vec::new();
    for headers in [&[][..], &tree[..], &segment[..]] {
        let answer = get_rsc_with(addr, path, headers).await;
        assert_rsc(&answer, &format!("{path} {headers:?}"));
        answers.push(answer);
    }
    answers
}

/// A browser's page load: what Chrome sends for a document, compression included.
const BROWSER: [(&str, &str); 3] = [
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    ),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("sec-fetch-mode", "navigate"),
];

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
    write_data(&data_file, "v1", None);

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
    write_data(&data_file, &version, None);
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

    // A blog whose posts come from Next's data cache (`unstable_cache`, tagged `posts`), and
    // whose pages tell the proxy that tag with `Cache-Tag` (next.config's `headers()`): one tag
    // revalidation renews every stored form of the pages using it, and a 404 kept for a post
    // not written yet (`dynamicParams`) turns into the post.
    let blog = format!("{version}b");
    let (first, late) = (format!("{blog}-first"), format!("{blog}-late"));
    let late_slug = format!("late-{version}");
    let late_path = format!("/blog/{late_slug}");
    const POST_SEGMENT: &str = "/blog/$d$slug/__PAGE__";
    assert_html(&get(edge.addr, "/blog/first").await, "/blog/first");
    client_navigation(edge.addr, "/blog/first", POST_SEGMENT).await;
    let missing = get(edge.addr, &late_path).await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(missing.header("cache-tag"), "", "tags are the proxy's");
    let missing = get(edge.addr, &late_path).await;
    assert_eq!((missing.status, missing.cache()), (404, "HIT"));
    assert_eq!(
        missing.header("cache-control"),
        "public, max-age=0, must-revalidate"
    );
    write_data(&data_file, &blog, Some(&late_slug));
    assert_eq!(get(edge.addr, &late_path).await.status, 404);
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "tags": ["posts"]})).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let page = get(edge.addr, "/blog/first").await;
    assert_eq!(page.cache(), "MISS");
    assert!(page.text().contains(&first), "{}", page.text());
    let navigation = client_navigation(edge.addr, "/blog/first", POST_SEGMENT).await;
    for (answer, what) in navigation.iter().zip(["navigation", "tree", "segment"]) {
        assert_eq!(answer.cache(), "MISS", "{what}");
    }
    assert!(navigation[0].text().contains(&first), "navigation payload");
    assert!(navigation[2].text().contains(&first), "segment prefetch");
    let page = get(edge.addr, &late_path).await;
    assert_html(&page, "/blog/late, written");
    assert!(page.text().contains(&late), "{}", page.text());

    // A URL a middleware rewrite serves `/products/a` under is renewed with the real path.
    let rewritten = get(edge.addr, "/mw/rewrite").await;
    assert_html(&rewritten, "/mw/rewrite");
    assert!(
        rewritten.text().contains(&product_a),
        "{}",
        rewritten.text()
    );
    assert_eq!(get(edge.addr, "/mw/rewrite").await.cache(), "HIT");
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/products/a"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let rewritten = get(edge.addr, "/mw/rewrite").await;
    assert!(
        rewritten.text().contains(&format!("{blog}-a")),
        "{}",
        rewritten.text()
    );

    // Draft mode bypasses the cache both ways: the draft request sees the data now, and its
    // answer is never served to anyone else.
    let draft_on = get(edge.addr, "/api/draft").await;
    let cookie = draft_on
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(cookie.starts_with("__prerender_bypass="), "{cookie}");
    let draft = get_with(edge.addr, "/", &[("cookie", &cookie)]).await;
    assert_html(&draft, "/ in draft mode");
    assert_eq!(draft.cache(), "BYPASS");
    assert!(draft.text().contains(&format!("{blog}-home")));
    assert_eq!(
        get_rsc_with(edge.addr, "/", &[("cookie", &cookie)])
            .await
            .cache(),
        "BYPASS"
    );
    let plain = get(edge.addr, "/").await;
    assert_eq!(plain.cache(), "HIT");
    assert!(plain.text().contains(&home) && !plain.text().contains(&format!("{blog}-home")));

    // `cookies()`/`headers()` make a page dynamic: never stored, each visitor its own.
    for who in ["alice", "bob", "alice"] {
        let page = get_with(edge.addr, "/dynamic", &[("cookie", &format!("who={who}"))]).await;
        assert_html(&page, "/dynamic");
        assert_eq!(page.cache(), "MISS");
        assert!(page.text().contains(&format!("dynamic for <!-- -->{who}")));
        assert!(page.header("cache-control").starts_with("private"));
    }
    // An unknown URL's 404 says `no-store`: never kept.
    assert_eq!(get(edge.addr, "/no-such-page").await.status, 404);
    assert_eq!(get(edge.addr, "/no-such-page").await.cache(), "MISS");

    // A Server Action, as the router posts it: passed through, and the page stays a page.
    let form = get(edge.addr, "/action").await.text();
    let action = form
        .split("$ACTION_ID_")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form names its action")
        .to_string();
    let boundary = "isredgee2eboundary";
    let body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"1_note\"\r\n\r\ne2e\r\n\
         --{boundary}\r\ncontent-disposition: form-data; name=\"0\"\r\n\r\n[\"$K1\"]\r\n--{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let answer = send(
        edge.addr,
        "POST",
        "/action",
        &[
            ("next-action", &action),
            ("accept", "text/x-component"),
            ("content-type", &content_type),
        ],
        body,
    )
    .await;
    assert_rsc(&answer, "server action");
    assert_eq!(answer.cache(), "BYPASS");
    assert_html(&get(edge.addr, "/action").await, "/action after the action");

    // `redirect()`, `permanentRedirect()` and a middleware redirect: the browser is never told
    // to keep them (the permanent one is kept here).
    for (path, status, location) in [
        ("/old", 307, "/products/a"),
        ("/moved", 308, "/products/b"),
        ("/mw/redirect", 307, "/products/b"),
    ] {
        let answer = get(edge.addr, path).await;
        assert_eq!(
            (answer.status, answer.header("location")),
            (status, location)
        );
        assert!(
            !answer.header("cache-control").contains("s-maxage"),
            "{path}"
        );
    }
    assert_eq!(get(edge.addr, "/moved").await.cache(), "HIT");

    // A GET route handler with `revalidate`, stored and revalidated like a page.
    let stamp = get(edge.addr, "/api/stamp").await.json();
    assert_eq!(get(edge.addr, "/api/stamp").await.json(), stamp);
    revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/api/stamp"]}),
    )
    .await;
    assert_eq!(
        get(edge.addr, "/api/stamp").await.json()["home"],
        format!("{blog}-home")
    );

    // Static assets stay immutable for browsers; images are kept per `Accept`.
    let html = get(edge.addr, "/products/b").await.text();
    let asset = html
        .split('"')
        .find(|part| part.starts_with("/_next/static/") && part.ends_with(".js"))
        .expect("a script")
        .to_string();
    let script = get_with(edge.addr, &asset, &BROWSER).await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(get_with(edge.addr, &asset, &BROWSER).await.cache(), "HIT");
    let image_url = "/_next/image?url=%2Fpixel.png&w=64&q=75";
    let accept_images = [("accept", "image/avif,image/webp,*/*;q=0.8")];
    let image = get_with(edge.addr, image_url, &accept_images).await;
    assert_eq!(
        (image.status, image.header("content-type")),
        (200, "image/webp")
    );
    assert_eq!(
        get_with(edge.addr, image_url, &accept_images).await.cache(),
        "HIT"
    );

    // Compression: a browser gets Next's gzip, a client asking for none the plain page.
    let gzipped = get_with(edge.addr, "/products/b", &BROWSER).await;
    assert_eq!(gzipped.header("content-encoding"), "gzip");
    assert!(gzipped.header("vary").contains("Accept-Encoding"));
    let plain = get(edge.addr, "/products/b").await;
    assert_eq!(plain.header("content-encoding"), "");
    assert_html(&plain, "/products/b without compression");

    // A plain reload: 304 while the page is the same, the new page once it was revalidated.
    assert_eq!(
        plain.header("cache-control"),
        "public, max-age=0, must-revalidate"
    );
    let etag = plain.header("etag").to_string();
    let reload = [
        ("if-none-match", etag.as_str()),
        ("cache-control", "max-age=0"),
    ];
    assert_eq!(
        get_with(edge.addr, "/products/b", &reload).await.status,
        304
    );
    revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/products/b"]}),
    )
    .await;
    let reloaded = get_with(edge.addr, "/products/b", &reload).await;
    assert_eq!(reloaded.status, 200);
    assert!(reloaded.text().contains(&format!("{blog}-b")));

    // Everything (`revalidatePath('/', 'layout')`): the stored assets and images go too, and
    // only pages are asked to regenerate (`HEAD /_next/image` is Next's 400: it failed all).
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": [{"path": "/", "type": "layout"}]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(answer["success"], true, "{answer}");
    let regenerated = answer["regenerated"].as_array().expect("regenerated");
    assert!(
        regenerated.iter().any(|r| r["path"] == "/blog/first"),
        "{answer}"
    );
    assert!(
        regenerated
            .iter()
            .all(|r| !r["path"].as_str().unwrap_or_default().contains("/_next/")),
        "{answer}"
    );
    assert_eq!(
        get_with(edge.addr, image_url, &accept_images).await.cache(),
        "MISS"
    );

    drop(next);
    let _ = std::fs::remove_dir_all(data_dir);
}
