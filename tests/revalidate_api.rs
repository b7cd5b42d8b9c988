//! The `/api/revalidate` wire contract: the seed's request and answers, every refusal with its
//! status and message, eviction of every variant of a path, and the endpoint never reaching the
//! origin.

mod support;

use bytes::Bytes;
use serde_json::json;
use support::{get, get_with, revalidate, send, Edge, Origin, Reply, SECRET};

async fn cached_origin() -> Origin {
    Origin::start(|r| {
        let rsc = r.headers.contains_key("rsc");
        Reply::ok(format!(
            "{} {}",
            if rsc { "flight" } else { "html" },
            r.count
        ))
        .header(
            "content-type",
            if rsc { "text/x-component" } else { "text/html" },
        )
        .header("vary", "RSC")
        .cc("s-maxage=600")
    })
    .await
}

#[tokio::test]
async fn health_check_answers_the_seed_shape() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let health = get(edge.addr, "/api/revalidate").await;
    assert_eq!(health.status, 200);
    let body = health.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["message"], "On-demand revalidation endpoint is ready");
    assert_eq!(body["usage"], "POST with { secret, paths: [\"/\"] }");
    assert_eq!(body["cache_version"], 0);
    assert_eq!(origin.total(), 0, "the endpoint never reaches the origin");
}

#[tokio::test]
async fn seed_request_evicts_every_variant_of_each_path() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for path in ["/", "/products", "/products?page=2", "/other"] {
        get(edge.addr, path).await;
        get_with(edge.addr, path, &[("rsc", "1")]).await;
    }
    assert_eq!(origin.total(), 8);
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/", "/products"]}),
    )
    .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Revalidated successfully");
    assert_eq!(body["revalidated"]["paths"], json!(["/", "/products"]));
    let timestamp = body["revalidated"]["timestamp"]
        .as_str()
        .expect("timestamp");
    assert!(
        timestamp.ends_with('Z') && timestamp.contains('T'),
        "RFC 3339 UTC: {timestamp}"
    );
    assert_eq!(
        body["evicted"], 6,
        "/: 2 variants, /products: 2 + 2 with the query"
    );
    assert_eq!(body["cache_version"], 1);
    // Every variant and HEAD refetch; the untouched page stays.
    assert_eq!(get(edge.addr, "/products?page=2").await.cache(), "MISS");
    assert_eq!(
        get_with(edge.addr, "/", &[("rsc", "1")]).await.cache(),
        "MISS"
    );
    assert_eq!(
        send(edge.addr, "HEAD", "/products", &[], Bytes::new())
            .await
            .cache(),
        "MISS"
    );
    assert_eq!(get(edge.addr, "/other").await.cache(), "HIT");
    assert_eq!(
        get(edge.addr, "/api/revalidate").await.json()["cache_version"],
        1
    );
}

#[tokio::test]
async fn secret_in_header_bearer_or_query() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let bearer = format!("Bearer {SECRET}");
    let by_bearer = send(
        edge.addr,
        "POST",
        "/api/revalidate",
        &[("authorization", &bearer)],
        r#"{"paths":["/"]}"#,
    )
    .await;
    assert_eq!(by_bearer.status, 200);
    let by_query = send(
        edge.addr,
        "POST",
        &format!("/api/revalidate?secret={SECRET}"),
        &[],
        r#"{"paths":["/"]}"#,
    )
    .await;
    assert_eq!(by_query.status, 200);
    // The Next.js docs' GET webhook form.
    let by_get = get(
        edge.addr,
        &format!("/api/revalidate?secret={SECRET}&path=/"),
    )
    .await;
    assert_eq!(by_get.status, 200);
    assert_eq!(by_get.json()["cache_version"], 3);
}

