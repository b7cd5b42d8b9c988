//! What a revalidation reaches, against a real origin through the real proxy: each target kind
//! (`path`, `paths`, `tag`, `tags`, `all`, object entries), every stored form of a page, `layout`
//! subtrees, Next.js route patterns and globs, implicit `_N_T_` tags, tags from origin headers,
//! host scoping, and the shape of the answer.

mod support;

use serde_json::{json, Value};
use support::{get, get_with, revalidate, send, Edge, Origin, Reply, SECRET};

/// An origin that renders `<path> v<n>` (n = how often it rendered that URL), cacheable for ten
/// minutes, as HTML or as an RSC payload when asked with `RSC: 1`, with `Vary: RSC`.
async fn origin() -> Origin {
    Origin::start(|r| {
        let rsc = r.headers.get("rsc").is_some_and(|v| v == "1");
        let body = format!(
            "{} {} v{}",
            r.target,
            if rsc { "rsc" } else { "html" },
            r.count
        );
        let reply = Reply::ok(body).cc("s-maxage=600").header("vary", "RSC");
        if rsc {
            reply.header("content-type", "text/x-component")
        } else {
            reply.header("content-type", "text/html")
        }
    })
    .await
}

/// GETs each path (optionally with `RSC: 1`) and asserts each is now stored (a second GET hits).
async fn warm(edge: &Edge, paths: &[&str], rsc: bool) {
    let headers: &[(&str, &str)] = if rsc { &[("rsc", "1")] } else { &[] };
    for path in paths {
        get_with(edge.addr, path, headers).await;
        let again = get_with(edge.addr, path, headers).await;
        assert_eq!(again.cache(), "HIT", "{path} should be stored");
    }
}

async fn status_of(edge: &Edge, path: &str) -> String {
    get(edge.addr, path).await.cache().to_string()
}

/// The path-and-query parts of a dry run's example keys, sorted.
fn examples(answer: &Value) -> Vec<String> {
    let mut out: Vec<String> = answer["examples"]
        .as_array()
        .expect("examples list")
        .iter()
        .map(|k| {
            let k = k.as_str().expect("key string");
            k[k.find('/').expect("key has a path")..].to_string()
        })
        .collect();
    out.sort();
    out
}

