use super::live::LiveReceiver;
use super::{position_event, reset_event, Cursor, Hub, ResetReason};
use crate::{event::Event, observe};
use futures_core::Stream;
use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    fmt,
    future::ready,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{ready, Context, Poll},
};
use tokio::sync::broadcast::{self, error::RecvError};

/// The default number of events kept per topic for resume: 1024.
const DEFAULT_HISTORY: usize = 1024;
/// The default size of the live buffer shared by a topic's subscribers: 256.
const DEFAULT_BUFFER: usize = 256;

/// The embedded in-memory [`Hub`]: history is a bounded ring per topic, fan-out shares each
/// event (and its encodings) between subscribers.
///
/// Cursors look like `9f3a0c1d2e4b5a67-42`: the hub's epoch (random, new for every
/// `MemoryHub`) and the event's offset in its topic. A cursor from another instance (for
/// example before a restart) gets a `reset` event. Cloning the hub is cheap and shares it.
///
/// Topics are created on first use and kept for the life of the hub, each holding at most its
/// history; [`MemoryHub::remove_topic`] drops one.
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
    topics: Mutex<HashMap<Box<str>, Arc<Topic>>>,
}

struct Topic {
    state: Mutex<TopicState>,
    tx: broadcast::Sender<Entry>,
    /// The hub's epoch, for the cursors a subscription makes when it resets.
    epoch: Arc<str>,
}

struct TopicState {
    /// The offset the next event gets; offsets start at 1, so `next - 1` is the last one.
    next: u64,
    ring: VecDeque<Entry>,
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
    /// Events in the live buffer not yet seen by every subscriber (at most the buffer size).
    pub queued: usize,
    /// Live subscriptions.
    pub subscribers: usize,
    /// Events published to the topic so far.
    pub published: u64,
}

