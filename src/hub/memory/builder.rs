//! [`MemoryHubBuilder`]: a [`MemoryHub`]'s history, buffer and bounds.

use super::{Budget, MemoryHub, Shared, Topics};
use std::{
    sync::{atomic::AtomicU64, Arc, RwLock},
    time::{Duration, Instant},
};

/// Builder for [`MemoryHub`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryHubBuilder {
    pub(super) history: usize,
    pub(super) buffer: usize,
    pub(super) idle: Duration,
    pub(super) max_topics: usize,
    pub(super) max_history_bytes: usize,
}

impl MemoryHubBuilder {
    /// Events kept per topic for resume. Default 1024; at least 1.
    pub fn history(mut self, events: usize) -> Self {
        self.history = events.max(1);
        self
    }

    /// Size of the live buffer a topic's subscribers share. A subscriber further behind than
    /// this catches up from history (or gets `reset`). Default 256; at least 1.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// How long a topic without subscribers keeps its history after its last publish before
    /// it is dropped (a topic without events goes as soon as its last subscriber does).
    /// Default [`DEFAULT_IDLE_TOPIC_AGE`](super::DEFAULT_IDLE_TOPIC_AGE) (10 minutes). Resuming after a longer absence gets
    /// `reset` (`expired`).
    pub fn idle_topic_age(mut self, age: Duration) -> Self {
        self.idle = age;
        self
    }

    /// The most topics the hub holds. A publish that would create one more fails with
    /// [`MemoryHubError::TooManyTopics`](super::MemoryHubError::TooManyTopics) (after a sweep of the idle ones found no room); publishes to
    /// existing topics and subscriptions are not affected. Default
    /// [`DEFAULT_MEMORY_MAX_TOPICS`](super::DEFAULT_MEMORY_MAX_TOPICS) (100,000); at least 1.
    pub fn max_topics(mut self, topics: usize) -> Self {
        self.max_topics = topics.max(1);
        self
    }

    /// The most bytes of history the hub keeps, all topics together; past it the hub's oldest
    /// events are evicted first (see [`MemoryHub`]'s bounded history). Default
    /// [`DEFAULT_MEMORY_MAX_HISTORY_BYTES`](super::DEFAULT_MEMORY_MAX_HISTORY_BYTES) (256 MiB); at least 64 KiB. An event larger than
    /// this is refused.
    pub fn max_history_bytes(mut self, bytes: usize) -> Self {
        self.max_history_bytes = bytes.max(64 << 10);
        self
    }

    /// Builds the hub, with a new epoch.
    pub fn build(self) -> MemoryHub {
        MemoryHub {
            shared: Arc::new(Shared {
                epoch: crate::hub::new_epoch().into(),
                history: self.history,
                buffer: self.buffer,
                idle: self.idle,
                max_topics: self.max_topics,
                budget: Budget::new(self.max_history_bytes),
                refused: AtomicU64::new(0),
                warned_at: AtomicU64::new(0),
                topics: RwLock::new(Topics::default()),
                clock: AtomicU64::new(1),
                born: Instant::now(),
            }),
        }
    }
}
