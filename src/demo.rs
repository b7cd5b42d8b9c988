//! The built-in demo origin behind `--demo`: a few ISR-style pages so the proxy can be tried on a
//! fresh machine with nothing else running. Each page shows how many times it was rendered.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Starts the demo origin on an ephemeral loopback port and returns its address.
pub async fn start() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let renders = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let renders = renders.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let n = renders.fetch_add(1, Ordering::Relaxed) + 1;
                    async move { Ok::<_, Infallible>(page(&request, n)) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

fn page(request: &Request<Incoming>, render: u64) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let (status, cache_control, tags, title) = match path {
        "/" => (
            StatusCode::OK,
            "s-maxage=10, stale-while-revalidate=60",
            "home",
            "Home",
        ),
        "/products" => (
            StatusCode::OK,
            "s-maxage=30, stale-while-revalidate=300",
            "products",
            "Products",
        ),
        p if p.starts_with("/products/") => (
            StatusCode::OK,
            "s-maxage=60, stale-while-revalidate=600",
            "products",
            "A product",
        ),
        "/about" => (
            StatusCode::OK,
            "public, max-age=60, s-maxage=3600",
            "",
            "About",
        ),
        "/api/time" => (StatusCode::OK, "no-store", "", "Uncached time"),
        _ => (StatusCode::NOT_FOUND, "s-maxage=10", "", "Not found"),
    };
    let now = humantime::format_rfc3339_seconds(SystemTime::now());
    let html = format!(
        "<!doctype html><html><head><title>{title}</title></head><body>\
         <h1>{title}</h1><p>path: {path}</p><p>render #{render} at {now}</p>\
         <p>Cache-Control from the origin: {cache_control}</p></body></html>\n"
    );
    let mut response = Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if !tags.is_empty() {
        let mut value = tags.to_string();
        if let Some(slug) = path.strip_prefix("/products/") {
            value.push_str(&format!(",product-{slug}"));
        }
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert("cache-tag", value);
        }
    }
    response
}
