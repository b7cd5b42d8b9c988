//! Worker threads (`--workers`): every worker accepts on the one port, they share one cache
//! (and its request coalescing), the metrics show them, and shutdown waits for all of them.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::json;
use support::{eventually, get, metric, metrics_text, revalidate, Edge, Origin, Reply, SECRET};

/// Scrapes `sample` until it equals `want` (up to ~5 s); returns the last value seen.
async fn metric_reaches(edge: &Edge, sample: &str, want: f64) -> Option<f64> {
    let mut seen = None;
    for _ in 0..100 {
        seen = metric(&metrics_text(edge).await, sample);
        if seen == Some(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// One GET over a blocking socket: the calling thread (and so worker 0 and anything else on
/// this test's runtime) does not run until the answer is in.
fn blocking_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("an answer from a worker that is not blocked");
    answer
}

#[tokio::test]
async fn workers_share_one_cache_and_one_origin_fetch() {
    let origin = Origin::start(|seen| {
        Reply::ok(format!("page {}", seen.path))
            .cc("s-maxage=60")
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Edge::start(&origin.url(), &["--workers", "3"]).await;
    // Workers count themselves once their threads run, an instant after the start.
    let workers = metric_reaches(&edge, "isr_edge_workers", 3.0).await;
    assert_eq!(workers, Some(3.0), "workers running");

    // 24 clients on their own connections, spread over the workers by the kernel, ask for one
    // cold URL at once: whichever workers they land on, the origin sees one request.
    let clients: Vec<_> = (0..24)
        .map(|_| tokio::spawn(get(edge.addr, "/shared")))
        .collect();
    for client in clients {
        let response = client.await.expect("client");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "page /shared")
        );
    }
    assert_eq!(
        origin.count("/shared"),
        1,
        "one origin fetch for all workers"
    );

    let text = metrics_text(&edge).await;
    let accepted: f64 = (0..3)
        .map(|worker| {
            let sample = format!("isr_edge_connections_accepted_total{{worker=\"{worker}\"}}");
            metric(&text, &sample).unwrap_or_else(|| panic!("{sample} missing:\n{text}"))
        })
        .sum();
    assert_eq!(accepted, 24.0, "{text}");
    // Each client closed its connection; the gauge falls back as the server notices.
    let open = metric_reaches(&edge, "isr_edge_connections_open", 0.0).await;
    assert_eq!(open, Some(0.0), "connections_open after every client left");
}

/// With the test's own thread (worker 0) blocked, only the other workers can answer: a HIT
/// still arrives, so they accept and serve from the shared cache.
#[tokio::test(flavor = "current_thread")]
async fn other_workers_answer_while_worker_zero_is_busy() {
    let origin = Origin::start(|_| Reply::ok("cached once").cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &["--workers", "2"]).await;
    assert_eq!(get(edge.addr, "/busy").await.cache(), "MISS");

    // Blocking I/O on purpose: this thread runs worker 0 and the origin, and neither may run.
    let answer = blocking_get(edge.addr, "/busy");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-cache: hit"),
        "{answer}"
    );
    assert!(answer.ends_with("cached once"), "{answer}");
    assert_eq!(origin.count("/busy"), 1);

    // The first (async) request may have landed on worker 1 too.
    let text = metrics_text(&edge).await;
    let on_worker_1 = metric(&text, "isr_edge_connections_accepted_total{worker=\"1\"}");
    assert!(on_worker_1 >= Some(1.0), "{text}");
}

/// Each worker has its own origin pool: with worker 0 (this thread) blocked while it holds an
/// idle origin connection, worker 1's miss must not be queued behind worker 0's event loop.
#[tokio::test(flavor = "current_thread")]
async fn a_worker_never_waits_on_another_workers_origin_connection() {
    // The origin runs on its own thread, so only worker 0 stops when this thread blocks.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("origin runtime");
        runtime.block_on(async move {
            let origin =
                Origin::start(|seen| Reply::ok(format!("page {}", seen.path)).cc("s-maxage=60"))
                    .await;
            sender.send(origin.url()).expect("origin address");
            std::future::pending::<()>().await;
        });
    });
    let origin = receiver.recv().expect("origin started");
    let edge = Edge::start(&origin, &["--workers", "2", "--origin-timeout", "3s"]).await;

    // Misses until worker 0 has served one, so its pool holds an idle origin connection.
    let on_worker_0 = "isr_edge_connections_accepted_total{worker=\"0\"}";
    let mut served_by_0 = false;
    for i in 0..100 {
        assert_eq!(get(edge.addr, &format!("/warm/{i}")).await.status, 200);
        if metric(&metrics_text(&edge).await, on_worker_0) >= Some(1.0) {
            served_by_0 = true;
            break;
        }
    }
    assert!(served_by_0, "worker 0 never accepted a connection");

    let answer = blocking_get(edge.addr, "/cold");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("page /cold"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_every_workers_requests() {
    let origin = Origin::start(|_| {
        Reply::ok("finished")
            .cc("no-store")
            .delay(Duration::from_millis(600))
    })
    .await;
    let mut edge = Edge::start(&origin.url(), &["--workers", "3"]).await;
    let addr = edge.addr;
    let clients: Vec<_> = (0..9)
        .map(|i| tokio::spawn(async move { get(addr, &format!("/slow/{i}")).await }))
        .collect();
    assert!(eventually(Duration::from_secs(3), || origin.total() == 9).await);
    edge.shutdown();
    for client in clients {
        let response = client.await.expect("client");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "finished")
        );
    }
    tokio::time::timeout(Duration::from_secs(5), &mut edge.task)
        .await
        .expect("serve returns once every worker has drained")
        .expect("serve task");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no worker accepts any more"
    );
}