async fn dry_run(edge: &Edge, body: Value) -> Value {
    let mut body = body;
    body["secret"] = json!(SECRET);
    body["dry_run"] = json!(true);
    let answer = revalidate(edge.addr, body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

#[tokio::test]
async fn seed_shape_paths_evicts_and_answers_with_counts() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    warm(&edge, &["/", "/products", "/filter"], false).await;

    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/", "/products"]}),
    )
    .await;
    assert_eq!(answer.status, 200);
    let a = answer.json();
    assert_eq!(a["success"], true);
    assert_eq!(a["message"], "Revalidated successfully");
    assert_eq!(a["revalidated"]["paths"], json!(["/", "/products"]));
    assert!(a["revalidated"]["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(a["evicted"], 2);
    assert_eq!(a["cache_version"], 1);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let answered = a["now"].as_u64().expect("now in epoch ms");
    assert!(
        answered <= now_ms && now_ms - answered < 60_000,
        "now={answered}"
    );
    assert_eq!(
        a["targets"],
        json!([
            {"type": "path", "target": "/", "evicted": 1},
            {"type": "path", "target": "/products", "evicted": 1}
        ])
    );

    assert_eq!(status_of(&edge, "/").await, "MISS");
    assert_eq!(status_of(&edge, "/products").await, "MISS");
    assert_eq!(status_of(&edge, "/filter").await, "HIT");
    assert_eq!(
        get(edge.addr, "/products").await.text(),
        "/products html v2"
    );

    // The version counts revalidations.
    let again = revalidate(edge.addr, json!({"secret": SECRET, "paths": ["/filter"]})).await;
    assert_eq!(again.json()["cache_version"], 2);
}

#[tokio::test]
async fn every_target_kind_and_object_entries() {
    let origin = Origin::start(|r| {
        let tag = match r.path.as_str() {
            "/t1" => "one",
            "/t2" => "two",
            _ => "other",
        };
        Reply::ok(format!("{} v{}", r.target, r.count))
            .cc("s-maxage=600")
            .header("cache-tag", tag)
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let pages = ["/p1", "/p2", "/p3", "/blog", "/blog/a", "/t1", "/t2", "/x"];
    warm(&edge, &pages, false).await;

    let a = revalidate(
        edge.addr,
        json!({
            "secret": SECRET,
            "path": "/p1",
            "paths": ["/p2", {"path": "/blog", "type": "layout"}, {"path": "/p3"}],
            "tag": "one",
            "tags": ["two"],
        }),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 7, "{a}");
    let mut targets: Vec<(String, String, u64)> = a["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| {
            (
                t["type"].as_str().expect("type").to_string(),
                t["target"].as_str().expect("target").to_string(),
                t["evicted"].as_u64().expect("count"),
            )
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            ("layout".into(), "/blog".into(), 2),
            ("path".into(), "/p1".into(), 1),
            ("path".into(), "/p2".into(), 1),
            ("path".into(), "/p3".into(), 1),
            ("tag".into(), "one".into(), 1),
            ("tag".into(), "two".into(), 1),
        ]
    );
    for page in ["/p1", "/p2", "/p3", "/blog", "/blog/a", "/t1", "/t2"] {
        assert_eq!(status_of(&edge, page).await, "MISS", "{page}");
    }
    assert_eq!(status_of(&edge, "/x").await, "HIT");

    // A top-level "type" applies to plain strings.
    warm(&edge, &["/blog", "/blog/a"], false).await;
    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/blog"], "type": "layout"}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 2);

    // `all: true` empties everything, explicitly.
    warm(&edge, &pages, false).await;
    let a = revalidate(edge.addr, json!({"secret": SECRET, "all": true}))
        .await
        .json();
    assert_eq!(a["evicted"], pages.len());
    assert_eq!(
        a["targets"],
        json!([{"type": "all", "target": "*", "evicted": pages.len()}])
    );
    for page in pages {
        assert_eq!(status_of(&edge, page).await, "MISS", "{page}");
    }
}

#[tokio::test]
async fn query_string_webhooks_revalidate_and_bare_get_is_health() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("v{}", r.count))
            .cc("s-maxage=600")
            .header("cache-tag", "posts")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    warm(&edge, &["/x", "/y"], false).await;

    let health = get(edge.addr, "/api/revalidate").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(status_of(&edge, "/x").await, "HIT");

    let by_path = get(
        edge.addr,
        &format!("/api/revalidate?secret={SECRET}&path=/x"),
    )
    .await;
    assert_eq!(by_path.status, 200, "{}", by_path.text());
    assert_eq!(by_path.json()["evicted"], 1);
    assert_eq!(status_of(&edge, "/x").await, "MISS");
    assert_eq!(status_of(&edge, "/y").await, "HIT");

    let by_tag = get(
        edge.addr,
        &format!("/api/revalidate?secret={SECRET}&tag=posts"),
    )
    .await;
    assert_eq!(by_tag.json()["evicted"], 2);
    assert_eq!(status_of(&edge, "/y").await, "MISS");

    let refused = get(edge.addr, "/api/revalidate?secret=wrong&tag=posts").await;
    assert_eq!(refused.status, 401);
    // The secret is checked before the rest: a wrong one with an unknown parameter is 401.
    let refused = get(edge.addr, "/api/revalidate?secret=wrong&path=/&_=1").await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(status_of(&edge, "/y").await, "HIT");
}

#[tokio::test]
async fn a_path_purge_reaches_every_form_of_the_page() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let html_forms = ["/p", "/p?x=1", "/p?x=2", "/p/", "/_next/data/build1/p.json"];
    let rsc_forms = [
        "/p",
        "/p.rsc",
        "/p.prefetch.rsc",
        "/p.segments/x.segment.rsc",
    ];
    warm(&edge, &html_forms, false).await;
    warm(&edge, &rsc_forms, true).await;
    // HEAD is answered from (and stored as) the GET.
    let head = send(edge.addr, "HEAD", "/p?head=1", &[], "").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        send(edge.addr, "HEAD", "/p?head=1", &[], "").await.cache(),
        "HIT"
    );
    let neighbours = ["/p2", "/px", "/p/child", "/"];
    warm(&edge, &neighbours, false).await;

    let dry = dry_run(&edge, json!({"paths": ["/p"]})).await;
    assert_eq!(dry["would_evict"], 10, "{dry}");
    assert_eq!(
        examples(&dry),
        [
            "/_next/data/build1/p.json",
            "/p",
            "/p.prefetch.rsc",
            "/p.rsc",
            "/p.segments/x.segment.rsc",
            "/p/",
            "/p?head=1",
            "/p?x=1",
            "/p?x=2",
        ]
    );

    let a = revalidate(edge.addr, json!({"secret": SECRET, "paths": ["/p"]}))
        .await
        .json();
    assert_eq!(a["evicted"], 10, "{a}");
    for path in html_forms {
        assert_eq!(status_of(&edge, path).await, "MISS", "{path}");
    }
    for path in rsc_forms {
        let r = get_with(edge.addr, path, &[("rsc", "1")]).await;
        assert_eq!(r.cache(), "MISS", "{path} (RSC)");
        assert!(
            r.text().starts_with(&format!("{path} rsc v")),
            "{path}: {}",
            r.text()
        );
    }
    for path in neighbours {
        assert_eq!(status_of(&edge, path).await, "HIT", "{path} must survive");
    }
}

