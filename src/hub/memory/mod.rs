use super::{position_event, reset_event, Cursor, Hub, ResetReason};
use crate::cursor::{Offset, StartAt};
use crate::sync::{lock, read, write};
use crate::{event::Event, observe};
use std::{
    collections::{HashMap, VecDeque},
    fmt,
    future::ready,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, OnceLock, RwLock, Weak,
    },
    time::{Duration, Instant},
};
use tokio::sync::broadcast;

mod budget;
mod builder;
mod error;
mod subscription;
mod waiters;
pub use budget::DEFAULT_MEMORY_MAX_HISTORY_BYTES;
use budget::{Budget, Kept};
pub use builder::MemoryHubBuilder;
pub use error::MemoryHubError;
pub use subscription::MemorySubscription;

/// The default number of events kept per topic for resume: 1024.
const DEFAULT_HISTORY: usize = 1024;
/// The default size of the live buffer shared by a topic's subscribers: 256.
const DEFAULT_BUFFER: usize = 256;
/// The default age after which a topic without subscribers is dropped: 10 minutes.
pub const DEFAULT_IDLE_TOPIC_AGE: Duration = Duration::from_secs(600);
/// The default most topics a [`MemoryHub`] holds: 100,000. A publish that would create one
/// more is refused ([`MemoryHubError`]).
pub const DEFAULT_MEMORY_MAX_TOPICS: usize = 100_000;

/// The embedded in-memory [`Hub`]: history is a bounded ring per topic, fan-out shares each
/// event (and its encodings) between subscribers.
///
/// Cursors look like `k3Xq9Z-42`: the hub's epoch (6 random letters and digits, new for every
/// `MemoryHub`) and the event's offset in its topic. A cursor from another instance (for
/// example before a restart) gets a `reset` event. Cloning the hub is cheap and shares it.
///
/// # Bounded topics
///
/// Topics are created on first publish or subscribe, each holding at most its history. A
/// topic nobody subscribes to is dropped once its last event is older than
/// [`idle_topic_age`](MemoryHubBuilder::idle_topic_age) (10 minutes by default), and at once
/// when it has no event at all; so a client asking for millions of random topic names cannot
/// grow the hub's memory. A sweep runs on the runtime the hub was first used on (every quarter
/// of the age, at most every 30 s) and whenever the number of topics doubles.
/// [`MemoryHub::remove_topic`] drops one at once.
///
/// Publishing can create topics faster than they age out, so their number is capped
/// ([`max_topics`](MemoryHubBuilder::max_topics), default [`DEFAULT_MEMORY_MAX_TOPICS`]):
/// past it, a publish to a new topic fails with [`MemoryHubError::TooManyTopics`] (logged at
/// warn at most every 10 s, counted in `tower_push_topics_refused_total`), while the topics
/// that exist keep working. A topic costs what it holds: its history grows as it fills, and
/// its live buffer is made by its first subscriber that reads on (a stream; a long poll never
/// needs one), so a topic holding one short event and no subscriber is well under 1 KiB.
///
/// # Live delivery
///
/// A subscription waits in its topic's list of waiters, woken all at once by a publish. Its
/// first live events come from the topic's recent events (the last [buffer] events, kept
/// while the topic has subscriptions); one that reads on joins the live buffer, shared by the
/// topic's streams. So a held long poll, which answers with its first events, never joins
/// the buffer: it costs the topic a waker and a count, not a place in the buffer taken and
/// given up under the buffer's lock, which every poll woken by the same event wants at once.
/// Live delivery does not depend on history: a subscription that falls behind the buffer (or
/// the recent events) catches up from history, or gets `reset` (`expired`) when history no
/// longer has what it missed.
///
/// [buffer]: MemoryHubBuilder::buffer
///
/// # Bounded history
///
/// The history of all topics together is capped in bytes too
/// ([`max_history_bytes`](MemoryHubBuilder::max_history_bytes), default
/// [`DEFAULT_MEMORY_MAX_HISTORY_BYTES`], 256 MiB), the way a JetStream stream's `max_bytes`
/// with the `old` discard policy is: past it, the hub's **oldest events are evicted first**,
/// whatever their topic, by the publish that goes past it (counted in
/// `tower_push_history_evicted_total`). Eviction works from a snapshot of each topic's oldest
/// event, taken again about once per cap's worth of publishes: at 100,000 topics that publish
/// waits some tens of milliseconds, every other one a heap step. Publishing is never refused for it, so a flood
/// cannot lock a small topic out; what a flood costs the others is resume depth, and a client
/// whose cursor was evicted gets `reset` (`expired`), never a silent gap. Live delivery does
/// not depend on history. An event counts its text (id, name, data, comment, topic) plus
/// its fixed size (under 300 bytes); the encodings transports cache on it come on top, at most
/// one per wire format in use. A single event larger than the cap is refused
/// ([`MemoryHubError::EventTooLarge`]).
///
/// A topic's offsets continue above every offset the hub has given before, so when a dropped
/// topic is created again, cursors of its earlier life get `reset` (`expired`), never a silent
/// gap.
///
/// See the [module docs](crate::hub) for the subscription stream and an example.
#[derive(Clone)]
pub struct MemoryHub {
    shared: Arc<Shared>,
}

