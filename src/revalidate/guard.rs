//! Who may call the control API, before any secret is looked at: the client's address (the
//! TCP peer, or `X-Forwarded-For` when the peer is a trusted proxy), the network allow-list
//! (403), and a per-client token bucket (429 with `Retry-After`). Every request needs a token;
//! a successful one gives it back (a backend purging page after page in a bulk update is never
//! refused: the seed's client has no retry), a refused one keeps it, and failed authentication
//! costs a second one, so guessing the secret runs at half the allowed rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

/// Buckets kept before idle (full) ones are dropped; bounds memory under address spraying.
const MAX_BUCKETS: usize = 10_000;

/// An IPv4 or IPv6 network, `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address or network like 10.0.0.0/8"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { network, prefix })
    }

    /// Parses a comma-separated list.
    pub fn parse_list(text: &str) -> Result<Vec<Cidr>, String> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Cidr::parse)
            .collect()
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        match (canonical(self.network), address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `::ffff:10.0.0.1` is `10.0.0.1` (dual-stack listeners report v4 peers that way).
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A token bucket's refill rate and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    /// At least 1: the configuration refuses 0 (a bucket that holds nothing refuses all).
    pub burst: u32,
}

/// A comma-separated list of networks, as a flag value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList(pub Vec<Cidr>);

impl std::str::FromStr for CidrList {
    type Err = String;
    fn from_str(text: &str) -> Result<CidrList, String> {
        Cidr::parse_list(text).map(CidrList)
    }
}

/// Requests per second, as a flag value; `None` = unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerSecond(pub Option<f64>);

impl std::str::FromStr for PerSecond {
    type Err = String;
    fn from_str(text: &str) -> Result<PerSecond, String> {
        parse_rate(text).map(PerSecond)
    }
}

/// Parses `10/s`, `600/min`, `2/m`, `36000/h`; `off` or `0` disables the limit.
pub fn parse_rate(text: &str) -> Result<Option<f64>, String> {
    let text = text.trim();
    if text == "off" || text == "0" {
        return Ok(None);
    }
    let (count, unit) = text.split_once('/').unwrap_or((text, "s"));
    let count: f64 = count
        .trim()
        .parse()
        .ok()
        .filter(|c: &f64| c.is_finite() && *c > 0.0)
        .ok_or_else(|| format!("{text:?} is not a rate; use e.g. 10/s, 600/min or off"))?;
    let seconds = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => return Err(format!("unknown rate unit {other:?}; use /s, /min or /h")),
    };
    Ok(Some(count / seconds))
}

/// The guard's settings (see `config` for the flags and defaults).
#[derive(Debug, Clone, Default)]
pub struct GuardSettings {
    /// `None`: no rate limit.
    pub rate: Option<Rate>,
    /// Empty: every address may call.
    pub allow: Vec<Cidr>,
    /// Peers whose `X-Forwarded-For` is believed. Empty (the default): never.
    pub trusted_proxies: Vec<Cidr>,
}

