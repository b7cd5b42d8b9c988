//! Telling the origin's own cache: forwarding a revalidation to every origin instance (with the
//! origin's secret, before the local eviction), origin failures (502, local eviction still
//! done), Next.js regeneration with `HEAD` + `x-prerender-revalidate`, clients that send that
//! header themselves, and the tag-header flags.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::{get, get_with, revalidate, send, Edge, Origin, Reply, Seen, SECRET};

const ORIGIN_SECRET: &str = "origin-side-secret-0123456789abcdef";
const PREVIEW_ID: &str = "f5a1c0ffee0123456789abcdef012345";

/// A `prerender-manifest.json` naming `PREVIEW_ID`, as `next build` writes it, in a
/// directory of its own.
fn preview_manifest(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("isr-edge-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let manifest = dir.join("prerender-manifest.json");
    std::fs::write(
        &manifest,
        json!({"version": 4, "routes": {}, "preview": {"previewModeId": PREVIEW_ID}}).to_string(),
    )
    .expect("write manifest");
    manifest
}

/// An app instance's revalidation route: answers after `delay` with `status`.
async fn app_instance(status: u16, delay: Duration) -> Origin {
    Origin::start(move |_| {
        Reply::ok(r#"{"success":true,"message":"Revalidated successfully"}"#)
            .status(status)
            .header("content-type", "application/json")
            .delay(delay)
    })
    .await
}

fn posts(app: &Origin) -> Vec<Seen> {
    app.seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect()
}

fn body_json(seen: &Seen) -> Value {
    serde_json::from_slice(&seen.body).expect("forwarded body is JSON")
}

#[tokio::test]
async fn every_origin_instance_is_told_before_the_local_eviction() {
    let site = Origin::start(|r| Reply::ok(format!("render {}", r.count)).cc("s-maxage=600")).await;
    // Each instance takes a while, so the test can look at the cache while they are answering.
    let app1 = app_instance(200, Duration::from_millis(1500)).await;
    let app2 = app_instance(200, Duration::from_millis(1500)).await;
    let (url1, url2) = (
        format!("{}/api/revalidate", app1.url()),
        format!("{}/api/revalidate", app2.url()),
    );
    let edge = Edge::start(
        &site.url(),
        &[
            "--origin-revalidate-url",
            &url1,
            "--origin-revalidate-url",
            &url2,
            "--origin-revalidate-secret",
            ORIGIN_SECRET,
        ],
    )
    .await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    assert_eq!(get(edge.addr, "/p").await.cache(), "HIT");

    let addr = edge.addr;
    let call = tokio::spawn(async move {
        revalidate(
            addr,
            json!({"secret": SECRET, "paths": ["/p"], "type": "page"}),
        )
        .await
    });
    // Both instances are called concurrently (each waits 1.5 s before answering) ...
    assert!(
        support::eventually(Duration::from_secs(3), || posts(&app1).len() == 1
            && posts(&app2).len() == 1)
        .await,
        "both origin instances were called"
    );
    // ... and until they answered, our copy is still there.
    let during = get(edge.addr, "/p").await;
    assert_eq!(during.cache(), "HIT", "evicted before the origins answered");
    assert_eq!(during.text(), "render 1");

    let answer = call.await.expect("revalidate task");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(answer["success"], true);
    assert_eq!(answer["evicted"], 1);
    let origins = answer["origins"].as_array().expect("origins listed");
    assert_eq!(origins.len(), 2);
    assert_eq!(origins[0]["url"], url1);
    assert_eq!(origins[1]["url"], url2);
    for origin in origins {
        assert_eq!(origin["status"], 200);
        assert_eq!(origin["ok"], true);
        assert_eq!(origin["error"], Value::Null);
    }
    for app in [&app1, &app2] {
        let seen = posts(app);
        assert_eq!(seen[0].path, "/api/revalidate");
        assert_eq!(seen[0].headers["content-type"], "application/json");
        let body = body_json(&seen[0]);
        assert_eq!(
            body["secret"], ORIGIN_SECRET,
            "the origin's secret replaces ours"
        );
        assert_eq!(body["paths"], json!(["/p"]));
        assert_eq!(body["type"], "page", "the rest of the body is kept as sent");
    }
    // Our copy went after the origins answered.
    let after = get(edge.addr, "/p").await;
    assert_eq!(after.cache(), "MISS");
    assert_eq!(after.text(), "render 2");

    // A query-string revalidation is forwarded as the JSON body the origin route expects.
    let query = get(
        edge.addr,
        &format!("/api/revalidate?secret={SECRET}&path=/p&tag=posts"),
    )
    .await;
    assert_eq!(query.status, 200, "{}", query.text());
    let body = body_json(&posts(&app1)[1]);
    assert_eq!(body["secret"], ORIGIN_SECRET);
    assert_eq!(body["paths"], json!(["/p"]));
    assert_eq!(body["tags"], json!(["posts"]));

    // A dry run tells nobody.
    let dry = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/p"], "dry_run": true}),
    )
    .await;
    assert_eq!(dry.status, 200);
    assert!(dry.json().get("origins").is_none());
    assert_eq!(posts(&app1).len(), 2);
    assert_eq!(posts(&app2).len(), 2);
}

/// The seed's route handler (shared/seeds/000, `tests/nextjs-app/app/api/revalidate`), as it
/// behaves: it reads only `secret` and `paths`, and `revalidatePath` throws on a path that is
/// not a string, which the route answers with a 500.
async fn seed_route() -> Origin {
    Origin::start(|r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if body["secret"] != ORIGIN_SECRET {
            return Reply::ok(r#"{"success":false,"message":"Invalid secret"}"#).status(401);
        }
        if let Some(paths) = body["paths"].as_array() {
            if !paths.iter().all(Value::is_string) {
                return Reply::ok(
                    r#"{"success":false,"message":"Revalidation failed","error":"e.charCodeAt is not a function"}"#,
                )
                .status(500);
            }
        }
        Reply::ok(r#"{"success":true,"message":"Revalidated successfully"}"#)
            .header("content-type", "application/json")
    })
    .await
}

/// Our API takes more than the seed route's `{secret, paths: [strings]}`; whatever form a
/// client used, the route gets plain path strings (and the fields it ignores), so it does not
/// fail and the caller is not told 502 for a revalidation that worked.
#[tokio::test]
async fn additive_forms_reach_a_seed_route_as_plain_paths() {
    let site = Origin::start(|r| Reply::ok(format!("render {}", r.count)).cc("s-maxage=600")).await;
    let app = seed_route().await;
    let url = format!("{}/api/revalidate", app.url());
    let edge = Edge::start(
        &site.url(),
        &[
            "--origin-revalidate-url",
            &url,
            "--origin-revalidate-secret",
            ORIGIN_SECRET,
        ],
    )
    .await;
    let bearer = format!("Bearer {SECRET}");
    let cases = [
        (
            json!({"paths": [{"path": "/blog", "type": "layout"}, "/p"], "tag": "t", "mode": "soft"}),
            json!({"secret": ORIGIN_SECRET, "paths": ["/blog", "/p"], "tag": "t", "mode": "soft"}),
        ),
        (
            json!({"path": {"path": "/a", "type": "layout"}, "dry_run": false}),
            json!({"secret": ORIGIN_SECRET, "paths": ["/a"], "dry_run": false}),
        ),
        (
            json!({"path": ["/b", {"path": "/c"}], "tags": ["products"], "type": "layout"}),
            json!({"secret": ORIGIN_SECRET, "paths": ["/b", "/c"], "tags": ["products"], "type": "layout"}),
        ),
        (
            json!({"path": "/p", "warm": false}),
            json!({"secret": ORIGIN_SECRET, "path": "/p", "paths": ["/p"], "warm": false}),
        ),
    ];
    for (sent, expected) in cases {
        get(edge.addr, "/p").await;
        let answer = send(
            edge.addr,
            "POST",
            "/api/revalidate",
            &[("authorization", &bearer)],
            sent.to_string(),
        )
        .await;
        assert_eq!(answer.status, 200, "{sent}: {}", answer.text());
        assert_eq!(answer.json()["origins"][0]["ok"], true, "{sent}");
        let forwarded = body_json(posts(&app).last().expect("a forwarded call"));
        assert_eq!(forwarded, expected, "{sent}");
    }
    assert_eq!(
        get(edge.addr, "/p").await.cache(),
        "MISS",
        "our own eviction happened as well"
    );

    // The seed's Laravel shape is forwarded exactly as before: only the secret differs.
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/", "/products"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let forwarded = posts(&app).last().expect("a forwarded call").body.clone();
    assert_eq!(
        forwarded,
        json!({"secret": ORIGIN_SECRET, "paths": ["/", "/products"]}).to_string(),
        "byte for byte"
    );
}

#[tokio::test]
async fn a_failing_origin_gives_502_and_the_local_eviction_still_happens() {
    let site = Origin::start(|r| Reply::ok(format!("render {}", r.count)).cc("s-maxage=600")).await;
    let good = app_instance(200, Duration::ZERO).await;
    let bad = Origin::start(|_| Reply::ok("boom: cache handler down").status(500)).await;
    // A port nothing listens on (bound, then released).
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let urls = [
        // Credentials in the URL go as `Authorization: Basic`, as curl sends them.
        format!(
            "{}/api/revalidate",
            good.url().replacen("http://", "http://ops:pa55@", 1)
        ),
        format!("{}/api/revalidate", bad.url()),
        format!("http://{closed}/api/revalidate?secret=in-the-url"),
    ];
    let edge = Edge::start(
        &site.url(),
        &[
            "--origin-revalidate-url",
            &urls[0],
            "--origin-revalidate-url",
            &urls[1],
            "--origin-revalidate-url",
            &urls[2],
        ],
    )
    .await;
    get(edge.addr, "/p").await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "HIT");

    let answer = revalidate(edge.addr, json!({"secret": SECRET, "paths": ["/p"]})).await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        !answer.text().contains("in-the-url") && !answer.text().contains("pa55"),
        "a URL's query and password are never echoed"
    );
    let answer = answer.json();
    assert_eq!(answer["success"], false);
    assert_eq!(answer["evicted"], 1);
    let origins = answer["origins"].as_array().expect("origins");
    assert_eq!(origins[0]["ok"], true);
    assert_eq!(origins[1]["ok"], false);
    assert_eq!(origins[1]["status"], 500);
    let error = origins[1]["error"].as_str().expect("error text");
    assert!(error.contains("500") && error.contains("boom"), "{error}");
    assert_eq!(origins[2]["ok"], false);
    assert_eq!(origins[2]["status"], Value::Null);
    assert!(origins[2]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(
        origins[2]["url"],
        format!("http://{closed}/api/revalidate?…")
    );
    // Without --origin-revalidate-secret the body goes with the caller's own secret, also
    // when the caller sent it in a header (as the purge client does) or the query.
    assert_eq!(body_json(&posts(&good)[0])["secret"], SECRET);
    assert_eq!(
        posts(&good)[0].headers["authorization"],
        "Basic b3BzOnBhNTU=",
        "the URL's credentials"
    );
    let bearer = format!("Bearer {SECRET}");
    for (target, headers) in [
        ("/api/revalidate", vec![("authorization", bearer.as_str())]),
        ("/api/revalidate", vec![("x-revalidate-secret", SECRET)]),
        (&*format!("/api/revalidate?secret={SECRET}"), vec![]),
    ] {
        let mut headers = headers;
        headers.push(("content-type", "application/json"));
        let answer = support::send(
            edge.addr,
            "POST",
            target,
            &headers,
            json!({"paths": ["/p"]}).to_string(),
        )
        .await;
        assert_eq!(answer.status, 502, "{}", answer.text());
        let forwarded = body_json(posts(&good).last().expect("a forwarded call"));
        assert_eq!(forwarded["secret"], SECRET, "{target} {headers:?}");
    }

    let after = get(edge.addr, "/p").await;
    assert_eq!(after.cache(), "MISS", "the local eviction happened anyway");
    assert_eq!(after.text(), "render 2");
    // Counted as what the caller was told (502), not as a success.
    let text = support::metrics_text(&edge).await;
    let count = |outcome: &str| {
        support::metric(
            &text,
            &format!("isr_edge_revalidations_total{{outcome=\"{outcome}\",target=\"path\"}}"),
        )
    };
    assert_eq!(count("origin-failed"), Some(4.0), "{text}");
    assert_eq!(count("ok"), Some(0.0), "{text}");
}

/// A scripted Next.js: it keeps its own rendered copy of each page (its ISR cache), serves it
/// to GET, and re-renders from the current data only on `HEAD` with the right
/// `x-prerender-revalidate`.
struct FakeNext {
    origin: Origin,
    data_version: Arc<AtomicUsize>,
}

async fn fake_next() -> FakeNext {
    let data_version = Arc::new(AtomicUsize::new(1));
    let rendered: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let data = data_version.clone();
    let origin = Origin::start(move |r| {
        let render = || format!("{} v{}", r.path, data.load(Ordering::SeqCst));
        let mut pages = rendered.lock().expect("rendered pages");
        let regenerate = r
            .headers
            .get("x-prerender-revalidate")
            .is_some_and(|v| v == PREVIEW_ID);
        if r.method == "HEAD" && regenerate {
            pages.insert(r.path.clone(), render());
            return Reply::ok("").header("x-nextjs-cache", "REVALIDATED");
        }
        let body = pages.entry(r.path.clone()).or_insert_with(render).clone();
        let slug = r.path.rsplit('/').next().unwrap_or("");
        Reply::ok(body)
            .cc("s-maxage=3600, stale-while-revalidate=31532400")
            .header("x-nextjs-cache", "HIT")
            .header("cache-tag", &format!("product-{slug}"))
    })
    .await;
    FakeNext {
        origin,
        data_version,
    }
}

#[tokio::test]
async fn pages_are_regenerated_with_x_prerender_revalidate_before_the_eviction() {
    let next = fake_next().await;
    let manifest = preview_manifest("forwarding");
    let manifest_arg = manifest.to_string_lossy().into_owned();
    let edge = Edge::start(
        &next.origin.url(),
        &["--next-prerender-manifest", &manifest_arg],
    )
    .await;
    for path in ["/", "/products/a", "/products/b", "/products/c"] {
        assert_eq!(get(edge.addr, path).await.cache(), "MISS");
    }
    next.data_version.store(2, Ordering::SeqCst);
    // Without a revalidation, both caches keep the old render.
    assert_eq!(get(edge.addr, "/products/a").await.text(), "/products/a v1");

    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/products/a"], "tags": ["product-b"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(!answer.text().contains(PREVIEW_ID), "the id is a secret");
    let answer = answer.json();
    assert_eq!(answer["success"], true);
    let regenerated = answer["regenerated"]
        .as_array()
        .expect("regenerated listed");
    let paths: Vec<&str> = regenerated
        .iter()
        .map(|r| r["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        ["/products/a", "/products/b"],
        "the page asked for and the tagged page"
    );
    for result in regenerated {
        assert_eq!(result["ok"], true);
        assert_eq!(result["status"], 200);
        assert_eq!(result["cache"], "REVALIDATED");
    }
    let heads: Vec<Seen> = next
        .origin
        .seen()
        .into_iter()
        .filter(|s| s.method == "HEAD")
        .collect();
    assert_eq!(heads.len(), 2);
    for head in &heads {
        assert_eq!(head.headers["x-prerender-revalidate"], PREVIEW_ID);
    }

    // The proxy's next fetch gets the regenerated pages; the others stay as they were.
    let a = get(edge.addr, "/products/a").await;
    assert_eq!((a.cache(), a.text().as_str()), ("MISS", "/products/a v2"));
    let b = get(edge.addr, "/products/b").await;
    assert_eq!((b.cache(), b.text().as_str()), ("MISS", "/products/b v2"));
    let c = get(edge.addr, "/products/c").await;
    assert_eq!((c.cache(), c.text().as_str()), ("HIT", "/products/c v1"));

    // A pattern regenerates every stored page it matches (here /products/c, the others are gone
    // from our cache until fetched again, but they were fetched above).
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": [{"path": "/products/[slug]", "type": "page"}]}),
    )
    .await
    .json();
    let mut paths: Vec<String> = answer["regenerated"]
        .as_array()
        .expect("regenerated")
        .iter()
        .map(|r| r["path"].as_str().expect("path").to_string())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/products/a", "/products/b", "/products/c"]);
    assert_eq!(get(edge.addr, "/products/c").await.text(), "/products/c v2");

    // A broken manifest is reported, and the local eviction still happens.
    std::fs::write(&manifest, "{}").expect("break manifest");
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "paths": ["/"]})).await;
    assert_eq!(answer.status, 502);
    let answer = answer.json();
    assert_eq!(answer["success"], false);
    assert!(answer["regenerate_error"]
        .as_str()
        .is_some_and(|e| e.contains("previewModeId")));
    assert_eq!(answer["evicted"], 1);
    let _ = std::fs::remove_dir_all(manifest.parent().expect("its directory"));
}