struct Shared {
    epoch: Arc<str>,
    history: usize,
    buffer: usize,
    idle: Duration,
    max_topics: usize,
    budget: Arc<Budget>,
    /// Refusals since the last warning, and when that was (ms since `born`; 0: never).
    refused: AtomicU64,
    warned_at: AtomicU64,
    /// Read by every publish and subscribe; written only to add, remove or sweep topics.
    topics: RwLock<Topics>,
    /// Above every offset given so far: where a new topic's offsets start.
    clock: AtomicU64,
    /// The start of `Topic::touched`'s clock.
    born: Instant,
}

#[derive(Default)]
struct Topics {
    map: HashMap<Box<str>, Arc<Topic>>,
    /// The number of topics after the last sweep: the next one runs at twice as many.
    swept_at: usize,
    /// When the last sweep ran (ms since the hub's birth).
    swept_when: u64,
    /// Whether the background sweeper runs.
    sweeper: bool,
}

struct Topic {
    state: Mutex<TopicState>,
    /// Made by the first subscriber that joins it (under `state`): a topic only published to,
    /// or only polled, holds none.
    tx: OnceLock<broadcast::Sender<Entry>>,
    /// The live buffer's size, for the subscriber that makes it.
    buffer: usize,
    /// Live subscriptions, joined to the buffer or not.
    subscribers: AtomicUsize,
    /// The hub's epoch, for the cursors a subscription makes when it resets.
    epoch: Arc<str>,
    /// The offset after the last event sent to the live buffer: read without a lock by a
    /// subscription, which reads the buffer only when this says an event is there.
    sent: AtomicU64,
    /// Milliseconds from the hub's birth to the last publish or subscribe.
    touched: AtomicU64,
    /// Publishes and subscribes between finding the topic and using it: never swept then.
    using: AtomicUsize,
    /// Subscriptions waiting for the next event (they wait here, not in the buffer).
    waiters: waiters::Waiters,
    /// The hub's history budget, which this topic's ring counts against until it drops.
    budget: Arc<Budget>,
}

/// A topic in use (found in the map, not yet published to or subscribed): not swept.
struct InUse(Arc<Topic>);

impl InUse {
    /// Marks `topic` used now (the sweep leaves it alone until the handle is dropped).
    fn new(topic: &Arc<Topic>, now: u64) -> Self {
        touch(topic, now);
        topic.using.fetch_add(1, Ordering::Acquire);
        Self(topic.clone())
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.using.fetch_sub(1, Ordering::Release);
    }
}

impl std::ops::Deref for InUse {
    type Target = Arc<Topic>;
    fn deref(&self) -> &Arc<Topic> {
        &self.0
    }
}