#[tokio::test]
async fn refusals_have_status_and_message_and_evict_nothing() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/").await;
    let ok_paths = json!(["/"]);
    let many: Vec<String> = (0..1001).map(|i| format!("/p{i}")).collect();
    let huge = format!(
        "{{\"secret\":\"{SECRET}\",\"paths\":[\"/{}\"]}}",
        "a".repeat(70 * 1024)
    );
    let cases: Vec<(String, u16, &str)> = vec![
        (
            json!({"secret": "wrong", "paths": ok_paths}).to_string(),
            401,
            "Invalid secret",
        ),
        (
            json!({"paths": ok_paths}).to_string(),
            401,
            "Invalid secret",
        ),
        ("{not json".to_string(), 400, "not valid JSON"),
        ("[\"/\"]".to_string(), 400, "JSON object"),
        (
            json!({"secret": SECRET, "paths": "/"}).to_string(),
            400,
            "list of strings",
        ),
        (
            json!({"secret": SECRET, "paths": [1, 2]}).to_string(),
            400,
            "list of strings",
        ),
        (
            json!({"secret": SECRET, "paths": ["products"]}).to_string(),
            400,
            "must start with '/'",
        ),
        (
            json!({"secret": SECRET, "paths": many}).to_string(),
            400,
            "at most 1000",
        ),
        (
            json!({"secret": SECRET, "pahts": ["/"]}).to_string(),
            400,
            "unknown field \"pahts\"",
        ),
        // A null target (a backend serialising an unset variable) was a 200 that purged
        // nothing, yet bumped cache_version.
        (
            json!({"secret": SECRET, "paths": null}).to_string(),
            400,
            "paths must be a list of strings like [\"/\", \"/products\"], not null",
        ),
        (
            json!({"secret": SECRET, "path": null}).to_string(),
            400,
            "path must be a string starting with '/' (or a list of them), not null",
        ),
        (
            json!({"secret": SECRET, "tags": null}).to_string(),
            400,
            "tags must be a string or a list of strings",
        ),
        (huge, 413, "64 KiB"),
    ];
    for (body, status, message) in cases {
        let response = send(
            edge.addr,
            "POST",
            "/api/revalidate",
            &[("content-type", "text/plain")],
            body.clone(),
        )
        .await;
        assert_eq!(response.status, status, "{}", &body[..body.len().min(80)]);
        let json = response.json();
        assert_eq!(json["success"], false);
        let text = json["message"].as_str().expect("message");
        if status == 401 {
            assert_eq!(text, "Invalid secret");
        } else {
            assert!(
                text.contains(message),
                "{text:?} should mention {message:?}"
            );
        }
    }
    let put = send(edge.addr, "PUT", "/api/revalidate", &[], "{}").await;
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), "GET, HEAD, OPTIONS, POST");
    // As a Next.js route handler answers OPTIONS for the methods it has.
    let options = send(edge.addr, "OPTIONS", "/api/revalidate", &[], "").await;
    assert_eq!(
        (options.status, options.header("allow"), options.body.len()),
        (204, "GET, HEAD, OPTIONS, POST", 0)
    );
    assert_eq!(put.json()["success"], false);
    assert_eq!(
        get(edge.addr, "/").await.cache(),
        "HIT",
        "nothing was evicted"
    );
    assert_eq!(
        get(edge.addr, "/api/revalidate").await.json()["cache_version"],
        0
    );
    assert_eq!(origin.total(), 1);
}

/// A query string of paths past `--max-uri-length` is refused in the endpoint's JSON, naming the
/// JSON body as the way to send them: a backend reading `success` and `message` got plain text.
/// Other URLs keep the plain 414.
#[tokio::test]
async fn a_too_long_query_on_the_endpoint_is_refused_in_json() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--max-uri-length", "1KiB"]).await;
    get(edge.addr, "/p0").await;
    let paths: Vec<String> = (0..200).map(|i| format!("/p{i}")).collect();
    let target = format!("/api/revalidate?secret={SECRET}&path={}", paths.join(","));
    for method in ["GET", "POST"] {
        let r = send(edge.addr, method, &target, &[], Bytes::new()).await;
        assert_eq!(r.status, 414, "{method}: {}", r.text());
        assert_eq!(r.header("content-type"), "application/json", "{method}");
        assert_eq!(r.json()["success"], false, "{method}");
        let message = r.json()["message"].as_str().unwrap_or("").to_string();
        assert!(message.contains("JSON body"), "{method}: {message}");
    }
    assert_eq!(
        get(edge.addr, "/p0").await.cache(),
        "HIT",
        "nothing evicted"
    );
    let long = get(edge.addr, &format!("/p0?{}", "q".repeat(2000))).await;
    assert_eq!(long.status, 414);
    assert!(long.header("content-type").starts_with("text/plain"));
}

