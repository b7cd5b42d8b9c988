//! Removing the values of large hard purges from moka, off the purge's path.
//!
//! Why: a hard purge marks what it selects purged, which already hides it from every lookup;
//! removing thousands of values from moka (and unlinking each from the index) is cleanup nobody
//! has to wait for. Why one long-lived thread rather than one per purge: starting a thread cost
//! more than the rest of a 100-URL purge, and purges in a burst must not pile up threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use super::{remove_if_id, Key, Variants};

type Store = moka::sync::Cache<Key, Arc<Variants>>;

/// How long the thread, woken by a purge, leaves the core to it. The purge is still answering,
/// and on a busy machine the scheduler often runs the freshly woken thread first on the purge's
/// own core, so the purge waited for its own cleanup: on the 2-core development machine the
/// 100-URL purge benches had medians from 43 µs to 0.37 ms and samples up to 0.65 ms without
/// this, 59 to 95 µs and at most 0.13 ms with it. Removals start that much later, which nobody
/// sees: the values are invisible from the purge on, and [`Removals::wait`] waits for all.
const SETTLE: Duration = Duration::from_millis(1);

/// The removal thread, started by the first large hard purge.
#[derive(Default)]
pub(super) struct Removals {
    worker: Mutex<Option<Worker>>,
}

struct Worker {
    jobs: mpsc::Sender<Job>,
    /// Removal jobs sent and not yet done: [`Removals::wait`] costs nothing when it is zero.
    pending: Arc<AtomicUsize>,
}

/// Done in the order sent.
enum Job {
    /// Keys with the id of the value to remove (a newer value under the key stays).
    Remove(Vec<(Key, u64)>),
    /// Answered once everything sent before it is done.
    Flush(mpsc::Sender<()>),
}

impl Removals {
    /// Hands `removals` to the thread, starting it if needed.
    pub(super) fn send(&self, store: &Store, removals: Vec<(Key, u64)>) {
        let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        let mut job = Job::Remove(removals);
        if let Some(running) = worker.as_ref() {
            running.pending.fetch_add(1, Ordering::AcqRel);
            match running.jobs.send(job) {
                Ok(()) => return,
                // The thread is gone (it panicked): start another.
                Err(mpsc::SendError(unsent)) => {
                    running.pending.fetch_sub(1, Ordering::AcqRel);
                    job = unsent;
                }
            }
        }
        match start(store.clone()) {
            Ok(started) => {
                started.pending.fetch_add(1, Ordering::AcqRel);
                if started.jobs.send(job).is_err() {
                    started.pending.fetch_sub(1, Ordering::AcqRel);
                }
                *worker = Some(started);
            }
            // No thread to be had: the marked values are invisible already, and moka drops
            // them when they expire or are pushed out.
            Err(error) => tracing::warn!(%error, "could not start the purge removal thread"),
        }
    }

    /// Waits until everything sent so far is removed.
    pub(super) fn wait(&self) {
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        let Some(running) = worker.as_ref() else {
            return;
        };
        // Waking the thread only to hear it is idle would cost a context switch each time.
        if running.pending.load(Ordering::Acquire) == 0 {
            return;
        }
        let jobs = running.jobs.clone();
        drop(worker);
        let (done, finished) = mpsc::channel();
        if jobs.send(Job::Flush(done)).is_ok() {
            // An error means the thread died: nothing is left to wait for.
            let _ = finished.recv();
        }
    }
}

fn start(store: Store) -> std::io::Result<Worker> {
    let (jobs, received) = mpsc::channel();
    let pending = Arc::new(AtomicUsize::new(0));
    let counted = pending.clone();
    std::thread::Builder::new()
        .name("isr-edge-purge".into())
        // Ends when the cache, holding the only lasting sender, is dropped.
        .spawn(move || {
            while let Ok(first) = received.recv() {
                if matches!(first, Job::Remove(_)) {
                    std::thread::sleep(SETTLE);
                }
                // Everything sent meanwhile is done in the same pass, in order.
                for job in std::iter::once(first).chain(received.try_iter()) {
                    match job {
                        Job::Remove(keys) => {
                            for (key, id) in &keys {
                                remove_if_id(&store, key, *id);
                            }
                            counted.fetch_sub(1, Ordering::AcqRel);
                        }
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            }
        })?;
    Ok(Worker { jobs, pending })
}
