//! The HTTP/1.1 wire at the public listener and what reaches the origin: request framing,
//! request targets, and requests the cache passes on (form posts, ranges, bypass cookies).

mod support;

use support::*;

/// A request the cache does not handle goes to the origin at its normalised path, as a fetch
/// for the cache does: with an origin base path (`--origin http://app:3000/app`), a raw
/// `/../admin` (or `%2e%2e`) would reach `/app/../admin`, a page outside the app.
#[tokio::test]
async fn passed_requests_cannot_climb_out_of_the_origin_base_path() {
    // Saying it serves ranges, so the range is asked of it again (see below).
    let origin = Origin::start(|r| {
        Reply::ok(format!("{} {}", r.method, r.target)).header("accept-ranges", "bytes")
    })
    .await;
    let edge = Edge::start(&format!("{}/app", origin.url()), &[]).await;
    let requests = [
        // A form post.
        "POST /../admin?x=1 HTTP/1.1\r\nhost: site.example\r\ncontent-length: 0\r\n",
        // A range of a page that cannot be stored: asked for whole, then as the range.
        "GET /%2e%2e/admin HTTP/1.1\r\nhost: site.example\r\nrange: bytes=0-1\r\n",
        // Draft mode.
        "GET /a/../../admin HTTP/1.1\r\nhost: site.example\r\ncookie: __prerender_bypass=1\r\n",
        // A cached GET, for comparison.
        "GET /a/%2E%2E/../admin HTTP/1.1\r\nhost: site.example\r\n",
    ];
    for request in requests {
        let answer = raw(edge.addr, &format!("{request}connection: close\r\n\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{request:?}: {answer}");
    }
    let targets: Vec<(String, String)> = origin
        .seen()
        .iter()
        .map(|r| (r.method.to_string(), r.target.clone()))
        .collect();
    let expected = [
        ("POST", "/app/admin?x=1"),
        ("GET", "/app/admin"),
        ("GET", "/app/admin"),
        ("GET", "/app/admin"),
        ("GET", "/app/admin"),
    ]
    .map(|(method, target)| (method.to_string(), target.to_string()));
    assert_eq!(targets, expected);
}

/// RFC 9112 section 6.1: only `chunked` is undone on the way in, and `Transfer-Encoding` is
/// hop-by-hop. A body sent `gzip, chunked` forwarded without its coding would be taken by the
/// origin for plain content: 501, the origin never hears of it. Plain `chunked` still passes.
#[tokio::test]
async fn a_request_body_in_a_transfer_coding_other_than_chunked_is_refused() {
    let origin = Origin::start(|r| Reply::ok(format!("got {:?}", r.body))).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let coded = raw(
        edge.addr,
        "POST /form HTTP/1.1\r\nhost: site.example\r\ntransfer-encoding: gzip, chunked\r\n\
         connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(coded.starts_with("HTTP/1.1 501"), "{coded}");
    assert!(coded.contains("\"gzip\""), "{coded}");
    assert_eq!(origin.total(), 0);
    let chunked = raw(
        edge.addr,
        "POST /form HTTP/1.1\r\nhost: site.example\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");
    assert!(chunked.ends_with("got b\"abc\""), "{chunked}");
    assert_eq!(origin.total(), 1);
}

/// A lax client may send a path's UTF-8 bytes raw (`GET /café`), where a browser sends
/// `/caf%C3%A9`: both are one page, stored once, and a purge of `/café` (as a person writes
/// it) reaches what either stored. Raw, it was a key of its own no page purge could reach,
/// served stale until it expired.
#[tokio::test]
async fn a_path_sent_raw_is_the_same_page_as_its_escaped_form_and_purges_reach_it() {
    let origin =
        Origin::start(|r| Reply::ok(format!("{} #{}", r.target, r.count)).cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let raw_request = "GET /caf\u{e9} HTTP/1.1\r\nhost: site.example\r\nconnection: close\r\n\r\n";
    let first = raw(edge.addr, raw_request).await;
    assert!(first.contains("x-cache: MISS"), "{first}");
    assert!(first.ends_with("/caf%C3%A9 #1"), "{first}");
    let escaped = get_with(edge.addr, "/caf%C3%A9", &[("host", "site.example")]).await;
    assert_eq!(
        (escaped.cache(), escaped.text().as_str()),
        ("HIT", "/caf%C3%A9 #1")
    );
    let purged = revalidate(
        edge.addr,
        serde_json::json!({ "secret": SECRET, "paths": ["/caf\u{e9}"] }),
    )
    .await;
    assert_eq!(purged.json()["evicted"], 1, "{}", purged.text());
    let again = raw(edge.addr, raw_request).await;
    assert!(again.contains("x-cache: MISS"), "{again}");
    assert!(again.ends_with("/caf%C3%A9 #2"), "{again}");
}

/// A `Connection` field is read whatever else it holds: with a non-ASCII byte in one of its
/// names, it still names `x-hop`, which must not reach the origin.
#[tokio::test]
async fn a_connection_field_is_read_past_a_non_ascii_byte() {
    let origin = Origin::start(|_| Reply::ok("page")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let answer = raw(
        edge.addr,
        "GET /hop HTTP/1.1\r\nhost: site.example\r\nconnection: x-caf\u{e9}, x-hop\r\n\
         x-hop: secret\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        !seen[0].headers.contains_key("x-hop"),
        "{:?}",
        seen[0].headers
    );
}

/// A request body that breaks its own framing (a chunk size that overflows, a chunk longer
/// than it said) is the client's fault: 400, and no origin error counted. It was a 502 "origin
/// sent an invalid response" and an `isr_edge_origin_errors_total{kind="protocol"}`: any
/// client could make a healthy origin look broken on the dashboards.
#[tokio::test]
async fn a_malformed_request_body_is_a_400_not_an_origin_error() {
    let origin = Origin::start(|_| Reply::ok("done")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for body in ["ffffffffffffffffff\r\nabc\r\n", "3\r\nabcdef\r\n0\r\n\r\n"] {
        let answer = raw(
            edge.addr,
            &format!(
                "POST /form HTTP/1.1\r\nhost: site.example\r\ntransfer-encoding: chunked\r\n\
                 connection: close\r\n\r\n{body}"
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{body:?}: {answer}");
    }
    let text = metrics_text(&edge).await;
    for kind in ["connect", "timeout", "protocol", "body", "status"] {
        let sample = format!("isr_edge_origin_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(metric(&text, &sample).unwrap_or(0.0), 0.0, "{sample}");
    }
}

/// RFC 9112 section 3.2.3: the authority-form target (`host:port`, no path) is for CONNECT
/// only. `GET evil.example:80` was read as the page `/` of `evil.example`, fetched and
/// stored; a form post so targeted purged that page. 400, the origin never asked.
#[tokio::test]
async fn the_authority_form_is_refused_but_for_connect() {
    let origin = Origin::start(|_| Reply::ok("page").cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for request in [
        "GET site.example:80 HTTP/1.1\r\nhost: site.example\r\n",
        "HEAD site.example:80 HTTP/1.1\r\nhost: site.example\r\n",
        "POST site.example:80 HTTP/1.1\r\nhost: site.example\r\ncontent-length: 0\r\n",
    ] {
        let answer = raw(edge.addr, &format!("{request}connection: close\r\n\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{request:?}: {answer}");
    }
    let connect = raw(
        edge.addr,
        "CONNECT site.example:443 HTTP/1.1\r\nhost: site.example:443\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(connect.starts_with("HTTP/1.1 405"), "{connect}");
    assert_eq!(origin.total(), 0);
}

/// A TRACE echoes the request back, cookies and credentials included (cross-site tracing): it
/// is refused, as nginx does, and never reaches the origin.
#[tokio::test]
async fn trace_is_refused_and_not_passed_on() {
    let origin = Origin::start(|_| Reply::ok("echo")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let answer = raw(
        edge.addr,
        "TRACE /a HTTP/1.1\r\nhost: site.example\r\ncookie: session=secret\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("\r\nallow: "),
        "{answer}"
    );
    assert!(!answer.contains("secret"), "{answer}");
    assert_eq!(origin.total(), 0);
}

/// An absolute target in a scheme other than http(s) names nothing the origin serves: read as
/// http it was fetched and stored as that page.
#[tokio::test]
async fn a_target_in_another_scheme_is_refused() {
    let origin = Origin::start(|_| Reply::ok("page").cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for target in [
        "ftp://site.example/x",
        "ws://site.example/x",
        "file://site.example/x",
    ] {
        let answer = raw(
            edge.addr,
            &format!("GET {target} HTTP/1.1\r\nhost: site.example\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
    }
    let http = raw(
        edge.addr,
        "GET http://site.example/x HTTP/1.1\r\nhost: site.example\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(http.starts_with("HTTP/1.1 200"), "{http}");
    assert_eq!(origin.total(), 1);
}

/// RFC 9110 section 7.6.2: an OPTIONS with `Max-Forwards: 0` is answered here; with more hops
/// left it reaches the origin with one fewer.
#[tokio::test]
async fn options_honours_max_forwards() {
    let origin = Origin::start(|r| {
        let hops = r
            .headers
            .get("max-forwards")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        Reply::ok(format!("hops {hops}"))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let here = raw(
        edge.addr,
        "OPTIONS /a HTTP/1.1\r\nhost: site.example\r\nmax-forwards: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(here.starts_with("HTTP/1.1 200"), "{here}");
    assert!(here.to_ascii_lowercase().contains("\r\nallow: "), "{here}");
    assert_eq!(origin.total(), 0, "answered without the origin");
    let on = raw(
        edge.addr,
        "OPTIONS /a HTTP/1.1\r\nhost: site.example\r\nmax-forwards: 3\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(on.ends_with("hops 2"), "{on}");
    let plain = raw(
        edge.addr,
        "OPTIONS /a HTTP/1.1\r\nhost: site.example\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(plain.ends_with("hops none"), "{plain}");
}

/// A request body that stops arriving is the client's fault, as a malformed one is: when the
/// origin timeout runs out while the origin is still waiting for the client's next bytes, the
/// answer is a 408 and no origin timeout is counted (any client could otherwise make a healthy
/// origin look slow on the dashboards by stalling an upload). An origin that does not answer a
/// request it has whole is still a 504 counted against it.
#[tokio::test]
async fn a_stalled_request_body_is_a_408_not_an_origin_timeout() {
    let origin = Origin::start(|r| {
        Reply::ok("done").delay(std::time::Duration::from_secs(if r.path == "/slow" {
            3
        } else {
            0
        }))
    })
    .await;
    let edge = Edge::start(&origin.url(), &["--origin-timeout", "1s"]).await;
    // Ten bytes announced, three sent.
    let stalled = raw(
        edge.addr,
        "POST /form HTTP/1.1\r\nhost: site.example\r\ncontent-length: 10\r\n\
         connection: close\r\n\r\nabc",
    )
    .await;
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    let text = metrics_text(&edge).await;
    let timeouts = "isr_edge_origin_errors_total{kind=\"timeout\"}";
    assert_eq!(metric(&text, timeouts).unwrap_or(0.0), 0.0, "{timeouts}");

    let slow = raw(
        edge.addr,
        "POST /slow HTTP/1.1\r\nhost: site.example\r\ncontent-length: 3\r\n\
         connection: close\r\n\r\nabc",
    )
    .await;
    assert!(slow.starts_with("HTTP/1.1 504"), "{slow}");
    let text = metrics_text(&edge).await;
    assert_eq!(metric(&text, timeouts), Some(1.0), "{timeouts}");
}

/// The other side of the 408: an origin that stops reading an upload the client sends as fast
/// as it can leaves the proxy waiting on the origin, not the client. 504, counted against it.
#[tokio::test]
async fn an_origin_that_stops_reading_an_upload_is_still_a_504() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = listener.local_addr().expect("addr");
    let stuck = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            // The head, a little of the body, then nothing: never read again, never answer.
            let _ = stream.read(&mut [0u8; 1024]).await;
            held.push(stream);
        }
    });
    let edge = Edge::start(&format!("http://{origin}"), &["--origin-timeout", "1s"]).await;
    let (mut from_edge, mut to_edge) = tokio::net::TcpStream::connect(edge.addr)
        .await
        .expect("connect")
        .into_split();
    let length = 9_000_000;
    let upload = tokio::spawn(async move {
        let head = format!(
            "POST /upload HTTP/1.1\r\nhost: site.example\r\ncontent-length: {length}\r\n\
             connection: close\r\n\r\n"
        );
        to_edge.write_all(head.as_bytes()).await.expect("head");
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0;
        while sent < length {
            let n = chunk.len().min(length - sent);
            if to_edge.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            sent += n;
        }
    });
    // The head is enough: the connection stays open while the rest of the upload drains.
    let mut received = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buffer = [0u8; 1024];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            match from_edge.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    upload.abort();
    stuck.abort();
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    let text = metrics_text(&edge).await;
    let timeouts = "isr_edge_origin_errors_total{kind=\"timeout\"}";
    assert_eq!(metric(&text, timeouts), Some(1.0), "{timeouts}");
}

/// An upload that keeps coming is not cut by the origin timeout: the origin is waiting on the
/// client, not the other way round. The timeout counts from the last bytes forwarded, so a
/// 10 MiB form post over a slow link is not a 408 that says its body stopped arriving.
#[tokio::test]
async fn an_upload_slower_than_the_origin_timeout_still_reaches_the_origin() {
    use tokio::io::AsyncWriteExt;
    let origin = Origin::start(|r| Reply::ok(format!("got {} bytes", r.body.len()))).await;
    let edge = Edge::start(&origin.url(), &["--origin-timeout", "2s"]).await;
    let mut stream = tokio::net::TcpStream::connect(edge.addr)
        .await
        .expect("connect");
    let (pieces, piece) = (16, [b'x'; 8]);
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: site.example\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        pieces * piece.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    // Twice the origin timeout in all, never more than an eighth of it between two pieces.
    for _ in 0..pieces {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        // An answer before the body is whole closes the connection: read it below.
        if stream.write_all(&piece).await.is_err() {
            break;
        }
    }
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("got 128 bytes"), "{answer}");
}

/// Trailers pass through a request the cache does not handle: the client's `TE: trailers`
/// reaches the origin (which may send trailers only then, as hyper does), and the origin's
/// `Trailer` field reaches the client (an HTTP/1.1 server sends only the trailers it names).
/// Both were removed as hop-by-hop, and an HTTP/1.1 client never got a trailer.
#[tokio::test]
async fn trailers_reach_a_client_that_accepts_them() {
    use bytes::Bytes;
    use http_body_util::BodyExt;
    let origin = hyper_origin(|_| async {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
        let body = WithTrailers(Some(Bytes::from("body")), Some(trailers));
        http::Response::builder()
            .header("trailer", "x-checksum")
            .body(body)
            .expect("response")
    })
    .await;
    let edge = Edge::start(&origin, &[]).await;
    let stream = tokio::net::TcpStream::connect(edge.addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let request = http::Request::post("/report")
        .header("host", "site.example")
        .header("te", "trailers")
        .body(http_body_util::Full::new(Bytes::from("x")))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    assert_eq!(collected.to_bytes(), "body");
    assert_eq!(
        trailers.get("x-checksum").map(|v| v.as_bytes()),
        Some(&b"abc"[..])
    );
}

/// A request body's trailer fields get the hygiene of its head: a client naming
/// `X-Forwarded-Host` or `x-middleware-subrequest` in `Trailer` sent them after the body, and
/// they reached the origin, past the checks that keep them out of the head. Other trailers (a
/// checksum) still pass.
#[tokio::test]
async fn request_trailers_cannot_carry_what_the_head_may_not() {
    use http_body_util::BodyExt;
    let origin = hyper_origin(|request| async {
        let collected = request.into_body().collect().await.expect("request body");
        let mut names: Vec<String> = collected
            .trailers()
            .map(|t| t.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        names.sort();
        let answer = format!("trailers: {}", names.join(" "));
        http::Response::new(http_body_util::Full::new(bytes::Bytes::from(answer)))
    })
    .await;
    let edge = Edge::start(&origin, &[]).await;
    let answer = raw(
        edge.addr,
        "POST /form HTTP/1.1\r\nhost: site.example\r\ntransfer-encoding: chunked\r\n\
         trailer: x-checksum, x-forwarded-host, x-middleware-subrequest\r\n\
         connection: close\r\n\r\n\
         4\r\nabcd\r\n0\r\nx-checksum: abc\r\nx-forwarded-host: evil.example\r\n\
         x-middleware-subrequest: middleware\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("trailers: x-checksum"), "{answer}");
}

/// An origin answering every request with `answer`, on hyper directly: for what
/// `support::Origin` cannot do (trailers either way).
async fn hyper_origin<F, Fut, B>(answer: F) -> String
where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = http::Response<B>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind origin");
    let origin = format!("http://{}", listener.local_addr().expect("origin address"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            let service = hyper::service::service_fn(move |request| {
                let answer = answer.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(request).await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    origin
}

/// A body of one data frame, then trailers.
struct WithTrailers(Option<bytes::Bytes>, Option<http::HeaderMap>);

impl http_body::Body for WithTrailers {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let frame = match self.0.take() {
            Some(data) => Some(http_body::Frame::data(data)),
            None => self.1.take().map(http_body::Frame::trailers),
        };
        std::task::Poll::Ready(frame.map(Ok))
    }
}

/// The URI limit holds for a path as the origin gets it: one sent as raw UTF-8 is escaped to
/// three bytes a byte, and its escaped form is what must fit (a long raw path otherwise passed
/// the limit and then could not be sent: a 502 blaming the origin).
#[tokio::test]
async fn the_uri_limit_counts_a_raw_path_as_it_is_escaped() {
    let origin = Origin::start(|_| Reply::ok("page").cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &["--max-uri-length", "1KiB"]).await;
    let request = |path: String| {
        format!("GET /{path} HTTP/1.1\r\nhost: site.example\r\nconnection: close\r\n\r\n")
    };
    // 800 bytes raw, 2,400 escaped.
    let long = raw(edge.addr, &request("\u{e9}".repeat(400))).await;
    assert!(long.starts_with("HTTP/1.1 414"), "{long}");
    let escaped = raw(edge.addr, &request("%C3%A9".repeat(400))).await;
    assert!(escaped.starts_with("HTTP/1.1 414"), "{escaped}");
    assert_eq!(origin.total(), 0);
    // 200 bytes raw, 600 escaped.
    let short = raw(edge.addr, &request("\u{e9}".repeat(100))).await;
    assert!(short.starts_with("HTTP/1.1 200"), "{short}");
}

/// An HTTP/1.0 request may name no host: the origin gets its own authority as `Host` (what
/// the origin URL names), not an empty `Host` and `X-Forwarded-Host`.
#[tokio::test]
async fn a_request_without_a_host_reaches_the_origin_under_the_origin_s_own() {
    let origin = Origin::start(|_| Reply::ok("page").cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let answer = raw(edge.addr, "GET /hostless HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let seen = origin.seen();
    let asked = seen.last().expect("the origin was asked");
    let authority = origin.url().trim_start_matches("http://").to_string();
    assert_eq!(
        asked.headers.get("host").map(|v| v.to_str().unwrap_or("")),
        Some(authority.trim_end_matches('/'))
    );
    assert!(asked.headers.get("x-forwarded-host").is_none());
}
