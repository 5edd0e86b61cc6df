//! Long polling: hold each request until events exist or a timeout, answer a batch with a
//! cursor, and let the client ask again.
//!
//! [`LongPoll`] wraps the same kind of inner service as [`Sse`](crate::sse::Sse): one that
//! answers a request with a [`Stream`](futures_core::Stream) of events. For each poll it
//!
//! 1. places the client's cursor (`Last-Event-ID` header, else `?lastEventId=`) in the request
//!    extensions as a [`LastEventId`](crate::cursor::LastEventId) and calls the inner
//!    service, which should start the stream after that cursor (as
//!    [`Subscribe`](crate::hub::Subscribe) does);
//! 2. waits for the first event, or for the hold timeout (default 25 s, under the 60 s idle
//!    timeouts of common proxies);
//! 3. takes every event that is immediately ready, up to a cap of 100 events or 64 KiB of
//!    JSON (the event that crosses the byte cap is included, so nothing is dropped), or with
//!    a [`linger`](LongPollLayer::linger), every event that comes within the linger after the
//!    first;
//! 4. answers and drops the stream.
//!
//! No state is kept between polls, so any instance can answer any poll (no sticky sessions).
//!
//! # Wire format
//!
//! `200 OK`, `Content-Type: application/json`, `Cache-Control: no-store`:
//!
//! ```json
//! {"events":[{"id":"c1-7","data":"hi"},{"event":"message","data":"hello"}],"cursor":"c1-8"}
//! ```
//!
//! * `events`: the batch in order. Each object carries the event's `id`, `event` name and
//!   `data` **text**, each left out when the event has none (JSON data stays a string: parse
//!   it on the client). `retry` and comments are not carried.
//! * The cursor is written once: the **last** event's `id` is left out when it equals the
//!   answer's `cursor` (the usual case), and a last event without an id says `"id":null`
//!   when the answer has a cursor. So a client takes `cursor` as the last event's id when
//!   that event has no `id` field. (For a one-event answer this saves the cursor's length
//!   plus 8 bytes.)
//! * `cursor`: send it back as `?lastEventId=` (or `Last-Event-ID`) on the next poll. It is
//!   the id of the last event seen, including id-only events (which move the cursor without
//!   being listed); without any, it is the cursor the poll came with, or `null`.
//! * A hold that times out answers `{"events":[],"cursor":<same cursor>}`.
//! * A poll **without** a cursor answers as soon as the stream tells the current position
//!   (the id-only priming event of a [hub](crate::hub) subscription), so nothing published
//!   before the next poll is lost.
//! * Heartbeat items are skipped. An error item ends the batch: the events taken so far are
//!   answered, or `503 Service Unavailable` when there are none.
//!
//! # Example
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use tower::{service_fn, ServiceExt};
//! use tower_push::{long_poll::LongPoll, Event};
//! use http_body_util::BodyExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = LongPoll::new(service_fn(|_req: http::Request<()>| async {
//!     let events = (1..=3).map(|n| Event::new().data(format!("n{n}")).id(n.to_string()));
//!     Ok::<_, Infallible>(tokio_stream::iter(events))
//! }))
//! .max_events(2)
//! .timeout(Duration::from_secs(10));
//!
//! let res = svc.oneshot(http::Request::new(())).await.unwrap();
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     &body[..],
//!     br#"{"events":[{"id":"1","data":"n1"},{"data":"n2"}],"cursor":"2"}"#,
//! );
//! # }
//! ```

mod answer;
mod future;
mod service;

pub use future::ResponseFuture;
pub use service::{
    LongPoll, LongPollLayer, DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, DEFAULT_TIMEOUT,
};
