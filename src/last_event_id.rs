//! Read the client's resume cursor from `Last-Event-ID` or a query parameter.
//!
//! A reconnecting `EventSource` sends the id of the last event it saw in the `Last-Event-ID`
//! header. Long-poll and WebSocket clients cannot always set headers, so they send the same
//! cursor as a query parameter (`lastEventId` by default). [`LastEventIdLayer`] reads either
//! (the header wins), validates it and inserts a [`LastEventId`](crate::cursor::LastEventId) into the request extensions,
//! where the inner service (for example [`Subscribe`](crate::hub::Subscribe)) finds it.
//!
//! The transports ([`Sse`](crate::sse::Sse), [`LongPoll`](crate::long_poll::LongPoll),
//! [`Negotiate`](crate::negotiate::Negotiate)) read the cursor themselves with the default
//! settings when no [`LastEventId`](crate::cursor::LastEventId) is present, so this layer is only needed to change the
//! settings or to give the cursor to other services.
//!
//! An extension already present is never overwritten. An empty value counts as absent. A value
//! longer than the cap (default 512 bytes) or not valid UTF-8 is refused with
//! `400 Bad Request` and a short text body.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_push::{cursor::LastEventId, last_event_id::LastEventIdLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(LastEventIdLayer::new().query_param("cursor"))
//!     .service(service_fn(|req: Request<String>| async move {
//!         let cursor = req.extensions().get::<LastEventId>().map(|c| c.as_str().to_owned());
//!         Ok::<_, Infallible>(Response::new(http_body_util::Full::new(bytes::Bytes::from(
//!             cursor.unwrap_or_default(),
//!         ))))
//!     }));
//!
//! let req = Request::get("/events?cursor=a%2Db").body(String::new()).unwrap();
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! let req = Request::get("/events?cursor=%FF").body(String::new()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::BAD_REQUEST);
//! # }
//! ```
//!
//! [`Last-Event-ID`]: https://html.spec.whatwg.org/multipage/server-sent-events.html#the-last-event-id-header

use crate::{body::GuardBody, cursor::ReadCursor, guard_future::ResponseFuture};
use http::{Request, Response};
use std::{
    borrow::Cow,
    task::{Context, Poll},
};
use tower_layer::Layer;
use tower_service::Service;

/// Layer that applies [`SetLastEventId`]. See the [module docs](crate::last_event_id).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LastEventIdLayer {
    config: ReadCursor,
}

impl LastEventIdLayer {
    /// Reads `Last-Event-ID`, else `?lastEventId=`, up to 512 bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The query parameter read when the header is absent. Default `lastEventId`.
    /// A second call replaces the first.
    pub fn query_param(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.config.query_param = name.into();
        self
    }

    /// The longest cursor accepted, in bytes; longer ones get `400`. Default 512.
    pub fn max_len(mut self, max: usize) -> Self {
        self.config.max_len = max;
        self
    }
}

impl<S> Layer<S> for LastEventIdLayer {
    type Service = SetLastEventId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetLastEventId {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Middleware that puts the client's cursor in request extensions as a [`LastEventId`](crate::cursor::LastEventId).
///
/// See the [module docs](crate::last_event_id) for an example.
#[derive(Debug, Clone)]
pub struct SetLastEventId<S> {
    inner: S,
    config: ReadCursor,
}

impl<S> SetLastEventId<S> {
    /// Wraps `inner` with the default settings.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            config: ReadCursor::default(),
        }
    }

    /// A [`LastEventIdLayer`] with the default settings.
    pub fn layer() -> LastEventIdLayer {
        LastEventIdLayer::new()
    }

    define_inner_service_accessors!();
}

impl<S, B, ResBody> Service<Request<B>> for SetLastEventId<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.config.apply(&mut req) {
            Ok(_) => ResponseFuture::inner(self.inner.call(req)),
            Err(refusal) => {
                crate::observe::refused(refusal.status(), crate::reason::Refusal::Cursor);
                ResponseFuture::refused(refusal.into_http_response())
            }
        }
    }
}
