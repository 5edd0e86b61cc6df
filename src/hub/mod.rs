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

mod contract;
mod live;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod subscribe;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisHub, RedisHubBuilder, RedisHubError, RedisSubscription};
pub use crate::cursor::Cursor;
pub(crate) use contract::{new_epoch, position_event, reset_event, ResetReason};
pub use contract::{Hub, RESET_EVENT};
pub use memory::{MemoryHub, MemoryHubBuilder, MemorySubscription, TopicStats};
pub use subscribe::Subscribe;
