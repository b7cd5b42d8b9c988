//! Transport only: the accept loop, HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one port,
//! header-read timeout, idle connections, the worker threads, and graceful shutdown. No HTTP
//! semantics live here.

use std::convert::Infallible;
use std::future::Future;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::Response;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::app::App;
use crate::body::{Answer, Body, BodyError};

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How long in-flight requests may run after shutdown starts.
    pub shutdown_timeout: Duration,
    /// A client must send its request head within this time. hyper starts this clock whenever
    /// it waits for a request head, so it is also the idle keep-alive timeout.
    pub header_read_timeout: Duration,
    /// Largest request head; larger ones get 431 (HTTP/1.1) or a stream reset (HTTP/2).
    pub max_header_size: usize,
    /// Connections served at once; more are answered 503 and closed at once.
    pub max_connections: usize,
    /// Event-loop threads accepting and serving connections (at least 1).
    pub workers: usize,
}

thread_local! {
    /// The worker this thread runs; 0 on threads that are not worker threads (worker 0 is the
    /// caller's task, wherever its runtime runs it).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The worker running on this thread, for per-worker resources such as origin pools.
pub fn current_worker() -> usize {
    WORKER.with(std::cell::Cell::get)
}

/// The shortest `--header-read-timeout` accepted (the configuration refuses less).
pub const MIN_HEADER_READ_TIMEOUT: Duration = Duration::from_millis(100);

/// What a connection over `--max-connections` gets before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
    retry-after: 1\r\ncontent-type: text/plain\r\ncontent-length: 46\r\n\r\n\
    503 Service Unavailable: too many connections\n";

/// Connections being told 503 at once, all workers together. Each holds its socket for up to
/// a second (see [`refuse`]): without a bound, a flood of connections over the limit would use
/// up the process's file descriptors, and with them the origin connections. Past it, a
/// connection over the limit is closed without an answer.
pub const REFUSING_MAX: usize = 256;

/// Permits of a semaphore counting up to `max_connections` at once (connections here, the
/// orphans of `proxy`). A semaphore panics past its own maximum, far above any real limit: a
/// larger one (a "no limit" `usize::MAX`, as settings built in code may say) is that maximum.
pub(crate) fn connection_slots(max_connections: usize) -> usize {
    max_connections.min(tokio::sync::Semaphore::MAX_PERMITS)
}

/// Serves `listener` until `shutdown` completes, then stops accepting and lets in-flight
/// requests finish until the deadline.
///
/// The calling task is worker 0; `settings.workers - 1` more threads each run a single-threaded
/// runtime with its own accept loop on the same listening socket, like nginx's worker
/// processes. A client connection stays on the worker that accepted it, and so do its origin
/// requests (each worker has its own origin pools, see `upstream`): measured on
/// the hit path (one CPU, 256 connections) this costs 4-5 % less CPU per request than tokio's
/// work-stealing scheduler, which pays for stealing it cannot use.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let slots = connection_slots(settings.max_connections);
    let slots = Arc::new(tokio::sync::Semaphore::new(slots));
    let refusing = Arc::new(tokio::sync::Semaphore::new(REFUSING_MAX));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    // Workers keep their runtimes alive until every worker has drained: a request on one worker
    // may be waiting for an origin fetch running on another (coalescing). If this future
    // is dropped instead of shut down, both senders go with it and the workers stop as well.
    let (release, released) = tokio::sync::watch::channel(false);
    let mut drained = Vec::new();
    let copies = listener_copies(&listener, settings.workers.saturating_sub(1));
    for (index, copy) in copies.into_iter().enumerate() {
        let worker = Worker {
            index: index + 1,
            app: app.clone(),
            settings: settings.clone(),
            slots: slots.clone(),
            refusing: refusing.clone(),
        };
        if let Some(finished) = spawn_worker(worker, copy, stopping.clone(), released.clone()) {
            drained.push(finished);
        }
    }
    let deadline = settings.shutdown_timeout;
    let own = Worker {
        index: 0,
        app,
        settings,
        slots,
        refusing,
    }
    .run(listener, stopping);
    tokio::pin!(own, shutdown);
    let mut stopped_at = tokio::time::Instant::now();
    tokio::select! {
        () = &mut own => {}
        () = &mut shutdown => {
            stopped_at = tokio::time::Instant::now();
            let _ = stop.send(true);
            own.await;
        }
    }
    // Each worker bounds its own drain by the deadline; this bound is for a worker whose thread
    // is stuck and never gets to its timer, so shutdown still ends.
    let all_drained = async {
        for finished in drained {
            // An error means that worker's thread is gone, which is as finished as it gets.
            let _ = finished.await;
        }
    };
    if tokio::time::timeout_at(stopped_at + deadline + Duration::from_secs(1), all_drained)
        .await
        .is_err()
    {
        tracing::warn!("a worker did not finish by the shutdown deadline; stopping without it");
    }
    let _ = release.send(true);
}

