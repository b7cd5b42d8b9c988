//! Cache poisoning: an attacker's request headers that change what the origin renders but are
//! not part of the key never reach the origin, so the page stored for everyone is clean.
//! Responses with `Set-Cookie` are never stored; `--bypass-cookie` requests skip the cache.
//! An origin inventing header names and values cannot make pages lose or swap headers.

mod support;

use support::{get, get_with, raw, send_h2, Edge, Origin, Reply};

/// An origin that, like many frameworks, trusts forwarding headers when it renders links.
async fn gullible_origin() -> Origin {
    Origin::start(|r| {
        let h = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        let body = format!(
            "host={} original-url={} rewrite-url={} override={} subrequest={} route-matches={}",
            h("x-forwarded-host"),
            h("x-original-url"),
            h("x-rewrite-url"),
            h("x-http-method-override"),
            h("x-middleware-subrequest"),
            h("x-now-route-matches"),
        );
        Reply::ok(body).cc("s-maxage=600")
    })
    .await
}

#[tokio::test]
async fn attacker_headers_cannot_poison_the_stored_page() {
    let origin = gullible_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let attack = [
        ("host", "site.example"),
        ("x-forwarded-host", "evil.example"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-http-method-override", "DELETE"),
        (
            "x-middleware-subrequest",
            "middleware:middleware:middleware",
        ),
        ("x-now-route-matches", "1=evil"),
    ];
    let attacker = get_with(edge.addr, "/home", &attack).await;
    assert_eq!(attacker.cache(), "MISS");
    let victim = get_with(edge.addr, "/home", &[("host", "site.example")]).await;
    assert_eq!(victim.cache(), "HIT");
    for poison in ["evil", "/admin", "DELETE", "middleware:", "1=evil"] {
        assert!(
            !attacker.text().contains(poison),
            "origin saw {poison}: {}",
            attacker.text()
        );
        assert!(
            !victim.text().contains(poison),
            "stored page poisoned with {poison}: {}",
            victim.text()
        );
    }
    // The origin is told the real host instead.
    assert!(
        victim.text().starts_with("host=site.example "),
        "{}",
        victim.text()
    );
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].headers.get("x-original-url").is_none());
}

#[tokio::test]
async fn set_cookie_responses_are_never_stored() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("personal {}", r.count))
            .cc("s-maxage=600")
            .header("set-cookie", "session=abc")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let first = get(edge.addr, "/me").await;
    assert_eq!(first.header("set-cookie"), "session=abc");
    let second = get(edge.addr, "/me").await;
    assert_ne!(second.cache(), "HIT");
    assert_eq!(second.text(), "personal 2");
    assert_eq!(origin.count("/me"), 2);
}

/// A malformed value in `Cache-Control` (a stray quote) must not hide the `private` after it:
/// the page of one user would be stored and served to the next.
#[tokio::test]
async fn a_stray_quote_cannot_hide_private() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("account of user {}", r.count)).cc(r#"s-maxage=600, ext=a"b, private"#)
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let first = get(edge.addr, "/account").await;
    assert!(
        first.header("cache-status").contains("detail=private"),
        "{}",
        first.header("cache-status")
    );
    assert_eq!(get(edge.addr, "/account").await.text(), "account of user 2");
}

#[tokio::test]
async fn bypass_cookies_skip_the_cache() {
    let origin = Origin::start(|r| {
        let cookie = r
            .headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Reply::ok(format!("#{} {cookie}", r.count)).cc("s-maxage=600")
    })
    .await;
    let edge = Edge::start(&origin.url(), &["--bypass-cookie", "session,cart"]).await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    assert_eq!(get(edge.addr, "/p").await.cache(), "HIT");
    let logged_in = get_with(edge.addr, "/p", &[("cookie", "theme=dark; session=s3cret")]).await;
    assert_eq!(logged_in.cache(), "BYPASS");
    assert_eq!(logged_in.text(), "#2 theme=dark; session=s3cret");
    let cart = get_with(edge.addr, "/p", &[("cookie", "cart=1")]).await;
    assert_eq!(cart.cache(), "BYPASS");
    // The logged-in page was not stored for anonymous visitors, and other cookies still hit.
    let anonymous = get_with(edge.addr, "/p", &[("cookie", "theme=dark; sessionx=1")]).await;
    assert_eq!(anonymous.cache(), "HIT");
    assert_eq!(anonymous.text(), "#1 ");
}

