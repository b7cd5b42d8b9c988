//! Transport only: the accept loop, HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one port,
//! header-read timeout, the worker threads, and graceful shutdown. No HTTP semantics live here.

use std::convert::Infallible;
use std::future::Future;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::app::App;

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

/// What a connection over `--max-connections` gets before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
    retry-after: 1\r\ncontent-type: text/plain\r\ncontent-length: 46\r\n\r\n\
    503 Service Unavailable: too many connections\n";

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
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
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

/// What every worker shares: the application, the settings and the connection limit.
struct Worker {
    /// 0 is the calling task's; named in logs and metrics.
    index: usize,
    app: Arc<App>,
    settings: ServerSettings,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Worker {
    /// Accepts until `stopping` turns true, then lets this worker's connections finish until
    /// the shutdown deadline.
    async fn run(self, listener: TcpListener, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.settings.header_read_timeout)
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
        let graceful = GracefulShutdown::new();
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
                        tracing::warn!(%peer, "connection limit reached; refusing");
                        tokio::spawn(refuse(stream));
                        continue;
                    };
                    accepted_here.inc();
                    let open = metrics.connection_opened();
                    let app = self.app.clone();
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle(request, peer).await) }
                    });
                    let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, %peer, "connection ended with an error");
                        }
                        drop((slot, open));
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
        tokio::select! {
            () = graceful.shutdown() => tracing::info!(worker, "all connections closed"),
            () = tokio::time::sleep(deadline) => tracing::warn!(worker, "shutdown deadline reached; the remaining connections close when the server stops"),
        }
    }
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
