//! Origin faults, each from a misbehaving origin written here with a raw TCP listener:
//! connection refused, reset mid-headers, reset mid-body, a body shorter than its
//! Content-Length, a hang before the first byte, a hang mid-body, invalid HTTP, a 5xx storm.
//! In every case nothing truncated is stored; a stored copy inside stale-if-error stands in;
//! otherwise a clear 502/504; and the proxy's file descriptors return to where they were.

mod support;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{get, send, send_h2, Edge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Fault {
    None,
    Refused,
    ResetInHeaders,
    ResetInBody,
    ShortBody,
    HangBeforeFirstByte,
    HangInBody,
    InvalidHttp,
    ServerError,
    /// A 503 whose body stalls after its first bytes.
    ServerErrorHangInBody,
}

const FAULTS: [Fault; 8] = [
    Fault::Refused,
    Fault::ResetInHeaders,
    Fault::ResetInBody,
    Fault::ShortBody,
    Fault::HangBeforeFirstByte,
    Fault::HangInBody,
    Fault::InvalidHttp,
    Fault::ServerError,
];

const GOOD: &str = "HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncache-control: s-maxage=1, stale-if-error=300\r\nconnection: close\r\n\r\ngood";
/// Cacheable head promising 100 bytes.
const HEAD_100: &str = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\ncache-control: s-maxage=600\r\nconnection: close\r\n\r\n";

/// An origin whose behaviour is switched at run time. `Refused` closes the listening socket.
struct RawOrigin {
    addr: std::net::SocketAddr,
    mode: Arc<AtomicU8>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RawOrigin {
    async fn start() -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mode = Arc::new(AtomicU8::new(Fault::None as u8));
        let shared = mode.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let fault = shared.load(Ordering::SeqCst);
                tokio::spawn(serve(stream, fault));
            }
        });
        RawOrigin {
            addr,
            mode,
            task: Some(task),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the behaviour; `Refused` stops listening for good.
    fn set(&mut self, fault: Fault) {
        self.mode.store(fault as u8, Ordering::SeqCst);
        if fault == Fault::Refused {
            if let Some(task) = self.task.take() {
                task.abort();
            }
        }
    }
}

