//! WebSocket: RFC 6455 over HTTP/1.1 and RFC 8441 over HTTP/2, full duplex, with Ping/Pong
//! liveness and safe limits.
//!
//! [`Ws`] wraps the same inner service as the other transports (a request in, a stream of
//! events out). It validates the handshake, calls the inner service, answers
//! `101 Switching Protocols` (or `200` to an HTTP/2 extended CONNECT) once the stream exists,
//! and then, on its own task:
//!
//! * sends **each event as one text frame**: the event's JSON object
//!   `{"id":"..","event":"..","data":".."}` (fields absent from the event are left out, data
//!   is text), the same object long-poll lists. A frame with only `"id"` moves the client's
//!   cursor (the hub's position event). To resume on any transport, reconnect with the last
//!   id as `?lastEventId=` (browsers cannot set headers on a WebSocket). Ready events are fed
//!   together and flushed once;
//! * hands **inbound** text and binary messages to the application through [`Inbound`],
//!   placed in the request extensions before the inner service is called;
//! * turns the stream's **heartbeat** items into Ping frames; when no frame at all arrives
//!   within the pong deadline (default 10 s), the connection is dropped and the stream with
//!   it. Client Pings are answered with Pongs;
//! * enforces a **message limit** (default 64 KiB, whole or fragmented): a larger message
//!   closes with [`close_code::TOO_BIG`]; invalid UTF-8 closes with [`close_code::INVALID`];
//!   a protocol violation with [`close_code::PROTOCOL`];
//! * when the stream ends, closes with [`close_code::NORMAL`] (an error item:
//!   [`close_code::ERROR`]), waits up to the close timeout (default 5 s) for the client's
//!   Close, and sends nothing after its own Close.
//!
//! Refusals happen before any upgrade: `405` with `Allow: GET` for another method, `400` for
//! a malformed upgrade (no `Upgrade`/`Connection` tokens, a key that is not 16 base64 bytes),
//! `426` with `Sec-WebSocket-Version: 13` for another version. The subprotocol is the
//! server's most preferred among those the client offered ([`WsLayer::protocols`]); one that
//! was not offered is never answered. Put an [`OriginLayer`](crate::origin::OriginLayer) in
//! front: browsers let any site open a WebSocket to you (cross-site WebSocket hijacking).
//!
//! HTTP/2 needs the server to advertise extended CONNECT (RFC 8441 §3): with hyper-util's
//! auto builder, `builder.http2().enable_connect_protocol()`. Serve HTTP/1.1 connections
//! with upgrades enabled (`serve_connection_with_upgrades`, or `.with_upgrades()`).
//!
//! For raw access to the socket (echo servers, custom protocols), use [`WebSocketUpgrade`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, ServiceBuilder};
//! use tower_push::{cursor::{LastEventId, StartAt}, heartbeat::HeartbeatLayer,
//!     hub::{Hub, MemoryHub}, ws::{Inbound, Message, WsLayer}, Event, Reject};
//!
//! let hub = MemoryHub::new();
//! let chat = ServiceBuilder::new()
//!     .layer(WsLayer::new().protocols(["chat.v1"]).max_message_size(16 * 1024))
//!     .layer(HeartbeatLayer::new(Duration::from_secs(20)))
//!     .service(service_fn(move |req: http::Request<()>| {
//!         let hub = hub.clone();
//!         async move {
//!             // Inbound messages are published to the room...
//!             if let Some(inbound) = req.extensions().get::<Inbound>().cloned() {
//!                 let hub = hub.clone();
//!                 tokio::spawn(async move {
//!                     while let Some(Message::Text(text)) = inbound.recv().await {
//!                         let _ = hub.publish("room", Event::new().data(text)).await;
//!                     }
//!                 });
//!             }
//!             // ...and the room is the outbound stream, resumed from the client's cursor
//!             // (one that is not a cursor at all is a `400`).
//!             let from = req.extensions().get::<LastEventId>().map(|c| c.as_str());
//!             Ok::<_, Reject>(hub.subscribe("room", StartAt::parse(from)?))
//!         }
//!     }));
//! # let _ = chat;
//! ```
//!
//! [RFC 6455]: https://www.rfc-editor.org/rfc/rfc6455
//! [RFC 8441]: https://www.rfc-editor.org/rfc/rfc8441

pub mod close_code;
mod config;
mod driver;
mod future;
mod handshake;
mod service;
mod socket;
mod upgrade;
pub(crate) mod wire;

pub use config::{
    DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_PONG_TIMEOUT, DEFAULT_READ_BUFFER_SIZE,
};
pub use future::ResponseFuture;
pub use handshake::{is_upgrade_request, Subprotocol};
pub use service::{Ws, WsLayer};
pub use socket::{Inbound, Message, WebSocket, WsError};
pub use upgrade::WebSocketUpgrade;