/// A Next.js app with `trailingSlash: true` serves `/products/a/` and answers `/products/a`
/// with a 308 to it, regenerating nothing, `x-prerender-revalidate` or not. The proxy keeps
/// pages under their path without the slash, so it asked there, reported success and fetched
/// Next's old render again; it now follows that redirect.
#[tokio::test]
async fn regeneration_follows_a_trailing_slash_redirect() {
    let data_version = Arc::new(AtomicUsize::new(1));
    let rendered: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let data = data_version.clone();
    let next = Origin::start(move |r| {
        if !r.path.ends_with('/') {
            return Reply::ok("")
                .status(308)
                .header("location", &format!("{}/", r.path));
        }
        let render = || format!("{} v{}", r.path, data.load(Ordering::SeqCst));
        let mut pages = rendered.lock().expect("rendered pages");
        if r.method == "HEAD"
            && r.headers
                .get("x-prerender-revalidate")
                .is_some_and(|v| v == PREVIEW_ID)
        {
            pages.insert(r.path.clone(), render());
            return Reply::ok("").header("x-nextjs-cache", "REVALIDATED");
        }
        let body = pages.entry(r.path.clone()).or_insert_with(render).clone();
        Reply::ok(body)
            .cc("s-maxage=3600, stale-while-revalidate=31532400")
            .header("x-nextjs-cache", "HIT")
    })
    .await;
    let manifest = preview_manifest("slash");
    let manifest_arg = manifest.to_string_lossy().into_owned();
    let edge = Edge::start(&next.url(), &["--next-prerender-manifest", &manifest_arg]).await;
    assert_eq!(
        get(edge.addr, "/products/a/").await.text(),
        "/products/a/ v1"
    );
    data_version.store(2, Ordering::SeqCst);
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/products/a/"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(answer["regenerated"][0]["cache"], "REVALIDATED", "{answer}");
    assert_eq!(answer["regenerated"][0]["status"], 200, "{answer}");
    let page = get(edge.addr, "/products/a/").await;
    assert_eq!(
        (page.cache(), page.text().as_str()),
        ("MISS", "/products/a/ v2")
    );
    let _ = std::fs::remove_dir_all(manifest.parent().expect("its directory"));
}

