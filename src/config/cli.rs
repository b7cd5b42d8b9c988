//! The command-line interface: every flag, its environment variable and documented default
//! (what `--help` shows). Validation into [`super::Config`] lives in the parent module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use super::units::{parse_duration, parse_size};
use crate::revalidate::forward::Redacted;
use crate::revalidate::guard::{self};

/// Command-line interface. Every flag's default is shown by `--help`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "isr-edge",
    version,
    about = "An ISR edge cache: caching reverse proxy with on-demand revalidation",
    long_about = "An ISR edge cache: a caching reverse proxy for Next.js-style origins.\n\n\
        Serves GET/HEAD from an in-memory cache with time-based freshness (s-maxage, \
        stale-while-revalidate, stale-if-error), refreshes stale pages in the background, and \
        evicts pages on demand when a backend POSTs to the revalidation endpoint.\n\n\
        The revalidation secret comes from the REVALIDATE_SECRET environment variable \
        (comma-separated for rotation) or --secret-file.\n\n\
        Every flag is also a key of the --config TOML file (`cache_size = \"256MiB\"`); \
        flags and environment variables override the file.",
    args_override_self = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// Address to listen on (HTTP/1.1 and h2c).
    #[arg(long, default_value = "127.0.0.1:8080", env = "ISR_EDGE_LISTEN", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Origin base URL, e.g. http://127.0.0.1:3000 (required unless --demo or `[[origin]]`
    /// sections in the config file; then it serves the hosts they do not name).
    #[arg(long, env = "ISR_EDGE_ORIGIN")]
    pub origin: Option<String>,

    /// Run with a small built-in demo origin instead of --origin.
    #[arg(long, conflicts_with = "origin")]
    pub demo: bool,

    /// File holding the revalidation secret(s), one per line (instead of REVALIDATE_SECRET).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,

    /// Path of the revalidation endpoint; requests to it never reach the origin.
    #[arg(long, default_value = "/api/revalidate")]
    pub revalidate_path: String,

    /// After every hard purge, re-fetch the evicted URLs in the background (bounded
    /// concurrency) so the next visitor gets a HIT; per request: `"warm": true`.
    #[arg(long)]
    pub warm_on_revalidate: bool,

    /// Cache capacity in bytes (suffixes: KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub cache_size: u64,

    /// Largest response stored; larger ones stream through uncached.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub max_object_size: u64,

    /// Freshness for cacheable responses without freshness information (0 = not stored).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub default_ttl: Duration,

    /// Time allowed for the origin to answer (and, for cached responses, to send the body).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub origin_timeout: Duration,

    /// How long a stored copy stands in for a failing origin when it names no stale-if-error.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub stale_if_error: Duration,

    /// Window for a bare `stale-while-revalidate` without a value (Next.js 13/14).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub default_swr: Duration,

    /// Cap on any stale window (Next.js 15 sends one year of stale-while-revalidate).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub max_stale: Duration,

    /// Let a client's `Cache-Control: no-cache` / `Pragma: no-cache` refresh the stored page
    /// from the origin (the answer is stored for everyone: for trusted clients only), and
    /// `no-store` bypass the cache.
    #[arg(long)]
    pub honor_client_no_cache: bool,

    /// Refresh stored pages with their validators (If-None-Match, If-Modified-Since), so the
    /// origin can answer 304 instead of sending the page again; `off` for an origin whose 304s
    /// cannot be trusted.
    #[arg(
        long,
        default_value = "on",
        value_name = "on|off",
        hide_possible_values = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub conditional_refresh: bool,

    /// Cache-Control sent to browsers for stored pages: `rewrite` drops shared-cache directives
    /// so a plain reload revalidates; `origin` passes the origin's header unchanged.
    #[arg(long, value_enum, default_value = "rewrite")]
    pub browser_cache_control: BrowserCacheControl,

    /// How long in-flight requests may run after SIGTERM/SIGINT before the process exits.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Threads serving client connections, each with its own event loop (like nginx's
    /// `worker_processes`); 0: one per CPU the process may run on (its affinity mask).
    #[arg(long, default_value = "0", env = "ISR_EDGE_WORKERS")]
    pub workers: usize,

    /// A connection with no request started and none being answered for a whole period is
    /// closed: request heads must arrive within one to two periods (slowloris protection), and
    /// idle keep-alive connections last as long. At least 100ms.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    // --- hardening ---
    /// Revalidation requests allowed per client address (token bucket refill), e.g. 10/s,
    /// 600/min; `off` disables. Failed authentication counts double.
    #[arg(long, default_value = "10/s")]
    pub revalidate_rate: guard::PerSecond,

    /// Token bucket size: revalidation requests a client may send at once (at least 1).
    #[arg(long, default_value = "50")]
    pub revalidate_burst: u32,

    /// Networks allowed to call the revalidation endpoint, e.g. 10.0.0.0/8,127.0.0.1
    /// (default: any address; others get 403).
    #[arg(long)]
    pub revalidate_allow: Option<guard::CidrList>,

    /// Believe X-Forwarded-For from these proxy addresses (bare flag: loopback, for an nginx on
    /// the same host). Default: never; the TCP peer is the client.
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.0/8,::1")]
    pub trust_proxy_headers: Option<guard::CidrList>,

    /// Accept only HMAC-signed revalidations (`X-Signature: sha256=<hex>` over the raw body,
    /// keyed with the secret), so the secret never travels. Default: a signature or the secret.
    #[arg(long)]
    pub require_signature: bool,

    /// Largest request head (request line and headers); larger ones get 431.
    #[arg(long, default_value = "32KiB", value_parser = parse_size)]
    pub max_header_size: u64,

    /// Longest request URI (path and query); longer ones get 414.
    #[arg(long, default_value = "8KiB", value_parser = parse_size)]
    pub max_uri_length: u64,

    /// Largest client request body forwarded to the origin (POST, PUT, ...); larger get 413.
    #[arg(long, default_value = "10MiB", value_parser = parse_size)]
    pub max_body_size: u64,

    /// Most client connections open at once; beyond it new ones get an immediate 503.
    #[arg(long, default_value = "4096")]
    pub max_connections: usize,

    /// Longest pause between two chunks of a streamed origin body before it is cut off.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub origin_idle_timeout: Duration,

    /// Requests carrying a cookie with one of these names skip the cache (comma-separated;
    /// Next.js draft-mode cookies always do).
    #[arg(long, value_delimiter = ',')]
    pub bypass_cookie: Vec<String>,

    /// Host names served (comma-separated, port optional); other Host values get 421 instead
    /// of creating cache entries. Default: any host.
    #[arg(long, value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    // --- invalidation ---
    /// Origin response headers whose values are cache tags (comma- or space-separated lists).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cache-tag,surrogate-key,x-next-cache-tags",
        visible_alias = "tag-header"
    )]
    pub tag_headers: Vec<String>,

    /// Pass the tag headers on to clients (by default they are removed: tags can name
    /// internals). Default: off.
    #[arg(long, visible_alias = "expose-tag-headers")]
    pub keep_tag_headers: bool,

    // --- observability ---
    /// Admin listener for /metrics, /healthz and /readyz (never the public port); `off` disables it.
    #[arg(long, default_value = "127.0.0.1:9091", env = "ISR_EDGE_ADMIN_LISTEN", value_parser = parse_admin_listen)]
    pub admin_listen: AdminListen,

    /// Log format: `text` (human-readable) or `json` (one object per line, for log shippers).
    /// The level comes from RUST_LOG (default `info`).
    #[arg(long, value_enum, default_value = "text", env = "ISR_EDGE_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Log one line per request (method, path, status, cache status, duration, bytes) under the
    /// `isr_edge::access` target. Off by default. ISR_EDGE_ACCESS_LOG takes 1/0, true/false,
    /// yes/no, on/off.
    #[arg(
        long,
        env = "ISR_EDGE_ACCESS_LOG",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub access_log: bool,

    // --- origin forwarding ---
    /// Also send each revalidation to this endpoint of the origin app, before evicting locally
    /// (repeatable: list every app instance; each one is called). Default: none. An
    /// `[[origin]]` site with its own `revalidate_url` is told there instead.
    #[arg(long = "origin-revalidate-url", value_name = "URL")]
    pub origin_revalidate_url: Vec<String>,

    /// Secret put into the forwarded body's `secret` field (and `x-revalidate-secret`).
    /// Default: the body is forwarded with the caller's own secret.
    #[arg(long, env = "ORIGIN_REVALIDATE_SECRET", hide_env_values = true)]
    pub origin_revalidate_secret: Option<Redacted>,

    /// Time for all origin calls of one revalidation (forwarding and regeneration together);
    /// keep it under the 5 s after which clients such as Laravel's give up.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pub origin_revalidate_timeout: Duration,

    /// Next.js preview-mode id: each revalidated page is regenerated on the origin with
    /// `HEAD <path>` + `x-prerender-revalidate: <id>` before the local eviction. Default: none.
    #[arg(
        long,
        value_name = "ID",
        hide_env_values = true,
        env = "NEXT_PREVIEW_MODE_ID"
    )]
    pub next_preview_mode_id: Option<Redacted>,

    /// Read the preview-mode id from this `.next/prerender-manifest.json` (re-read at every
    /// revalidation, so a rebuild is picked up). Default: none.
    #[arg(long, value_name = "PATH", conflicts_with = "next_preview_mode_id")]
    pub next_prerender_manifest: Option<PathBuf>,
    // --- config file and purge client ---
    /// TOML configuration file (also ISR_EDGE_CONFIG): every flag is a key (`cache_size =
    /// "256MiB"`), plus `[[route]]` and `[[origin]]` sections. Flags and environment win.
    #[arg(long, env = "ISR_EDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (file, environment, flags; secrets masked) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Validate the configuration and exit: 0 when valid, 2 with the file line and key if not.
    #[arg(long, conflicts_with = "print_config")]
    pub check_config: bool,

    #[command(subcommand)]
    pub command: Option<crate::purge_client::Command>,
}

/// `--listen`: an IP address and port. The standard parser said only "invalid socket address
/// syntax" to `8080`, `:8080` or `localhost:8080`, the forms people write.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not an IP address and port; use e.g. 0.0.0.0:8080 (every interface), \
             127.0.0.1:8080 or [::]:8080 (host names are not looked up)"
        )
    })
}

/// `--admin-listen`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    Off,
    On(SocketAddr),
}

fn parse_admin_listen(text: &str) -> Result<AdminListen, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(AdminListen::Off);
    }
    text.trim()
        .parse()
        .map(AdminListen::On)
        .map_err(|_| format!("{text:?} is not an address; use e.g. 127.0.0.1:9091, or off"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BrowserCacheControl {
    Rewrite,
    Origin,
}
