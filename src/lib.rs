//! Push a [`Stream`](futures_core::Stream) of events to browsers and other clients from any
//! tower-based HTTP service, over **Server-Sent Events**, **long polling** or **WebSocket**,
//! with resume that loses nothing.
//!
//! The one idea: you write a tower `Service` that answers a request with a stream of
//! [`Event`]s. Everything else is a `Layer` around it:
//!
//! ```text
//! Request
//!   -> OriginLayer         deny-by-default allow-list for browser origins
//!   -> AuthTicketLayer     ?ticket= / Sec-WebSocket-Protocol / cookie -> Principal
//!   -> LastEventIdLayer    Last-Event-ID header | ?lastEventId= -> LastEventId extension
//!   -> transport           Sse | LongPoll | Ws | Negotiate (picks one per request)
//!   -> ConnectionLimitLayer, Drain::layer   limits and graceful shutdown, held by the stream
//!   -> HeartbeatLayer      idle stream -> heartbeat item (SSE comment)
//!   -> your Service<Request<B>, Response = impl Stream<Item = Event>>
//!                          e.g. hub::Subscribe: a topic of the in-memory Hub, or
//!                          hub::Topics: the request's topics, one cursor for all
//! ```
//!
//! # Quickstart
//!
//! A whole axum server: one endpoint that speaks WebSocket, SSE and long-poll (picked per
//! request), resumes from the client's last id on each, keeps idle connections alive, and
//! ends every stream cleanly at shutdown; plus a route that publishes.
//!
//! ```no_run
//! use axum::{extract::State, routing::post, Router};
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_push::{
//!     drain::Drain,
//!     heartbeat::HeartbeatLayer,
//!     hub::{MemoryHub, Subscribe},
//!     negotiate::NegotiateLayer,
//!     serve::{self, Server},
//!     Event,
//! };
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let hub = MemoryHub::new(); // in memory, with history; RedisHub / NatsHub for several processes
//!     let drain = Drain::new(); // ends every stream at shutdown (WebSocket: close 1012)
//!
//!     // GET /events: a WebSocket upgrade, SSE for `Accept: text/event-stream`, else long-poll
//!     // JSON. Every event's id is a cursor: `Last-Event-ID` (or `?lastEventId=`) resumes
//!     // with exactly what was missed, on any transport.
//!     let events = ServiceBuilder::new()
//!         .layer(NegotiateLayer::new())
//!         .layer(drain.layer())
//!         .layer(HeartbeatLayer::new(Duration::from_secs(15))) // SSE comment / WebSocket ping
//!         .service(Subscribe::new(hub.clone(), "news"));
//!
//!     // POST /publish: the body becomes one event for every connection on "news".
//!     async fn publish(State(hub): State<MemoryHub>, body: String) -> String {
//!         let cursor = hub.publish_now("news", Event::new().data(body)).unwrap();
//!         cursor.to_string()
//!     }
//!
//!     let app = Router::new()
//!         .route_service("/events", events)
//!         .route("/publish", post(publish))
//!         .with_state(hub);
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     Server::new(&drain)
//!         .run(listener, app, serve::shutdown_signal())
//!         .await;
//!     Ok(())
//! }
//! ```
//!
//! `curl -N -H 'accept: text/event-stream' localhost:3000/events` reads it over SSE;
//! `curl -d hi localhost:3000/publish` publishes. Next: tickets instead of credentials in
//! URLs ([`auth_ticket`]), several topics per connection ([`hub::Topics`]), an Origin
//! allow-list ([`origin`]), the browser client ([`client`]), and `examples/` for axum, hyper
//! and warp.
//!
//! # Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `sse` | yes | [`sse`]: the Server-Sent Events transport |
//! | `long-poll` | yes | [`long_poll`]: the long-poll transport |
//! | `negotiate` | yes | [`negotiate`]: one endpoint, transport chosen per request |
//! | `heartbeat` | yes | [`heartbeat`] and [`PushStreamExt::heartbeat`] |
//! | `hub` | yes | [`hub`]: the in-memory hub with history and cursors |
//! | `json` | yes | [`Event::json_data`] through serde |
//! | `ws` | yes | [`ws`]: the WebSocket transport |
//! | `origin` | yes | [`origin`]: the Origin allow-list layer |
//! | `auth-ticket` | yes | [`auth_ticket`]: short-lived single-use tickets (HMAC-SHA256) |
//! | `client` | yes | [`client`]: the browser client script and the service serving it |
//! | `drain` | yes | [`drain`]: graceful shutdown of every push stream |
//! | `limit` | yes | [`limit`]: connection limits held for the life of each stream |
//! | `connection` | yes | [`connection`]: a write-stall deadline and forced close for each connection |
//! | `serve` | yes | [`serve`]: hyper's server with deadlines, limits and a shutdown that always finishes |
//! | `http2` | no | HTTP/2 in [`serve`] (not a default: it makes every `axum::serve` connection about 1 KiB larger) |
//! | `tls` | no | HTTPS with ALPN `h2` and `http/1.1` in [`serve`]; turns on `http2` |
//! | `redis` | no | `hub::RedisHub` and `auth_ticket::RedisTicketStore`: the Redis backbone |
//! | `nats` | no | `hub::NatsHub` and `auth_ticket::NatsTicketStore`: the NATS JetStream backbone |
//! | `metrics` | no | metrics through the `metrics` facade (see [`observe`]) |
//! | `axum` | no | [`Reject`] as an axum `IntoResponse` (through `axum-core` only) |
//!
//! ```toml
//! [dependencies]
//! tower-push = { version = "0.1", default-features = false, features = ["sse"] }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

#[macro_use]
pub(crate) mod macros;

pub mod body;
pub mod cursor;
mod error;
pub mod event;
mod json;
pub mod last_event_id;
pub mod observe;
pub mod principal;
mod push;
mod reason;
pub mod rejection;
pub mod stream;
mod sync;
pub mod topic;

mod guard_future;
#[cfg(transport)]
mod inner_service;

#[cfg(feature = "heartbeat")]
#[cfg_attr(docsrs, doc(cfg(feature = "heartbeat")))]
pub mod heartbeat;

#[cfg(feature = "hub")]
#[cfg_attr(docsrs, doc(cfg(feature = "hub")))]
pub mod hub;

#[cfg(feature = "long-poll")]
#[cfg_attr(docsrs, doc(cfg(feature = "long-poll")))]
pub mod long_poll;

#[cfg(feature = "negotiate")]
#[cfg_attr(docsrs, doc(cfg(feature = "negotiate")))]
pub mod negotiate;

pub mod sse;

#[cfg(feature = "ws")]
#[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
pub mod ws;

#[cfg(feature = "origin")]
#[cfg_attr(docsrs, doc(cfg(feature = "origin")))]
pub mod origin;

#[cfg(feature = "auth-ticket")]
#[cfg_attr(docsrs, doc(cfg(feature = "auth-ticket")))]
pub mod auth_ticket;

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;

#[cfg(feature = "drain")]
#[cfg_attr(docsrs, doc(cfg(feature = "drain")))]
pub mod drain;

#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub mod limit;

#[cfg(feature = "connection")]
#[cfg_attr(docsrs, doc(cfg(feature = "connection")))]
pub mod connection;

#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod serve;

#[cfg(feature = "health")]
#[cfg_attr(docsrs, doc(cfg(feature = "health")))]
pub mod health;

pub use error::BoxError;
pub use event::{Event, EventError};
pub use push::{IntoPush, Push};
pub use rejection::Reject;
pub use stream::PushStreamExt;

/// Re-export of the response future of the guard layers.
pub use guard_future::ResponseFuture as GuardResponseFuture;

#[cfg(test)]
mod test_helpers;