struct TopicState {
    /// The offset the next event gets; offsets start at 1, so `next - 1` is the last one.
    next: u64,
    ring: VecDeque<Kept>,
    /// The last events (at most the buffer's size), kept while the topic has subscriptions
    /// and not counted against the history budget: what the live buffer holds, for the
    /// subscriptions not joined to it. Live delivery does not depend on history.
    recent: VecDeque<Entry>,
    /// The position event of the offset it names, made by the first subscription that
    /// started there and shared by the next ones: polls and reconnects that kept up all start
    /// at the current offset, and then cost a reference count instead of a cursor and an event.
    position: Option<(u64, Event)>,
}

impl TopicState {
    fn last(&self) -> u64 {
        self.next - 1
    }

    fn oldest(&self) -> u64 {
        self.next - self.ring.len() as u64
    }
}

#[derive(Clone)]
struct Entry {
    offset: u64,
    event: Event,
}

/// A snapshot of one topic of a [`MemoryHub`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// Events kept for resume (at most the configured history).
    pub history: usize,
    /// Events in the live buffer not yet seen by every subscriber joined to it (at most the
    /// buffer size). A long poll never joins it; a stream does once it reads on past its
    /// first live events.
    pub queued: usize,
    /// Live subscriptions.
    pub subscribers: usize,
    /// Events published to the topic so far.
    pub published: u64,
}

fn cursor(epoch: &str, offset: u64) -> Cursor {
    Cursor::join(epoch, offset)
}

impl Default for MemoryHub {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryHub {
    /// A hub keeping 1024 events per topic, with a live buffer of 256.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to change the history and buffer sizes.
    pub fn builder() -> MemoryHubBuilder {
        MemoryHubBuilder {
            history: DEFAULT_HISTORY,
            buffer: DEFAULT_BUFFER,
            idle: DEFAULT_IDLE_TOPIC_AGE,
            max_topics: DEFAULT_MEMORY_MAX_TOPICS,
            max_history_bytes: DEFAULT_MEMORY_MAX_HISTORY_BYTES,
        }
    }

    /// Publishes at once (the [`Hub::publish`] future is this, already complete).
    ///
    /// # Errors
    ///
    /// [`MemoryHubError::TooManyTopics`] when `topic` does not exist and the hub holds
    /// [`max_topics`](MemoryHubBuilder::max_topics) already;
    /// [`MemoryHubError::EventTooLarge`] when the event alone is larger than
    /// [`max_history_bytes`](MemoryHubBuilder::max_history_bytes).
    pub fn publish_now(&self, topic: &str, event: Event) -> Result<Cursor, MemoryHubError> {
        let budget = &self.shared.budget;
        let size = event.retained_size();
        if size > budget.max() {
            return Err(MemoryHubError::EventTooLarge {
                size,
                max_history_bytes: budget.max(),
            });
        }
        let topic = self.topic(topic, true)?;
        let mut state = lock(&topic.state);
        let offset = state.next;
        state.next += 1;
        self.shared.clock.fetch_max(state.next, Ordering::Relaxed);
        let cursor = self.cursor(offset);
        // Counted under this lock.
        let subscribers = topic.subscribers.load(Ordering::Relaxed);
        let event = event
            .id(cursor.as_str())
            .expect("cursors hold no line breaks")
            .stamped(subscribers);
        observe::published("memory");
        let entry = Entry { offset, event };
        if state.ring.len() == self.shared.history {
            if let Some(old) = state.ring.pop_front() {
                budget.release(&old);
            }
        }
        state.ring.push_back(budget.keep(entry.clone()));
        // The newest events for subscriptions not joined to the buffer, while there are any
        // subscriptions.
        if subscribers > 0 {
            if state.recent.len() >= topic.buffer {
                state.recent.pop_front();
            }
            state.recent.push_back(entry.clone());
        } else if !state.recent.is_empty() {
            state.recent = VecDeque::new();
        }
        // Sent under the lock, so the buffer's order is the offsets' order. An error only
        // means nobody is subscribed (nor is there a buffer before the first subscriber).
        if let Some(tx) = topic.tx.get() {
            let _ = tx.send(entry);
        }
        topic.sent.store(state.next, Ordering::Release);
        drop(state);
        topic.waiters.wake_all();
        if budget.over() {
            self.shared.trim_history();
        }
        Ok(cursor)
    }

