//! The history budget of a [`MemoryHub`](super::MemoryHub): the bytes its topics keep for
//! resume, all topics together, with the oldest events evicted first once it is spent.
//!
//! Every kept event carries a hub-wide sequence number. A publish that takes the total past the
//! budget runs one eviction pass: it takes each topic's oldest kept event into a min-heap by
//! sequence number and drops the hub's oldest events until the total is back under seven
//! eighths of the budget, so passes come once per eighth of the budget published, not on every
//! publish. Between passes nothing but two atomic additions per publish is spent.

use super::{lock, Entry, Shared, Topic};
use crate::observe;
use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, PoisonError,
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
    /// One eviction pass at a time.
    trimming: AtomicBool,
}

impl Budget {
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            used: AtomicUsize::new(0),
            next_seq: AtomicU64::new(0),
            trimming: AtomicBool::new(false),
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
    /// Evicts the hub's oldest events until the history is under seven eighths of its budget.
    /// Returns how many went (0 when another pass is running).
    pub(super) fn trim_history(&self) -> usize {
        let budget = &self.budget;
        if budget.trimming.swap(true, Ordering::Acquire) {
            return 0;
        }
        let target = budget.max - budget.max / 8;
        // Topics made after this snapshot hold the newest events: the oldest are all here.
        let topics: Vec<Arc<Topic>> = lock(&self.topics).map.values().cloned().collect();
        let mut oldest: BinaryHeap<Reverse<(u64, usize)>> = topics
            .iter()
            .enumerate()
            .filter_map(|(i, topic)| {
                let seq = lock(&topic.state).ring.front()?.seq;
                Some(Reverse((seq, i)))
            })
            .collect();
        let mut evicted = 0;
        while budget.used() > target {
            let Some(Reverse((seq, i))) = oldest.pop() else {
                break;
            };
            let mut state = lock(&topics[i].state);
            // The ring may have moved on since (its own length limit): then only re-queue it.
            if state.ring.front().is_some_and(|front| front.seq == seq) {
                let kept = state.ring.pop_front().expect("the front was just seen");
                budget.release(&kept);
                evicted += 1;
            }
            if let Some(front) = state.ring.front() {
                oldest.push(Reverse((front.seq, i)));
            }
        }
        budget.trimming.store(false, Ordering::Release);
        observe::history_evicted("memory", evicted);
        tracing::debug!(
            evicted,
            bytes = budget.used(),
            max = budget.max,
            "memory hub: history budget spent; oldest events evicted"
        );
        evicted as usize
    }
}