/// `revalidatePath('/', 'layout')` (everything) selects the stored static assets and optimised
/// images along with the pages. Next answers `HEAD /_next/image` with a 400 (no `url`), and the
/// regeneration asked for it, so the whole revalidation was a 502 `success: false`; the
/// assets were asked for nothing either. Only pages are regenerated (a Pages Router data URL
/// as its page).
#[tokio::test]
async fn a_layout_purge_of_everything_regenerates_pages_not_next_assets() {
    let next = Origin::start(|r| {
        let regenerate = r.headers.get("x-prerender-revalidate").is_some();
        match r.path.as_str() {
            // As `next start` answers it: the image optimiser needs `url`, `w` and `q`.
            "/_next/image" if !r.target.contains("url=") => {
                Reply::ok("\"url\" parameter is required")
                    .status(400)
                    .cc("private, no-cache, no-store, max-age=0, must-revalidate")
            }
            "/_next/image" => Reply::ok("webp").cc("public, max-age=14400, must-revalidate"),
            path if path.starts_with("/_next/static/") => {
                Reply::ok("js").cc("public, max-age=31536000, immutable")
            }
            _ if r.method == "HEAD" && regenerate => {
                Reply::ok("").header("x-nextjs-cache", "REVALIDATED")
            }
            _ => Reply::ok(format!("{} render {}", r.path, r.count))
                .cc("s-maxage=3600, stale-while-revalidate=31532400")
                .header("x-nextjs-cache", "HIT"),
        }
    })
    .await;
    let manifest = preview_manifest("assets");
    let manifest_arg = manifest.to_string_lossy().into_owned();
    let edge = Edge::start(&next.url(), &["--next-prerender-manifest", &manifest_arg]).await;
    for path in [
        "/",
        "/products/a",
        "/_next/data/build1/products/b.json",
        "/_next/static/chunks/app-4f2a.js",
        "/docs/_next/static/chunks/docs-9c1e.js",
        "/_next/image?url=%2Fpixel.png&w=64&q=75",
    ] {
        let page = get(edge.addr, path).await;
        assert_eq!((page.status, page.cache()), (200, "MISS"), "{path}");
    }

    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": [{"path": "/", "type": "layout"}]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(answer["success"], true, "{answer}");
    let mut paths: Vec<&str> = answer["regenerated"]
        .as_array()
        .expect("regenerated listed")
        .iter()
        .map(|r| r["path"].as_str().expect("path"))
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/", "/products/a", "/products/b"], "{answer}");
    let heads: Vec<String> = next
        .seen()
        .into_iter()
        .filter(|s| s.method == "HEAD")
        .map(|s| s.path)
        .collect();
    assert!(
        heads.iter().all(|path| !path.contains("/_next/")),
        "{heads:?}"
    );
    let _ = std::fs::remove_dir_all(manifest.parent().expect("its directory"));
}