/// Starts `worker` on a thread of its own with a single-threaded runtime. The returned
/// receiver completes once the worker has drained after `stopping`; its runtime then lives on
/// until `released`. `None`: no thread (logged), one worker fewer.
fn spawn_worker(
    worker: Worker,
    listener: std::net::TcpListener,
    stopping: tokio::sync::watch::Receiver<bool>,
    mut released: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::sync::oneshot::Receiver<()>> {
    let index = worker.index;
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let run = move || {
        WORKER.with(|current| current.set(index));
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, worker = index, "cannot start a worker runtime; one worker fewer");
                return;
            }
        };
        runtime.block_on(async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => worker.run(listener, stopping).await,
                Err(error) => {
                    tracing::error!(%error, worker = index, "worker cannot use the listener")
                }
            }
            let _ = done.send(());
            let _ = released.wait_for(|released| *released).await;
        });
    };
    match std::thread::Builder::new()
        .name(format!("isr-edge-worker-{index}"))
        .spawn(run)
    {
        Ok(_) => Some(finished),
        Err(error) => {
            tracing::error!(%error, worker = index, "cannot start a worker thread; one worker fewer");
            None
        }
    }
}

/// One duplicate of the listening socket per extra worker (fewer if the process is out of
/// file descriptors). Duplicates share one accept queue: an idle worker takes the next
/// connection, a busy one does not compete for it. They also share the socket's flags, so each
/// is already non-blocking, as `TcpListener::from_std` requires.
fn listener_copies(listener: &TcpListener, count: usize) -> Vec<std::net::TcpListener> {
    let mut copies = Vec::with_capacity(count);
    for _ in 0..count {
        match listener.as_fd().try_clone_to_owned() {
            Ok(fd) => copies.push(std::net::TcpListener::from(fd)),
            Err(error) => {
                tracing::warn!(%error, workers = copies.len() + 1, "cannot share the listening socket; fewer workers");
                break;
            }
        }
    }
    copies
}

/// What every worker shares: the application, the settings and the connection limits.
struct Worker {
    /// 0 is the calling task's; named in logs and metrics.
    index: usize,
    app: Arc<App>,
    settings: ServerSettings,
    slots: Arc<tokio::sync::Semaphore>,
    /// See [`REFUSING_MAX`].
    refusing: Arc<tokio::sync::Semaphore>,
}