    /// A snapshot of `topic`, or `None` if it does not exist.
    pub fn topic_stats(&self, topic: &str) -> Option<TopicStats> {
        let topic = read(&self.shared.topics).map.get(topic).cloned()?;
        let state = lock(&topic.state);
        Some(TopicStats {
            history: state.ring.len(),
            queued: topic.tx.get().map_or(0, broadcast::Sender::len),
            subscribers: topic.subscribers.load(Ordering::Acquire),
            published: state.last(),
        })
    }

    /// Drops `topic` and its history. Live subscriptions end once they have read what they
    /// were sent; a later publish or subscribe creates the topic anew (and old cursors get
    /// `reset`).
    pub fn remove_topic(&self, topic: &str) -> bool {
        write(&self.shared.topics).map.remove(topic).is_some()
    }

    /// The bytes of history the hub holds now, all topics together, as counted against
    /// [`max_history_bytes`](MemoryHubBuilder::max_history_bytes).
    pub fn history_bytes(&self) -> usize {
        self.shared.budget.used()
    }

    /// The number of topics the hub holds now.
    pub fn topic_count(&self) -> usize {
        read(&self.shared.topics).map.len()
    }

    /// Drops the idle topics now (what the sweep does); returns how many.
    pub fn evict_idle(&self) -> usize {
        self.shared.sweep()
    }

    /// The topic, made if needed; for a publish (`capped`), not past `max_topics`.
    fn topic(&self, name: &str, capped: bool) -> Result<InUse, MemoryHubError> {
        let now = self.shared.now();
        // Found under the read lock (every poll and reconnect looks its topic up; they do not
        // wait for each other); made under the write lock.
        if let Some(topic) = read(&self.shared.topics).map.get(name) {
            return Ok(InUse::new(topic, now));
        }
        let mut topics = write(&self.shared.topics);
        let topic = match topics.map.get(name) {
            Some(topic) => topic.clone(),
            None => {
                if topics.map.len() >= (2 * topics.swept_at).max(1024) {
                    self.shared.sweep_locked(&mut topics);
                }
                if capped && topics.map.len() >= self.shared.max_topics {
                    // Room may have aged out since the last sweep (at most one a second here:
                    // a flood at the limit must not sweep on every publish).
                    if now.saturating_sub(topics.swept_when) >= 1000 {
                        self.shared.sweep_locked(&mut topics);
                    }
                    if topics.map.len() >= self.shared.max_topics {
                        drop(topics);
                        return Err(self.shared.refuse(now));
                    }
                }
                if !topics.sweeper {
                    topics.sweeper = spawn_sweeper(&self.shared);
                }
                let start = self.shared.clock.load(Ordering::Relaxed);
                let topic = Arc::new(Topic {
                    state: Mutex::new(TopicState {
                        next: start,
                        ring: VecDeque::new(),
                        recent: VecDeque::new(),
                        position: None,
                    }),
                    tx: OnceLock::new(),
                    buffer: self.shared.buffer,
                    subscribers: AtomicUsize::new(0),
                    epoch: self.shared.epoch.clone(),
                    sent: AtomicU64::new(start),
                    touched: AtomicU64::new(now),
                    using: AtomicUsize::new(0),
                    waiters: Default::default(),
                    budget: self.shared.budget.clone(),
                });
                topics.map.insert(name.into(), topic.clone());
                topic
            }
        };
        Ok(InUse::new(&topic, now))
    }

    fn cursor(&self, offset: u64) -> Cursor {
        cursor(&self.shared.epoch, offset)
    }