async fn serve(mut stream: TcpStream, fault: u8) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let reply = match fault {
        f if f == Fault::ResetInHeaders as u8 => "HTTP/1.1 200 OK\r\ncontent-len".into(),
        f if f == Fault::ResetInBody as u8 || f == Fault::HangInBody as u8 => format!("{HEAD_100}0123456789"),
        f if f == Fault::ShortBody as u8 => format!("{HEAD_100}{}", "x".repeat(50)),
        f if f == Fault::HangBeforeFirstByte as u8 => String::new(),
        f if f == Fault::InvalidHttp as u8 => "SMTP READY, NOT HTTP\r\n\r\n".into(),
        f if f == Fault::ServerError as u8 => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 8\r\nconnection: close\r\n\r\noverload".into(),
        f if f == Fault::ServerErrorHangInBody as u8 => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 100\r\nconnection: close\r\n\r\nover".into(),
        _ => GOOD.into(),
    };
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.flush().await;
    if fault == Fault::ResetInHeaders as u8 || fault == Fault::ResetInBody as u8 {
        // RST instead of FIN.
        let _ = stream.set_zero_linger();
        drop(stream);
        return;
    }
    if fault == Fault::HangBeforeFirstByte as u8
        || fault == Fault::HangInBody as u8
        || fault == Fault::ServerErrorHangInBody as u8
    {
        // Hang until the proxy gives up and closes its end.
        let _ = tokio::time::timeout(Duration::from_secs(120), async {
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// The descriptor count is per process: the tests in this file take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .expect("/proc/self/fd")
}

/// One fault, against a fresh origin and proxy: first with no stored copy, then with one.
async fn scenario(fault: Fault) {
    let mut origin = RawOrigin::start().await;
    let edge = Edge::start(
        &origin.url(),
        &["--origin-timeout", "2s", "--origin-idle-timeout", "1s"],
    )
    .await;

    // A stored copy, then let it expire (s-maxage=1, no stale-while-revalidate).
    let stored = get(edge.addr, "/kept").await;
    assert_eq!((stored.status, stored.cache()), (200, "MISS"), "{fault:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    origin.set(fault);
    let uncached = get(edge.addr, "/new").await;
    let expected = if fault == Fault::HangBeforeFirstByte || fault == Fault::HangInBody {
        504
    } else if fault == Fault::ServerError {
        503
    } else {
        502
    };
    assert_eq!(uncached.status, expected, "{fault:?}: {}", uncached.text());
    let message = uncached.text();
    let clear = match fault {
        Fault::ServerError => message == "overload",
        // Names the time it waited (it said "within 0ns" for a body that stalled).
        Fault::HangBeforeFirstByte | Fault::HangInBody => {
            message.starts_with("504 Gateway Timeout: origin") && message.contains("within 2s")
        }
        _ => message.starts_with("502 Bad Gateway: origin"),
    };
    assert!(clear, "{fault:?}: unclear answer {message:?}");

    let stale = get(edge.addr, "/kept").await;
    assert_eq!(
        (stale.status, stale.cache(), stale.text().as_str()),
        (200, "STALE", "good"),
        "{fault:?}"
    );
    assert!(stale.header("cache-status").contains("stale"), "{fault:?}");

    // Nothing the fault produced was stored: once the origin recovers, both are fetched anew.
    if fault != Fault::Refused {
        origin.set(Fault::None);
        let recovered = get(edge.addr, "/new").await;
        assert_eq!(
            (
                recovered.status,
                recovered.cache(),
                recovered.text().as_str()
            ),
            (200, "MISS", "good"),
            "{fault:?}"
        );
    } else {
        let again = get(edge.addr, "/new").await;
        assert_eq!(again.status, 502, "{fault:?}");
    }
    let mut edge = edge;
    edge.shutdown();
    edge.task.await.expect("edge stops");
    if let Some(task) = origin.task.take() {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_fails_cleanly_and_leaks_nothing() {
    let _serial = SERIAL.lock().await;
    // Warm up the runtime's own descriptors before counting.
    scenario(Fault::ServerError).await;
    let before = open_fds();
    let tasks: Vec<_> = FAULTS.iter().map(|f| tokio::spawn(scenario(*f))).collect();
    for task in tasks {
        task.await.expect("scenario");
    }
    // Hanging origins are aborted by the proxy's timeouts; their sockets close with them.
    let settled = support::eventually(Duration::from_secs(15), || open_fds() <= before + 4).await;
    assert!(
        settled,
        "file descriptors: {before} before, {} after",
        open_fds()
    );
}

/// With a stored copy that may stand in (stale-if-error), a 5xx whose body stalls is not read:
/// the copy answers at once instead of after the origin timeout (60 s here; the client gives
/// up after 20).
#[tokio::test]
async fn a_stalling_error_page_does_not_hold_back_the_stale_copy() {
    let _serial = SERIAL.lock().await;
    let mut origin = RawOrigin::start().await;
    let edge = Edge::start(&origin.url(), &["--origin-timeout", "60s"]).await;
    assert_eq!(get(edge.addr, "/kept").await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(Fault::ServerErrorHangInBody);
    let stale = tokio::time::timeout(Duration::from_secs(20), get(edge.addr, "/kept"))
        .await
        .expect("the stored copy waited for the error page's body");
    assert_eq!(
        (stale.status, stale.cache(), stale.text().as_str()),
        (200, "STALE", "good")
    );
}

#[tokio::test]
async fn a_stream_stalling_mid_body_is_cut_off_not_held_forever() {
    let _serial = SERIAL.lock().await;
    let origin = RawOrigin::start().await;
    origin.mode.store(Fault::HangInBody as u8, Ordering::SeqCst);
    let edge = Edge::start(&origin.url(), &["--origin-idle-timeout", "1s"]).await;
    // POST is passed through, streamed: the client has the head before the body stalls.
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        send(edge.addr, "POST", "/stream", &[], "x"),
    )
    .await
    .expect("the client was left hanging");
    assert_eq!(response.status, 200);
    assert!(
        response.body.len() < 100,
        "got a full body from a stalled origin"
    );
}

/// An origin answering with both `Content-Length` and `Transfer-Encoding: chunked` (the length
/// wrong): the chunked framing wins (RFC 9112 section 6.3) and clients get the real length,
/// stored or passed through. Passing the origin's length on made keep-alive clients read the
/// rest of the body as the next response.
#[tokio::test]
async fn a_length_that_came_with_chunked_framing_is_not_passed_on() {
    let addr = support::scripted_origin(|request| {
        let cc = if request.contains("/stored") {
            "s-maxage=60"
        } else {
            "no-store"
        };
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\ncache-control: {cc}\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
    })
    .await;
    let edge = Edge::start(&format!("http://{addr}"), &[]).await;
    for path in ["/stored", "/stored", "/passed"] {
        let answer = get(edge.addr, path).await;
        assert_eq!(answer.text(), "hello", "{path}");
        let length = answer.header("content-length");
        assert!(
            length.is_empty() || length == "5",
            "{path}: content-length {length}"
        );
    }
    let head = send(edge.addr, "HEAD", "/stored", &[], "").await;
    assert_eq!((head.cache(), head.header("content-length")), ("HIT", "5"));
}

/// Answers the proxy cannot pass on intact are a clear 502 and stored nowhere: a `101` nobody
/// asked for (the client would get a connection switched to nothing), a transfer coding other
/// than `chunked` (undone nowhere, it would reach clients as a corrupt body), and a `304` to a
/// fetch without conditions (a client that sent none would get an empty page).
#[tokio::test]
async fn answers_that_cannot_be_passed_on_intact_are_502() {
    let addr = support::scripted_origin(|request| {
        let answer = if request.contains("/switch") {
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: foo\r\nconnection: upgrade\r\n\r\n"
        } else if request.contains("/not-modified") {
            "HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\nconnection: close\r\n\r\n"
        } else {
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncache-control: s-maxage=60\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        };
        answer.to_string()
    })
    .await;
    let edge = Edge::start(&format!("http://{addr}"), &[]).await;
    for (path, says) in [
        ("/switch", "101"),
        ("/gzip", "transfer coding"),
        ("/not-modified", "304"),
    ] {
        for _ in 0..2 {
            let answer = get(edge.addr, path).await;
            assert_eq!(answer.status, 502, "{path}: {}", answer.text());
            assert!(answer.text().contains(says), "{path}: {}", answer.text());
        }
    }
}

/// A HEAD whose GET length is not known here (a chunked page passed on unstored, a HEAD
/// passed through to an origin that sent no length) gets no `Content-Length`, not a wrong 0
/// (RFC 9110 section 8.6), over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn a_head_of_unknown_length_gets_no_content_length() {
    let addr = support::scripted_origin(|request| {
        if request.starts_with("HEAD") {
            "HTTP/1.1 200 OK\r\ncache-control: private\r\nconnection: close\r\n\r\n".to_string()
        } else {
            "HTTP/1.1 200 OK\r\ncache-control: private\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_string()
        }
    })
    .await;
    let edge = Edge::start(&format!("http://{addr}"), &[]).await;
    let target = format!("http://{}/private", edge.addr);
    for (what, answer) in [
        // Asked as a GET for the cache; private, so passed on without its body.
        ("miss", send(edge.addr, "HEAD", "/private", &[], "").await),
        // Bypassed: the HEAD itself goes to the origin.
        (
            "bypass",
            send(
                edge.addr,
                "HEAD",
                "/private",
                &[("cookie", "__prerender_bypass=1")],
                "",
            )
            .await,
        ),
        ("h2 miss", send_h2(edge.addr, "HEAD", &target, None).await),
    ] {
        assert_eq!(answer.status, 200, "{what}");
        assert!(answer.body.is_empty(), "{what}");
        assert!(
            answer.headers.get("content-length").is_none(),
            "{what}: {:?}",
            answer.headers
        );
    }
}
