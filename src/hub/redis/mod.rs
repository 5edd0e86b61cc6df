//! The Redis backbone: [`RedisHub`] on Redis Streams, one reader per topic per process.
//!
//! Files by concern: `scripts` (the Lua), `wire` (ids, cursors and reply parsing, tested
//! without a Redis), `error`, `shared` (the handle, its settings and the readers' state),
//! `hub` (the [`Hub`](crate::hub::Hub) implementation), `start` (replay and catch-up),
//! `reader` (the per-topic reader task) and `subscription` (the stream).

mod error;
mod hub;
mod reader;
mod scripts;
mod shared;
mod start;
mod subscription;
mod wire;

pub use error::RedisHubError;
pub use shared::{RedisHub, RedisHubBuilder, DEFAULT_REDIS_IDLE_TOPIC_AGE};
pub use subscription::RedisSubscription;