#[tokio::test]
async fn the_home_page_is_reached_by_its_index_forms() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    warm(
        &edge,
        &["/", "/index", "/_next/data/b/index.json", "/?q=1"],
        false,
    )
    .await;
    warm(&edge, &["/index.rsc"], true).await;
    warm(&edge, &["/about"], false).await;
    // Path normalisation is shared by the key and the purge: `//` and dot segments.
    let a = revalidate(edge.addr, json!({"secret": SECRET, "paths": ["//./"]}))
        .await
        .json();
    assert_eq!(a["evicted"], 5, "{a}");
    assert_eq!(status_of(&edge, "/index").await, "MISS");
    assert_eq!(status_of(&edge, "/about").await, "HIT");
}

#[tokio::test]
async fn layout_reaches_the_subtree_only_and_root_layout_reaches_everything() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let pages = [
        "/blog",
        "/blog/a",
        "/blog/a/b",
        "/blog.rsc",
        "/blogger",
        "/blogger/a",
        "/other",
    ];
    warm(&edge, &pages, false).await;

    let dry = dry_run(
        &edge,
        json!({"paths": [{"path": "/blog/", "type": "layout"}]}),
    )
    .await;
    assert_eq!(
        examples(&dry),
        ["/blog", "/blog.rsc", "/blog/a", "/blog/a/b"]
    );

    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "path": {"path": "/blog", "type": "layout"}}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 4, "{a}");
    for page in ["/blogger", "/blogger/a", "/other"] {
        assert_eq!(status_of(&edge, page).await, "HIT", "{page}");
    }

    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/"], "type": "layout"}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 3, "{a}");
    for page in pages {
        assert_eq!(status_of(&edge, page).await, "MISS", "{page}");
    }
}

#[tokio::test]
async fn route_patterns_and_globs_match_stored_pages() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let pages = [
        "/blog",
        "/blog/a",
        "/blog/b",
        "/blog/a/comments",
        "/blogger/a",
        "/docs",
        "/docs/x",
        "/docs/x/y",
        "/cart",
        "/shop",
        "/shop/a/b",
        "/en/about",
        "/fr/about",
        "/en/contact",
    ];
    warm(&edge, &pages, false).await;

    let cases: &[(Value, &[&str])] = &[
        (json!({"paths": ["/blog/[slug]"]}), &["/blog/a", "/blog/b"]),
        (
            json!({"paths": ["/docs/[...slug]"]}),
            &["/docs/x", "/docs/x/y"],
        ),
        (
            json!({"paths": ["/docs/[[...slug]]"]}),
            &["/docs", "/docs/x", "/docs/x/y"],
        ),
        (json!({"paths": ["/(shop)/cart"]}), &["/cart"]),
        (json!({"paths": ["/blog/*"]}), &["/blog/a", "/blog/b"]),
        (json!({"paths": ["/shop/**"]}), &["/shop", "/shop/a/b"]),
        (
            json!({"paths": ["/[lang]/about"]}),
            &["/en/about", "/fr/about"],
        ),
        (json!({"paths": ["/*/about"]}), &["/en/about", "/fr/about"]),
        (
            json!({"paths": [{"path": "/blog/[slug]", "type": "layout"}]}),
            &["/blog/a", "/blog/a/comments", "/blog/b"],
        ),
    ];
    for (body, expected) in cases {
        let dry = dry_run(&edge, body.clone()).await;
        assert_eq!(examples(&dry), *expected, "{body}");
        assert_eq!(dry["would_evict"], expected.len(), "{body}");
    }

    // A real pattern purge evicts exactly what the dry run listed.
    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/blog/[slug]"]}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 2);
    assert_eq!(status_of(&edge, "/blog/a").await, "MISS");
    assert_eq!(status_of(&edge, "/blog").await, "HIT");
    assert_eq!(status_of(&edge, "/blog/a/comments").await, "HIT");
    assert_eq!(status_of(&edge, "/blogger/a").await, "HIT");
}

