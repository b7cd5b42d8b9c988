//! Data-plane limits, each with its clear answer: header size (431), URI length (414), client
//! body size (413), connection cap (503 at once, not a queue), slowloris header trickling and
//! idle keep-alive connections (closed), unknown hosts (421). And one thing that is not a limit:
//! a client that half-closes its connection after the request still gets the answer.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{get, get_with, send, Edge, Origin, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (or `limit` passes); returns what arrived and
/// whether the server closed it.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let (text, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "the server kept the connection open: {text}");
    text
}

async fn cached_origin() -> Origin {
    Origin::start(|r| {
        Reply::ok(format!(
            "{} {} #{} {}B",
            r.method,
            r.target,
            r.count,
            r.body.len()
        ))
        .cc("s-maxage=600")
    })
    .await
}

/// A raw origin answering every request with an uncacheable chunked body: `chunks` times
/// `chunk`, each after `pause`; it stops when the edge stops reading.
async fn chunked_origin(chunk: String, chunks: usize, pause: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let chunk: std::sync::Arc<str> = format!("{:x}\r\n{chunk}\r\n", chunk.len()).into();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncache-control: no-store\r\n\r\n";
                let _ = stream.write_all(head.as_bytes()).await;
                for _ in 0..chunks {
                    tokio::time::sleep(pause).await;
                    if stream.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    origin
}

/// An origin answering every path with a cacheable page of `size` bytes.
async fn big_page_origin(size: usize) -> Origin {
    Origin::start(move |_| Reply::ok(vec![b'x'; size]).cc("s-maxage=600")).await
}

/// An edge (1 s watchdog period) with a `size`-byte page stored at `/big`: a request for it is
/// a hit, one whole body for hyper to write.
async fn edge_with_big_page(size: usize) -> (Origin, Edge) {
    let origin = big_page_origin(size).await;
    let edge = Edge::start(
        &origin.url(),
        &["--header-read-timeout", "1s", "--max-object-size", "64MiB"],
    )
    .await;
    assert_eq!(get(edge.addr, "/big").await.status, 200);
    (origin, edge)
}

/// Sends `GET path` from a socket with a 4 KiB receive buffer (a slow or stalled reader) and
/// returns it unread.
async fn get_on_small_buffer(addr: SocketAddr, path: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer size");
    let mut stream = socket.connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    stream
}

/// Whether a new client is served (200) within 10 s, on an edge whose only connection slot is
/// taken.
async fn slot_freed(addr: SocketAddr) -> bool {
    slot_freed_for(addr, b"HTTP/1.1 200").await
}

/// [`slot_freed`] where the origin answers with another status line than 200's.
async fn slot_freed_for(addr: SocketAddr, status_line: &[u8]) -> bool {
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut probe = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET /other HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        probe.write_all(request.as_bytes()).await.expect("write");
        let mut head = [0u8; 12];
        let read = tokio::time::timeout(Duration::from_secs(2), probe.read_exact(&mut head)).await;
        if matches!(read, Ok(Ok(_))) && head.starts_with(status_line) {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--max-header-size", "16KiB"]).await;
    let big = "x".repeat(20 * 1024);
    let response = raw(
        edge.addr,
        &format!("GET / HTTP/1.1\r\nhost: a\r\nx-big: {big}\r\nconnection: close\r\n\r\n"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    // Under the limit is fine.
    assert_eq!(
        get_with(edge.addr, "/", &[("x-big", &"x".repeat(8 * 1024))])
            .await
            .status,
        200
    );
    assert_eq!(origin.total(), 1);
}

#[tokio::test]
async fn long_uris_get_414() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--max-uri-length", "1KiB"]).await;
    let long = format!("/p?{}", "q".repeat(2000));
    let response = get(edge.addr, &long).await;
    assert_eq!(response.status, 414);
    assert!(response.text().contains("414 URI Too Long"));
    assert_eq!(origin.total(), 0, "a refused request reached the origin");
    assert_eq!(
        get(edge.addr, &format!("/p?{}", "q".repeat(500)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn large_request_bodies_get_413() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--max-body-size", "1KiB"]).await;
    let small = send(edge.addr, "POST", "/form", &[], vec![b'a'; 1000]).await;
    assert_eq!(small.status, 200);
    assert_eq!(small.text(), "POST /form #1 1000B");
    // Declared too large: refused before the origin hears of it.
    let declared = send(edge.addr, "POST", "/form", &[], vec![b'a'; 5000]).await;
    assert_eq!(declared.status, 413);
    assert!(declared.text().contains("at most 1024 bytes"));
    assert_eq!(origin.count("/form"), 1);
    // Chunked (no length): cut off once it passes the limit, still a 413.
    let chunk = "b".repeat(800);
    let chunked = raw(
        edge.addr,
        &format!("POST /form HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"),
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
}

/// A connection limit past what a semaphore can count (`--max-connections` with `u64::MAX`,
/// meaning "no limit") serves as the largest one it can: it panicked the accept loop, and the
/// proxy answered nothing.
#[tokio::test]
async fn a_connection_limit_past_any_count_serves() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--max-connections", &u64::MAX.to_string()]).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), get(edge.addr, "/any"))
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200);
}

/// A flood of connections over the limit: each refusal holds its socket up to a second to
/// deliver the 503, so only `REFUSING_MAX` are answered at once and the rest are closed without
/// an answer, instead of each taking a file descriptor the origin connections need.
#[tokio::test]
async fn a_flood_over_the_connection_limit_holds_a_bounded_number_of_sockets() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--max-connections", "1"]).await;
    let mut held = TcpStream::connect(edge.addr).await.expect("connect");
    held.write_all(b"GET /held HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = held.read(&mut buf).await.expect("response");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let flood = isr_edge::server::REFUSING_MAX + 150;
    let mut over = Vec::new();
    for _ in 0..flood {
        over.push(TcpStream::connect(edge.addr).await.expect("connect"));
    }
    // The clients stay open (as a flood's do) while every one is read once.
    let (mut answered, mut closed) = (0, 0);
    for stream in &mut over {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                assert!(buf[..n].starts_with(b"HTTP/1.1 503"));
                answered += 1;
            }
            Ok(_) => closed += 1,
            Err(_) => panic!("a connection over the limit was neither answered nor closed"),
        }
    }
    assert!(
        answered <= isr_edge::server::REFUSING_MAX,
        "{answered} answered at once"
    );
    assert_eq!(answered + closed, flood);
    drop((over, held));
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--max-connections", "2"]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
        // A complete request keeps the connection busy on keep-alive.
        stream
            .write_all(b"GET /held HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.expect("response");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let refused = raw(edge.addr, "GET /third HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("too many connections"));
    assert_eq!(origin.count("/third"), 0);
    drop(held);
    // The slots come back when the held connections close.
    let mut status = 0;
    for _ in 0..100 {
        let response = raw(
            edge.addr,
            "GET /third HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
        )
        .await;
        status = if response.starts_with("HTTP/1.1 200") {
            200
        } else {
            503
        };
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_client_trickling_headers_is_cut_off() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--header-read-timeout", "1s"]).await;
    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n")
        .await
        .expect("write");
    // One header line every 200 ms: never finishing, always sending (slowloris).
    let mut cut_off = false;
    for i in 0..100 {
        if stream
            .write_all(format!("x-slow-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            cut_off = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_off = true;
                break;
            }
            Ok(Ok(n)) => assert!(
                !buf[..n].starts_with(b"HTTP/1.1 200"),
                "served a trickled request"
            ),
            Err(_) => {}
        }
    }
    assert!(cut_off, "a trickling client kept its connection for 20 s");
    assert_eq!(origin.total(), 0);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--header-read-timeout", "1s"]).await;
    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    stream
        .write_all(b"GET /k HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .expect("write");
    let (text, closed) = read_until_closed(&mut stream, Duration::from_secs(15)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn unknown_hosts_get_421_and_create_no_entries() {
    let origin = cached_origin().await;
    let edge = Edge::start(
        &origin.url(),
        &["--allowed-hosts", "site.example,www.site.example"],
    )
    .await;
    for junk in ["junk1.example", "junk2.example", "evil"] {
        let response = get_with(edge.addr, "/", &[("host", junk)]).await;
        assert_eq!(response.status, 421, "{junk}");
    }
    assert_eq!(origin.total(), 0);
    assert_eq!(
        get_with(edge.addr, "/", &[("host", "site.example")])
            .await
            .status,
        200
    );
    assert_eq!(
        get_with(edge.addr, "/", &[("host", "WWW.site.example:8080")])
            .await
            .status,
        200
    );
    // The control API answers whatever Host the backend uses.
    let purge = support::revalidate(
        edge.addr,
        serde_json::json!({"secret": support::SECRET, "all": true}),
    )
    .await;
    assert_eq!(purge.status, 200, "{}", purge.text());
}

/// An allowed host written with the root's trailing dot (`site.example.`, as in a zone file)
/// is that host: requests' hosts are compared without it, so such an entry matched nothing
/// and its site was answered 421 on every request.
#[tokio::test]
async fn an_allowed_host_written_with_the_roots_dot_is_that_host() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--allowed-hosts", "site.example."]).await;
    for host in ["site.example", "site.example."] {
        let response = get_with(edge.addr, "/", &[("host", host)]).await;
        assert_eq!(response.status, 200, "{host}");
    }
    let response = get_with(edge.addr, "/", &[("host", "other.example")]).await;
    assert_eq!(response.status, 421);
}

/// A client may shut down its sending side once its request is out (`nc -N`, some health
/// checkers); TCP keeps the other direction open, and the answer must still arrive, also when
/// the origin takes a while.
#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("slow {}", r.target))
            .cc("s-maxage=600")
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for expected in ["MISS", "HIT"] {
        let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
        stream
            .write_all(b"GET /half HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .expect("write");
        stream.shutdown().await.expect("half-close");
        let (text, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{expected}: {text:?}");
        assert!(
            text.to_ascii_lowercase()
                .contains(&format!("x-cache: {}", expected.to_ascii_lowercase())),
            "{text}"
        );
        assert!(text.ends_with("slow /half"), "{text}");
        assert!(closed, "the connection stayed open after the answer");
    }
    assert_eq!(origin.total(), 1);
}

/// `OPTIONS *` is answered here (it asks about this server; forwarded, it lost the origin's
/// port) and `CONNECT` is refused: isr-edge is no tunnel. Neither reaches the origin.
#[tokio::test]
async fn options_star_and_connect_are_answered_here() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let options = raw(
        edge.addr,
        "OPTIONS * HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(options.starts_with("HTTP/1.1 200"), "{options}");
    assert!(
        options.to_ascii_lowercase().contains("allow: get, head"),
        "{options}"
    );
    let connect = raw(
        edge.addr,
        "CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(connect.starts_with("HTTP/1.1 405"), "{connect}");
    let get_star = raw(
        edge.addr,
        "GET * HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(get_star.starts_with("HTTP/1.1 400"), "{get_star}");
    assert_eq!(origin.total(), 0);
}

/// HTTP/2 has no header-read timeout: a connection that sends the preface and SETTINGS and then
/// nothing, or nothing at all, is closed once idle for the period, as idle HTTP/1.1 ones are.
/// Without this, such connections held their slots forever.
#[tokio::test]
async fn idle_http2_and_silent_connections_are_closed() {
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--header-read-timeout", "1s"]).await;
    let mut h2 = TcpStream::connect(edge.addr).await.expect("connect");
    // The client preface, then an empty SETTINGS frame.
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let mut silent = TcpStream::connect(edge.addr).await.expect("connect");
    for stream in [&mut h2, &mut silent] {
        // A period to be found idle and closed, a period to be dropped, and slack.
        let (_, closed) = read_until_closed(stream, Duration::from_millis(3500)).await;
        assert!(closed, "an idle connection was kept past twice the period");
    }
    // New connections are still served.
    assert_eq!(get(edge.addr, "/still-served").await.status, 200);
}

/// An HTTP/2 stream still sending a long body is not idle: its connection is not closed under
/// it, however long the body takes.
#[tokio::test]
async fn a_long_http2_body_is_not_cut_off_as_idle() {
    let origin = chunked_origin("line\n".into(), 8, Duration::from_millis(400)).await;
    let edge = Edge::start(&origin, &["--header-read-timeout", "1s"]).await;
    let answer = support::get_h2(edge.addr, "/slow").await;
    assert_eq!(
        answer.text(),
        "line\n".repeat(8),
        "cut off after {} lines",
        answer.text().lines().count()
    );
}

/// An origin streaming a page with pauses of several periods is not a client that stopped
/// reading: while the answer's body waits on the origin, the connection is not idle, over
/// HTTP/1.1 and HTTP/2 alike (an answer counts as waiting on the client only while its body
/// has bytes ready).
#[tokio::test]
async fn an_origin_pausing_for_several_periods_is_not_taken_for_a_stalled_client() {
    let origin = chunked_origin("line\n".into(), 3, Duration::from_millis(700)).await;
    let edge = Edge::start(&origin, &["--header-read-timeout", "200ms"]).await;
    let h1 = get(edge.addr, "/paused");
    let h2 = support::get_h2(edge.addr, "/paused");
    let (h1, h2) = tokio::join!(h1, h2);
    for answer in [h1, h2] {
        assert_eq!(answer.text(), "line\n".repeat(3), "{:?}", answer.headers);
    }
}

/// A slow reader of a large cached page is not idle: the page was handed to hyper at once,
/// but the connection is still sending it, however many periods that takes.
#[tokio::test]
async fn a_slow_reader_of_a_large_page_is_not_cut_off_as_idle() {
    const SIZE: usize = 24 * 1024 * 1024;
    let (origin, edge) = edge_with_big_page(SIZE).await;
    let mut stream = get_on_small_buffer(edge.addr, "/big").await;
    // About 4 MB/s: some 6 s for the page, several periods with the writes blocked.
    let mut received = 0usize;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let started = std::time::Instant::now();
    while received <= SIZE && started.elapsed() < Duration::from_secs(60) {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if received < 1024 {
                    head.extend_from_slice(&buf[..n.min(1024)]);
                }
                received += n;
            }
        }
        let due = Duration::from_secs_f64(received as f64 / 4e6);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
    assert!(
        received > SIZE,
        "the connection was cut after {received} of {SIZE} body bytes"
    );
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.contains("x-cache: hit"), "{head}");
    assert_eq!(origin.total(), 1);
}

/// A keep-alive connection gets a whole idle period after an answer that took longer than one
/// (found by review: it was closed at the next check, however soon after the answer).
#[tokio::test]
async fn a_keep_alive_connection_is_idle_a_whole_period_after_a_slow_answer() {
    let origin = Origin::start(|seen| {
        if seen.path == "/slow" {
            Reply::ok("slow")
                .cc("no-store")
                .delay(Duration::from_millis(1900))
        } else {
            Reply::ok("fast").cc("s-maxage=600")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &["--header-read-timeout", "1s"]).await;
    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    let head = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: {}\r\n\r\n", edge.addr);
    stream
        .write_all(head("/slow").as_bytes())
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).ends_with("slow") {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed during the slow answer");
        got.extend_from_slice(&buf[..n]);
    }
    // Well inside one period.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stream
        .write_all(head("/fast").as_bytes())
        .await
        .expect("write");
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(2)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "second request on the connection: {answer:?}"
    );
}

/// A client that stops reading its answer does not hold its connection slot forever: after two
/// periods with no byte going out, its connection is dropped.
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped() {
    const SIZE: usize = 8 * 1024 * 1024;
    let origin = big_page_origin(SIZE).await;
    let edge = Edge::start(
        &origin.url(),
        &[
            "--header-read-timeout",
            "1s",
            "--max-connections",
            "1",
            "--max-object-size",
            "16MiB",
        ],
    )
    .await;
    let _stalled = get_on_small_buffer(edge.addr, "/big").await;
    // Never reads. Its slot is the only one: a new client is refused until the edge lets go.
    let freed = slot_freed(edge.addr).await;
    assert!(
        freed,
        "a client that stopped reading kept its slot for 10 s"
    );
}

/// Shutdown does not wait out its whole deadline for a client still trickling its first request
/// head (found by review: hyper's graceful close waits for the head; the watchdog now drops
/// such a connection a period after the stop).
#[tokio::test]
async fn shutdown_does_not_wait_for_a_half_sent_request_head() {
    let origin = cached_origin().await;
    let mut edge = Edge::start(
        &origin.url(),
        &["--header-read-timeout", "1s", "--shutdown-timeout", "30s"],
    )
    .await;
    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    stream
        .write_all(format!("GET /fast HTTP/1.1\r\nhost: {}\r\n", edge.addr).as_bytes())
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    edge.shutdown();
    tokio::time::timeout(Duration::from_secs(10), &mut edge.task)
        .await
        .expect("the server exits within a few periods, not the 30 s deadline")
        .expect("serve task");
}

/// An HTTP/2 client that opens its flow-control window slowly gets a large page whole: the page
/// was handed to the HTTP/2 layer at once, and its bytes going out keep the connection from
/// being taken for idle (found by review: it was cut after two periods).
#[tokio::test]
async fn an_http2_reader_with_a_small_window_gets_the_whole_page() {
    use http_body_util::BodyExt;
    const SIZE: usize = 4 * 1024 * 1024;
    let (_origin, edge) = edge_with_big_page(SIZE).await;
    let stream = TcpStream::connect(edge.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let request = http::Request::builder()
        .uri(format!("http://{}/big", edge.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.headers()["x-cache"], "HIT");
    let mut body = response.into_body();
    // 64 KiB per 100 ms: some 6 s, several periods.
    let (mut received, mut since_pause) = (0usize, 0usize);
    let started = std::time::Instant::now();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            received += data.len();
            since_pause += data.len();
        }
        if since_pause >= 64 * 1024 {
            since_pause = 0;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        received,
        SIZE,
        "the page was cut off after {:?}",
        started.elapsed()
    );
}

/// An HTTP/2 client that never opens a flow-control window for its stream does not hold its
/// connection slot forever: its answer waits on the client as surely as one whose socket is no
/// longer read, and is dropped the same way (found by the soak: such connections stayed open
/// for good, the answer counted as in flight).
#[tokio::test]
async fn an_http2_client_that_opens_no_window_is_dropped() {
    let origin = cached_origin().await;
    let edge = Edge::start(
        &origin.url(),
        &["--header-read-timeout", "1s", "--max-connections", "1"],
    )
    .await;
    let literal = |name: &str, value: &str| {
        let mut field = vec![0u8, name.len() as u8];
        field.extend_from_slice(name.as_bytes());
        field.push(value.len() as u8);
        field.extend_from_slice(value.as_bytes());
        field
    };
    let authority = edge.addr.to_string();
    let block: Vec<u8> = [
        literal(":method", "GET"),
        literal(":scheme", "http"),
        literal(":authority", &authority),
        literal(":path", "/page"),
    ]
    .concat();
    // The preface, SETTINGS_INITIAL_WINDOW_SIZE = 0, and one GET on stream 1 (END_STREAM,
    // END_HEADERS).
    let mut request =
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00"
            .to_vec();
    request.extend_from_slice(&(block.len() as u32).to_be_bytes()[1..]);
    request.extend_from_slice(b"\x01\x05\x00\x00\x00\x01");
    request.extend_from_slice(&block);
    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    stream.write_all(&request).await.expect("write");
    // Never opens a window. Its slot is the only one: a new client is refused until the edge
    // lets go.
    let freed = slot_freed(edge.addr).await;
    assert!(
        freed,
        "an HTTP/2 client that opened no window kept its slot for 10 s"
    );
    drop(stream);
}

/// An HTTP/2 connection that never starts a request is idle however many PINGs or SETTINGS it
/// sends: their acknowledgements are not responses going out (found by review: counting every
/// byte written kept such connections forever).
#[tokio::test]
async fn http2_pings_and_settings_do_not_keep_an_idle_connection() {
    const PING: &[u8] = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00ABCDEFGH";
    const SETTINGS: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let origin = cached_origin().await;
    let edge = Edge::start(&origin.url(), &["--header-read-timeout", "1s"]).await;
    for frame in [PING, SETTINGS] {
        let stream = TcpStream::connect(edge.addr).await.expect("connect");
        let (mut from_edge, mut to_edge) = stream.into_split();
        to_edge
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .expect("preface");
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while matches!(from_edge.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        let started = std::time::Instant::now();
        // A frame every 400 ms, for up to 8 s: the edge must close within a few periods.
        while started.elapsed() < Duration::from_secs(8) && !reader.is_finished() {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let _ = to_edge.write_all(frame).await;
        }
        assert!(
            reader.is_finished(),
            "a connection sending only {} frames was kept 8 s",
            if frame == PING { "PING" } else { "SETTINGS" }
        );
    }
}

/// A client that stops reading an answer still streaming from the origin (uncacheable, so never
/// handed over whole) does not hold its slot forever either (found by review).
#[tokio::test]
async fn a_client_that_stops_reading_a_streamed_answer_is_dropped() {
    let origin = chunked_origin("x".repeat(0x10000), 1024, Duration::ZERO).await;
    let edge = Edge::start(
        &origin,
        &["--header-read-timeout", "1s", "--max-connections", "1"],
    )
    .await;
    let _stalled = get_on_small_buffer(edge.addr, "/stream").await;
    // Never reads. Its slot is the only one: a new client is refused until the edge lets go.
    let freed = slot_freed(edge.addr).await;
    assert!(
        freed,
        "a client that stopped reading a streamed answer kept its slot for 10 s"
    );
}

/// A raw origin that answers `202 accepted` as soon as a request head arrives, then keeps
/// reading the upload; it reports the body bytes it got and whether they ended with `END`.
async fn early_answer_origin() -> (String, tokio::sync::mpsc::UnboundedReceiver<(usize, bool)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let (report, reports) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let report = report.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let mut answered = false;
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got);
                    if !answered && text.contains("\r\n\r\n") {
                        answered = true;
                        let answer = "HTTP/1.1 202 Accepted\r\ncontent-length: 8\r\n\
                            cache-control: no-store\r\n\r\naccepted";
                        let _ = stream.write_all(answer.as_bytes()).await;
                    }
                    if text.contains("END") {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&got);
                let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
                let _ = report.send((body.matches('x').count(), body.contains("END")));
            });
        }
    });
    (origin, reports)
}

/// Sends the head of a `POST /upload` of `length` body bytes and reads the edge's answer: the
/// origin's early `202`, before any of the body went out.
async fn start_upload(addr: SocketAddr, length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!("POST /upload HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {length}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).ends_with("accepted") {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        let n = read.expect("the early answer in time").expect("read");
        assert!(n > 0, "closed before the early answer");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 202"));
    stream
}

/// Waits for `early_answer_origin`'s report: `bytes` of body, then `END`.
async fn assert_upload_arrived_whole(
    reports: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, bool)>,
    bytes: usize,
) {
    let report = tokio::time::timeout(Duration::from_secs(5), reports.recv()).await;
    let got = report
        .expect("the origin's report in time")
        .expect("a report");
    assert_eq!(got, (bytes, true), "upload as the origin got it");
}

/// An upload still coming in after the origin answered is not an idle connection: sent in
/// pieces over three watchdog periods, it reaches the origin whole (found by review: the
/// connection was cut one to two periods after the answer).
#[tokio::test]
async fn a_slow_upload_after_an_early_answer_reaches_the_origin_whole() {
    const PIECES: usize = 8;
    const PIECE: usize = 100;
    let (origin, mut reports) = early_answer_origin().await;
    let edge = Edge::start(&origin, &["--header-read-timeout", "1s"]).await;
    let mut stream = start_upload(edge.addr, PIECES * PIECE + 3).await;
    for _ in 0..PIECES {
        stream
            .write_all(&[b'x'; PIECE])
            .await
            .expect("the edge cut the upload");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let _ = stream.write_all(b"END").await;
    assert_upload_arrived_whole(&mut reports, PIECES * PIECE).await;
}

/// An upload that stops coming after an early answer does not hold its connection slot
/// forever: the connection is dropped like any idle one.
#[tokio::test]
async fn a_stalled_upload_after_an_early_answer_is_dropped() {
    let (origin, _reports) = early_answer_origin().await;
    let edge = Edge::start(
        &origin,
        &["--header-read-timeout", "1s", "--max-connections", "1"],
    )
    .await;
    let mut stream = start_upload(edge.addr, 1000).await;
    stream.write_all(&[b'x'; 100]).await.expect("write");
    // Sends nothing more. Its slot is the only one; the probe's GET reaches the raw origin,
    // which answers 202.
    let freed = slot_freed_for(edge.addr, b"HTTP/1.1 202").await;
    assert!(freed, "a stalled upload kept its slot for 10 s");
}

/// A request body fed from a channel: open until the sender goes.
struct Fed(tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>);

impl http_body::Body for Fed {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

/// Starts an HTTP/2 `POST /upload` (prior knowledge) whose body is fed through the returned
/// sender, from a client sending keep-alive PINGs every 400 ms, and waits for the origin's
/// early `202`. Also returns the client connection's task, which ends when the edge closes it.
async fn start_http2_upload(
    addr: SocketAddr,
) -> (
    tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut builder =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(400))
        .keep_alive_while_idle(true)
        .keep_alive_timeout(Duration::from_secs(30));
    let (mut sender, connection) = builder
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let (body, fed) = tokio::sync::mpsc::unbounded_channel();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/upload"))
        .body(Fed(fed))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .expect("the early answer in time")
        .expect("response");
    assert_eq!(response.status(), 202);
    (body, connection)
}

/// An HTTP/2 upload that stops after the origin's early answer is dropped like an HTTP/1.1 one,
/// even while its client sends keep-alive PINGs (found by review: PINGs are bytes read, and
/// reads counted as the upload coming in).
#[tokio::test]
async fn a_stalled_http2_upload_is_dropped_despite_pings() {
    let (origin, _reports) = early_answer_origin().await;
    let edge = Edge::start(&origin, &["--header-read-timeout", "1s"]).await;
    let (body, connection) = start_http2_upload(edge.addr).await;
    body.send(bytes::Bytes::from(vec![b'x'; 100]))
        .expect("send");
    // Nothing more on the stream, which stays open; only PINGs go out.
    let closed = tokio::time::timeout(Duration::from_secs(8), connection).await;
    assert!(closed.is_ok(), "a stalled upload was kept 8 s by PINGs");
    drop(body);
}

/// A slow HTTP/2 upload after the origin's early answer reaches the origin whole, like an
/// HTTP/1.1 one: its body bytes keep coming over three watchdog periods.
#[tokio::test]
async fn a_slow_http2_upload_after_an_early_answer_reaches_the_origin_whole() {
    const PIECES: usize = 8;
    const PIECE: usize = 100;
    let (origin, mut reports) = early_answer_origin().await;
    let edge = Edge::start(&origin, &["--header-read-timeout", "1s"]).await;
    let (body, _connection) = start_http2_upload(edge.addr).await;
    for _ in 0..PIECES {
        body.send(bytes::Bytes::from(vec![b'x'; PIECE]))
            .expect("send");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    body.send(bytes::Bytes::from_static(b"END")).expect("send");
    assert_upload_arrived_whole(&mut reports, PIECES * PIECE).await;
}
