//! Single flight: concurrent requests for one missing key make one origin request.

mod support;

use std::time::Duration;

use support::{get, get_with, Edge, Origin, Reply};

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