#[tokio::test]
async fn implicit_next_tags_reach_their_pages() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let pages = ["/", "/blog", "/blog/a", "/blog/a/b", "/blogger", "/shop/x"];
    warm(&edge, &pages, false).await;

    let cases: &[(&str, &[&str])] = &[
        ("_N_T_/blog/layout", &["/blog", "/blog/a", "/blog/a/b"]),
        ("_N_T_/blog/a", &["/blog/a"]),
        ("_N_T_/blog/page", &["/blog"]),
        ("_N_T_/blog/[slug]/page", &["/blog/a"]),
        ("_N_T_/", &["/"]),
        ("_N_T_/index", &["/"]),
    ];
    for (tag, expected) in cases {
        let dry = dry_run(&edge, json!({"tags": [tag]})).await;
        assert_eq!(examples(&dry), *expected, "{tag}");
    }
    let everything = dry_run(&edge, json!({"tag": "_N_T_/layout"})).await;
    assert_eq!(everything["would_evict"], pages.len());

    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "tags": ["_N_T_/blog/layout"]}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 3);
    assert_eq!(status_of(&edge, "/blog/a/b").await, "MISS");
    assert_eq!(status_of(&edge, "/blogger").await, "HIT");
}

#[tokio::test]
async fn tags_come_from_origin_headers_which_clients_never_see() {
    let origin = Origin::start(|r| {
        let reply = Reply::ok(format!("{} v{}", r.path, r.count)).cc("s-maxage=600");
        match r.path.as_str() {
            "/t1" => reply.header("cache-tag", "products, featured"),
            "/t2" => reply.header("surrogate-key", "posts post-7"),
            "/t3" => reply.header("x-next-cache-tags", "_N_T_/layout,_N_T_/t3,custom"),
            _ => reply,
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for path in ["/t1", "/t2", "/t3"] {
        for _ in 0..2 {
            let r = get(edge.addr, path).await;
            for name in ["cache-tag", "surrogate-key", "x-next-cache-tags"] {
                assert!(
                    !r.headers.contains_key(name),
                    "{path} leaked {name} ({})",
                    r.cache()
                );
            }
        }
    }
    warm(&edge, &["/plain"], false).await;

    let cases: &[(Value, &[&str])] = &[
        (json!({"tag": "featured"}), &["/t1"]),
        (json!({"tag": "products"}), &["/t1"]),
        (json!({"tag": "post-7"}), &["/t2"]),
        (json!({"tags": ["posts", "custom"]}), &["/t2", "/t3"]),
        (json!({"tag": "nothing"}), &[]),
    ];
    for (body, expected) in cases {
        let dry = dry_run(&edge, body.clone()).await;
        assert_eq!(examples(&dry), *expected, "{body}");
    }
    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "tags": ["products", "posts"]}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 2);
    assert_eq!(status_of(&edge, "/t1").await, "MISS");
    assert_eq!(status_of(&edge, "/t2").await, "MISS");
    assert_eq!(status_of(&edge, "/t3").await, "HIT");
    assert_eq!(status_of(&edge, "/plain").await, "HIT");
}

#[tokio::test]
async fn a_host_field_scopes_the_purge_to_one_site() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for host in ["shop.example", "blog.example"] {
        for _ in 0..2 {
            get_with(edge.addr, "/p", &[("host", host)]).await;
        }
        assert_eq!(
            get_with(edge.addr, "/p", &[("host", host)]).await.cache(),
            "HIT"
        );
    }
    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/p"], "host": "Shop.Example"}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 1, "{a}");
    assert_eq!(
        get_with(edge.addr, "/p", &[("host", "shop.example")])
            .await
            .cache(),
        "MISS"
    );
    assert_eq!(
        get_with(edge.addr, "/p", &[("host", "blog.example")])
            .await
            .cache(),
        "HIT"
    );

    // Without a host, every site's copy goes.
    let a = revalidate(edge.addr, json!({"secret": SECRET, "paths": ["/p"]}))
        .await
        .json();
    assert_eq!(a["evicted"], 2);
}

