//! Configuration: command-line flags and environment, their documented defaults, and the
//! validated [`Config`] the rest of the crate reads. Secrets are held in [`Secrets`], which never
//! prints its contents and compares in constant time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use http::Uri;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::cache::policy::FreshnessRules;
use crate::config_file::FileSections;
use crate::origins::HostOrigin;
use crate::revalidate::forward::{OriginForwarding, Redacted};
use crate::revalidate::guard::{self, GuardSettings};
use crate::revalidate::pages::{read_preview_mode_id, PreviewModeId};
use crate::routes::Routes;

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
    #[arg(long, default_value = "127.0.0.1:8080", env = "ISR_EDGE_LISTEN")]
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

    /// Let a client's `Cache-Control: no-cache` / `Pragma: no-cache` bypass the cache.
    #[arg(long)]
    pub honor_client_no_cache: bool,

    /// Cache-Control sent to browsers for stored pages: `rewrite` drops shared-cache directives
    /// so a plain reload revalidates; `origin` passes the origin's header unchanged.
    #[arg(long, value_enum, default_value = "rewrite")]
    pub browser_cache_control: BrowserCacheControl,

    /// How long in-flight requests may run after SIGTERM/SIGINT before the process exits.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// A client must send its request headers within this time (slowloris protection).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    // --- hardening ---
    /// Revalidation requests allowed per client address (token bucket refill), e.g. 10/s,
    /// 600/min; `off` disables. Failed authentication counts double.
    #[arg(long, default_value = "10/s")]
    pub revalidate_rate: guard::PerSecond,

    /// Token bucket size: revalidation requests a client may send at once.
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
    /// `isr_edge::access` target. Off by default.
    #[arg(long, env = "ISR_EDGE_ACCESS_LOG")]
    pub access_log: bool,

    // --- origin forwarding ---
    /// Also send each revalidation to this endpoint of the origin app, before evicting locally
    /// (repeatable: list every app instance; each one is called). Default: none.
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

/// Where requests go.
#[derive(Debug, Clone)]
pub enum OriginSpec {
    Url(Uri),
    Demo,
    /// No default origin: only the config file's `[[origin]]` hosts are served (others: 421).
    HostsOnly,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub origin: OriginSpec,
    pub secrets: Secrets,
    pub revalidate_path: String,
    pub warm_on_revalidate: bool,
    pub cache_size: u64,
    pub max_object_size: u64,
    pub freshness: FreshnessRules,
    pub origin_timeout: Duration,
    pub honor_client_no_cache: bool,
    pub browser_cache_control: BrowserCacheControl,
    pub shutdown_timeout: Duration,
    pub header_read_timeout: Duration,
    // --- hardening ---
    pub guard: GuardSettings,
    pub require_signature: bool,
    pub limits: Limits,
    pub bypass_cookies: Vec<String>,
    /// Lowercased host names without port; empty = any.
    pub allowed_hosts: Vec<String>,
    // --- invalidation ---
    /// Lowercased, valid header names.
    pub tag_headers: Vec<http::HeaderName>,
    pub keep_tag_headers: bool,
    // --- observability ---
    /// Admin listener address (`None`: `--admin-listen off`).
    pub admin_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub access_log: bool,
    // --- origin forwarding ---
    pub origin_forwarding: OriginForwarding,
    // --- config file ---
    pub routes: Routes,
    pub host_origins: Vec<HostOrigin>,
}

/// Request and connection limits (see the flags for defaults).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_size: usize,
    pub max_uri_length: usize,
    pub max_body_size: u64,
    pub max_connections: usize,
    pub origin_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header_size: 32 << 10,
            max_uri_length: 8 << 10,
            max_body_size: 10 << 20,
            max_connections: 4096,
            origin_idle_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--origin: {0}")]
    Origin(String),
    #[error("--secret-file: cannot read {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--revalidate-path: must start with '/', got {0:?}")]
    RevalidatePath(String),
    #[error("the revalidation secret is the sample value from the seed (it ends with \"change-in-production\"); generate one with `openssl rand -hex 32`")]
    SampleSecret,
    #[error("{0}")]
    Limit(String),
    #[error("--tag-headers: {0:?} is not a header name")]
    TagHeader(String),
    #[error("--admin-listen: {0} is the public --listen address; metrics must not be public")]
    AdminOnPublicPort(SocketAddr),
    #[error("--origin-revalidate-url: {0}")]
    OriginRevalidateUrl(String),
    #[error("--next-prerender-manifest: {0}")]
    PrerenderManifest(String),
}

