//! Memory after origin faults: bodies that die mid-way are dropped, not kept. An origin that
//! promises 2 MiB, sends 1 MiB and resets, 200 times: the proxy (in this test process, alone in
//! its own test binary) must end up near where it started, with nothing stored.

mod support;

use std::time::Duration;

use support::{get, Edge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PROMISED: usize = 2 << 20;
const SENT: usize = 1 << 20;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn truncating_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {PROMISED}\r\ncache-control: s-maxage=600\r\n\r\n");
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.write_all(&vec![b'x'; SENT]).await;
                let _ = stream.flush().await;
                // RST instead of FIN: the body dies mid-way.
                let _ = stream.set_zero_linger();
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_bodies_leave_no_memory_behind() {
    let origin = truncating_origin().await;
    let edge = Edge::start(&origin, &["--origin-timeout", "5s"]).await;
    for i in 0..20 {
        assert_eq!(get(edge.addr, &format!("/warm-{i}")).await.status, 502);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    for i in 0..200 {
        let response = get(edge.addr, &format!("/page-{i}")).await;
        assert_eq!(
            response.status, 502,
            "a truncated body is an origin failure"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_kib();
    let metrics = support::metrics_text(&edge).await;
    let entries = support::metric(&metrics, "isr_edge_cache_entries");
    println!("RSS before {before} KiB, after 200 truncated 1 MiB bodies {after} KiB; cache entries {entries:?}");
    assert_eq!(entries, Some(0.0), "nothing truncated was stored");
    // 200 leaked bodies would be 200 MiB; allocator slack is a few MiB.
    assert!(
        after < before + 48 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}
