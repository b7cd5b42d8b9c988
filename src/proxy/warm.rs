//! Warming: purged pages fetched again in the background after a revalidation that asks for
//! it, each in every variant it had stored, within one process-wide bound on origin fetches
//! running and waiting.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Origin fetches warming runs at once, all revalidations together (each is a full render on
/// the origin: a deploy script purging 50 tags with `warm` must not ask for 400 at once).
const WARM_CONCURRENCY: usize = 8;
/// Variant fetches that may wait to be warmed, all revalidations together: what a waiting URL
/// costs is the request headers of each of its variants (~0.8 KiB each, measured with two
/// small header maps per URL), so this holds that memory to some 8 MiB; at 8 renders at once
/// it is minutes of origin work. URLs that do not fit are not warmed (counted in
/// `isr_edge_warm_skipped_total` and logged): they were purged all the same, and their next
/// request fetches them.
const WARM_QUEUE_MAX: usize = 10_000;

/// Warming's shared bounds: one set of permits and one count of waiting fetches for the
/// process.
pub(super) struct Warming {
    permits: Arc<tokio::sync::Semaphore>,
    /// Variant fetches accepted and not yet done (their URL waits for a permit or is being
    /// fetched).
    queued: AtomicUsize,
    max_queued: usize,
}

impl Default for Warming {
    fn default() -> Warming {
        Warming::new(WARM_CONCURRENCY, WARM_QUEUE_MAX)
    }
}

impl Warming {
    fn new(concurrency: usize, max_queued: usize) -> Warming {
        Warming {
            permits: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            queued: AtomicUsize::new(0),
            max_queued,
        }
    }

    /// A place for one URL's `variants` fetches, or `None` when they do not fit.
    fn admit(self: &Arc<Self>, variants: usize) -> Option<Queued> {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                let total = queued.checked_add(variants)?;
                (total <= self.max_queued).then_some(total)
            })
            .ok()
            .map(|_| Queued {
                warming: self.clone(),
                variants,
            })
    }
}

/// One URL's place among those waiting to be warmed, given back when dropped (warmed, or its
/// task ended any other way).
struct Queued {
    warming: Arc<Warming>,
    variants: usize,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.warming
            .queued
            .fetch_sub(self.variants, Ordering::AcqRel);
    }
}

impl Proxy {
    /// Re-fetches purged URLs in the background, so the next visitor gets a HIT: each URL once
    /// per variant it had stored (`requests`: the request headers each was made for, see
    /// `Entry::variant_request`), so a browser's `br` page and a client-side navigation's RSC
    /// payload are warm too, not only the plain page no browser asks for. A URL's variants are
    /// fetched one after another: they share its single-flight key.
    ///
    /// Bounded for the whole process, however many purges warm at once: `WARM_CONCURRENCY`
    /// URLs fetched at a time, at most `WARM_QUEUE_MAX` variant fetches waiting; the URLs
    /// that do not fit are left out, counted and logged. Returns how many were.
    pub fn warm(self: &Arc<Self>, urls: Vec<(Key, Vec<HeaderMap>)>) -> usize {
        let mut admitted = Vec::with_capacity(urls.len());
        let mut skipped = 0;
        for (key, requests) in urls {
            if requests.is_empty() {
                continue;
            }
            match self.warming.admit(requests.len()) {
                Some(place) => admitted.push((key, requests, place)),
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            self.metrics.warm_skipped(skipped);
            tracing::warn!(
                skipped,
                waiting_max = self.warming.max_queued,
                "too many purged pages waiting to be warmed: these are not re-fetched now (their next request fetches them)"
            );
        }
        if admitted.is_empty() {
            return skipped;
        }
        let this = self.clone();
        tokio::spawn(async move {
            // The permits are handed out in order (the semaphore is fair), so purges warming
            // at the same time take turns.
            for (key, requests, place) in admitted {
                let Ok(permit) = this.warming.permits.clone().acquire_owned().await else {
                    return;
                };
                let worker = this.clone();
                tokio::spawn(async move {
                    for headers in requests {
                        worker.warm_variant(&key, headers).await;
                    }
                    drop((permit, place));
                });
            }
        });
        skipped
    }

    async fn warm_variant(self: &Arc<Self>, key: &Key, mut headers: HeaderMap) {
        let (host, path_and_query) = split_key(key);
        if let Ok(value) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, value);
        }
        let path = path_and_query.split('?').next().unwrap_or("/");
        let fetch = FetchRequest {
            page: page_path(path).into_owned(),
            path_and_query: path_and_query.to_string(),
            host: host.to_string(),
            peer: IpAddr::from([127, 0, 0, 1]),
            headers,
            key: key.clone(),
            stale_fallback: false,
            copy: None,
            fwd: Forward::Miss,
        };
        // A visitor's request already fetching it warms it as well.
        let Joined::Leader(flight) = self.inflight.join(&self.flight_key(&fetch)) else {
            return;
        };
        let fetched = self.fetch_for_cache(fetch).await;
        flight.finish(fetched.shared());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warming_admits_fetches_up_to_its_bound_and_frees_their_places() {
        let warming = Arc::new(Warming::new(2, 5));
        let first = warming.admit(3).expect("room for 3 fetches");
        assert!(warming.admit(3).is_none(), "3 more do not fit");
        let second = warming.admit(2).expect("2 fit");
        assert!(warming.admit(1).is_none(), "full");
        assert!(warming.admit(usize::MAX).is_none(), "no overflow");
        drop(first);
        assert!(warming.admit(3).is_some(), "places come back when warmed");
        drop(second);
        assert_eq!(
            warming.queued.load(Ordering::Acquire),
            0,
            "every place returned"
        );
    }
}