impl Config {
    /// Validates parsed flags; `env_secret` is the value of `REVALIDATE_SECRET`, if set.
    pub fn from_cli(cli: Cli, env_secret: Option<String>) -> Result<Config, ConfigError> {
        Config::from_sources(cli, env_secret, FileSections::default())
    }

    /// Validates parsed flags together with the config file's sections (see `config_file`).
    pub fn from_sources(
        cli: Cli,
        env_secret: Option<String>,
        file: FileSections,
    ) -> Result<Config, ConfigError> {
        let origin =
            match (&cli.origin, cli.demo) {
                (_, true) => OriginSpec::Demo,
                (Some(url), false) => OriginSpec::Url(parse_origin(url)?),
                (None, false) if !file.origins.is_empty() => OriginSpec::HostsOnly,
                (None, false) => return Err(ConfigError::Origin(
                    "required: pass --origin http://host:port, set ISR_EDGE_ORIGIN, use --demo, \
                     or add [[origin]] sections to the config file"
                        .into(),
                )),
            };
        let secrets = match &cli.secret_file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                        path: path.clone(),
                        source,
                    })?;
                Secrets::from_lines(text.lines())
            }
            None => Secrets::from_lines(env_secret.as_deref().unwrap_or("").split(',')),
        };
        if !cli.revalidate_path.starts_with('/') {
            return Err(ConfigError::RevalidatePath(cli.revalidate_path));
        }
        let origin_forwarding = origin_forwarding(&cli)?;
        if secrets.has_sample() {
            return Err(ConfigError::SampleSecret);
        }
        if cli.max_header_size < 8192 {
            return Err(ConfigError::Limit(
                "--max-header-size: at least 8KiB (hyper's smallest read buffer)".into(),
            ));
        }
        if cli.max_connections == 0 {
            return Err(ConfigError::Limit(
                "--max-connections: must be at least 1".into(),
            ));
        }
        let limits = Limits {
            max_header_size: usize::try_from(cli.max_header_size).unwrap_or(usize::MAX),
            max_uri_length: usize::try_from(cli.max_uri_length).unwrap_or(usize::MAX),
            max_body_size: cli.max_body_size,
            max_connections: cli.max_connections,
            origin_idle_timeout: cli.origin_idle_timeout,
        };
        let guard = GuardSettings {
            rate: cli.revalidate_rate.0.map(|per_second| guard::Rate {
                per_second,
                burst: cli.revalidate_burst,
            }),
            allow: cli.revalidate_allow.unwrap_or_default().0,
            trusted_proxies: cli.trust_proxy_headers.unwrap_or_default().0,
        };
        let allowed_hosts = cli
            .allowed_hosts
            .iter()
            .map(|h| strip_port(h.trim()).to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let tag_headers = cli
            .tag_headers
            .iter()
            .map(|name| name.trim())
            .filter(|name| !name.is_empty())
            .map(|name| {
                http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| ConfigError::TagHeader(name.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let admin_listen = match cli.admin_listen {
            AdminListen::Off => None,
            AdminListen::On(addr) => Some(addr),
        };
        if let Some(admin) = admin_listen {
            let same_port = admin.port() != 0 && admin.port() == cli.listen.port();
            let overlapping_ip = admin.ip() == cli.listen.ip()
                || admin.ip().is_unspecified()
                || cli.listen.ip().is_unspecified();
            if same_port && overlapping_ip {
                return Err(ConfigError::AdminOnPublicPort(admin));
            }
        }
        Ok(Config {
            listen: cli.listen,
            origin,
            secrets,
            revalidate_path: cli.revalidate_path,
            warm_on_revalidate: cli.warm_on_revalidate,
            cache_size: cli.cache_size,
            max_object_size: cli.max_object_size,
            freshness: FreshnessRules {
                default_ttl: cli.default_ttl,
                default_swr: cli.default_swr,
                max_stale: cli.max_stale,
                default_stale_if_error: cli.stale_if_error,
            },
            origin_timeout: cli.origin_timeout,
            honor_client_no_cache: cli.honor_client_no_cache,
            browser_cache_control: cli.browser_cache_control,
            shutdown_timeout: cli.shutdown_timeout,
            header_read_timeout: cli.header_read_timeout,
            guard,
            require_signature: cli.require_signature,
            limits,
            bypass_cookies: cli
                .bypass_cookie
                .iter()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
            allowed_hosts,
            tag_headers,
            keep_tag_headers: cli.keep_tag_headers,
            admin_listen,
            log_format: cli.log_format,
            access_log: cli.access_log,
            origin_forwarding,
            // --- config file ---
            routes: Routes::new(file.routes),
            host_origins: file.origins,
        })
    }

    /// Parses flags from an argument list (the first item is the program name) and validates
    /// them; tests build configurations this way.
    pub fn from_args<I, T>(args: I, env_secret: Option<String>) -> Result<Config, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        Config::from_cli(cli, env_secret).map_err(|e| e.to_string())
    }
}

/// `example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

fn origin_forwarding(cli: &Cli) -> Result<OriginForwarding, ConfigError> {
    let urls = cli
        .origin_revalidate_url
        .iter()
        .map(|text| {
            let uri: Uri = text.parse().map_err(|e| {
                ConfigError::OriginRevalidateUrl(format!("{text:?} is not a URL ({e})"))
            })?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(ConfigError::OriginRevalidateUrl(format!(
                    "{text:?}: expected http://host:port/path, e.g. http://127.0.0.1:3000/api/revalidate"
                )));
            }
            Ok(uri)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let preview_mode_id = match (&cli.next_preview_mode_id, &cli.next_prerender_manifest) {
        (Some(id), _) => Some(PreviewModeId::Fixed(id.clone())),
        (None, Some(path)) => {
            // Checked now so a wrong path fails at start, not at the first revalidation.
            read_preview_mode_id(path).map_err(ConfigError::PrerenderManifest)?;
            Some(PreviewModeId::Manifest(path.clone()))
        }
        (None, None) => None,
    };
    Ok(OriginForwarding {
        urls,
        secret: cli
            .origin_revalidate_secret
            .clone()
            .filter(|s| !s.0.is_empty()),
        timeout: cli.origin_revalidate_timeout,
        preview_mode_id,
    })
}

pub(crate) fn parse_origin(text: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = text.parse().map_err(|e| {
        ConfigError::Origin(format!(
            "{text:?} is not a URL ({e}); expected http://host:port"
        ))
    })?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(ConfigError::Origin(
                "https origins are not supported; point isr-edge at the app's plain-HTTP port"
                    .into(),
            ))
        }
        _ => {
            return Err(ConfigError::Origin(format!(
                "{text:?} needs an http:// scheme, e.g. http://127.0.0.1:3000"
            )))
        }
    }
    if uri.authority().is_none() {
        return Err(ConfigError::Origin(format!("{text:?} has no host")));
    }
    Ok(uri)
}

