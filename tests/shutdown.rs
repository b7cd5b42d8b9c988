//! Graceful shutdown: in-flight requests finish, new connections are refused, the server exits.

mod support;

use std::time::Duration;

use support::{eventually, get, Edge, Origin, Reply};

#[tokio::test]
async fn in_flight_request_finishes_after_shutdown_starts() {
    let origin = Origin::start(|_| {
        Reply::ok("slow but complete")
            .cc("no-store")
            .delay(Duration::from_millis(800))
    })
    .await;
    let mut edge = Edge::start(&origin.url(), &[]).await;
    let addr = edge.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow").await });
    assert!(eventually(Duration::from_secs(2), || origin.count("/slow") == 1).await);
    edge.shutdown();
    let response = slow.await.expect("slow client");
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "slow but complete")
    );
    tokio::time::timeout(Duration::from_secs(5), &mut edge.task)
        .await
        .expect("server exits once in-flight work is done")
        .expect("serve task");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn shutdown_deadline_bounds_the_wait() {
    let origin = Origin::start(|_| Reply::ok("never in time").delay(Duration::from_secs(30))).await;
    let mut edge = Edge::start(
        &origin.url(),
        &["--shutdown-timeout", "300ms", "--origin-timeout", "60s"],
    )
    .await;
    let addr = edge.addr;
    let _stuck = tokio::spawn(async move { get(addr, "/stuck").await });
    assert!(eventually(Duration::from_secs(2), || origin.count("/stuck") == 1).await);
    edge.shutdown();
    tokio::time::timeout(Duration::from_secs(5), &mut edge.task)
        .await
        .expect("the deadline ends the wait")
        .expect("serve task");
}

/// Once shutdown starts the public port refuses new connections, so `/readyz` must say so
/// (it answered 200 "ready" while a request was still in flight); `/healthz` stays 200.
#[tokio::test]
async fn readiness_fails_as_soon_as_shutdown_starts() {
    let origin = Origin::start(|_| {
        Reply::ok("slow but complete")
            .cc("no-store")
            .delay(Duration::from_secs(3))
    })
    .await;
    let mut edge = Edge::start(&origin.url(), &[]).await;
    let admin = edge.admin.expect("admin listener");
    assert_eq!(get(admin, "/readyz").await.status, 200);
    let addr = edge.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow").await });
    assert!(eventually(Duration::from_secs(2), || origin.count("/slow") == 1).await);
    edge.shutdown();
    let mut readiness = get(admin, "/readyz").await;
    for _ in 0..50 {
        if readiness.status != 200 || slow.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        readiness = get(admin, "/readyz").await;
    }
    assert!(!slow.is_finished(), "the request is still in flight");
    assert_eq!(readiness.status, 503, "{}", readiness.text());
    assert!(
        readiness.text().contains("shutting down"),
        "{}",
        readiness.text()
    );
    assert_eq!(get(admin, "/healthz").await.status, 200);
    let response = slow.await.expect("slow client");
    assert_eq!(response.status, 200, "in-flight requests still finish");
}

/// A form post whose client went away runs on to the origin's answer (its purge depends on
/// it, see `revalidate_api`): shutdown waits for it as for a request in flight, instead of
/// ending the process with the origin cut off in the middle of acting on it.
#[tokio::test]
async fn shutdown_waits_for_a_post_whose_client_went_away() {
    let origin = Origin::start(|_| Reply::ok("saved").delay(Duration::from_millis(700))).await;
    let mut edge = Edge::start(&origin.url(), &[]).await;
    let addr = edge.addr;
    let target = format!("http://{addr}/orders");
    // HTTP/2: the reset frees the stream and, the client gone, the connection at once.
    let client = tokio::spawn(async move { support::send_h2(addr, "POST", &target, None).await });
    assert!(eventually(Duration::from_secs(2), || origin.count("/orders") == 1).await);
    client.abort();
    let _ = client.await;
    edge.shutdown();
    tokio::time::timeout(Duration::from_secs(5), &mut edge.task)
        .await
        .expect("server exits once the post is answered")
        .expect("serve task");
    assert_eq!(
        origin.in_flight_now(),
        0,
        "the server stopped while the origin was still answering the post"
    );
}
