//! The Redis backbone: [`RedisHub`] on Redis Streams (history) and Pub/Sub (live delivery),
//! on a fixed set of connections per process.
//!
//! Files by concern: `scripts` (the Lua), `wire` (ids, cursors and reply parsing, tested
//! without a Redis), `error`, `shared` (the handle, its settings and the readers' state),
//! `connect` (the connections and the background tasks),
//! `hub` (the [`Hub`](crate::hub::Hub) implementation), `start` (replay and catch-up),
//! `live` (the Pub/Sub shards, gap repair and the sweeper) and `subscription` (the stream).

mod connect;
mod error;
mod hub;
mod live;
mod scripts;
mod shared;
mod start;
mod subscription;
mod wire;

pub use error::RedisHubError;
pub use shared::{RedisHub, RedisHubBuilder, DEFAULT_REDIS_IDLE_TOPIC_AGE};
pub use subscription::RedisSubscription;