#[tokio::test]
async fn form_content_type_is_parsed_as_json_like_next_does() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let body = json!({"secret": SECRET, "paths": ["/"]}).to_string();
    let response = send(
        edge.addr,
        "POST",
        "/api/revalidate",
        &[("content-type", "application/x-www-form-urlencoded")],
        body,
    )
    .await;
    assert_eq!(response.status, 200);
}

/// `request.json()` in a Next.js route handler decodes the body as UTF-8 with its byte order
/// mark dropped (the Fetch standard's "UTF-8 decode"), so a caller whose JSON starts with one
/// (written by .NET's `StreamWriter`, Windows PowerShell's `Out-File -Encoding utf8`) was
/// served by the route and must be by the proxy: a 400 "not valid JSON" purged nothing.
#[tokio::test]
async fn a_body_starting_with_a_byte_order_mark_is_read_like_next_does() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/products").await;
    assert_eq!(get(edge.addr, "/products").await.cache(), "HIT");
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(
        json!({"secret": SECRET, "paths": ["/products"]})
            .to_string()
            .as_bytes(),
    );
    let answer = send(
        edge.addr,
        "POST",
        "/api/revalidate",
        &[("content-type", "application/json; charset=utf-8")],
        body,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["evicted"], 1);
    assert_eq!(get(edge.addr, "/products").await.cache(), "MISS");
}

#[tokio::test]
async fn empty_paths_succeed_like_the_seed_route() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "paths": []})).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["evicted"], 0);
}

#[tokio::test]
async fn without_a_secret_the_proxy_serves_but_refuses_revalidation() {
    let origin = cached_origin().await;
    let edge = Edge::start_with_secret(&origin.url(), &[], None).await;
    assert_eq!(get(edge.addr, "/").await.status, 200);
    let answer = revalidate(edge.addr, json!({"secret": "anything", "paths": ["/"]})).await;
    assert_eq!(answer.status, 503);
    assert_eq!(
        answer.json()["message"],
        "Revalidation is not configured: set REVALIDATE_SECRET"
    );
    assert_eq!(
        get(edge.addr, "/api/revalidate").await.status,
        200,
        "the health check still answers"
    );
}