    /// The position event for `after`; the current offset's is made once and shared.
    fn position(&self, state: &mut TopicState, after: u64) -> Event {
        match &state.position {
            Some((at, event)) if *at == after => event.clone(),
            _ => {
                let event = position_event(self.cursor(after));
                if after == state.last() {
                    state.position = Some((after, event.clone()));
                }
                event
            }
        }
    }

    /// The offset to resume after, or why not.
    fn resume_point(&self, from: StartAt, state: &TopicState) -> Result<u64, ResetReason> {
        let from = match from {
            StartAt::Now => return Ok(state.last()),
            StartAt::Unplaced => return Err(ResetReason::Invalid),
            StartAt::After(from) => from,
        };
        let (epoch, Offset::Seq(offset)) = (from.epoch(), from.offset()) else {
            return Err(ResetReason::Invalid);
        };
        if epoch != &*self.shared.epoch {
            let well_formed = crate::hub::well_formed_epoch(epoch);
            return Err(if well_formed {
                ResetReason::UnknownEpoch
            } else {
                ResetReason::Invalid
            });
        }
        if offset > state.last() {
            return Err(ResetReason::Invalid);
        }
        if offset + 1 < state.oldest() {
            return Err(ResetReason::Expired);
        }
        Ok(offset)
    }
}

impl Shared {
    fn now(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn sweep(&self) -> usize {
        self.sweep_locked(&mut write(&self.topics))
    }

    fn sweep_locked(&self, topics: &mut Topics) -> usize {
        let now = self.now();
        let idle = self.idle.as_millis() as u64;
        let before = topics.map.len();
        topics.map.retain(|_, topic| {
            let subscribers = topic.subscribers.load(Ordering::Acquire);
            if topic.using.load(Ordering::Acquire) > 0 || subscribers > 0 {
                return true;
            }
            let empty = lock(&topic.state).ring.is_empty();
            let age = now.saturating_sub(topic.touched.load(Ordering::Relaxed));
            !empty && age < idle
        });
        topics.swept_at = topics.map.len();
        topics.swept_when = now;
        before - topics.map.len()
    }
}

/// Starts the background sweep on the current runtime, if there is one; it ends with the hub.
fn spawn_sweeper(shared: &Arc<Shared>) -> bool {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    let period = (shared.idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
    let shared: Weak<Shared> = Arc::downgrade(shared);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let evicted = shared.sweep();
            if evicted > 0 {
                tracing::debug!(evicted, "memory hub: idle topics dropped");
            }
        }
    });
    true
}

impl fmt::Debug for MemoryHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryHub")
            .field("epoch", &self.shared.epoch)
            .field("history", &self.shared.history)
            .field("buffer", &self.shared.buffer)
            .field("idle_topic_age", &self.shared.idle)
            .finish_non_exhaustive()
    }
}

impl Hub for MemoryHub {
    type Subscription = MemorySubscription;
    type Error = MemoryHubError;

    fn publish(
        &self,
        topic: &str,
        event: Event,
    ) -> impl std::future::Future<Output = Result<Cursor, MemoryHubError>> + Send {
        ready(self.publish_now(topic, event))
    }

    fn subscribe(&self, topic: &str, from: StartAt) -> MemorySubscription {
        observe::record_topic(topic);
        {
            // Found and subscribed under the map's read lock (no sweep runs meanwhile, so the
            // topic needs no in-use mark): every poll and reconnect comes this way.
            let topics = read(&self.shared.topics);
            if let Some(found) = topics.map.get(topic) {
                touch(found, self.shared.now());
                return self.subscribe_to(found, from);
            }
        }
        let topic = match self.topic(topic, false) {
            Ok(topic) => topic,
            Err(_) => unreachable!("subscribing is not capped"),
        };
        self.subscribe_to(&topic, from)
    }
}

/// Marks `topic` used at `now` (written only when it changes: a burst of polls shares one
/// cache line without each of them taking it over).
fn touch(topic: &Topic, now: u64) {
    if topic.touched.load(Ordering::Relaxed) != now {
        topic.touched.store(now, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