#[tokio::test]
async fn a_wrong_manifest_path_is_refused_at_start() {
    let error = isr_edge::config::Config::from_args(
        [
            "isr-edge",
            "--origin",
            "http://127.0.0.1:3000",
            "--next-prerender-manifest",
            "/nonexistent/.next/prerender-manifest.json",
        ],
        None,
    )
    .expect_err("missing manifest");
    assert!(error.contains("--next-prerender-manifest"), "{error}");
    let error = isr_edge::config::Config::from_args(
        [
            "isr-edge",
            "--origin",
            "http://127.0.0.1:3000",
            "--origin-revalidate-url",
            "https://app/api/revalidate",
        ],
        None,
    )
    .expect_err("https");
    assert!(error.contains("--origin-revalidate-url"), "{error}");
    let config = isr_edge::config::Config::from_args(
        [
            "isr-edge",
            "--origin",
            "http://127.0.0.1:3000",
            "--next-preview-mode-id",
            PREVIEW_ID,
            "--origin-revalidate-secret",
            ORIGIN_SECRET,
        ],
        None,
    )
    .expect("valid");
    let printed = format!("{config:?}");
    assert!(!printed.contains(PREVIEW_ID) && !printed.contains(ORIGIN_SECRET));
}

#[tokio::test]
async fn clients_sending_x_prerender_revalidate_bypass_the_cache_and_lose_the_header() {
    let site = Origin::start(|r| Reply::ok(format!("render {}", r.count)).cc("s-maxage=600")).await;
    let edge = Edge::start(&site.url(), &[]).await;
    for header in [
        "x-prerender-revalidate",
        "x-prerender-revalidate-if-generated",
    ] {
        let response = get_with(edge.addr, "/p", &[(header, "guessed-id")]).await;
        assert_eq!(response.cache(), "BYPASS");
        assert!(
            response
                .header("cache-status")
                .contains("prerender-revalidate"),
            "{}",
            response.header("cache-status")
        );
    }
    assert!(site
        .seen()
        .iter()
        .all(|s| !s.headers.contains_key("x-prerender-revalidate")
            && !s
                .headers
                .contains_key("x-prerender-revalidate-if-generated")));
    // Nothing was stored by the bypassed requests.
    let plain = get(edge.addr, "/p").await;
    assert_eq!(plain.cache(), "MISS");
    assert_eq!(plain.text(), "render 3");
}

