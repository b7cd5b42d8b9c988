//! isr-edge: an ISR edge cache. A caching reverse proxy for Next.js-style origins with
//! time-based freshness, stale-while-revalidate, single flight and on-demand revalidation.
//!
//! Crate map:
//! - [`config`]: validated [`config::Config`]; `cli` (flags, defaults), `file` (the TOML file:
//!   keys become flags, `[[route]]`/`[[origin]]` sections), `startup` (file + env + flags ->
//!   `Config`, `--print-config`, `--check-config`), `units`, `secrets`
//! - [`routes`]: per-path rules (ttl, stale windows, bypass, tags), first match wins
//! - [`origins`]: which origin serves a `Host`; 421 for hosts nobody configured
//! - [`purge_client`]: `isr-edge revalidate ...`, the purge client in the same binary
//! - [`server`]: the worker threads and their accept loops, HTTP/1.1 + h2c, graceful shutdown
//!   (transport only)
//! - [`app`]: composition root; routes the control API vs the proxy
//! - [`proxy`]: the request flow (below); `fetch` (the origin fetch behind a miss), `headers`,
//!   `range` (range requests cut from stored pages), `warm` (purged pages fetched again, within
//!   one process-wide bound)
//! - [`upstream`]: origin client, header hygiene, origin errors as 502/504
//! - [`cache`]: key and path normalisation, entries (compact stored headers), freshness policy,
//!   purge index (slot arena) and background `removals`, single flight
//! - [`revalidate`]: `/api/revalidate`: parsing, auth, purge, answers; `forward` tells the
//!   origin's own cache (its revalidate route, Next.js `x-prerender-revalidate`) first, `sites`
//!   picks the forwarders of each `[[origin]]` site, `report` gathers their results
//! - [`limits`]: URI, Host, request-body and origin-idle limits with their canned answers
//! - [`body`]: the body type and canned responses; [`demo`]: the `--demo` origin
//! - [`metrics`]: Prometheus counters and cache gauges; [`admin`]: the admin listener
//!   (`/metrics`, `/healthz`, `/readyz`); [`logging`]: log format and the access-log line
//!
//! Request flow:
//! ```text
//! server: accept -> hyper (h1/h2) -> App::handle(req)
//! app:    revalidate path -> Revalidate::handle -> (origin forwarding) -> cache.purge(targets)
//!         anything else   -> Proxy::handle
//! proxy:  bypass rule -> upstream (X-Cache: BYPASS); unsafe methods evict the page
//!         key = canonical host + path + query; lookup(key, Vary)
//!           (the worker's table of hot URLs first while the cache is under half full, then moka)
//!           Fresh   -> HIT (a `no-cache` reload with --honor-client-no-cache refreshes it)
//!           Stale   -> STALE + one background refresh (single flight)
//!           Expired / none -> single flight: leader fetches, admits if storable, followers share;
//!                     origin failure -> stale-if-error copy, else 502/504
//!           a `Range` is cut from the stored or fetched page (206/416); a page that cannot be
//!           stored is asked for as the range (at once for a minute: hit-for-miss)
//!           a refresh of a stored copy carries its validators; a 304 renews the copy
//! admit:  purge epoch read before the fetch; if a purge selecting the URL ran meanwhile, not stored
//! ```

pub mod admin;
pub mod app;
pub mod body;
pub mod cache;
pub mod config;
pub mod demo;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod origins;
pub mod proxy;
pub mod purge_client;
pub mod revalidate;
pub mod routes;
pub mod server;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{Config, OriginSpec};

/// Serves `config` on an already bound `listener` until `shutdown` completes. The admin
/// listener, unless `--admin-listen off`, is bound here from the configuration; use
/// [`serve_with_admin`] to pass one already bound (tests bind port 0 and read the address).
/// The calling task serves as worker 0; `config.workers - 1` more threads start here, each
/// with its own single-threaded runtime, and end when it returns.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let admin =
        match config.admin_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("--admin-listen {addr}: {e}"))
            })?),
            None => None,
        };
    serve_with_admin(config, listener, admin, shutdown).await
}

/// [`serve`] with the admin listener bound by the caller (`None`: no admin endpoints).
pub async fn serve_with_admin(
    config: Config,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let origin = match &config.origin {
        OriginSpec::Url(uri) => Some(uri.clone()),
        OriginSpec::Demo => {
            let address = demo::start().await?;
            tracing::info!(%address, "demo origin started");
            let uri = format!("http://{address}")
                .parse()
                .map_err(|e| std::io::Error::other(format!("demo origin URL: {e}")))?;
            Some(uri)
        }
        OriginSpec::HostsOnly => None,
    };
    if !config.secrets.is_configured() {
        tracing::warn!(
            "no revalidation secret: set REVALIDATE_SECRET or --secret-file; POST {} answers 503",
            config.revalidate_path
        );
    } else if config.secrets.shortest_len() < 32 {
        tracing::warn!(
            "WEAK SECRET: a revalidation secret is only {} bytes; anyone who guesses it can empty \
             the cache. Use at least 32 random bytes, e.g. `openssl rand -hex 32`",
            config.secrets.shortest_len()
        );
    }
    let app = Arc::new(app::App::new(&config, origin.as_ref()));
    // Readiness probes every origin: the default one and each site's.
    let probed: Vec<(String, http::Uri)> = origin
        .iter()
        .map(|url| ("(default)".to_string(), url.clone()))
        .chain(
            config
                .host_origins
                .iter()
                .map(|h| (h.host.clone(), h.url.clone())),
        )
        .collect();
    let (admin_task, admin_state) = match admin {
        Some(admin_listener) => {
            let address = admin_listener.local_addr()?;
            let state = Arc::new(admin::Admin::new(app.proxy().metrics().clone(), &probed));
            tracing::info!(%address, "admin listener: /metrics /healthz /readyz");
            let task = tokio::spawn(admin::serve(admin_listener, state.clone()));
            (Some(task), Some(state))
        }
        _ => (None, None),
    };
    // Readiness turns 503 before the server stops accepting, so an orchestrator takes this
    // replica out of rotation while its in-flight requests finish.
    let shutdown = async move {
        shutdown.await;
        if let Some(state) = admin_state {
            state.shutting_down();
        }
    };
    let default_origin = origin
        .map(|o| logging::masked_url(&o.to_string()).into_owned())
        .unwrap_or_else(|| "none".into());
    for host in &config.host_origins {
        let origin = logging::masked_url(&host.url.to_string()).into_owned();
        tracing::info!(host = %host.host, %origin, "origin for host");
    }
    tracing::info!(listen = %listener.local_addr()?, origin = %default_origin, routes = config.routes.rules().len(), workers = config.workers, "isr-edge serving");
    let settings = server::ServerSettings {
        shutdown_timeout: config.shutdown_timeout,
        header_read_timeout: config.header_read_timeout,
        max_header_size: config.limits.max_header_size,
        max_connections: config.limits.max_connections,
        workers: config.workers,
    };
    server::serve(listener, app, settings, shutdown).await;
    if let Some(task) = admin_task {
        task.abort();
    }
    Ok(())
}
