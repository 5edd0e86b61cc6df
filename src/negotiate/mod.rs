//! One route for every transport: pick WebSocket, SSE or long-poll per request.
//!
//! [`Negotiate`] wraps the same inner service as the transports (a request in, a stream of
//! events out) and chooses by standard request headers:
//!
//! | request | transport |
//! |---|---|
//! | `GET` with `Upgrade: websocket`, or HTTP/2 `CONNECT` with `:protocol websocket` | [WebSocket](crate::ws) (feature `ws`) |
//! | `GET` whose `Accept` lists `text/event-stream` with a q-value above 0 | [SSE](crate::sse) |
//! | any other `GET` that accepts `application/json` (no `Accept`, `*/*`, `application/*`, ...) | [long-poll](crate::long_poll) |
//! | a `GET` whose `Accept` allows neither (for example `text/html` alone, or `text/event-stream;q=0`) | `406 Not Acceptable` |
//! | any other method | `405 Method Not Allowed` with `Allow: GET` |
//!
//! `Accept` is read as RFC 9110 §12.5.1 says: the most specific matching range decides, and
//! `q=0` means "not acceptable". An HTTP/2 `CONNECT` with another `:protocol` is refused
//! with `400` by the WebSocket transport.
//!
//! Every transport carries the same event ids, and each reads the client's cursor the same way
//! (`Last-Event-ID` header, else `?lastEventId=`), so a client can move from one transport to
//! another and resume without loss or duplicates.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceExt};
//! use tower_push::{negotiate::Negotiate, Event};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = Negotiate::new(service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, Infallible>(tokio_stream::iter([Event::new().data("hi").id("1").unwrap()]))
//! }));
//!
//! let sse = http::Request::get("/").header("accept", "text/event-stream").body(()).unwrap();
//! let res = svc.clone().oneshot(sse).await.unwrap();
//! assert_eq!(res.headers()["content-type"], "text/event-stream");
//!
//! let poll = http::Request::get("/").body(()).unwrap();
//! let res = svc.clone().oneshot(poll).await.unwrap();
//! assert_eq!(res.headers()["content-type"], "application/json");
//!
//! let post = http::Request::post("/").body(()).unwrap();
//! let res = svc.oneshot(post).await.unwrap();
//! assert_eq!(res.status(), 405);
//! assert_eq!(res.headers()["allow"], "GET");
//! # }
//! ```
//!
//! # Customizing the transports
//!
//! ```
//! use std::time::Duration;
//! use tower_push::{long_poll::LongPollLayer, negotiate::NegotiateLayer, sse::SseLayer};
//!
//! let layer = NegotiateLayer::new()
//!     .sse(SseLayer::new().retry(Duration::from_secs(2)))
//!     .long_poll(LongPollLayer::new().timeout(Duration::from_secs(20)).max_events(50))
//!     .ws(tower_push::ws::WsLayer::new().protocols(["chat.v1"]));
//! # let _ = layer;
//! ```

mod future;
mod service;

pub use future::ResponseFuture;
pub use service::{Negotiate, NegotiateLayer, Transport};
