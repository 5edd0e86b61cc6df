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
        MemoryHubError::TooManyTopics {
            max_topics: self.max_topics,
        }
    }
}

/// What a [`MemoryHub`](super::MemoryHub) publish fails with. Worth a `503` (or `429`) with
/// `Retry-After` for [`TooManyTopics`](Self::TooManyTopics) (topics age out, see
/// [`MemoryHub`](super::MemoryHub)'s bounded topics), a `413` for
/// [`EventTooLarge`](Self::EventTooLarge).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryHubError {
    /// The topic does not exist and the hub holds
    /// [`max_topics`](super::MemoryHubBuilder::max_topics) already.
    #[non_exhaustive]
    TooManyTopics {
        /// The limit that was reached.
        max_topics: usize,
    },
    /// The event alone is larger than the hub's whole history
    /// ([`max_history_bytes`](super::MemoryHubBuilder::max_history_bytes)).
    #[non_exhaustive]
    EventTooLarge {
        /// The bytes the event would hold while kept.
        size: usize,
        /// The hub's history budget.
        max_history_bytes: usize,
    },
}

impl fmt::Display for MemoryHubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyTopics { max_topics } => write!(
                f,
                "memory hub: {max_topics} topics, its limit; a new topic must wait for idle ones to age out"
            ),
            Self::EventTooLarge {
                size,
                max_history_bytes,
            } => write!(
                f,
                "memory hub: an event of {size} bytes is larger than the whole history ({max_history_bytes} bytes)"
            ),
        }
    }
}

impl std::error::Error for MemoryHubError {}