impl Worker {
    /// Accepts until `stopping` turns true, then lets this worker's connections finish until
    /// the shutdown deadline.
    async fn run(self, listener: TcpListener, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let connection_stop = stopping.clone();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            // No per-request header timer: hyper's boxes a timer and adds it to (and removes it
            // from) tokio's timer wheel for every request head, ~3.5 % of a hit's instructions.
            // The connection watchdog (`drive`) closes slow and idle HTTP/1.1 connections
            // instead, with one timer per connection reset once a period.
            .header_read_timeout(None)
            .max_buf_size(self.settings.max_header_size.max(8192))
            .keep_alive(true)
            // A client may half-close once its request is out, and must still get the answer.
            // It also spares every request a read: without it hyper probes the socket for EOF
            // while the answer is pending, and with the request's head still holding the read
            // buffer, that probe allocated a new buffer per request (~1.5 % of a hit's CPU).
            // The cost: a client that leaves (or resets) mid-request is noticed when its answer
            // is written, not before. Until then its request keeps its connection slot and its
            // origin request, and shutdown waits for it (bounded by the shutdown timeout). Cache
            // fetches finish in their own task anyway; a pass-through runs until the origin
            // answers or the origin timeout ends it. A client that stays connected could hold
            // the same for as long, so no new exposure.
            .half_close(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(256)
            .max_header_list_size(u32::try_from(self.settings.max_header_size).unwrap_or(u32::MAX));
        let metrics = self.app.proxy().metrics().clone();
        let (accepted_here, _running) = metrics.worker_started(self.index);
        // One clone per open connection: shutdown waits until only this one is left.
        let live = Arc::new(());
        // Wrapped so the watch guard `wait_for` returns never lives in this (Send) future.
        let stop = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tracing::warn!(%error, worker = self.index, "accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                        // Refuse quickly rather than queue: the client learns at once and retries.
                        static LINES: crate::logging::EverySecond = crate::logging::EverySecond::new();
                        if let Some(held_back) = LINES.admit() {
                            tracing::warn!(%peer, more_since_last_line = held_back, "connection limit reached; refusing");
                        }
                        match self.refusing.clone().try_acquire_owned() {
                            Ok(refusing) => {
                                tokio::spawn(async move {
                                    refuse(stream).await;
                                    drop(refusing);
                                });
                            }
                            // Closed at once, without the 503.
                            Err(_) => drop(stream),
                        }
                        continue;
                    };
                    accepted_here.inc();
                    let open = metrics.connection_opened();
                    let app = self.app.clone();
                    let activity = Arc::new(Activity::default());
                    let tracked = activity.clone();
                    let answering = live.clone();
                    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
                        let in_flight = Activity::begin(&tracked);
                        if !http_body::Body::is_end_stream(request.body()) {
                            // Whoever forwards the body holds this until it ends (see `Uploading`).
                            request.extensions_mut().insert(Uploading::begin(&tracked));
                        }
                        Served::new(app.handle(request, peer), in_flight, &answering)
                    });
                    let connection = builder.serve_connection(TokioIo::new(Watched { stream, activity: activity.clone() }), service).into_owned();
                    let stop = connection_stop.clone();
                    let idle_after = self.settings.header_read_timeout;
                    let live = live.clone();
                    tokio::spawn(async move {
                        let shut_down = |c: Pin<&mut _>| auto::Connection::graceful_shutdown(c);
                        if let Err(error) = drive(connection, shut_down, activity, stop, idle_after).await {
                            tracing::debug!(%error, %peer, "connection ended with an error");
                        }
                        drop((slot, open, live));
                    });
                }
                () = &mut stop => break,
            }
        }
        drop(listener);
        let deadline = self.settings.shutdown_timeout;
        let worker = self.index;
        tracing::info!(
            worker,
            ?deadline,
            "stopped accepting; finishing in-flight requests"
        );
        let proxy = self.app.proxy().clone();
        let all_closed = async {
            while Arc::strong_count(&live) > 1 || proxy.orphans_running() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            () = all_closed => tracing::info!(worker, "all connections closed"),
            () = tokio::time::sleep(deadline) => tracing::warn!(worker, "shutdown deadline reached; the remaining connections close when the server stops"),
        }
    }
}

/// What a connection's requests are doing, so it can be closed when idle: a client trickling
/// its request head (slowloris), an idle keep-alive connection, an HTTP/2 connection with only
/// a preface, one that never sent a byte, or one whose client stopped reading. Without this
/// such connections kept their slots forever, and enough of them locked everyone out.
#[derive(Default)]
struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
    /// Bytes written to and read from the client. A response whose body was handed over whole
    /// (a page to a slow reader, an HTTP/2 stream waiting for its flow-control window) is no
    /// longer in flight, but while it goes out the connection writes more than it reads; a
    /// client sending only HTTP/2 PINGs or SETTINGS gets no more back than it sends.
    written: AtomicU64,
    read: AtomicU64,
    /// The last write could not go out whole (the client is not reading).
    write_blocked: AtomicBool,
    /// Answers handed to hyper whose bodies are not waiting for their producer (see
    /// [`Tracked`]): their bytes wait for the client alone. On HTTP/2 a client that opens no
    /// flow-control window stalls them without the socket ever blocking.
    waiting_on_client: AtomicUsize,
    /// Request bodies still being received (see [`Uploading`]), and the bytes of them
    /// forwarded so far: body bytes, not socket reads, which on HTTP/2 include PINGs.
    uploading: AtomicUsize,
    uploaded: AtomicU64,
}

