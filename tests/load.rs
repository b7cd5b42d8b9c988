//! Load and soak, on loopback, bounded in time (`ISR_EDGE_LOAD_SECS`, default 25 s): the real
//! binary as a child process, many keep-alive clients over a key space larger than the cache,
//! purges every 50 ms and origin failure windows mixed in. Asserts: no request errors except
//! the injected 503s; RSS under the cache size plus a fixed margin; the purge index never
//! larger than the entries (`/metrics`); after the load, every purged path is served fresh.
//! Prints requests, errors and peak RSS.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use support::{Origin, Reply, SECRET};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::Instant;

const CACHE_MIB: u64 = 4;
/// Runtime, allocator slack, moka and index overhead, buffers of the debug binary.
const RSS_MARGIN_MIB: u64 = 64;
const PATHS: u64 = 3_000;
const BODY_BYTES: usize = 4096;
const CLIENTS: usize = 32;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A small xorshift generator: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse::<f64>()
            .ok()
            .map(|v| v as u64)
    })
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    injected: AtomicU64,
    errors: AtomicU64,
    purges: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().expect("errors");
        if first.len() < 10 {
            first.push(what);
        }
    }
}

/// One client: a keep-alive connection, random paths until the deadline.
async fn client(addr: SocketAddr, seed: u64, deadline: Instant, tally: Arc<Tally>) {
    let mut rng = Rng(seed | 1);
    let mut sender = None;
    while Instant::now() < deadline {
        if sender.is_none() {
            let stream = match TcpStream::connect(addr).await {
                Ok(s) => s,
                Err(e) => {
                    tally.error(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok((s, connection)) => {
                    tokio::spawn(connection);
                    sender = Some(s);
                }
                Err(e) => {
                    tally.error(format!("handshake: {e}"));
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let path = format!("/p/{}", rng.next() % PATHS);
        let request = http::Request::builder()
            .uri(&path)
            .header("host", "load.test")
            .body(Full::new(Bytes::new()))
            .expect("request");
        tally.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = async {
            s.ready().await?;
            let response = s.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        match outcome {
            Ok((200, body)) if body.len() >= BODY_BYTES => {}
            Ok((503, _)) => {
                tally.injected.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, body)) => tally.error(format!(
                "{path}: {status} {}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            )),
            Err(e) => {
                tally.error(format!("{path}: {e}"));
                sender = None;
            }
        }
    }
}

async fn revalidate(addr: SocketAddr, path: &str) -> u16 {
    support::revalidate(addr, serde_json::json!({"secret": SECRET, "paths": [path]}))
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_soak_with_purges_and_origin_failures() {
    let seconds: u64 = std::env::var("ISR_EDGE_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let sequence = Arc::new(AtomicU64::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let (seq, fail) = (sequence.clone(), failing.clone());
    let origin = Origin::start(move |_| {
        if fail.load(Ordering::Relaxed) {
            return Reply::ok("injected failure").status(503);
        }
        // Every render carries a number taken when the origin rendered it.
        let n = seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut body = format!("seq={n:012}\n");
        body.push_str(&"x".repeat(BODY_BYTES));
        Reply::ok(body).cc("s-maxage=30, stale-if-error=60")
    })
    .await;

    let port = free_port();
    let admin_port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{admin_port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_isr-edge"))
        .args([
            "--origin",
            &origin.url(),
            "--listen",
            &listen,
            "--admin-listen",
            &admin,
        ])
        .args([
            "--cache-size",
            &format!("{CACHE_MIB}MiB"),
            "--revalidate-rate",
            "off",
        ])
        .env("REVALIDATE_SECRET", SECRET)
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn isr-edge");
    let pid = child.id().expect("pid");
    let addr: SocketAddr = listen.parse().expect("addr");
    let admin_addr: SocketAddr = admin.parse().expect("admin addr");
    let mut up = false;
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() && TcpStream::connect(admin_addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "isr-edge did not start");
    let baseline_rss = rss_kib(pid);

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(client(
                addr,
                0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1),
                deadline,
                tally.clone(),
            ))
        })
        .collect();

    // Purges: each remembers the highest render number seen before it was sent.
    let purged: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let purger = {
        let (purged, sequence, tally) = (purged.clone(), sequence.clone(), tally.clone());
        tokio::spawn(async move {
            let mut rng = Rng(42);
            while Instant::now() < deadline {
                let path = format!("/p/{}", rng.next() % PATHS);
                let before = sequence.load(Ordering::SeqCst);
                let status = revalidate(addr, &path).await;
                if status == 200 {
                    tally.purges.fetch_add(1, Ordering::Relaxed);
                    purged.lock().expect("purged").insert(path, before);
                } else {
                    tally.error(format!("purge {path}: {status}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Origin failure windows: 300 ms of 503s every 2 s.
    let chaos = {
        let failing = failing.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1700)).await;
                failing.store(true, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(300)).await;
                failing.store(false, Ordering::Relaxed);
            }
        })
    };

    // Samples: RSS of the child and the cache gauges.
    let mut peak_rss = baseline_rss;
    let mut worst_index_excess: i64 = i64::MIN;
    let mut samples = 0;
    let mut max_entries = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_rss = peak_rss.max(rss_kib(pid));
        let text = support::get(admin_addr, "/metrics").await.text();
        let entries = metric(&text, "isr_edge_cache_entries").expect("cache_entries gauge");
        let index = metric(&text, "isr_edge_cache_index_keys").expect("cache_index_keys gauge");
        max_entries = max_entries.max(entries);
        worst_index_excess = worst_index_excess.max(index as i64 - entries as i64);
        samples += 1;
    }
    for task in clients {
        task.await.expect("client");
    }
    purger.await.expect("purger");
    chaos.await.expect("chaos");
    failing.store(false, Ordering::Relaxed);
    peak_rss = peak_rss.max(rss_kib(pid));

    // Settled: the index holds no key the cache does not.
    let text = support::get(admin_addr, "/metrics").await.text();
    let entries = metric(&text, "isr_edge_cache_entries").expect("entries");
    let index = metric(&text, "isr_edge_cache_index_keys").expect("index");
    let size_evictions =
        metric(&text, "isr_edge_cache_evictions_total{cause=\"size\"}").unwrap_or(0);

    // Every purged path is served fresh: rendered after its last purge was sent.
    let purged = purged.lock().expect("purged").clone();
    let mut stale_after_purge = Vec::new();
    for (path, before) in &purged {
        let response = support::get_with(addr, path, &[("host", "load.test")]).await;
        let seq: u64 = response
            .text()
            .get(4..16)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if response.status != 200 || seq <= *before {
            stale_after_purge.push(format!(
                "{path}: {} seq {seq} <= {before} ({})",
                response.status,
                response.cache()
            ));
        }
    }

    let requests = tally.requests.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let injected = tally.injected.load(Ordering::Relaxed);
    let rate = requests as f64 / started.elapsed().as_secs_f64();
    println!(
        "load: {seconds} s, {CLIENTS} clients, {PATHS} paths of {BODY_BYTES} B, cache {CACHE_MIB} MiB\n\
         load: requests {requests} ({rate:.0}/s), errors {errors}, injected 503s {injected}, purges {} ({} paths)\n\
         load: RSS baseline {} MiB, peak {} MiB (limit {} MiB); entries max {max_entries}, now {entries}; \
         index keys now {index}; evicted for size {size_evictions}; worst index-minus-entries during load {worst_index_excess} over {samples} samples",
        tally.purges.load(Ordering::Relaxed),
        purged.len(),
        baseline_rss / 1024,
        peak_rss / 1024,
        CACHE_MIB + RSS_MARGIN_MIB,
    );
    child.kill().await.expect("kill");

    assert!(requests > 1000, "the load did not run: {requests} requests");
    assert_eq!(
        errors,
        0,
        "request errors: {:?}",
        tally.first_errors.lock().expect("errors")
    );
    assert!(
        injected > 0,
        "no failure window was hit; the test did not test failures"
    );
    assert!(
        peak_rss / 1024 < CACHE_MIB + RSS_MARGIN_MIB,
        "RSS {} MiB",
        peak_rss / 1024
    );
    assert!(
        size_evictions > 0,
        "the key space fit in the cache: nothing was evicted"
    );
    assert!(
        index <= entries,
        "purge index {index} keys > {entries} entries"
    );
    // Sampled while clients run: a scrape reads the two gauges a moment apart, so admissions
    // between the reads may show; never more than one per client.
    assert!(
        worst_index_excess <= CLIENTS as i64,
        "index exceeded entries by {worst_index_excess}"
    );
    assert!(!purged.is_empty());
    assert!(
        stale_after_purge.is_empty(),
        "served from before a purge: {stale_after_purge:?}"
    );
}
