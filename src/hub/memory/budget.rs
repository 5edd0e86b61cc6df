//! The history budget of a [`MemoryHub`](super::MemoryHub): the bytes its topics keep for
//! resume, all topics together, with the oldest events evicted first once it is spent.
//!
//! Every kept event carries a hub-wide sequence number. Eviction keeps a min-heap of each
//! topic's oldest kept event, by sequence number, made from a snapshot of the topics: a publish
//! that takes the total past the budget pops the hub's oldest events from it until the total
//! fits again (usually one or two), pushing each topic's next event back. Topics made after the
//! snapshot hold only events newer than it, so the heap is right until its oldest event is
//! newer than the snapshot; then (about once per budget's worth of publishes) it is made
//! again. Under the budget nothing is spent but two atomic additions per publish.

use super::{lock, read, Entry, Shared, Topic};
use crate::observe;
use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError, TryLockError, Weak,
    },
};

/// The default bytes of history a [`MemoryHub`](super::MemoryHub) keeps, all topics together:
/// 256 MiB. Past it, the hub's oldest events are evicted first.
pub const DEFAULT_MEMORY_MAX_HISTORY_BYTES: usize = 256 << 20;

/// The bytes a kept event costs besides the event itself: its slot in its topic's ring.
const SLOT: usize = std::mem::size_of::<Kept>();

/// One event of a topic's history.
pub(super) struct Kept {
    /// Hub-wide publish order: the smallest is the hub's oldest event.
    pub(super) seq: u64,
    pub(super) entry: Entry,
}

/// What the history holds, against its budget.
pub(super) struct Budget {
    max: usize,
    used: AtomicUsize,
    next_seq: AtomicU64,
    /// Held by the publish that evicts; the others go on (the next one over the budget evicts).
    evictor: Mutex<Evictor>,
}

/// The hub's oldest kept events, one per topic of a snapshot.
#[derive(Default)]
struct Evictor {
    topics: Vec<Weak<Topic>>,
    /// (sequence number of the topic's oldest kept event, index in `topics`).
    oldest: BinaryHeap<Reverse<(u64, u32)>>,
    /// The hub's next sequence number when the snapshot was taken: every older event is in a
    /// topic of the snapshot, so the heap's minimum is the hub's oldest event while below it.
    horizon: u64,
}

impl Budget {
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            used: AtomicUsize::new(0),
            next_seq: AtomicU64::new(0),
            evictor: Mutex::default(),
        })
    }

    pub(super) fn max(&self) -> usize {
        self.max
    }

    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The bytes `entry` costs while kept.
    pub(super) fn cost(entry: &Entry) -> usize {
        entry.event.retained_size() + SLOT
    }

    /// `entry`, counted, ready for its topic's ring (called under the topic's lock, so each
    /// ring's sequence numbers rise).
    pub(super) fn keep(&self, entry: Entry) -> Kept {
        self.used.fetch_add(Self::cost(&entry), Ordering::Relaxed);
        Kept {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            entry,
        }
    }

    /// `kept` has left its ring.
    pub(super) fn release(&self, kept: &Kept) {
        self.used
            .fetch_sub(Self::cost(&kept.entry), Ordering::Relaxed);
    }

    pub(super) fn over(&self) -> bool {
        self.used() > self.max
    }
}

impl Drop for Topic {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        for kept in &state.ring {
            self.budget.release(kept);
        }
    }
}

impl Shared {
    /// Evicts the hub's oldest events until the history fits its budget; returns how many
    /// went (0 when another publish is evicting).
    pub(super) fn trim_history(&self) -> usize {
        let budget = &self.budget;
        let mut evictor = match budget.evictor.try_lock() {
            Ok(evictor) => evictor,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return 0,
        };
        let (mut evicted, mut remade) = (0, false);
        while budget.over() {
            let (seq, i) = match evictor.oldest.pop() {
                Some(Reverse((seq, i))) if seq < evictor.horizon => (seq, i),
                // Empty, or newer than the snapshot: newer topics may hold older events.
                _ if !remade => {
                    self.snapshot(&mut evictor);
                    remade = true;
                    continue;
                }
                // What is left is held by topics that left the hub and are still read.
                _ => break,
            };
            let Some(topic) = evictor.topics[i as usize].upgrade() else {
                continue;
            };
            let mut state = lock(&topic.state);
            // The ring may have moved on since (its own length limit): then only re-queue it.
            if state.ring.front().is_some_and(|front| front.seq == seq) {
                let kept = state.ring.pop_front().expect("the front was just seen");
                budget.release(&kept);
                evicted += 1;
            }
            if let Some(front) = state.ring.front() {
                evictor.oldest.push(Reverse((front.seq, i)));
            }
        }
        drop(evictor);
        if evicted > 0 {
            observe::history_evicted("memory", evicted);
        }
        evicted as usize
    }

    /// Makes the heap again from the topics the hub holds now.
    fn snapshot(&self, evictor: &mut Evictor) {
        evictor.horizon = self.budget.next_seq.load(Ordering::Relaxed);
        let topics: Vec<Arc<Topic>> = read(&self.topics).map.values().cloned().collect();
        evictor.oldest.clear();
        evictor.topics.clear();
        for topic in topics {
            if let Some(front) = lock(&topic.state).ring.front() {
                let i = evictor.topics.len() as u32;
                evictor.oldest.push(Reverse((front.seq, i)));
                evictor.topics.push(Arc::downgrade(&topic));
            }
        }
        tracing::debug!(
            topics = evictor.topics.len(),
            bytes = self.budget.used(),
            max = self.budget.max,
            "memory hub: history at its budget; eviction order taken"
        );
    }
}