/// A `host` that no request could have sent as its `Host` (a site URL, a path, a space) is a
/// 400 that evicts nothing, in the body and in the query alike: with a default origin serving
/// every host, it was a 200 that purged nothing.
#[tokio::test]
async fn a_host_field_that_is_no_host_is_refused() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for _ in 0..2 {
        get_with(edge.addr, "/p", &[("host", "shop.example")]).await;
    }
    for host in [
        "https://shop.example",
        "shop.example/",
        "shop.example/p",
        "shop.example ",
        "shop.example:99999",
    ] {
        let answer = revalidate(
            edge.addr,
            json!({"secret": SECRET, "paths": ["/p"], "host": host}),
        )
        .await;
        assert_eq!(answer.status, 400, "{host}: {}", answer.text());
        assert_eq!(answer.header("content-type"), "application/json");
        let message = answer.json()["message"].as_str().unwrap_or("").to_string();
        assert!(message.contains("shop.example:8080"), "{host}: {message}");
    }
    let query = format!("/api/revalidate?secret={SECRET}&path=/p&host=https%3A%2F%2Fshop.example");
    assert_eq!(get(edge.addr, &query).await.status, 400);
    assert_eq!(
        get_with(edge.addr, "/p", &[("host", "shop.example")])
            .await
            .cache(),
        "HIT"
    );
}

#[tokio::test]
async fn a_dry_run_counts_and_lists_but_evicts_nothing() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let pages: Vec<String> = (0..120).map(|i| format!("/d/{i}")).collect();
    for page in &pages {
        get(edge.addr, page).await;
    }
    let dry = dry_run(&edge, json!({"paths": [{"path": "/d", "type": "layout"}]})).await;
    assert_eq!(dry["success"], true);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["would_evict"], 120);
    assert_eq!(dry["evicted"], 0);
    // Each target says the same (its `evicted` was the would-evict count).
    assert_eq!(
        dry["targets"],
        json!([{"type": "layout", "target": "/d", "evicted": 0, "would_evict": 120}]),
        "{dry}"
    );
    assert_eq!(dry["cache_version"], 0, "a dry run is not a revalidation");
    assert_eq!(dry["examples"].as_array().expect("examples").len(), 100);
    for page in &pages {
        assert_eq!(status_of(&edge, page).await, "HIT", "{page}");
    }
    assert_eq!(origin.total(), 120);
}

/// A query webhook's switches as scripts write them: Python's `urlencode({"dry_run": True})`
/// sends `dry_run=True`, which was read as false, so the "dry run" evicted the pages. A true
/// value in any case is true, and a value that is neither true nor false is refused (400)
/// rather than guessed at: a dry run must never purge.
#[tokio::test]
async fn a_query_dry_run_written_true_or_unknown_never_purges() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/q").await;
    for flag in ["True", "TRUE", "on", "Yes"] {
        let answer = get(
            edge.addr,
            &format!("/api/revalidate?secret={SECRET}&path=/q&dry_run={flag}"),
        )
        .await;
        assert_eq!(answer.status, 200, "{flag}: {}", answer.text());
        let body = answer.json();
        assert_eq!(body["dry_run"], true, "{flag}: {body}");
        assert_eq!(body["would_evict"], 1, "{flag}: {body}");
        assert_eq!(status_of(&edge, "/q").await, "HIT", "{flag}");
    }
    for flag in ["maybe", "2"] {
        let answer = get(
            edge.addr,
            &format!("/api/revalidate?secret={SECRET}&path=/q&dry_run={flag}"),
        )
        .await;
        assert_eq!(answer.status, 400, "{flag}: {}", answer.text());
        assert!(answer.text().contains("dry_run"), "{}", answer.text());
        assert_eq!(status_of(&edge, "/q").await, "HIT", "{flag}");
    }
    // False still means false.
    let answer = get(
        edge.addr,
        &format!("/api/revalidate?secret={SECRET}&path=/q&dry_run=False"),
    )
    .await;
    assert_eq!(answer.json()["evicted"], 1, "{}", answer.text());
    assert_eq!(status_of(&edge, "/q").await, "MISS");
}

