//! Transport only: the accept loop, HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one port,
//! header-read timeout, and graceful shutdown. No HTTP semantics live here.

use std::convert::Infallible;
use std::future::Future;
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
}

/// What a connection over `--max-connections` gets before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
    retry-after: 1\r\ncontent-type: text/plain\r\ncontent-length: 46\r\n\r\n\
    503 Service Unavailable: too many connections\n";

/// Serves `listener` until `shutdown` completes, then stops accepting and lets in-flight
/// requests finish until the deadline.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_size.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(settings.max_header_size).unwrap_or(u32::MAX));
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    // Refuse quickly rather than queue: the client learns at once and retries.
                    tracing::warn!(%peer, "connection limit reached; refusing");
                    tokio::spawn(refuse(stream));
                    continue;
                };
                let app = app.clone();
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
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(deadline = ?settings.shutdown_timeout, "stopped accepting; finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(settings.shutdown_timeout) => tracing::warn!("shutdown deadline reached; closing remaining connections"),
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