/// A snapshot of [`Activity`] at one watchdog check.
#[derive(Default, Clone, Copy)]
struct Seen {
    started: u64,
    written: u64,
    read: u64,
    busy: bool,
    blocked: bool,
    /// Every request in flight is an answer waiting for the client.
    all_on_client: bool,
    uploading: bool,
    uploaded: u64,
}

impl Activity {
    fn seen(&self) -> Seen {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        Seen {
            started: self.started.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            read: self.read.load(Ordering::Relaxed),
            busy: in_flight > 0,
            blocked: self.write_blocked.load(Ordering::Relaxed),
            all_on_client: in_flight > 0
                && self.waiting_on_client.load(Ordering::Relaxed) >= in_flight,
            uploading: self.uploading.load(Ordering::Relaxed) > 0,
            uploaded: self.uploaded.load(Ordering::Relaxed),
        }
    }
}

/// Bytes of its own a connection writes when asked to close (HTTP/2: GOAWAY and a PING):
/// not a response going out.
const CLOSE_FRAMES: u64 = 128;

/// Whether the period between two checks saw the connection do anything: a request started,
/// a response in flight (and not stalled on a client that stopped reading), a response going
/// out (more written than read), or a request body still coming in.
fn active(before: Seen, now: Seen, closing: bool) -> bool {
    let written = now.written.wrapping_sub(before.written);
    let read = now.read.wrapping_sub(before.read);
    let slack = if closing { CLOSE_FRAMES } else { 0 };
    let sending = written > read.saturating_add(slack);
    let stalled = written == 0 && (now.blocked || now.all_on_client);
    // Only body bytes forwarded count, not bytes read: a request head trickling in
    // (slowloris) must still end, and so must an upload that stops coming (nginx's
    // client_body_timeout) while the client sends HTTP/2 PINGs.
    let receiving = (now.uploading || before.uploading) && now.uploaded != before.uploaded;
    now.started != before.started || sending || receiving || ((now.busy || before.busy) && !stalled)
}

/// The client's socket, counting in [`Activity`] the bytes written to and read from it.
struct Watched {
    stream: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

/// Adds to a counter only this connection's task updates: a load and a store, no locked add.
fn count(counter: &AtomicU64, n: usize) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n as u64),
        Ordering::Relaxed,
    );
}

