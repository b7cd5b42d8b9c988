//! Single flight: concurrent requests for one missing key make one origin request.

mod support;

use std::time::Duration;

use support::{get, get_with, send, Edge, Origin, Reply};

async fn burst(addr: std::net::SocketAddr, path: &'static str, n: usize) -> Vec<support::Resp> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(tokio::spawn(async move { get(addr, path).await }));
    }
    let mut responses = Vec::with_capacity(n);
    for client in clients {
        responses.push(client.await.expect("client task"));
    }
    responses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_cold_requests_make_one_origin_request() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("render {}", r.count))
            .cc("s-maxage=60")
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let responses = burst(edge.addr, "/cold", 100).await;
    assert!(responses
        .iter()
        .all(|r| r.status == 200 && r.text() == "render 1"));
    assert_eq!(origin.count("/cold"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_share_an_origin_failure_instead_of_storming_it() {
    let origin = Origin::start(|_| {
        Reply::ok("down")
            .status(503)
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let responses = burst(edge.addr, "/down", 50).await;
    assert!(responses.iter().all(|r| r.status == 503));
    assert_eq!(origin.count("/down"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_answers_are_never_shared_with_waiters() {
    let origin = Origin::start(|r| {
        let user = r
            .headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Reply::ok(format!("for {user}"))
            .cc("private")
            .delay(Duration::from_millis(200))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let mut clients = Vec::new();
    for i in 0..10 {
        let addr = edge.addr;
        clients.push(tokio::spawn(async move {
            let cookie = format!("user={i}");
            (
                cookie.clone(),
                get_with(addr, "/me", &[("cookie", &cookie)]).await,
            )
        }));
    }
    for client in clients {
        let (cookie, response) = client.await.expect("client");
        assert_eq!(
            response.text(),
            format!("for {cookie}"),
            "each client gets its own private answer"
        );
    }
    assert_eq!(origin.count("/me"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_does_not_cancel_the_shared_fetch() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("render {}", r.count))
            .cc("s-maxage=60")
            .delay(Duration::from_millis(400))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let addr = edge.addr;
    let leader = tokio::spawn(async move { get(addr, "/leave").await });
    assert!(support::eventually(Duration::from_secs(2), || origin.count("/leave") == 1).await);
    leader.abort();
    let follower = get(edge.addr, "/leave").await;
    assert_eq!(follower.text(), "render 1");
    assert_eq!(origin.count("/leave"), 1);
}

/// During an outage every request that waited on the one fetch gets the origin's own error
/// page and its `Retry-After`, as the request that started it does, not a made-up error.
#[tokio::test]
async fn waiters_get_the_origins_own_error_page() {
    let origin = Origin::start(|_| {
        Reply::ok("<h1>Maintenance</h1>")
            .status(503)
            .header("retry-after", "120")
            .header("content-type", "text/html")
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let responses = burst(edge.addr, "/down", 20).await;
    assert_eq!(origin.count("/down"), 1, "one origin request");
    for response in &responses {
        assert_eq!(response.status, 503);
        assert_eq!(response.text(), "<h1>Maintenance</h1>");
        assert_eq!(response.header("retry-after"), "120");
        assert_eq!(response.header("content-type"), "text/html");
        assert_eq!(response.cache(), "MISS");
    }
}

/// A HEAD that waited on a fetch answered with the origin's 5xx page gets the head a GET gets,
/// `Content-Length` included (RFC 9110 section 9.3.2), and no body; so does a HEAD that
/// started the fetch, and one answered with the proxy's own error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_requests_get_the_shared_error_pages_content_length() {
    const PAGE: &str = "<h1>Maintenance</h1>";
    let mut origin = Origin::start(|_| {
        Reply::ok(PAGE)
            .status(503)
            .header("retry-after", "120")
            .delay(Duration::from_millis(1000))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let addr = edge.addr;
    let leader = tokio::spawn(async move { get(addr, "/down").await });
    assert!(
        support::eventually(Duration::from_secs(5), || origin.count("/down") == 1).await,
        "the GET reached the origin"
    );
    let heads: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { send(addr, "HEAD", "/down", &[], "").await }))
        .collect();
    let leader = leader.await.expect("GET client");
    assert_eq!(leader.status, 503);
    assert_eq!(leader.text(), PAGE);
    assert_eq!(leader.header("content-length"), PAGE.len().to_string());
    for head in heads {
        let head = head.await.expect("HEAD client");
        assert_eq!(head.status, 503);
        assert_eq!(head.header("retry-after"), "120");
        assert_eq!(
            head.header("content-length"),
            leader.header("content-length"),
            "the GET's length"
        );
        assert!(head.body.is_empty());
    }
    assert_eq!(
        origin.count("/down"),
        1,
        "the HEADs waited on the GET's fetch"
    );

    let alone = send(addr, "HEAD", "/alone", &[], "").await;
    assert_eq!(alone.status, 503);
    assert_eq!(alone.header("content-length"), PAGE.len().to_string());

    origin.stop();
    let own_error = get(addr, "/gone").await;
    assert_eq!(own_error.status, 502, "{}", own_error.text());
    let head = send(addr, "HEAD", "/gone", &[], "").await;
    assert_eq!(head.status, 502);
    assert_eq!(
        head.header("content-length"),
        own_error.body.len().to_string()
    );
}

/// An error page that sets a cookie (a Laravel 500 sets the session of the request that caused
/// it) goes to that request alone; the others get the proxy's own error, from the same single
/// origin request.
#[tokio::test]
async fn an_error_page_setting_a_cookie_is_not_shared() {
    let origin = Origin::start(|_| {
        Reply::ok("error page for this session")
            .status(500)
            .header("set-cookie", "sid=session-of-the-first")
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let responses = burst(edge.addr, "/fails", 10).await;
    assert_eq!(origin.count("/fails"), 1);
    let with_cookie = responses
        .iter()
        .filter(|r| !r.header("set-cookie").is_empty())
        .count();
    assert_eq!(with_cookie, 1, "only the request that caused it");
    for response in responses
        .iter()
        .filter(|r| r.header("set-cookie").is_empty())
    {
        assert_eq!(response.status, 500);
        assert!(
            response
                .text()
                .starts_with("500 Internal Server Error: origin"),
            "{}",
            response.text()
        );
    }
}

/// An error page whose `Vary` names a field wrongly (a space for a comma) may be made for the
/// request's own headers: it goes to that request alone, as one with a valid `Vary` on them
/// does, not to the requests waiting on the same fetch.
#[tokio::test]
async fn an_error_page_with_a_vary_naming_no_field_is_not_shared() {
    let origin = Origin::start(|_| {
        Reply::ok("error page for this visitor")
            .status(500)
            .header("vary", "Accept-Language X-Visitor")
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let responses = burst(edge.addr, "/fails", 10).await;
    assert_eq!(origin.count("/fails"), 1);
    let origin_pages = responses
        .iter()
        .filter(|r| r.text() == "error page for this visitor")
        .count();
    assert_eq!(origin_pages, 1, "only the request that caused it");
}

/// Requests of another encoding class do not wait on a fetch made for one (an origin varying
/// on it answers them with another variant), so a compressed error page never reaches a
/// request that accepts no encoding: it gets its own answer, in plain text.
#[tokio::test]
async fn an_encoded_error_page_stays_within_its_encoding() {
    let origin = Origin::start(|r| {
        let reply = Reply::ok("maintenance")
            .status(503)
            .delay(Duration::from_millis(400));
        // The edge asks for the client's class only (`br,gzip` for "gzip, br").
        match r.headers.get("accept-encoding") {
            Some(class) => reply.header("content-encoding", class.to_str().unwrap_or("")),
            None => reply,
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let addr = edge.addr;
    let first =
        tokio::spawn(
            async move { get_with(addr, "/down", &[("accept-encoding", "gzip, br")]).await },
        );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let plain = get(edge.addr, "/down").await;
    let first = first.await.expect("first client");
    assert_eq!(origin.count("/down"), 2, "one fetch per encoding class");
    assert_eq!(first.header("content-encoding"), "br,gzip");
    assert_eq!(plain.status, 503);
    assert_eq!(plain.header("content-encoding"), "", "{}", plain.text());
    assert_eq!(plain.text(), "maintenance");
}

/// Cold requests of several encoding classes make one origin request per class, each class's
/// requests waiting on their own: none goes to the origin uncoalesced because the fetch it
/// waited on was for another variant.
#[tokio::test]
async fn each_encoding_class_is_coalesced_on_its_own() {
    let origin = Origin::start(|r| {
        let class = r
            .headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity")
            .to_string();
        Reply::ok(format!("page {class}"))
            .cc("s-maxage=600")
            .header("vary", "Accept-Encoding")
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let mut clients = Vec::new();
    for i in 0..30 {
        let addr = edge.addr;
        let encoding = ["br, gzip", "gzip", "identity"][i % 3];
        clients.push(tokio::spawn(async move {
            (
                encoding,
                get_with(addr, "/mixed", &[("accept-encoding", encoding)]).await,
            )
        }));
    }
    for client in clients {
        let (encoding, response) = client.await.expect("client");
        let class = encoding.replace(' ', "");
        assert_eq!(response.text(), format!("page {class}"));
    }
    assert_eq!(origin.count("/mixed"), 3, "one origin request per class");
}