#[tokio::test]
async fn tag_header_names_are_configurable_and_can_be_kept() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("v{}", r.count))
            .cc("s-maxage=600")
            .header("x-tags", "alpha beta")
            .header("cache-tag", "gamma")
    })
    .await;
    let edge = Edge::start(
        &origin.url(),
        &["--tag-headers", "X-Tags", "--keep-tag-headers"],
    )
    .await;
    get(edge.addr, "/k").await;
    let hit = get(edge.addr, "/k").await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.header("x-tags"), "alpha beta", "kept for clients");
    assert_eq!(
        dry_run(&edge, json!({"tag": "beta"})).await["would_evict"],
        1
    );
    assert_eq!(
        dry_run(&edge, json!({"tag": "gamma"})).await["would_evict"],
        0,
        "cache-tag is not listed"
    );
}

#[tokio::test]
async fn purges_are_written_as_people_write_paths_and_hosts() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    warm(&edge, &["/caf%C3%A9", "/caf%c3%a9/menu", "/a%20b"], false).await;
    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/café", "/a b"]}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 2, "{a}");
    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/café/[item]"]}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 1, "{a}");

    // A host field without the port reaches pages requested with one.
    for _ in 0..2 {
        get_with(edge.addr, "/p", &[("host", "shop.example:8080")]).await;
    }
    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/p"], "host": "shop.example"}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 1, "{a}");
}

/// Paths are URL paths unless they have route syntax: `/@alice` is a profile URL, not a slot
/// (which made it purge `/`, and as a layout, everything); a query names one URL of a page and
/// purges the page; a bracket that forms no dynamic segment is refused, not read as "all".
#[tokio::test]
async fn paths_people_write_reach_what_they_name_and_no_more() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    warm(
        &edge,
        &[
            "/",
            "/@alice",
            "/@alice/posts",
            "/products",
            "/products?page=2",
        ],
        false,
    )
    .await;
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({"paths": ["/@alice"]}), &["/@alice"]),
        (
            json!({"paths": [{"path": "/@alice", "type": "layout"}]}),
            &["/@alice", "/@alice/posts"],
        ),
        (
            json!({"paths": ["/products?page=2"]}),
            &["/products", "/products?page=2"],
        ),
        (
            json!({"paths": ["/products?ids[]=1"]}),
            &["/products", "/products?page=2"],
        ),
    ];
    for (body, expected) in cases {
        let dry = dry_run(&edge, body.clone()).await;
        assert_eq!(examples(&dry), *expected, "{body}");
    }
    for path in ["/[...]", "/[[...]]", "/[]", "/a/[...rest]/b"] {
        let answer = revalidate(edge.addr, json!({"secret": SECRET, "paths": [path]})).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text());
        assert!(answer.text().contains("dynamic segment") || answer.text().contains("catch-all"));
    }
    // The same paths as Next.js implicit tags (found by review: these purged every page).
    for tag in [
        "_N_T_/[...]/page",
        "_N_T_/[...]/layout",
        "_N_T_/[]",
        "_N_T_/a/[...rest]/b/page",
    ] {
        let answer = revalidate(edge.addr, json!({"secret": SECRET, "tags": [tag]})).await;
        assert_eq!(answer.status, 400, "{tag}: {}", answer.text());
        assert!(
            answer.text().contains(tag),
            "names the tag: {}",
            answer.text()
        );
    }
    // Next.js route syntax around dynamic segments is no typo: intercepting routes, and
    // groups or slots after a catch-all (found by review: these were refused too).
    for tag in [
        "_N_T_/photos/@modal/(.)[id]/page",
        "_N_T_/photos/@modal/(..)[id]/layout",
        "_N_T_/[...slug]/(group)/page",
        "_N_T_/[[...slug]]/@modal/page",
    ] {
        let answer = revalidate(
            edge.addr,
            json!({"secret": SECRET, "tags": [tag], "dry_run": true}),
        )
        .await;
        assert_eq!(answer.status, 200, "{tag}: {}", answer.text());
    }
    assert_eq!(status_of(&edge, "/").await, "HIT", "nothing purged");
}

