//! The backbone: publish events to topics, subscribe from a cursor, resume without loss.
//!
//! A [`Hub`] keeps recent history per topic. [`Hub::subscribe`] returns a stream that first
//! replays what the hub kept after the client's cursor and then continues with live events,
//! with no gap and no duplicate at the seam, even while other tasks publish.
//! [`Hub::publish`] gives each event its id: a [`Cursor`], which clients send back
//! (`Last-Event-ID`, `?lastEventId=`) to resume on any transport.
//!
//! [`MemoryHub`] is the embedded default; `RedisHub` (feature `redis`) is the backbone for
//! several processes. The trait is what transports and [`Subscribe`] depend on, so the
//! backends plug in without changes to them, and one behavioural test suite runs against
//! both.
//!
//! # The subscription stream
//!
//! 1. It starts with one **position event**: an id-only event carrying the cursor it starts
//!    after. Over SSE this is the *priming* event: the browser stores the id, so a reconnect
//!    that saw no events still resumes from the right place. Long-poll answers a poll without
//!    cursor with it at once.
//! 2. When the cursor cannot be honoured, the position event is instead a [`RESET_EVENT`]
//!    (`event: reset`), whose id is the current cursor and whose data is JSON
//!    `{"reason":"...","cursor":"..."}`. Reasons: `"invalid"` (unparseable, or ahead of the
//!    topic), `"unknown-epoch"` (issued by another hub instance or a previous process), and
//!    `"expired"` (older than the kept history). Clients should treat it as "you may have
//!    missed events: reload your state".
//! 3. Then every event after the starting cursor: replayed history, then live.
//!
//! # Slow subscribers
//!
//! Live events reach subscribers through a bounded buffer per topic shared by all of them
//! (memory never grows with a stalled client). A subscriber that falls behind that buffer
//! catches up from the topic's history when the events it missed are still there, and
//! otherwise receives a `reset` event (reason `"expired"`) and continues with live events.
//!
//! # Example
//!
//! ```
//! use tokio_stream::StreamExt as _;
//! use tower_push::{hub::{Hub, MemoryHub}, Event};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let hub = MemoryHub::new();
//! let first = hub.publish("room", Event::new().data("one")).await.unwrap();
//! hub.publish("room", Event::new().data("two")).await.unwrap();
//!
//! // Resume after `first`: the position event, then "two" from history.
//! let mut sub = hub.subscribe("room", Some(first.as_str()));
//! assert!(sub.next().await.unwrap().is_cursor_only());
//! assert_eq!(sub.next().await.unwrap().get_data(), Some("two"));
//! # }
//! ```

mod live;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod subscribe;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisHub, RedisHubBuilder, RedisHubError, RedisSubscription};
pub use crate::cursor::Cursor;
pub use memory::{MemoryHub, MemoryHubBuilder, MemorySubscription, TopicStats};
pub use subscribe::Subscribe;

use crate::event::Event;
use futures_core::Stream;
use std::future::Future;

/// The name of the event that says a cursor could not be honoured.
/// See the [module docs](crate::hub#the-subscription-stream).
pub const RESET_EVENT: &str = "reset";

/// A backbone that publishes events to topics and subscribes from a cursor.
///
/// Implementations must keep the properties the [module docs](crate::hub) describe; the crate's
/// behavioural test suite runs against each one.
pub trait Hub: Clone + Send + Sync + 'static {
    /// The stream [`subscribe`](Hub::subscribe) returns.
    type Subscription: Stream<Item = Event> + Send + Unpin + 'static;
    /// What [`publish`](Hub::publish) can fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Publishes `event` to `topic`, replacing its id with its cursor, and returns the cursor.
    ///
    /// # Errors
    ///
    /// When the backbone cannot store the event.
    fn publish(
        &self,
        topic: &str,
        event: Event,
    ) -> impl Future<Output = Result<Cursor, Self::Error>> + Send;

    /// Whether the backbone can serve a new subscription now: `Err` while it is known to be
    /// unreachable, so that [`Subscribe`] refuses with `503` and `Retry-After` at once
    /// instead of holding a connection that cannot be served. Answers without waiting. The
    /// default (an embedded hub) is always available.
    ///
    /// # Errors
    ///
    /// When the backbone is known to be down.
    fn available(&self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Subscribes to `topic` after the cursor `from` (or from now, when `None`).
    ///
    /// The subscription is registered before this returns: an event published after it is
    /// always delivered.
    fn subscribe(&self, topic: &str, from: Option<&str>) -> Self::Subscription;
}

/// Why a subscription starts with a [`RESET_EVENT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetReason {
    Invalid,
    UnknownEpoch,
    Expired,
}

impl ResetReason {
    fn as_str(self) -> &'static str {
        match self {
            ResetReason::Invalid => "invalid",
            ResetReason::UnknownEpoch => "unknown-epoch",
            ResetReason::Expired => "expired",
        }
    }
}

/// The reset event: id = current cursor, data = `{"reason":..,"cursor":..}`.
pub(crate) fn reset_event(reason: ResetReason, current: &Cursor) -> Event {
    let mut data = bytes::BytesMut::new();
    data.extend_from_slice(b"{\"reason\":");
    crate::json::json_string(&mut data, reason.as_str());
    data.extend_from_slice(b",\"cursor\":");
    crate::json::json_string(&mut data, current.as_str());
    data.extend_from_slice(b"}");
    let data = String::from_utf8(data.to_vec()).expect("JSON of strings is UTF-8");
    Event::new()
        .data(data)
        .event(RESET_EVENT)
        .and_then(|e| e.id(current.as_str()))
        .expect("cursors and the reset name hold no line breaks")
}

/// A new random epoch: 16 hex digits. Not a secret, only different for every hub instance or
/// stream incarnation.
pub(crate) fn new_epoch() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(now);
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// The position event: an id-only event.
pub(crate) fn position_event(cursor: &Cursor) -> Event {
    Event::new()
        .id(cursor.as_str())
        .expect("cursors hold no line breaks")
}
