//! Test harness: a scriptable origin (a real hyper server on 127.0.0.1:0 that counts requests),
//! the real proxy started in-process on port 0 with real flags, and a plain HTTP client that
//! opens one connection per request (HTTP/1.1 or h2c).
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A secret long enough not to trigger the weak-secret warning.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// What the scripted origin sees of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query as received.
    pub target: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// 1 for the first request to this path (query included), 2 for the second, ...
    pub count: usize,
}

impl Seen {
    /// Whether the request accepts gzip (`Accept-Encoding` lists it).
    pub fn accepts_gzip(&self) -> bool {
        self.headers
            .get_all("accept-encoding")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|coding| coding.trim().eq_ignore_ascii_case("gzip"))
    }
}

/// What the scripted origin answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    /// `Cache-Control` shortcut.
    pub fn cc(self, value: &str) -> Reply {
        self.header("cache-control", value)
    }
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
    /// `Content-Encoding: gzip` when `gzip`, as an origin compressing for a client does.
    pub fn gzipped_if(self, gzip: bool) -> Reply {
        if gzip {
            self.header("content-encoding", "gzip")
        } else {
            self
        }
    }
    /// `gzipped` (said to be gzip) to a request accepting gzip, else `plain`: an origin that
    /// compresses for the clients that ask.
    pub fn gzip_or_plain(request: &Seen) -> Reply {
        let gzip = request.accepts_gzip();
        Reply::ok(if gzip { "gzipped" } else { "plain" }).gzipped_if(gzip)
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

pub struct Origin {
    pub addr: SocketAddr,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<InFlight>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// Requests being answered now (from the handler's call to the end of the reply's delay), and
/// the most there ever were at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// One request counted in flight until dropped (answered, or its connection gone).
struct Answering(Arc<InFlight>);

impl Answering {
    fn start(in_flight: &Arc<InFlight>) -> Answering {
        let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        in_flight.max.fetch_max(now, Ordering::SeqCst);
        Answering(in_flight.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Origin {
    /// Starts an origin answering every request with `handler`.
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let in_flight: Arc<InFlight> = Arc::default();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (c, s, f) = (counts.clone(), seen.clone(), in_flight.clone());
        tokio::spawn(async move {
            let mut accept_stopped = stopped.clone();
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    _ = accept_stopped.changed() => return,
                };
                let (handler, counts, seen, in_flight) =
                    (handler.clone(), c.clone(), s.clone(), f.clone());
                let mut connection_stopped = stopped.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (handler, counts, seen, in_flight) = (
                            handler.clone(),
                            counts.clone(),
                            seen.clone(),
                            in_flight.clone(),
                        );
                        async move {
                            let answering = Answering::start(&in_flight);
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let target = parts
                                .uri
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            let count = {
                                let mut counts = counts.lock().expect("counts");
                                let n = counts.entry(target.clone()).or_insert(0);
                                *n += 1;
                                *n
                            };
                            let request = Seen {
                                method: parts.method,
                                path: parts.uri.path().to_string(),
                                target,
                                headers: parts.headers,
                                body,
                                count,
                            };
                            seen.lock().expect("seen").push(request.clone());
                            let reply = handler(&request);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            drop(answering);
                            let mut response = Response::new(Full::new(reply.body));
                            *response.status_mut() =
                                StatusCode::from_u16(reply.status).expect("status");
                            for (k, v) in reply.headers {
                                response.headers_mut().append(
                                    HeaderName::from_bytes(k.as_bytes()).expect("name"),
                                    HeaderValue::from_bytes(v.as_bytes()).expect("value"),
                                );
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    // A stopped origin drops its open connections too, like a crashed process.
                    tokio::select! {
                        _ = connection => {}
                        _ = connection_stopped.changed() => {}
                    }
                });
            }
        });
        Origin {
            addr,
            counts,
            seen,
            in_flight,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received for this path-and-query.
    pub fn count(&self, target: &str) -> usize {
        self.counts
            .lock()
            .expect("counts")
            .get(target)
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.counts.lock().expect("counts").values().sum()
    }

    /// The most requests this origin was answering at once (each counted from its arrival to
    /// the end of its reply's delay).
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.max.load(Ordering::SeqCst)
    }

    /// Requests being answered now (until the end of their reply's delay, or their connection
    /// is gone).
    pub fn in_flight_now(&self) -> usize {
        self.in_flight.now.load(Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    /// Stops the origin: no new connections, open ones are dropped.
    pub fn stop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The proxy under test, in-process, on an ephemeral port.
pub struct Edge {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); `None` with `--admin-listen off`.
    pub admin: Option<SocketAddr>,
    pub app_shutdown: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Edge {
    /// Starts the proxy in front of `origin` with `SECRET` configured and extra flags.
    pub async fn start(origin: &str, args: &[&str]) -> Edge {
        Edge::start_with_secret(origin, args, Some(SECRET)).await
    }

    pub async fn start_with_secret(origin: &str, args: &[&str], secret: Option<&str>) -> Edge {
        let mut argv = vec!["isr-edge", "--origin", origin];
        // Many proxies share one test process: each gets its own ephemeral admin port.
        if !args.contains(&"--admin-listen") {
            argv.extend_from_slice(&["--admin-listen", "127.0.0.1:0"]);
        }
        argv.extend_from_slice(args);
        let config = isr_edge::config::Config::from_args(argv, secret.map(str::to_string))
            .expect("valid flags");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind edge");
        let addr = listener.local_addr().expect("edge addr");
        let admin_listener = match config.admin_listen {
            Some(admin) => Some(TcpListener::bind(admin).await.expect("bind admin")),
            None => None,
        };
        let admin = admin_listener
            .as_ref()
            .map(|l| l.local_addr().expect("admin addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            isr_edge::serve_with_admin(config, listener, admin_listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        Edge {
            addr,
            admin,
            app_shutdown: Some(stop),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Starts graceful shutdown; await `task` to see it finish.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.app_shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// `X-Cache`.
    pub fn cache(&self) -> &str {
        self.header("x-cache")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on a fresh HTTP/1.1 connection to `addr`.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let stream = TcpStream::connect(addr).await.expect("connect");
    // As a browser reads heads: more than hyper's default of 100 fields.
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_headers(512)
        .handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = Request::new(Full::new(body.into()));
    *request.method_mut() = Method::from_bytes(method.as_bytes()).expect("method");
    *request.uri_mut() = path.parse().expect("path");
    let has_host = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
    if !has_host {
        request.headers_mut().insert(
            "host",
            HeaderValue::from_str(&addr.to_string()).expect("host"),
        );
    }
    for (k, v) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            // Bytes, not text: a value may carry obs-text (UTF-8 in a cookie), as browsers send.
            HeaderValue::from_bytes(v.as_bytes()).expect("value"),
        );
    }
    collect(sender.send_request(request).await.expect("response")).await
}

async fn collect(response: Response<Incoming>) -> Resp {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    send(addr, "GET", path, &[], Bytes::new()).await
}

pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    send(addr, "GET", path, headers, Bytes::new()).await
}

/// One request over HTTP/2 with prior knowledge (h2c).
pub async fn get_h2(addr: SocketAddr, path: &str) -> Resp {
    send_h2(addr, "GET", &format!("http://{addr}{path}"), None).await
}

/// One request over HTTP/2 (h2c) on a fresh connection: an absolute `target`'s authority is
/// sent as `:authority`, and `host`, if any, as a `Host` field besides. A stream the server
/// resets (a body after a HEAD's head, say) fails the test.
pub async fn send_h2(addr: SocketAddr, method: &str, target: &str, host: Option<&str>) -> Resp {
    send_h2_with(addr, method, target, host, &[]).await
}

/// [`send_h2`] with more header fields, each sent as its own field (as browsers send each
/// cookie of `Cookie` over HTTP/2).
pub async fn send_h2_with(
    addr: SocketAddr,
    method: &str,
    target: &str,
    host: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(target);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::new())).expect("request");
    let (parts, body) = sender
        .send_request(request)
        .await
        .expect("response")
        .into_parts();
    let body = body
        .collect()
        .await
        .expect("a clean end of stream, no reset")
        .to_bytes();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// POSTs a JSON body to the revalidation endpoint.
pub async fn revalidate(addr: SocketAddr, body: serde_json::Value) -> Resp {
    send(
        addr,
        "POST",
        "/api/revalidate",
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// The proxy's `/metrics` text (from its admin listener).
pub async fn metrics_text(edge: &Edge) -> String {
    let admin = edge
        .admin
        .expect("admin listener on (do not pass --admin-listen off)");
    let response = get(admin, "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.text());
    // The text is OpenMetrics; labelled as Prometheus 0.0.4 text, its counters read as untyped.
    assert_eq!(
        response.header("content-type"),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    response.text()
}

/// The value of one sample in Prometheus text, e.g. `isr_edge_requests_total{cache="hit"}`;
/// `None` when the sample is absent.
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(sample)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

/// One request over its own connection, read until the server closes it.
pub async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    read_until_closed(&mut stream).await
}

/// Everything the server sends on `stream` until it closes the connection.
pub async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut received),
    )
    .await
    .expect("the server closes the connection")
    .expect("read");
    String::from_utf8_lossy(&received).into_owned()
}

/// An origin that writes `answer(request head)` byte for byte on each connection, then keeps
/// it open a moment (a close right after could reach the proxy before it read the answer).
pub async fn scripted_origin(answer: fn(&str) -> String) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let n = tokio::io::AsyncReadExt::read(&mut stream, &mut request)
                    .await
                    .unwrap_or(0);
                let reply = answer(&String::from_utf8_lossy(&request[..n]));
                let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, reply.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            });
        }
    });
    addr
}
