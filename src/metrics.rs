//! Prometheus metrics: the counters and histograms the request flow updates, and the cache
//! gauges read at scrape time. Rendered as Prometheus text by `prometheus-client` on the admin
//! listener (see [`crate::admin`]).
//!
//! Every labelled counter is created once here and kept as a handle (an `Arc<AtomicU64>`), so
//! the hit path does one relaxed atomic add: no label hashing, no lock, no allocation. The
//! registry is per proxy (no global recorder), so several proxies in one process (the tests)
//! never mix their numbers.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::cache::Cache;

type Labels1 = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

/// Why a stale copy was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// Inside the stale-while-revalidate window; a background refresh runs.
    Swr,
    /// The origin failed and stale-if-error allowed the old copy.
    StaleIfError,
    /// A soft purge marked it stale.
    SoftPurge,
}

/// Labels of `isr_edge_requests_total{cache=...}`, in [`request_slot`] order.
const CACHE_LABELS: [&str; 6] = ["hit", "stale", "miss", "bypass", "api", "refused"];
const API: usize = 4;
const REFUSED: usize = 5;
/// Labels of `isr_edge_origin_errors_total{kind=...}`, as `UpstreamError::kind()` names them.
const ERROR_KINDS: [&str; 5] = ["connect", "timeout", "protocol", "body", "status"];
const STALE_LABELS: [&str; 3] = ["swr", "stale-if-error", "soft-purge"];
/// `isr_edge_revalidations_total` outcomes of requests refused before their targets were read
/// (counted with `target="none"`), and of accepted ones (counted once per target kind).
const REFUSED_OUTCOMES: [&str; 5] = [
    "unauthorized",
    "bad-request",
    "too-large",
    "not-configured",
    "refused",
];
const ACCEPTED_OUTCOMES: [&str; 3] = ["ok", "dry-run", "origin-failed"];
const TARGET_KINDS: [&str; 5] = ["path", "layout", "tag", "all", "none"];

