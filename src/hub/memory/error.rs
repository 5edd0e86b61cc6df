//! What a [`MemoryHub`](super::MemoryHub) publish fails with, and how a refusal is counted.

use super::Shared;
use crate::observe;
use std::{fmt, sync::atomic::Ordering};

impl Shared {
    /// A refused new topic: counted, logged at warn at most every 10 s (with the count).
    pub(super) fn refuse(&self, now: u64) -> MemoryHubError {
        observe::topic_refused("memory");
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let warned = self.warned_at.load(Ordering::Relaxed);
        if (warned == 0 || now.saturating_sub(warned) >= 10_000)
            && self
                .warned_at
                .compare_exchange(warned, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.refused.store(0, Ordering::Relaxed);
            tracing::warn!(
                max_topics = self.max_topics,
                refused,
                "memory hub: at its topic limit; publishes to new topics are refused"
            );
        }
        MemoryHubError {
            max_topics: self.max_topics,
        }
    }
}

/// What [`MemoryHub`](super::MemoryHub) publishes fail with: the topic does not exist and the hub holds
/// [`max_topics`](super::MemoryHubBuilder::max_topics) already. Worth a `503` (or `429`) with
/// `Retry-After`: topics age out (see [`MemoryHub`](super::MemoryHub)'s bounded topics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryHubError {
    max_topics: usize,
}

impl MemoryHubError {
    /// The limit that was reached.
    pub fn max_topics(&self) -> usize {
        self.max_topics
    }
}

impl fmt::Display for MemoryHubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory hub: {} topics, its limit; a new topic must wait for idle ones to age out",
            self.max_topics
        )
    }
}

impl std::error::Error for MemoryHubError {}