/// An intercepting route's implicit tag (`_N_T_/photos/@modal/(.)[id]/page`, which Next.js
/// sends for a photo opened as a modal) reaches the URLs it intercepts, as the route path does.
#[tokio::test]
async fn intercepting_route_tags_reach_the_urls_they_intercept() {
    let origin = origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    warm(
        &edge,
        &["/photos/1", "/photos/2", "/photo/1", "/photos"],
        false,
    )
    .await;
    let cases: &[(Value, &[&str])] = &[
        (
            json!({"tags": ["_N_T_/photos/@modal/(.)[id]/page"]}),
            &["/photos/1", "/photos/2"],
        ),
        (
            json!({"tags": ["_N_T_/feed/@modal/(..)photo/[id]/page"]}),
            &["/photo/1"],
        ),
        (
            json!({"paths": ["/photos/@modal/(.)[id]"], "type": "page"}),
            &["/photos/1", "/photos/2"],
        ),
    ];
    for (body, expected) in cases {
        let dry = dry_run(&edge, body.clone()).await;
        assert_eq!(examples(&dry), *expected, "{body}");
    }
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "tags": ["_N_T_/photos/@modal/(.)[id]/page"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(status_of(&edge, "/photos/1").await, "MISS");
    assert_eq!(status_of(&edge, "/photos").await, "HIT");
    assert_eq!(status_of(&edge, "/photo/1").await, "HIT");
}

/// Next.js tags may contain spaces: a comma-separated tag header keeps them whole, so
/// `"summer sale"` is purged by its name and `"summer"` purges nothing.
#[tokio::test]
async fn tags_with_spaces_stay_whole() {
    let origin = Origin::start(|_| {
        Reply::ok("sale")
            .cc("s-maxage=600")
            .header("x-next-cache-tags", "summer sale,other")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    warm(&edge, &["/sale"], false).await;
    assert_eq!(
        dry_run(&edge, json!({"tag": "summer sale"})).await["would_evict"],
        1
    );
    assert_eq!(
        dry_run(&edge, json!({"tag": "summer"})).await["would_evict"],
        0
    );
}

/// A tag header that also names a tag with bytes outside ASCII (`revalidateTag("café")`) keeps
/// all its tags: the field was dropped whole, so purging `products` left this page stored.
#[tokio::test]
async fn a_non_ascii_tag_does_not_hide_the_others_of_its_header() {
    let origin = Origin::start(|_| {
        Reply::ok("menu")
            .cc("s-maxage=600")
            .header("x-next-cache-tags", "products,café")
            .header("surrogate-key", "menu crème")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    warm(&edge, &["/menu"], false).await;
    for tag in ["products", "café", "menu", "crème"] {
        assert_eq!(
            dry_run(&edge, json!({ "tag": tag })).await["would_evict"],
            1,
            "{tag}"
        );
    }
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "tag": "products"})).await;
    assert_eq!(answer.json()["evicted"], 1);
    assert_eq!(status_of(&edge, "/menu").await, "MISS");
}

/// Next.js percent-encodes what is not printable ASCII in `x-next-cache-tags` (a header carries
/// nothing else): `revalidateTag("café")`'s tag arrives as `caf%C3%A9`. A purge naming the tag
/// as the app does reaches it, as does one naming it as the header did; another tag does not.
#[tokio::test]
async fn a_non_ascii_tag_reaches_pages_whose_header_percent_encoded_it() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("{} v{}", r.path, r.count))
            .cc("s-maxage=600")
            .header(
                "x-next-cache-tags",
                "caf%C3%A9,th%E1%BB%9Di-trang,_N_T_/caf%C3%A9",
            )
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    warm(&edge, &["/menu", "/docs/caf%C3%A9"], false).await;
    for (tag, selected) in [
        ("café", 2),
        ("caf%C3%A9", 2),
        ("thời-trang", 2),
        // Stored under another URL (a basePath): reached through the tag it carries.
        ("_N_T_/café", 2),
        ("cafe", 0),
        ("thời", 0),
    ] {
        assert_eq!(
            dry_run(&edge, json!({ "tag": tag })).await["would_evict"],
            selected,
            "{tag}"
        );
    }
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "tag": "café"})).await;
    assert_eq!(answer.json()["evicted"], 2, "{}", answer.text());
    assert_eq!(status_of(&edge, "/menu").await, "MISS");
    assert_eq!(get(edge.addr, "/menu").await.text(), "/menu v2");
}