/// Parses `256MiB`, `8MiB`, `64KiB`, `1GB`, `1000` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; use e.g. 256MiB, 64KiB or 1000000"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses `10s`, `500ms`, `24h`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); use e.g. 10s, 500ms, 24h"))
}

/// One or more revalidation secrets (several at once allow rotation without downtime).
/// `Debug` prints only how many there are.
#[derive(Clone, Default)]
pub struct Secrets {
    digests: Vec<[u8; 32]>,
    /// The raw keys, for HMAC signatures only.
    keys: Vec<std::sync::Arc<[u8]>>,
    shortest: usize,
    sample: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets(**** x{})", self.digests.len())
    }
}

impl Secrets {
    pub fn from_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Secrets {
        let mut secrets = Secrets::default();
        for line in lines.map(str::trim).filter(|l| !l.is_empty()) {
            secrets.digests.push(Sha256::digest(line.as_bytes()).into());
            secrets.keys.push(line.as_bytes().into());
            secrets.sample |= line.ends_with("change-in-production");
            secrets.shortest = if secrets.digests.len() == 1 {
                line.len()
            } else {
                secrets.shortest.min(line.len())
            };
        }
        secrets
    }

    pub fn is_configured(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Length of the shortest configured secret (for the weak-secret warning).
    pub fn shortest_len(&self) -> usize {
        self.shortest
    }

    /// Whether a secret looks like the seed's sample (`...change-in-production`).
    pub fn has_sample(&self) -> bool {
        self.sample
    }

    /// Checks `X-Signature: sha256=<hex>`: HMAC-SHA256 of `body` keyed with any configured
    /// secret. Every key is tried and compared in constant time (`Mac::verify_slice`).
    pub fn verify_signature(&self, body: &[u8], signature: &str) -> bool {
        use hmac::Mac;
        let Some(expected) = signature
            .trim()
            .strip_prefix("sha256=")
            .and_then(decode_hex)
        else {
            return false;
        };
        let mut matched = false;
        for key in &self.keys {
            let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key) else {
                continue;
            };
            mac.update(body);
            matched |= mac.verify_slice(&expected).is_ok();
        }
        matched
    }

