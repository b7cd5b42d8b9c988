//! Keep-alive connections to the origin (and to the app revalidations are forwarded to) that
//! stay idle are closed by the proxy after its pool's idle timeout (60 s), so a burst of misses
//! does not hold origin connections, and the descriptors behind them, for the life of the
//! process. Time is paused: tokio's clock jumps over the idle minute whenever the runtime has
//! nothing else to do.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::{eventually, get, Edge};
use tokio::net::TcpListener;

/// An origin that never closes a connection itself and counts the connections open to it.
async fn origin_counting_connections() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let url = format!("http://{}", listener.local_addr().expect("origin addr"));
    let open = Arc::new(AtomicUsize::new(0));
    let counter = open.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(|_: Request<Incoming>| async {
                    let mut response = Response::new(Full::new(Bytes::from_static(b"page")));
                    response.headers_mut().insert(
                        "cache-control",
                        http::HeaderValue::from_static("public, s-maxage=600"),
                    );
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, open)
}

#[tokio::test(start_paused = true)]
async fn an_idle_origin_connection_is_closed_after_the_pool_idle_timeout() {
    let (origin, open) = origin_counting_connections().await;
    let edge = Edge::start(&origin, &["--workers", "1"]).await;

    let response = get(edge.addr, "/page").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.cache(), "MISS");
    assert_eq!(
        open.load(Ordering::SeqCst),
        1,
        "the fetch's connection is kept alive"
    );

    // Nothing asks the origin again: past the idle timeout the pooled connection must go.
    let closed = eventually(Duration::from_secs(300), || {
        open.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(
        closed,
        "an origin connection idle for 5 minutes is still open ({} open)",
        open.load(Ordering::SeqCst)
    );
}

/// The same for the connections revalidations are forwarded over (to the app's own
/// `/api/revalidate`, `--origin-revalidate-url`).
#[tokio::test(start_paused = true)]
async fn an_idle_forwarding_connection_is_closed_after_the_pool_idle_timeout() {
    let (site, _) = origin_counting_connections().await;
    let (app, open) = origin_counting_connections().await;
    let forward_to = format!("{app}/api/revalidate");
    let edge = Edge::start(
        &site,
        &[
            "--workers",
            "1",
            "--origin-revalidate-url",
            &forward_to,
            "--origin-revalidate-secret",
            "app-secret-0123456789abcdef",
        ],
    )
    .await;
    let answer = support::revalidate(
        edge.addr,
        serde_json::json!({"secret": support::SECRET, "paths": ["/page"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(open.load(Ordering::SeqCst), 1, "the app was called");

    let closed = eventually(Duration::from_secs(300), || {
        open.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(
        closed,
        "a forwarding connection idle for 5 minutes is still open ({} open)",
        open.load(Ordering::SeqCst)
    );
}