impl Watched {
    fn note(&self, poll: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = poll {
            count(&self.activity.written, n);
        }
        self.activity
            .write_blocked
            .store(poll.is_pending(), Ordering::Relaxed);
        poll
    }
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        count(&this.activity.read, buf.filled().len() - before);
        poll
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.note(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.note(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The service's future. Not an async block awaiting the answer: that held the answer and
/// the awaited future's own copy of it side by side (544 bytes), and hyper moves
/// the service's future into its connection state on every request, a hit included. This is
/// a response already made (a hit's) or the box of one still coming.
///
/// A pending answer holds the worker's count of live connections (`live`) until it is dropped:
/// an HTTP/2 stream's future runs in a task of its own, which can outlive its connection (a
/// stream the client reset, the connection closed by shutdown), and dropping it is what hands
/// a form post whose client went away its orphan permit (see `proxy::Orphan`). Without it,
/// shutdown could see no connection and no orphan in between and end the worker with the
/// origin still acting on the post. Declared after the future, so dropped after it.
enum Served {
    Ready(Option<Response<Tracked>>),
    Pending {
        answer: Pin<Box<dyn Future<Output = Response<Body>> + Send>>,
        in_flight: Option<InFlight>,
        _live: Arc<()>,
    },
}

impl Served {
    fn new(answer: Answer, in_flight: InFlight, live: &Arc<()>) -> Served {
        match answer {
            // Counted until its body is sent, not just its head.
            Answer::Ready(response) | Answer::Labelled(response, _) => {
                Served::Ready(Some(response.map(|body| Tracked::new(body, in_flight))))
            }
            Answer::Pending(answer) => Served::Pending {
                answer,
                in_flight: Some(in_flight),
                _live: live.clone(),
            },
        }
    }
}

impl Future for Served {
    type Output = Result<Response<Tracked>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            // Taken once: hyper never polls a finished future again, and if anything did, it
            // would wait forever rather than bring the worker down.
            Served::Ready(response) => response
                .take()
                .map_or(Poll::Pending, |r| Poll::Ready(Ok(r))),
            Served::Pending {
                answer, in_flight, ..
            } => {
                let response = std::task::ready!(answer.as_mut().poll(cx));
                let Some(in_flight) = in_flight.take() else {
                    return Poll::Pending;
                };
                Poll::Ready(Ok(response.map(|body| Tracked::new(body, in_flight))))
            }
        }
    }
}

/// A request being answered; counted until dropped.
struct InFlight(Arc<Activity>);

/// A response body that keeps its request counted as in flight until hyper is done with it: a
/// response still sending a long body is not idle. Counted as waiting on the client (see
/// [`Activity`]) except while its last poll found its producer (an origin streaming the page)
/// with nothing ready: a slow origin is not a client that stopped reading.
struct Tracked {
    body: Body,
    on_producer: bool,
    in_flight: InFlight,
}

impl Tracked {
    fn new(body: Body, in_flight: InFlight) -> Tracked {
        in_flight
            .0
            .waiting_on_client
            .fetch_add(1, Ordering::Relaxed);
        Tracked {
            body,
            on_producer: false,
            in_flight,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.on_producer {
            let waiting = &self.in_flight.0.waiting_on_client;
            waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, BodyError>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.body).poll_frame(cx);
        let on_producer = poll.is_pending();
        if on_producer != this.on_producer {
            this.on_producer = on_producer;
            let waiting = &this.in_flight.0.waiting_on_client;
            if on_producer {
                waiting.fetch_sub(1, Ordering::Relaxed);
            } else {
                waiting.fetch_add(1, Ordering::Relaxed);
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Activity {
    /// Counts a request, and tracks it until its answer is sent.
    fn begin(activity: &Arc<Activity>) -> InFlight {
        activity.started.fetch_add(1, Ordering::Relaxed);
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

/// A request body still coming in from the client, counted in its connection's activity until
/// dropped. The service puts one in the request's extensions when the request has a body; a
/// pass-through hands it to the body it forwards, which drops it when the body ends. A request
/// answered before its body ended (an origin that replies at once to an upload) otherwise
/// leaves an upload the watchdog would take for an idle connection and cut.
pub struct Uploading(Arc<Activity>);

impl Uploading {
    fn begin(activity: &Arc<Activity>) -> Uploading {
        activity.uploading.fetch_add(1, Ordering::Relaxed);
        Uploading(activity.clone())
    }

    /// Counts `bytes` of the body as forwarded.
    pub fn forwarded(&self, bytes: usize) {
        self.0.uploaded.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Request extensions must be `Clone`; each copy counts as one more body in progress.
impl Clone for Uploading {
    fn clone(&self) -> Uploading {
        Uploading::begin(&self.0)
    }
}

impl Drop for Uploading {
    fn drop(&mut self) {
        self.0.uploading.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs a connection to its end. A connection is idle when a whole `idle_after` period passed
/// with no request started, none in flight at either end of the period (or all of them stalled
/// on a client that stopped reading), no response going out, and no request body coming in
/// (see [`active`]). An idle connection is shut down gracefully (HTTP/2: GOAWAY, running
/// streams finish; HTTP/1.1: the current answer finishes), and so is every connection when the
/// server stops; a connection asked to close that then stays idle for another period (a client
/// that never acknowledges the GOAWAY, still trickling the head of its first request, or no
/// longer reading) is dropped.
///
/// A request head must therefore arrive within one to two periods, where hyper's own header
/// timer would give exactly one: the price of one timer per connection instead of one per
/// request. A client that stops reading its answer is dropped after two periods without a byte
/// going out (nginx's `send_timeout`; hyper alone kept it forever), whether the answer was
/// handed over whole or is still streaming from the origin; so is one whose upload stops
/// coming for as long after its answer (nginx's `client_body_timeout`).
async fn drive<C, E>(
    connection: C,
    shut_down: impl Fn(Pin<&mut C>),
    activity: Arc<Activity>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    idle_after: Duration,
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    tokio::pin!(connection);
    let mut closing = *stop.borrow();
    if closing {
        shut_down(connection.as_mut());
    }
    // `Config` refuses a shorter period; the floor only keeps settings built another way from
    // a zero period, which `interval_at` panics on.
    let period = idle_after.max(MIN_HEADER_READ_TIMEOUT);
    let mut idle_check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // A late check must not be followed at once by the next: each must span a whole period.
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut before = Seen::default();
    let mut watchdog = None;
    loop {
        let event = {
            let changed = stop.changed();
            tokio::pin!(changed);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                    return Poll::Ready(Event::Ended(result));
                }
                // The stop signal and the check timer are polled only when they woke the task,
                // not on every wake of the connection (each request's reads and writes): that
                // was ~2.5 % of a hit's instructions.
                let (wake, waker) = watchdog_for(&mut watchdog, cx.waker());
                if !wake.woken.swap(false, Ordering::Acquire) {
                    return Poll::Pending;
                }
                let mut own = Context::from_waker(waker);
                let stopped = if closing {
                    Poll::Pending
                } else {
                    changed.as_mut().poll(&mut own)
                };
                let event = match stopped {
                    Poll::Ready(changed) => Some(Event::Stop(changed.is_ok())),
                    Poll::Pending => match idle_check.poll_tick(&mut own) {
                        Poll::Ready(_) => Some(Event::Check),
                        Poll::Pending => None,
                    },
                };
                match event {
                    Some(event) => {
                        // The next round's futures are new and must be polled once.
                        wake.woken.store(true, Ordering::Relaxed);
                        Poll::Ready(event)
                    }
                    None => Poll::Pending,
                }
            })
            .await
        };
        match event {
            Event::Ended(result) => return result,
            Event::Stop(open) => {
                if !open || *stop.borrow() {
                    shut_down(connection.as_mut());
                    closing = true;
                    // A whole period from now, like an idle close.
                    idle_check.reset();
                    before = activity.seen();
                }
            }
            Event::Check => {
                let now = activity.seen();
                let idle = !active(before, now, closing);
                before = now;
                if !idle {
                    continue;
                }
                if closing {
                    return Ok(());
                }
                shut_down(connection.as_mut());
                closing = true;
            }
        }
    }
}

/// What ended one wait of [`drive`].
enum Event<E> {
    Ended(Result<(), E>),
    /// The stop signal changed; `false`: its sender is gone.
    Stop(bool),
    Check,
}

/// The waker [`drive`] polls its stop signal and check timer with: it wakes the connection's
/// task and notes that one of them has news.
struct WatchdogWake {
    woken: AtomicBool,
    task: Waker,
}

impl std::task::Wake for WatchdogWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

/// The watchdog waker for `task`, made anew (with its futures to be polled) when the task's
/// waker is not the one it wakes.
fn watchdog_for<'a>(
    slot: &'a mut Option<(Arc<WatchdogWake>, Waker)>,
    task: &Waker,
) -> &'a (Arc<WatchdogWake>, Waker) {
    if !slot
        .as_ref()
        .is_some_and(|(wake, _)| wake.task.will_wake(task))
    {
        *slot = None;
    }
    slot.get_or_insert_with(|| {
        let wake = Arc::new(WatchdogWake {
            woken: AtomicBool::new(true),
            task: task.clone(),
        });
        (wake.clone(), Waker::from(wake))
    })
}

/// Answers 503 on a connection over the limit, without reading its request, and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        use tokio::io::AsyncReadExt;
        let _ = stream.write_all(OVER_CAPACITY).await;
        let _ = stream.shutdown().await;
        // Drain what the client already sent: closing with unread data would reset the
        // connection and the client might never read the 503.
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_limit_past_what_a_semaphore_holds_is_its_maximum() {
        assert_eq!(connection_slots(4096), 4096);
        let most = connection_slots(usize::MAX);
        assert_eq!(most, tokio::sync::Semaphore::MAX_PERMITS);
        // Does not panic.
        let _ = tokio::sync::Semaphore::new(most);
    }

    /// One watchdog period, each reason for calling it active on its own.
    #[test]
    fn a_period_is_active_for_each_reason_alone() {
        let quiet = Seen::default();
        let with = |change: fn(&mut Seen)| {
            let mut seen = quiet;
            change(&mut seen);
            seen
        };
        let cases: [(&str, Seen, Seen, bool, bool); 14] = [
            ("nothing happened", quiet, quiet, false, false),
            (
                "a request started",
                quiet,
                with(|s| s.started = 1),
                false,
                true,
            ),
            (
                "a request in flight at the end",
                quiet,
                with(|s| s.busy = true),
                false,
                true,
            ),
            // Keep-alive: the request ended during the period, so its answer went out in it.
            (
                "a request in flight at the start",
                with(|s| s.busy = true),
                quiet,
                false,
                true,
            ),
            (
                "in flight, stalled on a client not reading",
                with(|s| s.busy = true),
                with(|s| {
                    s.busy = true;
                    s.blocked = true
                }),
                false,
                false,
            ),
            (
                "in flight, blocked but some bytes out",
                with(|s| s.busy = true),
                with(|s| {
                    s.busy = true;
                    s.blocked = true;
                    s.written = 1
                }),
                false,
                true,
            ),
            (
                "an answer going out",
                quiet,
                with(|s| {
                    s.written = 5000;
                    s.read = 100
                }),
                false,
                true,
            ),
            (
                "as many bytes in as out (PINGs)",
                quiet,
                with(|s| {
                    s.written = 17;
                    s.read = 17
                }),
                false,
                false,
            ),
            (
                "closing: only its own GOAWAY and PING",
                quiet,
                with(|s| s.written = CLOSE_FRAMES),
                true,
                false,
            ),
            (
                "closing: an answer still going out",
                quiet,
                with(|s| s.written = CLOSE_FRAMES + 1),
                true,
                true,
            ),
            (
                "an upload coming in",
                with(|s| s.uploading = true),
                with(|s| {
                    s.uploading = true;
                    s.uploaded = 10
                }),
                false,
                true,
            ),
            (
                "an upload that ended during the period",
                with(|s| s.uploading = true),
                with(|s| s.uploaded = 10),
                false,
                true,
            ),
            (
                "an upload that stopped coming",
                with(|s| {
                    s.uploading = true;
                    s.uploaded = 10
                }),
                with(|s| {
                    s.uploading = true;
                    s.uploaded = 10
                }),
                false,
                false,
            ),
            (
                "reads only (a trickled head)",
                quiet,
                with(|s| s.read = 3),
                false,
                false,
            ),
        ];
        for (what, before, now, closing, expected) in cases {
            assert_eq!(active(before, now, closing), expected, "{what}");
        }
    }

    /// A connection that never ends by itself.
    type Endless = std::future::Pending<Result<(), ()>>;

    /// Counts `drive`'s requests to shut the connection down.
    fn counting_shut_down() -> (Arc<AtomicUsize>, impl Fn(Pin<&mut Endless>)) {
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        (count, move |_: Pin<&mut Endless>| {
            counted.fetch_add(1, Ordering::Relaxed);
        })
    }

    async fn settle() {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_asked_to_close_then_dropped_a_period_later() {
        let period = Duration::from_secs(10);
        let (_stop, stop) = tokio::sync::watch::channel(false);
        let (shut_downs, shut_down) = counting_shut_down();
        let began = tokio::time::Instant::now();
        let ended = drive(
            std::future::pending(),
            shut_down,
            Arc::new(Activity::default()),
            stop,
            period,
        )
        .await;
        assert!(ended.is_ok());
        assert_eq!(
            shut_downs.load(Ordering::Relaxed),
            1,
            "asked once, then dropped"
        );
        let lived = began.elapsed();
        assert!(lived >= 2 * period && lived < 3 * period, "{lived:?}");
    }

    /// A worker blocked for several periods must not run the missed checks back to back: the
    /// first (late) one sees the request that started meanwhile, and an immediate second one
    /// would see nothing new and close a connection that was just used.
    #[tokio::test(start_paused = true)]
    async fn a_late_check_is_followed_by_a_whole_period() {
        let period = Duration::from_secs(10);
        let (_stop, stop) = tokio::sync::watch::channel(false);
        let (shut_downs, shut_down) = counting_shut_down();
        let activity = Arc::new(Activity::default());
        let watched = activity.clone();
        let connection = tokio::spawn(drive(
            std::future::pending(),
            shut_down,
            watched,
            stop,
            period,
        ));
        settle().await;
        activity.started.fetch_add(1, Ordering::Relaxed);
        tokio::time::advance(3 * period + period / 2).await;
        settle().await;
        assert_eq!(
            shut_downs.load(Ordering::Relaxed),
            0,
            "used during the stall: kept"
        );
        tokio::time::advance(period).await;
        settle().await;
        assert_eq!(
            shut_downs.load(Ordering::Relaxed),
            1,
            "idle for a whole period since"
        );
        connection.abort();
    }
}