/// An implicit tag also reaches the pages whose origin listed it but which are stored under
/// another URL (basePath, i18n prefixes, rewrites), each URL counted once.
#[tokio::test]
async fn implicit_tags_reach_pages_stored_under_other_urls() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("{} v{}", r.path, r.count))
            .cc("s-maxage=600")
            .header(
                "x-next-cache-tags",
                "_N_T_/post/1,_N_T_/post/[id]/page,_N_T_/post/layout",
            )
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    warm(&edge, &["/docs/post/1", "/post/1"], false).await;
    for tag in ["_N_T_/post/1", "_N_T_/post/[id]/page", "_N_T_/post/layout"] {
        let dry = dry_run(&edge, json!({"tag": tag})).await;
        assert_eq!(examples(&dry), ["/docs/post/1", "/post/1"], "{tag}");
        assert_eq!(dry["would_evict"], 2, "{tag}: each URL once");
    }
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "tag": "_N_T_/post/1"})).await;
    assert_eq!(answer.json()["evicted"], 2, "{}", answer.text());
    assert_eq!(status_of(&edge, "/docs/post/1").await, "MISS");
}

/// A Next.js middleware rewrite serves `/products/a` under another URL (`/deals/today`): Next
/// says so with `x-middleware-rewrite` (a full URL with its own address) on every answer and
/// `x-nextjs-rewritten-path` on RSC ones. A backend revalidates the real path, as the Next.js
/// docs say; the copies stored under the visitor's URL stayed stale until they expired (found
/// with the real app). They are now reached by the target's path, layouts above it and its
/// implicit tag, HTML and RSC alike, and by nothing else.
#[tokio::test]
async fn a_rewritten_url_is_purged_with_the_page_it_was_rewritten_to() {
    let origin = Origin::start(|r| {
        let rsc = r.headers.get("rsc").is_some_and(|v| v == "1");
        let target = match r.path.as_str() {
            "/deals/today" => "/products/a",
            "/de/offers" => "/shop/de/offers",
            other => other,
        };
        let reply = Reply::ok(format!("{target} for {} v{}", r.target, r.count))
            .cc("s-maxage=600")
            .header("vary", "RSC")
            .header(
                "content-type",
                if rsc { "text/x-component" } else { "text/html" },
            );
        if target == r.path {
            return reply;
        }
        let reply = reply.header(
            "x-middleware-rewrite",
            &format!("http://localhost:3000{target}"),
        );
        if rsc {
            reply.header("x-nextjs-rewritten-path", target)
        } else {
            reply
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let urls = ["/deals/today", "/products/a", "/products/b", "/de/offers"];
    warm(&edge, &urls, false).await;
    warm(&edge, &urls, true).await;

    for (body, expected) in [
        (
            json!({"paths": ["/products/a"]}),
            vec!["/deals/today", "/products/a"],
        ),
        (
            json!({"tag": "_N_T_/products/a"}),
            vec!["/deals/today", "/products/a"],
        ),
        (
            json!({"paths": [{"path": "/products", "type": "layout"}]}),
            vec!["/deals/today", "/products/a", "/products/b"],
        ),
        (
            json!({"tag": "_N_T_/products/layout"}),
            vec!["/deals/today", "/products/a", "/products/b"],
        ),
        (json!({"paths": ["/shop/de/offers"]}), vec!["/de/offers"]),
        (
            json!({"paths": [{"path": "/shop", "type": "layout"}]}),
            vec!["/de/offers"],
        ),
        // Not what it was rewritten from, nor a page beside its target.
        (json!({"paths": ["/products/b"]}), vec!["/products/b"]),
        (json!({"paths": ["/shop/de"]}), vec![]),
    ] {
        let dry = dry_run(&edge, body.clone()).await;
        let mut pages = examples(&dry)
            .into_iter()
            .map(|key| key.split('?').next().unwrap_or_default().to_string())
            .collect::<Vec<_>>();
        pages.dedup();
        assert_eq!(pages, expected, "{body}");
        assert_eq!(
            dry["would_evict"],
            2 * expected.len(),
            "{body}: HTML and RSC"
        );
    }

    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/products/a"]}),
    )
    .await;
    assert_eq!(answer.json()["evicted"], 4, "{}", answer.text());
    for rsc in [false, true] {
        let headers: &[(&str, &str)] = if rsc { &[("rsc", "1")] } else { &[] };
        let page = get_with(edge.addr, "/deals/today", headers).await;
        assert_eq!(page.cache(), "MISS", "rsc: {rsc}");
    }
    assert_eq!(status_of(&edge, "/products/b").await, "HIT");
}
