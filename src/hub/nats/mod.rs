//! The NATS JetStream backbone: [`NatsHub`] on one JetStream stream, live copies republished
//! to one core subscription per process, no consumer.
//!
//! Files by concern: `wire` (subjects, cursors, events in messages; tested without a server),
//! `error`, `shared` (the handle, its settings, the stream and the readers' state), `connect`
//! (the client, the stream, the live subscription and the background tasks), `hub`
//! (the [`Hub`](crate::hub::Hub) implementation and publishing), `start` (replay and
//! catch-up), `live` (the live subscription, gap repair and the sweeper) and `subscription`
//! (the stream).

mod connect;
mod error;
mod hub;
mod live;
mod shared;
mod start;
mod subscription;
mod wire;

pub use error::NatsHubError;
pub use shared::{NatsHub, NatsHubBuilder};
pub use subscription::NatsSubscription;