/// Browsers send cookie values with bytes that are not ASCII (`document.cookie = "city=Zürich"`
/// sends UTF-8): a bypass cookie next to one is still a bypass cookie, or the logged-in page
/// would be stored and served to everyone.
#[tokio::test]
async fn a_bypass_cookie_next_to_a_non_ascii_cookie_still_skips_the_cache() {
    let origin =
        Origin::start(|r| Reply::ok(format!("render {}", r.count)).cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &["--bypass-cookie", "session"]).await;
    for cookie in ["city=Zürich; session=alice", "session=alice; city=Zürich"] {
        let logged_in = get_with(edge.addr, "/account", &[("cookie", cookie)]).await;
        assert_eq!(logged_in.cache(), "BYPASS", "{cookie}");
    }
    let anonymous = get(edge.addr, "/account").await;
    assert_eq!(anonymous.cache(), "MISS", "no logged-in page was stored");
    assert_eq!(anonymous.text(), "render 3");
    let draft = get_with(
        edge.addr,
        "/account",
        &[("cookie", "city=Zürich; __prerender_bypass=1")],
    )
    .await;
    assert_eq!(draft.cache(), "BYPASS");
}

/// The proxy keeps header names and repeated values once per process, in bounded tables
/// (1,024 names, 4,096 values), from the second time it sees one. Here every two pages share
/// invented names and values: the first of each pair keeps its own copies, the second shares
/// them, until the tables are full and every later page keeps its own again. Every page must
/// come back from the cache with exactly the fields its origin sent, in order.
#[tokio::test]
async fn an_origin_inventing_header_names_and_values_gets_exactly_its_own_back() {
    // 80 pairs: 2,400 invented names and 4,400 invented values, past both bounds.
    const PAGES: usize = 160;
    const NAMES_PER_PAGE: usize = 30;
    const VALUES_PER_PAGE: usize = 55;
    let invented = |page: usize| -> Vec<(String, String)> {
        let pair = page / 2;
        let names =
            (0..NAMES_PER_PAGE).map(move |j| (format!("x-invented-{pair}-{j}"), format!("n{j}")));
        // `X-Powered-By` is one of the names whose values are shared between pages.
        let values =
            (0..VALUES_PER_PAGE).map(move |j| ("x-powered-by".to_string(), format!("{pair}/{j}")));
        names.chain(values).collect()
    };
    let origin = Origin::start(move |r| {
        let page = r.path.trim_start_matches("/p/").parse().unwrap_or(0);
        invented(page).into_iter().fold(
            Reply::ok(format!("page {page}")).cc("s-maxage=600"),
            |reply, (name, value)| reply.header(&name, &value),
        )
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for page in 0..PAGES {
        assert_eq!(get(edge.addr, &format!("/p/{page}")).await.cache(), "MISS");
    }
    for page in 0..PAGES {
        let hit = get(edge.addr, &format!("/p/{page}")).await;
        assert_eq!(hit.cache(), "HIT");
        assert_eq!(hit.text(), format!("page {page}"));
        let sent: Vec<(String, String)> = hit
            .headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-invented-") || *name == "x-powered-by")
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("?").to_string()))
            .collect();
        assert_eq!(sent, invented(page), "page {page}");
    }
    assert_eq!(origin.total(), PAGES, "every second request was a hit");
}