pub struct Metrics {
    registry: Registry,
    requests: [Counter; 6],
    origin_requests: Counter,
    origin_not_modified: Counter,
    origin_latency: Histogram,
    origin_errors: [Counter; 5],
    coalesced_waits: Counter,
    stale_served: [Counter; 3],
    revalidations: Family<Labels2, Counter>,
    purge_duration: Histogram,
    warm_skipped: Counter,
    workers: Gauge,
    connections_open: Gauge,
    connections_accepted: Family<[(&'static str, String); 1], Counter>,
}

/// Index into the per-status request counters for an `X-Cache` value.
fn request_slot(x_cache: &[u8]) -> usize {
    match x_cache {
        b"HIT" => 0,
        b"STALE" => 1,
        b"MISS" => 2,
        b"BYPASS" => 3,
        _ => REFUSED,
    }
}

impl Metrics {
    /// Metrics for one proxy; `cache` is read at scrape time for the entry, byte, index and
    /// eviction numbers.
    pub fn new(cache: Arc<Cache>) -> Metrics {
        let mut registry = Registry::with_prefix("isr_edge");
        let requests_family = Family::<Labels1, Counter>::default();
        let requests = CACHE_LABELS.map(|l| requests_family.get_or_create_owned(&[("cache", l)]));
        registry.register(
            "requests",
            "Requests answered, by cache status (X-Cache; `api` = the revalidation endpoint; \
             `refused` = answered before the cache: unknown host, URI too long)",
            requests_family,
        );
        let origin_requests = Counter::default();
        registry.register(
            "origin_requests",
            "Requests sent to the origin",
            origin_requests.clone(),
        );
        let origin_not_modified = Counter::default();
        registry.register(
            "origin_not_modified",
            "Stale copies the origin confirmed with 304 Not Modified: renewed without the body \
             crossing again",
            origin_not_modified.clone(),
        );
        let origin_latency = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "origin_latency_seconds",
            "Time from sending a request to the origin to its response head",
            origin_latency.clone(),
        );
        let errors_family = Family::<Labels1, Counter>::default();
        let origin_errors = ERROR_KINDS.map(|k| errors_family.get_or_create_owned(&[("kind", k)]));
        registry.register(
            "origin_errors",
            "Origin failures by kind (status = the origin answered 5xx)",
            errors_family,
        );
        let coalesced_waits = Counter::default();
        registry.register(
            "coalesced_waits",
            "Requests that waited for another request's origin fetch instead of sending their own",
            coalesced_waits.clone(),
        );
        let stale_family = Family::<Labels1, Counter>::default();
        let stale_served = STALE_LABELS.map(|r| stale_family.get_or_create_owned(&[("reason", r)]));
        registry.register(
            "stale_served",
            "Stale copies served, by reason",
            stale_family,
        );
        let revalidations = Family::<Labels2, Counter>::default();
        // At 0 from the start: a family with no series is not exposed at all, so until the
        // first revalidation Prometheus had no isr_edge_revalidations_total to alert on
        // (`increase(...{outcome="unauthorized"}[5m])` read "no data", not 0).
        let accepted = ACCEPTED_OUTCOMES
            .iter()
            .flat_map(|outcome| TARGET_KINDS.iter().map(move |target| (*outcome, *target)));
        let refused = REFUSED_OUTCOMES.iter().map(|outcome| (*outcome, "none"));
        for (outcome, target) in accepted.chain(refused) {
            let _ = revalidations.get_or_create_owned(&[("outcome", outcome), ("target", target)]);
        }
        registry.register(
            "revalidations",
            "Revalidation requests by outcome (origin-failed: evicted here, but the origin's own cache was not revalidated); accepted ones count once per target, by kind",
            revalidations.clone(),
        );
        let purge_duration = Histogram::new(exponential_buckets(0.000_01, 4.0, 12));
        registry.register(
            "purge_duration_seconds",
            "Time to apply one accepted revalidation request",
            purge_duration.clone(),
        );
        let warm_skipped = Counter::default();
        registry.register(
            "warm_skipped",
            "Purged URLs not re-fetched by warming because too many were already waiting",
            warm_skipped.clone(),
        );
        let workers = Gauge::default();
        registry.register(
            "workers",
            "Event-loop threads serving client connections",
            workers.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections open now (refused ones over --max-connections not included)",
            connections_open.clone(),
        );
        let connections_accepted = Family::default();
        registry.register(
            "connections_accepted",
            "Client connections accepted, by the worker that serves them",
            connections_accepted.clone(),
        );
        registry.register_collector(Box::new(CacheCollector { cache }));
        Metrics {
            registry,
            requests,
            origin_requests,
            origin_not_modified,
            origin_latency,
            origin_errors,
            coalesced_waits,
            stale_served,
            revalidations,
            purge_duration,
            warm_skipped,
            workers,
            connections_open,
            connections_accepted,
        }
    }

    /// A worker started; returns its counter of accepted connections (one atomic add each) and
    /// a guard that counts it as running until dropped.
    pub fn worker_started(&self, worker: usize) -> (Counter, Running) {
        self.workers.inc();
        let accepted = self
            .connections_accepted
            .get_or_create_owned(&[("worker", worker.to_string())]);
        (accepted, Running(self.workers.clone()))
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub fn connection_opened(&self) -> Running {
        self.connections_open.inc();
        Running(self.connections_open.clone())
    }

    /// Counts one answered request by its `X-Cache` value; without one, as the control API's
    /// (`control`) or as refused before the cache.
    pub fn request(&self, x_cache: Option<&[u8]>, control: bool) {
        let slot = match x_cache {
            Some(x_cache) => request_slot(x_cache),
            None if control => API,
            None => REFUSED,
        };
        self.requests[slot].inc();
    }

    /// One request sent to the origin and the time its response head took (`None`: it failed).
    pub fn origin_request(&self, latency: Option<Duration>) {
        self.origin_requests.inc();
        if let Some(latency) = latency {
            self.origin_latency.observe(latency.as_secs_f64());
        }
    }

    /// A stale copy the origin confirmed with a `304`.
    pub fn origin_not_modified(&self) {
        self.origin_not_modified.inc();
    }

    /// One origin failure; `kind` is `UpstreamError::kind()`.
    pub fn origin_error(&self, kind: &str) {
        if let Some(i) = ERROR_KINDS.iter().position(|k| *k == kind) {
            self.origin_errors[i].inc();
        }
    }

    pub fn coalesced_wait(&self) {
        self.coalesced_waits.inc();
    }

    pub fn stale_served(&self, reason: StaleReason) {
        let slot = match reason {
            StaleReason::Swr => 0,
            StaleReason::StaleIfError => 1,
            StaleReason::SoftPurge => 2,
        };
        self.stale_served[slot].inc();
    }

    /// One revalidation outcome (`ok`, `unauthorized`, ...) for a target kind (`none` when it
    /// was refused before its targets were read).
    pub fn revalidation(&self, outcome: &'static str, target: &'static str) {
        self.revalidations
            .get_or_create(&[("outcome", outcome), ("target", target)])
            .inc();
    }

    pub fn purge_duration(&self, duration: Duration) {
        self.purge_duration.observe(duration.as_secs_f64());
    }

    /// URLs warming left out (see `Proxy::warm`).
    pub fn warm_skipped(&self, urls: usize) {
        self.warm_skipped.inc_by(urls as u64);
    }

    /// The Prometheus text exposition of everything above.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "cannot render metrics");
        }
        out
    }
}

