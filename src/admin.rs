//! The admin listener (`--admin-listen`, default 127.0.0.1:9091, never the public port):
//! `GET /metrics` (Prometheus text), `GET /healthz` (the process answers) and `GET /readyz`
//! (origins accept TCP connections, and shutdown has not started), for Prometheus and
//! orchestrators. HTTP/1.1 only.
//!
//! With several origins, `/readyz` probes them all at once and answers 200 while at least one
//! accepts, listing each: readiness takes one replica out of rotation, and one site's origin
//! being down is true for every replica alike (its pages keep being served stale-if-error),
//! so it must not take the other sites down with it. None reachable is this replica's problem.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::body::{self, Body};
use crate::metrics::Metrics;

/// How long `/readyz` waits for the origin to accept a connection.
const READY_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What the admin endpoints read.
pub struct Admin {
    metrics: Arc<Metrics>,
    /// What `/readyz` probes: a name for the answer ("default" or the site's host) and the
    /// origin's `host:port`.
    origins: Vec<(String, String)>,
    /// Set when graceful shutdown starts: the public port no longer accepts connections.
    stopping: AtomicBool,
}

impl Admin {
    pub fn new(metrics: Arc<Metrics>, origins: &[(String, http::Uri)]) -> Admin {
        let origins = origins
            .iter()
            .map(|(name, url)| {
                let host = url.host().unwrap_or("127.0.0.1");
                let port = url.port_u16().unwrap_or(80);
                (name.clone(), format!("{host}:{port}"))
            })
            .collect();
        Admin {
            metrics,
            origins,
            stopping: AtomicBool::new(false),
        }
    }

    /// From now on `/readyz` answers 503; `/healthz` and `/metrics` keep answering while
    /// in-flight requests finish.
    pub fn shutting_down(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Answers one admin request.
    pub async fn handle(&self, method: &Method, path: &str) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = body::text(StatusCode::METHOD_NOT_ALLOWED, "use GET");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match path {
            "/metrics" => {
                // Rendering settles the cache first (pending evictions, background removals),
                // which blocks; off this worker's thread, so its clients keep being served.
                let metrics = self.metrics.clone();
                let text = match tokio::task::spawn_blocking(move || metrics.render()).await {
                    Ok(text) => text,
                    Err(error) => {
                        tracing::error!(%error, "rendering /metrics failed");
                        let mut response = Response::new(body::full("metrics unavailable\n"));
                        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                        return response;
                    }
                };
                let mut response = Response::new(body::full(text));
                // prometheus-client writes OpenMetrics (`# EOF`, counter families named without
                // `_total`): under the classic `text/plain; version=0.0.4` type, Prometheus
                // would read every counter as untyped.
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            "/healthz" => body::text(StatusCode::OK, "ok"),
            "/readyz" => self.readiness().await,
            _ => body::text(
                StatusCode::NOT_FOUND,
                "admin endpoints: /metrics, /healthz, /readyz",
            ),
        }
    }

    /// Probes every origin at once; see the module doc for why one reachable origin is ready.
    async fn readiness(&self) -> Response<Body> {
        if self.stopping.load(Ordering::Relaxed) {
            return body::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: shutting down (no new connections; in-flight requests are finishing)\n",
            );
        }
        let mut probes = tokio::task::JoinSet::new();
        for (i, (_, address)) in self.origins.iter().enumerate() {
            let address = address.clone();
            probes.spawn(async move { (i, origin_reachable(&address).await) });
        }
        let mut results: Vec<Option<Result<(), String>>> = vec![None; self.origins.len()];
        while let Some(Ok((i, result))) = probes.join_next().await {
            results[i] = Some(result);
        }
        let mut report = String::new();
        let mut reachable = 0;
        for ((name, address), result) in self.origins.iter().zip(results) {
            let line = match result {
                Some(Ok(())) => {
                    reachable += 1;
                    format!("origin {name} ({address}): ok\n")
                }
                Some(Err(why)) => format!("origin {name} ({address}): {why}\n"),
                None => format!("origin {name} ({address}): probe failed\n"),
            };
            report.push_str(&line);
        }
        if reachable > 0 || self.origins.is_empty() {
            body::text(StatusCode::OK, &format!("ready\n{report}"))
        } else {
            body::text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: no origin reachable\n{report}"),
            )
        }
    }
}

async fn origin_reachable(address: &str) -> Result<(), String> {
    match tokio::time::timeout(READY_CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("refused the connection: {e}")),
        Err(_) => Err(format!(
            "did not accept a connection within {READY_CONNECT_TIMEOUT:?}"
        )),
    }
}

/// Serves the admin endpoints on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let admin = admin.clone();
                async move {
                    let response = admin.handle(request.method(), request.uri().path()).await;
                    Ok::<_, Infallible>(if request.method() == Method::HEAD {
                        response.map(|_| body::empty())
                    } else {
                        response
                    })
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
}