/// The key is the host followed by the path: a `Host` with a path in it must not spell the key
/// of another URL (`Host: a.example/x` with `/y` would be `a.example` with `/x/y`).
#[tokio::test]
async fn a_host_with_a_path_in_it_cannot_spell_another_urls_key() {
    let origin = Origin::start(|r| Reply::ok(format!("path={}", r.path)).cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for host in ["victim.example/foo", "victim.example?x", "u@victim.example"] {
        let attack = get_with(edge.addr, "/x", &[("host", host)]).await;
        assert_eq!(attack.status, 400, "{host}: {}", attack.text());
        assert!(
            attack.text().contains("not one host name"),
            "{}",
            attack.text()
        );
    }
    assert_eq!(origin.total(), 0, "refused before the origin");
    let victim = get_with(edge.addr, "/foo/x", &[("host", "victim.example")]).await;
    assert_eq!(
        (victim.cache(), victim.text().as_str()),
        ("MISS", "path=/foo/x")
    );
    let bracketed = get_with(edge.addr, "/foo/x", &[("host", "[::1]:8080")]).await;
    assert_eq!(bracketed.status, 200, "an IPv6 literal is a host");
}

/// A header the client names in `Connection` is not forwarded (hop-by-hop), so the origin
/// renders the page without it: that page must not be stored as the variant for the value the
/// client sent.
#[tokio::test]
async fn a_header_named_in_connection_cannot_poison_a_vary_variant() {
    let origin = Origin::start(|r| {
        let language = r
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("default")
            .to_string();
        Reply::ok(format!("lang={language}"))
            .cc("s-maxage=600")
            .header("vary", "Accept-Language")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let attack = get_with(
        edge.addr,
        "/v",
        &[
            ("accept-language", "fr"),
            ("connection", "keep-alive, Accept-Language"),
        ],
    )
    .await;
    assert_eq!(
        attack.text(),
        "lang=default",
        "the origin never saw the header"
    );
    // The same request again gets that variant from the cache: the header would not reach the
    // origin this time either.
    let repeated = get_with(
        edge.addr,
        "/v",
        &[("accept-language", "de"), ("connection", "Accept-Language")],
    )
    .await;
    assert_eq!(
        (repeated.cache(), repeated.text().as_str()),
        ("HIT", "lang=default")
    );
    // Nor does it get the variant made for the value it names: `/w` has only the `fr` one.
    assert_eq!(
        get_with(edge.addr, "/w", &[("accept-language", "fr")])
            .await
            .text(),
        "lang=fr"
    );
    let same_value = get_with(
        edge.addr,
        "/w",
        &[("accept-language", "fr"), ("connection", "Accept-Language")],
    )
    .await;
    assert_eq!(same_value.text(), "lang=default");
    let victim = get_with(edge.addr, "/v", &[("accept-language", "fr")]).await;
    assert_eq!(victim.text(), "lang=fr", "cache: {}", victim.cache());
    let again = get_with(edge.addr, "/v", &[("accept-language", "fr")]).await;
    assert_eq!((again.cache(), again.text().as_str()), ("HIT", "lang=fr"));
    let plain = get(edge.addr, "/v").await;
    assert_eq!(
        (plain.cache(), plain.text().as_str()),
        ("HIT", "lang=default")
    );
}

/// Two Host fields are refused (an origin reading the other would render another site under
/// this one's key), and forwarding headers a client made up never reach the origin.
#[tokio::test]
async fn a_second_host_and_made_up_forwarding_headers_never_reach_the_origin() {
    let origin = Origin::start(|_| Reply::ok("page").cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let twice = get_with(
        edge.addr,
        "/h",
        &[("host", "a.example"), ("host", "b.example")],
    )
    .await;
    assert_eq!(twice.status, 400, "{}", twice.text());
    assert_eq!(origin.total(), 0);
    let made_up = [
        "forwarded",
        "x-forwarded-scheme",
        "x-forwarded-server",
        "x-host",
        "x-original-host",
        "x-middleware-prefetch",
        "x-invoke-path",
        "x-matched-path",
        "x-nextjs-data",
    ];
    let headers: Vec<(&str, &str)> = made_up.iter().map(|name| (*name, "evil")).collect();
    assert_eq!(get_with(edge.addr, "/h", &headers).await.status, 200);
    let seen = &origin.seen()[0];
    for name in made_up {
        assert!(!seen.headers.contains_key(name), "origin got {name}");
    }
}

/// Laravel's `TrustProxies` (with `trustProxies(at: '*')`, as apps behind a proxy set it)
/// trusts `X-Forwarded-Prefix` by default and puts it in front of every URL it generates: one
/// request carrying it stored a page whose stylesheet and links pointed where the attacker
/// said, for everyone. The other headers here are read the same way by some origin (Rack's
/// and IIS's scheme overrides, method overrides) or are Next.js's own (`x-middleware-*`,
/// `x-invoke-*`); none may reach it from a client.
#[tokio::test]
async fn a_forwarded_prefix_and_other_overrides_never_reach_the_origin() {
    let origin = Origin::start(|r| {
        let prefix = r
            .headers
            .get("x-forwarded-prefix")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Reply::ok(format!("<link href=\"{prefix}/css/app.css\">")).cc("s-maxage=600")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let overrides = [
        "x-forwarded-prefix",
        "x-forwarded-ssl",
        "front-end-https",
        "x-url-scheme",
        "x-http-method",
        "x-method-override",
        "x-middleware-rewrite",
        "x-middleware-override-headers",
        "x-middleware-request-host",
        "x-invoke-status",
        "x-invoke-error",
    ];
    let mut attack: Vec<(&str, &str)> = overrides.iter().map(|name| (*name, "on")).collect();
    attack[0].1 = "//evil.example";
    let attacker = get_with(edge.addr, "/home", &attack).await;
    assert_eq!(attacker.cache(), "MISS");
    let victim = get(edge.addr, "/home").await;
    assert_eq!(
        (victim.cache(), victim.text().as_str()),
        ("HIT", "<link href=\"/css/app.css\">")
    );
    let seen = &origin.seen()[0];
    for name in overrides {
        assert!(!seen.headers.contains_key(name), "origin got {name}");
    }
}

/// Method overrides are dropped from GET and HEAD only, whose answers are stored: an API
/// client's `POST` saying `X-HTTP-Method-Override: DELETE` (Laravel, Symfony, Rails honour it)
/// is never stored and reaches the origin as sent.
#[tokio::test]
async fn a_post_keeps_its_method_override() {
    let origin = Origin::start(|r| {
        let method = r
            .headers
            .get("x-http-method-override")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(r.method.as_str())
            .to_string();
        Reply::ok(method).cc("s-maxage=600")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let spoofed = [("x-http-method-override", "DELETE")];
    let post = support::send(edge.addr, "POST", "/api/items/1", &spoofed, "").await;
    assert_eq!(post.text(), "DELETE");
    let get = get_with(edge.addr, "/api/items/1", &spoofed).await;
    assert_eq!(get.text(), "GET", "a GET's override reached the origin");
}

/// RFC 9112 section 3.2: an HTTP/1.1 request without `Host` is a 400, not a page stored under
/// no host, and so is one with an empty `Host` (an http URI's host is never empty, RFC 9110
/// section 4.2.1); HTTP/1.0 has no such rule.
#[tokio::test]
async fn an_http11_request_without_host_is_refused() {
    let origin = Origin::start(|_| Reply::ok("page").cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let answer = raw(
        edge.addr,
        "GET /no-host HTTP/1.1\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("must carry a Host header"), "{answer}");
    let empty = raw(
        edge.addr,
        "GET /no-host HTTP/1.1\r\nhost: \r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(empty.starts_with("HTTP/1.1 400"), "{empty}");
    assert!(empty.contains("Host \"\" is not one host name"), "{empty}");
    // A port alone names no host either: it was stored under `:8080` and sent on as `Host`.
    let port_only = raw(
        edge.addr,
        "GET /no-host HTTP/1.1\r\nhost: :8080\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(port_only.starts_with("HTTP/1.1 400"), "{port_only}");
    assert_eq!(origin.total(), 0);
    let old = raw(edge.addr, "GET /no-host HTTP/1.0\r\n\r\n").await;
    assert!(old.starts_with("HTTP/1.0 200"), "{old}");
    assert_eq!(origin.total(), 1);
}

/// RFC 9112 section 3.2.2: with an absolute-form target, its authority names the host, not
/// `Host`; the origin is asked for that host and the page is stored under it.
#[tokio::test]
async fn an_absolute_form_target_names_the_host() {
    let origin = Origin::start(|r| {
        let host = r
            .headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Reply::ok(format!("page for {host}")).cc("s-maxage=600")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let answer = raw(
        edge.addr,
        "GET http://victim.example/abs HTTP/1.1\r\nhost: attacker.example\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("page for victim.example"), "{answer}");
    let attacker = get_with(edge.addr, "/abs", &[("host", "attacker.example")]).await;
    assert_eq!(
        (attacker.cache(), attacker.text().as_str()),
        ("MISS", "page for attacker.example")
    );
    let victim = get_with(edge.addr, "/abs", &[("host", "victim.example")]).await;
    assert_eq!(
        (victim.cache(), victim.text().as_str()),
        ("HIT", "page for victim.example")
    );
}

/// Host names are compared without case, so `Host: SHOP.Example` is keyed as `shop.example`;
/// the origin must be asked for that same host. An origin that matches host names by their
/// bytes (a tenant table) answered the upper-case one with its 404, which was then stored
/// under `shop.example` and served to everyone until it expired.
#[tokio::test]
async fn a_host_in_upper_case_reaches_the_origin_as_it_is_keyed() {
    let origin = Origin::start(|r| {
        let header = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        match (header("host").as_str(), header("x-forwarded-host").as_str()) {
            ("shop.example", "shop.example") => Reply::ok("shop").cc("s-maxage=600"),
            (host, forwarded) => Reply::ok(format!("no tenant {host} / {forwarded}"))
                .status(404)
                .cc("s-maxage=600"),
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let shouted = get_with(edge.addr, "/h1", &[("host", "SHOP.Example")]).await;
    assert_eq!((shouted.status, shouted.text().as_str()), (200, "shop"));
    let absolute = raw(
        edge.addr,
        "GET http://Shop.EXAMPLE./abs HTTP/1.1\r\nhost: shop.example\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(absolute.starts_with("HTTP/1.1 200"), "{absolute}");
    let h2 = send_h2(edge.addr, "GET", "http://SHOP.example/h2", None).await;
    assert_eq!((h2.status, h2.text().as_str()), (200, "shop"));
    for path in ["/h1", "/abs", "/h2"] {
        let next = get_with(edge.addr, path, &[("host", "shop.example")]).await;
        assert_eq!(
            (next.cache(), next.text().as_str()),
            ("HIT", "shop"),
            "{path}"
        );
    }
    assert_eq!(origin.total(), 3);
}

/// RFC 9113 section 8.3.1: an HTTP/2 request whose `Host` names another host than its
/// `:authority` is malformed; the same host in both (any case, with or without the root's
/// trailing dot, which the key drops) is fine.
#[tokio::test]
async fn an_http2_host_other_than_the_authority_is_refused() {
    let origin = Origin::start(|_| Reply::ok("page").cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let h2 = |target: &'static str, host: Option<&'static str>| async move {
        let answer = send_h2(edge.addr, "GET", target, host).await;
        (answer.status, answer.text())
    };
    let target = "http://shop.example/h2";
    let (status, text) = h2(target, Some("admin.example")).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("differs from :authority"), "{text}");
    // The same host: in any case, with the scheme's port or without.
    assert_eq!(h2(target, Some("Shop.Example")).await.0, 200);
    assert_eq!(h2(target, Some("shop.example:80")).await.0, 200);
    assert_eq!(
        h2("http://shop.example:80/h2", Some("shop.example"))
            .await
            .0,
        200
    );
    assert_eq!(h2(target, Some("shop.example.")).await.0, 200);
    assert_eq!(
        h2("http://shop.example./h2", Some("shop.example")).await.0,
        200
    );
    assert_eq!(h2(target, Some("shop.example:8080")).await.0, 400);
    // A request naming no host at all is refused, as over HTTP/1.1.
    let (status, text) = h2("/h2", None).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("names no host"), "{text}");
    // Refused requests never reach it, and `shop.example:80` is `shop.example`: one page.
    assert_eq!(origin.total(), 1);
}

/// A HEAD over HTTP/2 answered by one of the proxy's own pages (a refused host, a URI too
/// long, the control API) gets its head and `Content-Length` and no body: hyper's HTTP/2
/// server, unlike its HTTP/1 one, sends what it is given, and clients reset the stream.
#[tokio::test]
async fn head_over_http2_gets_no_body_from_the_proxys_own_pages() {
    let origin = Origin::start(|_| Reply::ok("page").cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let long = format!("/{}", "a".repeat(9000));
    for (path, host, status) in [
        ("/x", Some("admin.example"), 400),
        (long.as_str(), None, 414),
        ("/api/revalidate", None, 200),
        ("/x", None, 200),
    ] {
        let target = format!("http://shop.example{path}");
        let answer = send_h2(edge.addr, "HEAD", &target, host).await;
        assert_eq!(answer.status, status, "{path:.20}");
        let length = answer.header("content-length").parse::<u64>().ok();
        assert!(
            length.is_some_and(|n| n > 0),
            "{path:.20}: {:?}",
            answer.headers
        );
        assert!(answer.body.is_empty());
    }
}