/// Why a caller is turned away before authentication.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    /// Not in `--revalidate-allow`.
    Forbidden,
    /// Over the rate; try again after this long.
    RateLimited(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct Guard {
    settings: GuardSettings,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Guard {
    pub fn new(settings: GuardSettings) -> Guard {
        Guard {
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The address the request is from: the peer, unless the peer is a trusted proxy, in which
    /// case the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (what
    /// nginx's `real_ip_recursive` picks). Entries left of it could be forged by the client.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = |a: IpAddr| self.settings.trusted_proxies.iter().any(|c| c.contains(a));
        if !trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(address) => {
                    client = address;
                    if !trusted(address) {
                        break;
                    }
                }
                // Garbage where an address should be: stop at the last good hop.
                Err(_) => break,
            }
        }
        client
    }

    /// Whether `client` is on the allow-list.
    pub fn allowed(&self, client: IpAddr) -> bool {
        self.settings.allow.is_empty() || self.settings.allow.iter().any(|c| c.contains(client))
    }

    /// Takes `cost` tokens from `client`'s bucket, or says how long until it could.
    pub fn take(&self, client: IpAddr, cost: f64, now: Instant) -> Result<(), Refusal> {
        let Some(rate) = self.settings.rate else {
            return Ok(());
        };
        let capacity = f64::from(rate.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&client) {
            // A full bucket holds no information; dropping it changes nothing for its owner.
            buckets.retain(|_, b| refill(b, rate, capacity, now) < capacity);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let tokens = refill(bucket, rate, capacity, now);
        if tokens >= cost {
            bucket.tokens = tokens - cost;
            bucket.updated = now;
            return Ok(());
        }
        let wait = (cost - tokens) / rate.per_second;
        Err(Refusal::RateLimited(Duration::from_secs_f64(wait.max(0.0))))
    }

    /// A failed authentication costs one more token, even if the bucket goes negative (the
    /// caller then waits longer).
    pub fn charge_failure(&self, client: IpAddr, now: Instant) {
        let Some(rate) = self.settings.rate else {
            return;
        };
        let capacity = f64::from(rate.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(&client) {
            bucket.tokens = refill(bucket, rate, capacity, now) - 1.0;
            bucket.updated = now;
        }
    }

    /// Gives back the token of a request that succeeded.
    pub fn refund(&self, client: IpAddr, now: Instant) {
        let Some(rate) = self.settings.rate else {
            return;
        };
        let capacity = f64::from(rate.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(&client) {
            bucket.tokens = (refill(bucket, rate, capacity, now) + 1.0).min(capacity);
            bucket.updated = now;
        }
    }

    /// Allow-list, then one token.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Result<(), Refusal> {
        if !self.allowed(client) {
            return Err(Refusal::Forbidden);
        }
        self.take(client, 1.0, now)
    }
}

fn refill(bucket: &Bucket, rate: Rate, capacity: f64, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * rate.per_second).min(capacity)
}

/// Seconds for a `Retry-After` header: whole seconds, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn networks() {
        let net = Cidr::parse("10.0.0.0/8").expect("cidr");
        assert!(net.contains(ip("10.1.2.3")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        let one = Cidr::parse("127.0.0.1").expect("single");
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        assert!(Cidr::parse("0.0.0.0/0")
            .expect("all")
            .contains(ip("8.8.8.8")));
        assert!(Cidr::parse("fd00::/8").expect("v6").contains(ip("fd12::1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten").is_err());
        assert_eq!(
            Cidr::parse_list("10.0.0.0/8, 127.0.0.1")
                .expect("list")
                .len(),
            2
        );
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10/s"), Ok(Some(10.0)));
        assert_eq!(parse_rate("120/min"), Ok(Some(2.0)));
        assert_eq!(parse_rate("5"), Ok(Some(5.0)));
        assert_eq!(parse_rate("off"), Ok(None));
        assert!(parse_rate("-1/s").is_err());
        assert!(parse_rate("10/fortnight").is_err());
    }

    #[test]
    fn bucket_refills_and_failures_cost_double() {
        let guard = Guard::new(GuardSettings {
            rate: Some(Rate {
                per_second: 1.0,
                burst: 3,
            }),
            ..GuardSettings::default()
        });
        let now = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(guard.take(a, 1.0, now), Ok(()));
        }
        assert!(matches!(
            guard.take(a, 1.0, now),
            Err(Refusal::RateLimited(_))
        ));
        // Another client has its own bucket.
        assert_eq!(guard.take(ip("192.0.2.2"), 1.0, now), Ok(()));
        let later = now + Duration::from_secs(1);
        assert_eq!(guard.take(a, 1.0, later), Ok(()));
        guard.charge_failure(a, later);
        // The failure left the bucket at -1: two seconds until the next token.
        let Err(Refusal::RateLimited(wait)) = guard.take(a, 1.0, later) else {
            panic!("expected a refusal");
        };
        assert_eq!(retry_after_secs(wait), 2);
        // A request that succeeded gives its token back.
        let b = ip("192.0.2.3");
        for _ in 0..10 {
            assert_eq!(guard.take(b, 1.0, now), Ok(()));
            guard.refund(b, now);
        }
    }

    #[test]
    fn buckets_stay_bounded_under_address_spraying() {
        let guard = Guard::new(GuardSettings {
            rate: Some(Rate {
                per_second: 10.0,
                burst: 5,
            }),
            ..GuardSettings::default()
        });
        let now = Instant::now();
        for i in 0..MAX_BUCKETS as u32 {
            assert_eq!(guard.take(IpAddr::from(i.to_be_bytes()), 1.0, now), Ok(()));
        }
        // A second later every bucket is full again and carries no information: dropped.
        let later = now + Duration::from_secs(1);
        assert_eq!(guard.take(ip("203.0.113.1"), 1.0, later), Ok(()));
        let kept = guard.buckets.lock().expect("buckets").len();
        assert_eq!(kept, 1);
    }

    #[test]
    fn forwarded_for_only_from_trusted_hops() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.0.0.2".parse().expect("value"),
        );
        let untrusting = Guard::new(GuardSettings::default());
        assert_eq!(
            untrusting.client(ip("127.0.0.1"), &headers),
            ip("127.0.0.1")
        );
        let trusting = Guard::new(GuardSettings {
            trusted_proxies: Cidr::parse_list("127.0.0.1,10.0.0.0/8").expect("list"),
            ..GuardSettings::default()
        });
        // 10.0.0.2 is a trusted hop too; 203.0.113.9 is the client; 6.6.6.6 is forgeable.
        assert_eq!(
            trusting.client(ip("127.0.0.1"), &headers),
            ip("203.0.113.9")
        );
        // A peer that is not trusted cannot choose its address.
        assert_eq!(
            trusting.client(ip("198.51.100.1"), &headers),
            ip("198.51.100.1")
        );
    }
}