/// Held while a worker runs or a client connection is open: dropping it lowers the gauge.
pub struct Running(Gauge);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Cache numbers read when scraped: they live in the cache already, so the hit path pays
/// nothing for them.
struct CacheCollector {
    cache: Arc<Cache>,
}

impl std::fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheCollector")
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        // Apply pending inserts and evictions so the counts are exact at scrape time.
        self.cache.sync();
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            &mut encoder,
            "cache_entries",
            "URLs stored (each holds its Vary variants)",
            as_i64(self.cache.url_count()),
        )?;
        gauge(
            &mut encoder,
            "cache_bytes",
            "Bytes stored as the cache accounts them (body, headers, key)",
            as_i64(self.cache.weighted_bytes()),
        )?;
        gauge(
            &mut encoder,
            "cache_index_keys",
            "Keys in the purge index (never more than cache_entries once settled)",
            as_i64(self.cache.indexed_keys() as u64),
        )?;
        let counts = self.cache.evictions();
        let by_cause = [
            ("size", &counts.size),
            ("expiry", &counts.expired),
            ("purge", &counts.purged),
            ("uncacheable", &counts.uncacheable),
        ];
        let counter = ConstCounter::new(0u64);
        let mut metric = encoder.encode_descriptor(
            "cache_evictions",
            "URLs removed from the cache, by cause (uncacheable = the origin's newer answer \
             could not be stored)",
            None,
            counter.metric_type(),
        )?;
        for (cause, value) in by_cause {
            let labels = [("cause", cause)];
            let counter = ConstCounter::new(value.load(std::sync::atomic::Ordering::Relaxed));
            counter.encode(metric.encode_family(&labels)?)?;
        }
        let withdrawn =
            ConstCounter::new(counts.withdrawn.load(std::sync::atomic::Ordering::Relaxed));
        let metric = encoder.encode_descriptor(
            "cache_withdrawn_responses",
            "Stored responses (Vary variants) withdrawn because the origin's newer answer to a \
             request they matched could not be stored; the URL stays while other variants do",
            None,
            withdrawn.metric_type(),
        )?;
        withdrawn.encode(metric)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cache_gauges() {
        let metrics = Metrics::new(Arc::new(Cache::new(1 << 20)));
        metrics.request(Some(b"HIT"), false);
        metrics.request(Some(b"HIT"), false);
        metrics.request(None, true);
        metrics.request(None, false);
        metrics.origin_request(Some(Duration::from_millis(3)));
        metrics.origin_error("timeout");
        metrics.stale_served(StaleReason::SoftPurge);
        metrics.revalidation("ok", "tag");
        metrics.warm_skipped(3);
        let text = metrics.render();
        assert!(
            text.contains("isr_edge_requests_total{cache=\"hit\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("isr_edge_requests_total{cache=\"api\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("isr_edge_requests_total{cache=\"refused\"} 1"),
            "{text}"
        );
        assert!(text.contains("isr_edge_origin_requests_total 1"), "{text}");
        assert!(
            text.contains("isr_edge_origin_latency_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("isr_edge_origin_errors_total{kind=\"timeout\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("isr_edge_stale_served_total{reason=\"soft-purge\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("isr_edge_revalidations_total{outcome=\"ok\",target=\"tag\"} 1"),
            "{text}"
        );
        assert!(text.contains("isr_edge_warm_skipped_total 3"), "{text}");
        assert!(text.contains("isr_edge_cache_entries 0"), "{text}");
        assert!(
            text.contains("isr_edge_cache_evictions_total{cause=\"size\"} 0"),
            "{text}"
        );
    }
}