#[tokio::test]
async fn tag_headers_are_configurable_and_hidden_unless_exposed() {
    let site = Origin::start(|_| {
        Reply::ok("tagged")
            .cc("s-maxage=600")
            .header("x-my-tags", "alpha beta")
            .header("cache-tag", "gamma")
    })
    .await;
    let custom = Edge::start(&site.url(), &["--tag-header", "X-My-Tags"]).await;
    let first = get(custom.addr, "/t").await;
    assert_eq!(first.header("x-my-tags"), "", "tag header removed");
    assert_eq!(first.header("cache-tag"), "gamma", "no longer a tag header");
    assert_eq!(get(custom.addr, "/t").await.cache(), "HIT");
    let purge = |tag: &'static str| {
        let addr = custom.addr;
        async move {
            revalidate(addr, json!({"secret": SECRET, "tags": [tag]}))
                .await
                .json()
        }
    };
    assert_eq!(purge("gamma").await["evicted"], 0);
    assert_eq!(purge("beta").await["evicted"], 1);
    assert_eq!(get(custom.addr, "/t").await.cache(), "MISS");

    let exposed = Edge::start(&site.url(), &["--expose-tag-headers"]).await;
    let miss = get(exposed.addr, "/t").await;
    assert_eq!(miss.header("cache-tag"), "gamma");
    let hit = get(exposed.addr, "/t").await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(
        hit.header("cache-tag"),
        "gamma",
        "kept on stored copies too"
    );
    assert_eq!(
        hit.header("x-my-tags"),
        "alpha beta",
        "not a tag header by default"
    );
    let answer = send(
        exposed.addr,
        "POST",
        "/api/revalidate",
        &[("authorization", &format!("Bearer {SECRET}"))],
        json!({"tag": "gamma"}).to_string(),
    )
    .await
    .json();
    assert_eq!(answer["evicted"], 1, "exposed tags still index the page");
}
