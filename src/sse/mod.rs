//! Server-Sent Events: answer a request with a `text/event-stream` of the inner service's
//! stream.
//!
//! [`Sse`] wraps any `Service<Request<B>>` whose response is a [`Stream`](futures_core::Stream)
//! of [`Event`](crate::event::Event)s (or `Result<Event, E>`, or [`Push`](crate::push::Push) items from the
//! [heartbeat](crate::heartbeat) adapter) and answers `200 OK` with
//!
//! * `Content-Type: text/event-stream`, `Cache-Control: no-cache` and `X-Accel-Buffering: no`
//!   (so nginx does not buffer), and no `Content-Length` (HTTP/1.1 uses chunked encoding,
//!   HTTP/2 a stream of DATA frames);
//! * the headers at once, before any event exists;
//! * an optional `retry:` first, then each event's shared encoding as one body frame. When
//!   several events are ready they are yielded back to back, so hyper writes them together.
//!
//! The client's cursor (`Last-Event-ID` header or `?lastEventId=`) is placed in the request
//! extensions as a [`LastEventId`](crate::cursor::LastEventId) before the inner service
//! is called, unless one is already there; a malformed one gets `400`.
//!
//! # Errors
//!
//! * An error returned by the inner service becomes a response: a [`Reject`](crate::rejection::Reject)
//!   gives its status and message, any other error `500 Internal Server Error` (and is logged
//!   with `tracing`, not shown to the client).
//! * An error item in the stream ends the body cleanly (logged at debug level). The client sees
//!   the stream end and, for an `EventSource`, reconnects with its last event id.
//!
//! When the client goes away, hyper drops the body and with it the inner stream.
//!
//! # Example
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use tower::{service_fn, ServiceExt};
//! use tower_push::{sse::Sse, Event};
//! use http_body_util::BodyExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = Sse::new(service_fn(|_req: http::Request<()>| async {
//!     let events = (1..=2).map(|n| Event::new().data(format!("tick {n}")).id(n.to_string()));
//!     Ok::<_, Infallible>(tokio_stream::iter(events))
//! }))
//! .retry(Duration::from_secs(3));
//!
//! let res = svc.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(res.headers()["content-type"], "text/event-stream");
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(&body[..], b"retry: 3000\n\nid: 1\ndata: tick 1\n\nid: 2\ndata: tick 2\n\n");
//! # }
//! ```
//!
//! # Differences from `axum::response::sse`
//!
//! * Invalid ids, names and comments are errors when the [`Event`](crate::event::Event) is built,
//!   not panics.
//! * Each event is encoded once and shared by every connection it is sent on; axum encodes
//!   per connection.
//! * It is a tower `Service`, so it works with hyper, warp and axum alike.
//!
//! [`text/event-stream`]: https://html.spec.whatwg.org/multipage/server-sent-events.html

#[cfg(feature = "sse")]
mod future;
#[cfg(feature = "sse")]
mod service;
pub(crate) mod wire;

#[cfg(feature = "sse")]
#[cfg_attr(docsrs, doc(cfg(feature = "sse")))]
pub use future::ResponseFuture;
#[cfg(feature = "sse")]
#[cfg_attr(docsrs, doc(cfg(feature = "sse")))]
pub use service::{Sse, SseLayer};
