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
        (comma-separated for rotation) or --secret-file."
)]
pub struct Cli {
    /// Address to listen on (HTTP/1.1 and h2c).
    #[arg(long, default_value = "127.0.0.1:8080", env = "ISR_EDGE_LISTEN")]
    pub listen: SocketAddr,

    /// Origin base URL, e.g. http://127.0.0.1:3000 (required unless --demo).
    #[arg(long, env = "ISR_EDGE_ORIGIN", required_unless_present = "demo")]
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
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub origin: OriginSpec,
    pub secrets: Secrets,
    pub revalidate_path: String,
    pub cache_size: u64,
    pub max_object_size: u64,
    pub freshness: FreshnessRules,
    pub origin_timeout: Duration,
    pub honor_client_no_cache: bool,
    pub browser_cache_control: BrowserCacheControl,
    pub shutdown_timeout: Duration,
    pub header_read_timeout: Duration,
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
}

impl Config {
    /// Validates parsed flags; `env_secret` is the value of `REVALIDATE_SECRET`, if set.
    pub fn from_cli(cli: Cli, env_secret: Option<String>) -> Result<Config, ConfigError> {
        let origin =
            match (&cli.origin, cli.demo) {
                (_, true) => OriginSpec::Demo,
                (Some(url), false) => OriginSpec::Url(parse_origin(url)?),
                (None, false) => return Err(ConfigError::Origin(
                    "required: pass --origin http://host:port, set ISR_EDGE_ORIGIN, or use --demo"
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
        Ok(Config {
            listen: cli.listen,
            origin,
            secrets,
            revalidate_path: cli.revalidate_path,
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

fn parse_origin(text: &str) -> Result<Uri, ConfigError> {
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
    shortest: usize,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