#[test]
fn workers_flag_resolves_and_rejects_junk() {
    let config = |args: &[&str]| {
        let mut argv = vec!["isr-edge", "--origin", "http://127.0.0.1:9"];
        argv.extend_from_slice(args);
        isr_edge::config::Config::from_args(argv, None)
    };
    // Explicit 0, so an ISR_EDGE_WORKERS in the environment cannot change the default here.
    let auto = config(&["--workers", "0"]).expect("auto");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(auto.workers, cpus, "0 = one per usable CPU");
    assert_eq!(config(&["--workers", "5"]).expect("five").workers, 5);
    let error = config(&["--workers", "many"]).expect_err("junk refused");
    assert!(error.to_string().contains("--workers"), "{error}");
    let error = config(&["--workers", "100000"]).expect_err("absurd count refused");
    assert!(error.to_string().contains("--workers: at most"), "{error}");
}

/// `n` GETs of `path` at once, each on its own connection (so spread over the workers); their
/// bodies.
async fn bodies_at_once(edge: &Edge, path: &'static str, n: usize) -> Vec<String> {
    let clients: Vec<_> = (0..n).map(|_| tokio::spawn(get(edge.addr, path))).collect();
    let mut bodies = Vec::new();
    for client in clients {
        bodies.push(client.await.expect("client").text());
    }
    bodies
}

/// Each worker remembers the pages it serves most (in front of the cache they share): a purge,
/// and a refresh replacing a page, reach every worker at once, however hot the page was there.
#[tokio::test]
async fn a_page_hot_on_every_worker_is_purged_and_replaced_on_all_of_them() {
    let origin =
        Origin::start(|seen| Reply::ok(format!("v{}", seen.count)).cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &["--workers", "2"]).await;
    assert_eq!(get(edge.addr, "/hot").await.text(), "v1");
    for _ in 0..3 {
        assert!(bodies_at_once(&edge, "/hot", 16)
            .await
            .iter()
            .all(|b| b == "v1"));
    }

    let purged = revalidate(edge.addr, json!({"secret": SECRET, "paths": ["/hot"]})).await;
    assert_eq!(purged.status, 200);
    for _ in 0..3 {
        let bodies = bodies_at_once(&edge, "/hot", 16).await;
        assert!(
            bodies.iter().all(|b| b == "v2"),
            "after a purge: {bodies:?}"
        );
    }

    // A soft purge: the old copy goes on being served while one refresh runs; once the new
    // copy is in, no worker serves the old one again.
    let soft = json!({"secret": SECRET, "paths": ["/hot"], "mode": "soft"});
    assert_eq!(revalidate(edge.addr, soft).await.status, 200);
    let mut replaced = false;
    for _ in 0..250 {
        if get(edge.addr, "/hot").await.text() == "v3" {
            replaced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(replaced, "the refresh replaced the page");
    for _ in 0..3 {
        let bodies = bodies_at_once(&edge, "/hot", 16).await;
        assert!(
            bodies.iter().all(|b| b == "v3"),
            "after the refresh: {bodies:?}"
        );
    }
    assert_eq!(origin.count("/hot"), 3);
}