fn cursor(epoch: &str, offset: u64) -> Cursor {
    Cursor::new(format!("{epoch}-{offset}"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state stays consistent across a panic elsewhere: every update is one step.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builder for [`MemoryHub`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryHubBuilder {
    history: usize,
    buffer: usize,
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

    /// Builds the hub, with a new epoch.
    pub fn build(self) -> MemoryHub {
        MemoryHub {
            shared: Arc::new(Shared {
                epoch: super::new_epoch().into(),
                history: self.history,
                buffer: self.buffer,
                topics: Mutex::new(HashMap::new()),
            }),
        }
    }
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
        }
    }

    /// Publishes at once (the [`Hub::publish`] future is this, already complete).
    pub fn publish_now(&self, topic: &str, event: Event) -> Cursor {
        let topic = self.topic(topic);
        let mut state = lock(&topic.state);
        let offset = state.next;
        state.next += 1;
        let cursor = self.cursor(offset);
        let event = event
            .id(cursor.as_str())
            .expect("cursors hold no line breaks")
            .stamped();
        observe::published("memory");
        let entry = Entry { offset, event };
        if state.ring.len() == self.shared.history {
            state.ring.pop_front();
        }
        state.ring.push_back(entry.clone());
        // Sent under the lock, so the buffer's order is the offsets' order. An error only
        // means nobody is subscribed.
        let _ = topic.tx.send(entry);
        cursor
    }

    /// A snapshot of `topic`, or `None` if it does not exist.
    pub fn topic_stats(&self, topic: &str) -> Option<TopicStats> {
        let topic = lock(&self.shared.topics).get(topic).cloned()?;
        let state = lock(&topic.state);
        Some(TopicStats {
            history: state.ring.len(),
            queued: topic.tx.len(),
            subscribers: topic.tx.receiver_count(),
            published: state.last(),
        })
    }

    /// Drops `topic` and its history. Live subscriptions end once they have read what they
    /// were sent; a later publish or subscribe creates the topic anew (and old cursors get
    /// `reset`).
    pub fn remove_topic(&self, topic: &str) -> bool {
        lock(&self.shared.topics).remove(topic).is_some()
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        let mut topics = lock(&self.shared.topics);
        if let Some(topic) = topics.get(name) {
            return topic.clone();
        }
        let topic = Arc::new(Topic {
            state: Mutex::new(TopicState {
                next: 1,
                ring: VecDeque::new(),
            }),
            tx: broadcast::channel(self.shared.buffer).0,
            epoch: self.shared.epoch.clone(),
        });
        topics.insert(name.into(), topic.clone());
        topic
    }

    fn cursor(&self, offset: u64) -> Cursor {
        cursor(&self.shared.epoch, offset)
    }

    /// The offset to resume after, or why not.
    fn resume_point(&self, from: Option<&str>, state: &TopicState) -> Result<u64, ResetReason> {
        let Some(from) = from else {
            return Ok(state.last());
        };
        let (epoch, offset) = from.split_once('-').ok_or(ResetReason::Invalid)?;
        let offset: u64 = offset.parse().map_err(|_| ResetReason::Invalid)?;
        if epoch != &*self.shared.epoch {
            let well_formed = epoch.len() == 16 && epoch.bytes().all(|b| b.is_ascii_hexdigit());
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

impl fmt::Debug for MemoryHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryHub")
            .field("epoch", &self.shared.epoch)
            .field("history", &self.shared.history)
            .field("buffer", &self.shared.buffer)
            .finish_non_exhaustive()
    }
}

impl Hub for MemoryHub {
    type Subscription = MemorySubscription;
    type Error = Infallible;

    fn publish(
        &self,
        topic: &str,
        event: Event,
    ) -> impl std::future::Future<Output = Result<Cursor, Infallible>> + Send {
        ready(Ok(self.publish_now(topic, event)))
    }

    fn subscribe(&self, topic: &str, from: Option<&str>) -> MemorySubscription {
        observe::record_topic(topic);
        let topic = self.topic(topic);
        let state = lock(&topic.state);
        // Subscribed under the lock: the buffer holds exactly the events after `state.next - 1`.
        let rx = topic.tx.subscribe();
        let mut pending = Box::<VecDeque<Event>>::default();
        match self.resume_point(from, &state) {
            Ok(after) => {
                pending.push_back(position_event(&self.cursor(after)));
                let skip = (after + 1 - state.oldest()) as usize;
                pending.extend(state.ring.iter().skip(skip).map(|e| e.event.clone()));
            }
            Err(reason) => pending.push_back(reset_event(reason, &self.cursor(state.last()))),
        }
        let next = state.next;
        drop(state);
        MemorySubscription {
            rx: LiveReceiver::new(rx),
            next,
            pending: Some(pending),
            topic,
        }
    }
}

/// The subscription stream of a [`MemoryHub`]. See the [module docs](crate::hub).
#[must_use = "streams do nothing unless polled"]
pub struct MemorySubscription {
    // Hot fields first, and small: fan-out to many subscribers is bound by memory traffic.
    rx: LiveReceiver<Entry>,
    /// The offset of the next live event to deliver.
    next: u64,
    /// Position or reset event, replayed history, or a catch-up after lagging; boxed because
    /// it is empty (`None`) nearly always.
    #[allow(clippy::box_collection)] // 8 bytes instead of 32 on the hot struct
    pending: Option<Box<VecDeque<Event>>>,
    topic: Arc<Topic>,
}

impl MemorySubscription {
    /// After lagging behind the live buffer: take the missed events from history, or reset.
    fn catch_up(&mut self) {
        let state = lock(&self.topic.state);
        let pending = self.pending.get_or_insert_with(Default::default);
        if self.next < state.oldest() {
            pending.clear();
            let current = cursor(&self.topic.epoch, state.last());
            pending.push_back(reset_event(ResetReason::Expired, &current));
        } else {
            let skip = (self.next - state.oldest()) as usize;
            pending.extend(state.ring.iter().skip(skip).map(|e| e.event.clone()));
        }
        self.next = state.next;
    }
}

impl fmt::Debug for MemorySubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySubscription")
            .field("next", &self.next)
            .field("pending", &self.pending.as_ref().map_or(0, |p| p.len()))
            .finish_non_exhaustive()
    }
}

impl Stream for MemorySubscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = &mut *self;
        loop {
            if let Some(pending) = &mut this.pending {
                match pending.pop_front() {
                    Some(event) => return Poll::Ready(Some(event)),
                    None => this.pending = None,
                }
            }
            match ready!(this.rx.poll_recv(cx)) {
                Err(RecvError::Closed) => return Poll::Ready(None),
                Ok(entry) if entry.offset < this.next => {} // already delivered
                Ok(entry) if entry.offset == this.next => {
                    this.next += 1;
                    return Poll::Ready(Some(entry.event));
                }
                // A gap: only after lagging, which the buffer reports first; handled alike.
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    observe::lagged();
                    this.catch_up()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt as _;

    async fn next(sub: &mut MemorySubscription) -> Event {
        tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
    }

    #[tokio::test]
    async fn cursors_are_short_and_cors_safe() {
        let hub = MemoryHub::new();
        let cursor = hub.publish_now("t", Event::new().data("x"));
        assert!(cursor.as_str().len() <= 128);
        assert!(cursor
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert_ne!(
            MemoryHub::new().publish_now("t", Event::new()),
            cursor,
            "a new hub has a new epoch"
        );
    }

    #[tokio::test]
    async fn fresh_subscription_starts_with_the_current_position() {
        let hub = MemoryHub::new();
        let last = hub.publish_now("t", Event::new().data("old"));
        let mut sub = hub.subscribe("t", None);
        let first = next(&mut sub).await;
        assert!(first.is_cursor_only());
        assert_eq!(first.get_id(), Some(last.as_str()));
        hub.publish_now("t", Event::new().data("new"));
        assert_eq!(next(&mut sub).await.get_data(), Some("new"));
    }

    #[tokio::test]
    async fn bad_cursors_reset_with_a_reason() {
        let hub = MemoryHub::builder().history(2).build();
        let first = hub.publish_now("t", Event::new().data("1"));
        for _ in 0..3 {
            hub.publish_now("t", Event::new().data("x"));
        }
        let other = MemoryHub::new().publish_now("t", Event::new());
        let epoch = first.as_str().split_once('-').unwrap().0;
        for (from, reason) in [
            ("garbage", "invalid"),
            (&*format!("{epoch}-99"), "invalid"),
            (other.as_str(), "unknown-epoch"),
            (first.as_str(), "expired"),
        ] {
            let mut sub = hub.subscribe("t", Some(from));
            let reset = next(&mut sub).await;
            assert_eq!(reset.get_event(), Some(super::super::RESET_EVENT), "{from}");
            assert_eq!(reset.get_id(), Some(&*format!("{epoch}-4")));
            let data: serde_json::Value = serde_json::from_str(reset.get_data().unwrap()).unwrap();
            assert_eq!(data["reason"], reason, "{from}");
            assert_eq!(data["cursor"], format!("{epoch}-4"));
        }
    }

    #[tokio::test]
    async fn lagging_subscriber_catches_up_from_history() {
        let hub = MemoryHub::builder().history(100).buffer(4).build();
        let mut sub = hub.subscribe("t", None);
        next(&mut sub).await; // position
        for i in 0..50 {
            hub.publish_now("t", Event::new().data(i.to_string()));
        }
        for i in 0..50 {
            assert_eq!(next(&mut sub).await.get_data(), Some(&*i.to_string()));
        }
        hub.publish_now("t", Event::new().data("live"));
        assert_eq!(next(&mut sub).await.get_data(), Some("live"));
    }

    #[tokio::test]
    async fn lagging_past_history_resets_then_goes_live() {
        let hub = MemoryHub::builder().history(8).buffer(4).build();
        let mut sub = hub.subscribe("t", None);
        next(&mut sub).await;
        for i in 0..50 {
            hub.publish_now("t", Event::new().data(i.to_string()));
        }
        let reset = next(&mut sub).await;
        assert_eq!(reset.get_event(), Some("reset"));
        hub.publish_now("t", Event::new().data("live"));
        assert_eq!(next(&mut sub).await.get_data(), Some("live"));
    }
}
