//! Short-lived, single-use tickets for push connections, so no long-lived credential rides
//! in a URL.
//!
//! Browsers cannot set headers on an `EventSource` or a WebSocket, so credentials end up in
//! the URL, and URLs end up in logs. Instead, the app's own authenticated API mints a
//! **ticket** ([`Tickets::mint`], or the ready-made [`MintTicket`] service), and the client
//! presents it once when it opens the push connection.
//!
//! A ticket is HMAC-SHA256-signed (truncated to 128 bits, compared in constant time), carries
//! the principal, an expiry (default 30 s) and a random nonce, can be bound to a path and an
//! `Origin`, and is compact URL-safe base64 (about 70 characters for a short principal).
//! Keys have a one-byte id: sign with one key, verify with several while rotating
//! ([`Tickets::verify_with`]).
//!
//! [`AuthTicketLayer`] verifies it. It looks in the `ticket` query parameter, then a
//! `Sec-WebSocket-Protocol` entry `ticket.<t>` (consumed, so the handshake answers only a
//! real subprotocol), then an optional cookie. It checks the signature, the expiry (with a
//! small clock skew), the bindings, and single use through a [`TicketStore`] (the default
//! [`MemoryTicketStore`] forgets entries once their tickets would have expired, so its size
//! is bounded). On success it puts a [`Principal`](crate::principal::Principal) in the request extensions and removes the
//! ticket from the URI, so inner layers and tracing never see it. Every refusal is
//! `401 Unauthorized` with `WWW-Authenticate: Ticket error="<code>"` and a short text
//! ([`TicketError`]); an unreachable store is `503`. The crate never logs a ticket.
//!
//! Put tower-http's `TraceLayer` *inside* this layer (closer to the service), or the trace
//! sees the URI before the ticket is removed.
//!
//! # Reconnecting
//!
//! A ticket is good for one connection: a reconnect with the same ticket is refused as
//! `replayed`. And a browser's `EventSource` gives up for good on any non-200 answer. So a
//! client reconnects itself, on every transport, the same way: **fetch a fresh ticket, then
//! reconnect with the last cursor** (`?ticket=<new>&lastEventId=<last id>`). For long-poll
//! that means a ticket per poll (minting is one HMAC: cheap). The browser client served by
//! the chat example does this.
//!
//! # Example
//!
//! ```
//! use http::{Request, StatusCode};
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_push::{auth_ticket::{AuthTicketLayer, Binding, Key, Tickets}, principal::Principal, sse::SseLayer, Event};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let tickets = Tickets::new(Key::generate(1));
//! let events = ServiceBuilder::new()
//!     .layer(AuthTicketLayer::new(tickets.clone()))
//!     .layer(SseLayer::new())
//!     .service(service_fn(|req: Request<()>| async move {
//!         let who = req.extensions().get::<Principal>().unwrap().as_str().to_owned();
//!         Ok::<_, Infallible>(tokio_stream::iter([Event::new().data(format!("hi {who}"))]))
//!     }));
//!
//! // In your authenticated API:
//! let ticket = tickets.mint("alice", &Binding::new()).unwrap();
//! let uri = format!("/events?ticket={}", ticket.as_str());
//! let res = events.clone().oneshot(Request::get(&uri).body(()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! // Single use:
//! let res = events.oneshot(Request::get(&uri).body(()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

mod layer;
mod mint;
#[cfg(feature = "nats")]
mod nats_store;
#[cfg(feature = "redis")]
mod redis_store;
mod store;
mod ticket;

pub use layer::{AuthTicketLayer, RequireAuthTicket, ResponseFuture, PROTOCOL_PREFIX};
pub use mint::MintTicket;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use nats_store::{NatsTicketStore, NATS_TICKET_RETENTION};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::RedisTicketStore;
pub use store::{MemoryTicketStore, RedeemFuture, TicketStore};
pub use ticket::{
    Binding, Claims, Key, Ticket, TicketError, Tickets, DEFAULT_CLOCK_SKEW, DEFAULT_TTL,
    MAX_GRANT_LEN, MAX_PRINCIPAL_LEN,
};