#[tokio::test]
async fn unsafe_methods_pass_through_and_evict_the_page() {
    let origin = Origin::start(|r| match r.method.as_str() {
        "GET" => Reply::ok(format!("page {}", r.count)).cc("s-maxage=600"),
        _ => Reply::ok(format!(
            "{} got {}",
            r.method,
            String::from_utf8_lossy(&r.body)
        ))
        .status(201),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/items").await;
    get(edge.addr, "/items?sort=asc").await;
    let post = send(
        edge.addr,
        "POST",
        "/items",
        &[("content-type", "text/plain")],
        "new item",
    )
    .await;
    assert_eq!(
        (post.status, post.text().as_str()),
        (201, "POST got new item")
    );
    assert_eq!(post.cache(), "BYPASS");
    assert_eq!(get(edge.addr, "/items").await.cache(), "MISS");
    assert_eq!(get(edge.addr, "/items?sort=asc").await.cache(), "MISS");
    for method in ["PUT", "PATCH", "DELETE"] {
        get(edge.addr, "/items").await;
        assert_eq!(
            send(edge.addr, method, "/items", &[], "x").await.status,
            201
        );
        assert_eq!(
            get(edge.addr, "/items").await.cache(),
            "MISS",
            "{method} evicts"
        );
    }
}

/// The origin acted on a form post whatever became of the client that sent it: one that goes
/// away once the post is sent (closes its connection, resets its HTTP/2 stream) still has the
/// page purged when the origin answers.
#[tokio::test]
async fn an_unsafe_request_whose_client_went_away_still_evicts_the_page() {
    use tokio::io::AsyncWriteExt;
    let origin = Origin::start(|r| match r.method.as_str() {
        "GET" => Reply::ok(format!("page {}", r.count)).cc("s-maxage=600"),
        _ => Reply::ok("saved").delay(std::time::Duration::from_millis(400)),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let posts = || origin.seen().iter().filter(|r| r.method == "POST").count();
    for (round, client) in ["HTTP/1.1 close", "HTTP/2 reset"].into_iter().enumerate() {
        get(edge.addr, "/items").await;
        assert_eq!(get(edge.addr, "/items").await.cache(), "HIT", "{client}");
        if round == 0 {
            let mut stream = tokio::net::TcpStream::connect(edge.addr)
                .await
                .expect("connect");
            let post = format!(
                "POST /items HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\n\r\n",
                edge.addr
            );
            stream.write_all(post.as_bytes()).await.expect("send");
            assert!(
                support::eventually(std::time::Duration::from_secs(5), || posts() == 1).await,
                "{client}: the post reached the origin"
            );
            drop(stream);
        } else {
            let target = format!("http://{}/items", edge.addr);
            let addr = edge.addr;
            let client_task =
                tokio::spawn(async move { support::send_h2(addr, "POST", &target, None).await });
            assert!(
                support::eventually(std::time::Duration::from_secs(5), || posts() == 2).await,
                "{client}: the post reached the origin"
            );
            client_task.abort();
        }
        // The origin answers 400 ms after it got the post; the client is long gone by then.
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        assert_eq!(get(edge.addr, "/items").await.cache(), "MISS", "{client}");
    }
}

#[tokio::test]
async fn warm_on_revalidate_refetches_in_the_background() {
    let origin = Origin::start(|r| Reply::ok(format!("v{}", r.count)).cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &["--warm-on-revalidate"]).await;
    get(edge.addr, "/w").await;
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "paths": ["/w"]})).await;
    assert_eq!(answer.status, 200);
    assert!(
        support::eventually(std::time::Duration::from_secs(5), || origin.count("/w")
            == 2)
        .await,
        "re-fetched without a visitor"
    );
    let mut next = get(edge.addr, "/w").await;
    for _ in 0..50 {
        if next.cache() == "HIT" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        next = get(edge.addr, "/w").await;
    }
    assert_eq!((next.cache(), next.text().as_str()), ("HIT", "v2"));
    assert_eq!(origin.count("/w"), 2);
}

/// Spellings of the endpoint's path that origins resolve to the same route reach the control
/// API, never the origin (which would get the secret in the body).
#[tokio::test]
async fn other_spellings_of_the_endpoint_never_reach_the_origin() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for path in [
        "/api/./revalidate",
        "/api//revalidate",
        "//api/revalidate",
        "/api/%72evalidate",
        "/api/x/../revalidate/",
    ] {
        let answer = send(
            edge.addr,
            "POST",
            path,
            &[("content-type", "application/json")],
            json!({"secret": SECRET, "paths": ["/"]}).to_string(),
        )
        .await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        assert_eq!(answer.json()["success"], true, "{path}");
    }
    assert_eq!(origin.total(), 0, "{:?}", origin.seen());
}

/// A request body that never arrives does not hold the connection: 408 after 10 s.
#[tokio::test]
async fn a_body_that_never_arrives_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let mut stream = tokio::net::TcpStream::connect(edge.addr)
        .await
        .expect("connect");
    stream
        .write_all(b"POST /api/revalidate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"secret\"")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "connection still held after 30 s");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive"), "{text}");
}

