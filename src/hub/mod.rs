//! The backbone: publish events to topics, subscribe from a cursor, resume without loss.
//!
//! A [`Hub`] keeps recent history per topic. [`Hub::subscribe`] returns a stream that first
//! replays what the hub kept after the client's cursor and then continues with live events,
//! with no gap and no duplicate at the seam, even while other tasks publish.
//! [`Hub::publish`] gives each event its id: a [`Cursor`], which clients send back
//! (`Last-Event-ID`, `?lastEventId=`) to resume on any transport.
//!
//! [`MemoryHub`] is the embedded default; `RedisHub` (feature `redis`) and `NatsHub`
//! (feature `nats`, on NATS JetStream) are the backbones for several processes. The trait is
//! what transports and [`Subscribe`] depend on, so the backends plug in without changes to
//! them, and one behavioural test suite runs against all three.
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
//! # Several topics on one connection
//!
//! [`Topics`] is the inner service for apps that are not one room: it takes each request's
//! topics from the request (`?topic=a&topic=b` by default, a fixed list, or your function),
//! checks them, and merges their subscriptions into one [`TopicsSubscription`]. Browsers
//! allow six HTTP/1.1 connections per origin, so one connection for a user's rooms, direct
//! messages and notifications is what scales.
//!
//! * **Names** follow the [topic rules](crate::topic#topic-names). No topic, a bad name, or
//!   more than [`max_topics`](Topics::max_topics) (default 8) answers `400` with a message.
//! * **Authorization**: a [`TopicGrant`](crate::topic::TopicGrant) in the request (signed
//!   into the ticket by [`auth_ticket`](crate::auth_ticket)) and your
//!   [`authorize`](Topics::authorize) function decide per topic; a refused topic answers
//!   `403`. All of it happens before any stream starts, so before a WebSocket upgrade.
//! * **One cursor**: every event's id is a composite of each topic's position, so the last id
//!   a client saw resumes every topic exactly (no gap, no duplicate) on any transport and any
//!   instance of a shared backbone. A topic whose history no longer reaches the cursor gives
//!   its own `reset` (named `reset`, with `"topic"` in its data) and the others continue. A
//!   topic added to a reconnecting client's list starts from now; a dropped one is forgotten.
//! * **Which topic**: long-poll and WebSocket events carry a `"topic"` field. Over SSE the
//!   topic is in the event name, `name@topic`, and `message@topic` for an event without a
//!   name: `source.addEventListener("message@room.lobby", ..)`. The browser client
//!   ([`client`](crate::client)) splits it for you.
//!
//! The composite cursor is `_` followed, per topic, by a 5-character tag of the topic's name
//! and the topic's own cursor, separated by `_`, with an epoch shared with the entry before
//! left out. Its length, for 8 topics (the default limit):
//!
//! | hub | per topic | 8 topics |
//! |---|---|---|
//! | [`MemoryHub`], offsets below 10⁶ | at most 13 bytes (+6 for the first: the epoch) | at most 110 bytes |
//! | `NatsHub`, stream sequences below 10⁹ (one stream: the epoch is written once) | at most 16 bytes (+6 for the first) | at most 134 bytes |
//! | `RedisHub` (an epoch per topic, millisecond stream ids) | about 29 bytes | about 230 bytes |
//!
//! Every character is CORS-safe (letters, digits, `-`, `_`, `.`). The transports refuse a
//! cursor over 512 bytes with `400`
//! ([`LastEventIdLayer::max_len`](crate::last_event_id::LastEventIdLayer::max_len) changes
//! it); raising [`max_topics`](Topics::max_topics) past what fits means raising that cap too.
//!
//! # Bounded topics
//!
//! Topics are created by the first publish or subscribe, and go again when idle: no
//! subscriber, and history older than an age you set (`MemoryHub`: dropped from memory,
//! [`MemoryHubBuilder::idle_topic_age`]; `RedisHub`: the keys expire; `NatsHub`: the
//! stream's `max_age` removes old messages, and a subject without messages costs nothing). A client asking for
//! a million random topic names leaves nothing behind. Publishing to new topics is capped
//! ([`MemoryHubBuilder::max_topics`]), and so is the memory hub's history in bytes, all topics
//! together ([`MemoryHubBuilder::max_history_bytes`]: the oldest events go first).
//!
//! # Example
//!
//! ```
//! use tokio_stream::StreamExt as _;
//! use tower_push::{cursor::StartAt, hub::{Hub, MemoryHub}, Event};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_push::cursor::CursorError> {
//! let hub = MemoryHub::new();
//! let first = hub.publish("room", Event::new().data("one")).await.unwrap();
//! hub.publish("room", Event::new().data("two")).await.unwrap();
//!
//! // Resume after `first`: the position event, then "two" from history.
//! let mut sub = hub.subscribe("room", StartAt::parse(Some(first.as_str()))?);
//! assert!(sub.next().await.unwrap().is_cursor_only());
//! assert_eq!(sub.next().await.unwrap().get_data(), Some("two"));
//! # Ok(())
//! # }
//! ```

mod access;
#[cfg(any(feature = "redis", feature = "nats"))]
mod backbone;
mod contract;
#[cfg(any(feature = "redis", feature = "nats"))]
mod live;
mod memory;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;
mod subscribe;
mod topics;

#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use self::nats::{NatsHub, NatsHubBuilder, NatsHubError, NatsSubscription};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{
    RedisHub, RedisHubBuilder, RedisHubError, RedisSubscription, DEFAULT_REDIS_IDLE_TOPIC_AGE,
};
pub(crate) use crate::cursor::Cursor;
pub use access::check_access;

/// The default local live buffer per topic of the shared backbones (`RedisHub`, `NatsHub`):
/// 16 events. Small, because every topic an instance reads holds one (about 1 KiB at 16); a
/// subscriber that falls further behind catches up from the backbone's history.
#[cfg(any(feature = "redis", feature = "nats"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "redis", feature = "nats"))))]
pub const DEFAULT_BACKBONE_BUFFER: usize = 16;
pub(crate) use contract::{
    new_epoch, position_event, reset_data, reset_event, well_formed_epoch, ResetReason,
};
pub use contract::{Hub, RESET_EVENT};
pub use memory::{
    MemoryHub, MemoryHubBuilder, MemoryHubError, MemorySubscription, TopicStats,
    DEFAULT_IDLE_TOPIC_AGE, DEFAULT_MEMORY_MAX_HISTORY_BYTES, DEFAULT_MEMORY_MAX_TOPICS,
};
pub use subscribe::Subscribe;
pub use topics::{Topics, TopicsSubscription, DEFAULT_MAX_TOPICS, DEFAULT_TOPIC_PARAM};