    /// Constant-time check against every configured secret. Digests are compared, so neither
    /// the content nor the length of a secret leaks through timing.
    pub fn verify(&self, candidate: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate).into();
        let mut matched = subtle::Choice::from(0u8);
        for secret in &self.digests {
            matched |= secret.ct_eq(&digest);
        }
        bool::from(matched)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_secret_refused_and_signatures_checked() {
        let err = Config::from_args(
            ["isr-edge", "--demo"],
            Some("wincellar-secret-2025-change-in-production".into()),
        )
        .expect_err("sample secret");
        assert!(err.contains("change-in-production"), "{err}");
        let secrets = Secrets::from_lines(["other", "key"].into_iter());
        // echo -n '{"paths":["/"]}' | openssl dgst -sha256 -hmac key
        let hex = "05335bf0390e8d5278c22f774b9c7952ea599af7d156e8865082fb26c51d1892";
        let body = br#"{"paths":["/"]}"#;
        assert!(secrets.verify_signature(body, &format!("sha256={hex}")));
        assert!(!secrets.verify_signature(b"other body", &format!("sha256={hex}")));
        assert!(!secrets.verify_signature(body, &format!("sha256={}", &hex[..62])));
        assert!(!secrets.verify_signature(body, hex));
        assert!(!secrets.verify_signature(body, "sha256=zz"));
        assert_eq!(strip_port("Example.com:8080"), "Example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("site"), "site");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn secrets_rotate_and_hide() {
        let s = Secrets::from_lines("old-secret, new-secret".split(','));
        assert!(s.verify(b"old-secret"));
        assert!(s.verify(b"new-secret"));
        assert!(!s.verify(b"other"));
        assert!(!s.verify(b""));
        assert!(!format!("{s:?}").contains("secret-"));
        assert!(!Secrets::from_lines("".split(',')).is_configured());
    }

    #[test]
    fn origin_validation() {
        assert!(Config::from_args(["isr-edge", "--origin", "http://127.0.0.1:3000"], None).is_ok());
        let err =
            Config::from_args(["isr-edge", "--origin", "https://x"], None).expect_err("https");
        assert!(err.contains("--origin"), "{err}");
        let err = Config::from_args(["isr-edge", "--cache-size", "big", "--demo"], None)
            .expect_err("size");
        assert!(err.contains("--cache-size"), "{err}");
    }

    #[test]
    fn admin_listen() {
        let base = ["isr-edge", "--demo"];
        let config = Config::from_args(base, None).expect("defaults");
        assert_eq!(
            config.admin_listen,
            Some("127.0.0.1:9091".parse().expect("addr"))
        );
        let off =
            Config::from_args([&base[..], &["--admin-listen", "off"]].concat(), None).expect("off");
        assert_eq!(off.admin_listen, None);
        let err = Config::from_args(
            [
                &base[..],
                &[
                    "--listen",
                    "0.0.0.0:8080",
                    "--admin-listen",
                    "127.0.0.1:8080",
                ],
            ]
            .concat(),
            None,
        )
        .expect_err("public port");
        assert!(err.contains("--admin-listen"), "{err}");
        let err = Config::from_args([&base[..], &["--admin-listen", "nine"]].concat(), None)
            .expect_err("bad address");
        assert!(err.contains("admin-listen"), "{err}");
    }
}