/// Unsafe requests whose clients went away run on to the origin's answer (above), but no more
/// of them at once than `--max-connections`: an HTTP/2 client that posts and resets the stream
/// frees the stream at once (HTTP/2 "rapid reset"), and could otherwise keep any number of
/// origin requests and origin connections open over one connection, each until the origin
/// answers or times out.
#[tokio::test]
async fn unsafe_requests_whose_clients_went_away_are_not_run_past_the_connection_limit() {
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let origin = Origin::start(|r| match r.method.as_str() {
        "GET" => Reply::ok("page").cc("s-maxage=600"),
        _ => Reply::ok("saved").delay(std::time::Duration::from_millis(2000)),
    })
    .await;
    let edge = Edge::start(&origin.url(), &["--max-connections", "4"]).await;
    let posts = || origin.seen().iter().filter(|r| r.method == "POST").count();
    let stream = tokio::net::TcpStream::connect(edge.addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    for n in 1..=12 {
        let request = http::Request::post(format!("http://{}/items", edge.addr))
            .body(Full::new(bytes::Bytes::new()))
            .expect("request");
        let answer = sender.send_request(request);
        tokio::pin!(answer);
        tokio::select! {
            _ = &mut answer => panic!("post {n} answered before the origin"),
            arrived = support::eventually(std::time::Duration::from_secs(5), || posts() == n) => {
                assert!(arrived, "post {n} reached the origin");
            }
        }
        // Dropping the answer resets the stream (RST_STREAM, CANCEL).
    }
    // Time for the edge to drop the origin requests it must.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let at_origin = origin.in_flight_now();
    assert!(at_origin <= 4, "{at_origin} posts still at the origin");
    // The edge still serves.
    assert_eq!(get(edge.addr, "/items").await.status, 200);
}

/// A body naming a field twice is refused, not read as its last value: a proxy, WAF or log in
/// front may read the first (a wrong secret, another list of paths) while the edge acts on the
/// other.
#[tokio::test]
async fn a_body_naming_a_field_twice_is_refused() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/").await;
    for body in [
        format!(r#"{{"secret":"wrong","paths":["/"],"secret":"{SECRET}"}}"#),
        format!(r#"{{"secret":"{SECRET}","paths":["/other"],"paths":["/"]}}"#),
        format!(r#"{{"secret":"{SECRET}","paths":[{{"path":"/other","path":"/"}}]}}"#),
    ] {
        let response = send(
            edge.addr,
            "POST",
            "/api/revalidate",
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
        assert_eq!(response.status, 400, "{body}: {}", response.text());
        let json = response.json();
        assert_eq!(json["success"], false);
        let text = json["message"].as_str().expect("message");
        assert!(text.contains("is given twice"), "{body}: {text:?}");
    }
    assert_eq!(
        get(edge.addr, "/").await.cache(),
        "HIT",
        "nothing was evicted"
    );
    assert_eq!(origin.total(), 1);
}

/// A query giving the secret twice is refused beside a JSON body as it is alone (a GET, an
/// empty POST): the edge read the first, and a proxy or log in front may read the other.
#[tokio::test]
async fn a_query_giving_the_secret_twice_is_refused_beside_a_body() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/").await;
    for target in [
        format!("/api/revalidate?secret={SECRET}&path=/&secret=wrong"),
        format!("/api/revalidate?secret={SECRET}&%73ecret=wrong"),
    ] {
        for body in ["", r#"{"paths":["/"]}"#] {
            let response = send(edge.addr, "POST", &target, &[], body).await;
            assert_eq!(response.status, 400, "{target} {body}: {}", response.text());
            let text = response.json()["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert!(text.contains("given twice"), "{target} {body}: {text:?}");
        }
    }
    assert_eq!(
        get(edge.addr, "/").await.cache(),
        "HIT",
        "nothing was evicted"
    );
}
