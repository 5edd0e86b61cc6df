//! The NATS JetStream backbone: [`NatsHub`] on one JetStream stream, one live consumer per
//! topic per process.
//!
//! Files by concern: `wire` (subjects, cursors, events in messages; tested without a server),
//! `error`, `shared` (the handle, its settings, the stream and the readers' state), `hub`
//! (the [`Hub`](crate::hub::Hub) implementation and publishing), `start` (replay and
//! catch-up), `reader` (the per-topic reader task) and `subscription` (the stream).

mod error;
mod hub;
mod reader;
mod shared;
mod start;
mod subscription;
mod wire;

pub use error::NatsHubError;
pub use shared::{NatsHub, NatsHubBuilder};
pub use subscription::NatsSubscription;
