use super::ResponseFuture;
use crate::{
    body::PushBody,
    cursor::ReadCursor,
    error::BoxError,
    inner_service::Inner,
    observe::{self, Connection},
    push::IntoPush,
};
use bytes::Bytes;
use futures_core::Stream;
use http::{header, HeaderValue, Request, Response};
use std::{
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};
use tower_layer::Layer;
use tower_service::Service;

/// Settings of the SSE transport, shared with [`Negotiate`](crate::negotiate::Negotiate).
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    /// The encoded `retry:` block sent first, if any.
    head: Option<Bytes>,
    /// Render cursor-only events as `event: position`.
    named_positions: bool,
    pub(crate) last_event_id: ReadCursor,
}

impl Config {
    pub(crate) fn call<S, B>(
        &self,
        inner: &mut Inner<S>,
        mut req: Request<B>,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<B>>,
    {
        if let Some(res) = inner.take_error() {
            return ResponseFuture::ready(res);
        }
        if let Err(res) = crate::inner_service::read_cursor(&self.last_event_id, &mut req) {
            return ResponseFuture::ready(res);
        }
        let span = observe::connection_span("sse", &req);
        let future = span.in_scope(|| inner.service.call(req));
        ResponseFuture::new(future, self.head.clone(), self.named_positions, span)
    }
}

/// Builds the `200 text/event-stream` response around a stream.
pub(crate) fn response<St>(
    stream: St,
    head: Option<Bytes>,
    named_positions: bool,
    connection: Connection,
) -> Response<PushBody<St>> {
    let mut res = Response::new(PushBody::stream(
        stream,
        head,
        named_positions,
        &super::wire::FRAMING,
        connection,
    ));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// Layer that applies [`Sse`]. See the [module docs](crate::sse).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SseLayer {
    pub(crate) config: Config,
}

impl SseLayer {
    /// No `retry:` is sent; the client's default applies (about 3 s in browsers).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `retry: <ms>` first, telling the client how long to wait before reconnecting.
    /// Default: none. A second call replaces the first.
    pub fn retry(mut self, retry: Duration) -> Self {
        let event = crate::event::Event::new().retry(retry);
        self.config.head = Some(event.to_sse());
        self
    }

    /// Writes cursor-only events (the hub's position event) as a named event,
    /// `id: <cursor>` + `event: position` + `data:` (empty), instead of an id-only block.
    ///
    /// A browser's `EventSource` stores the id of an id-only block for its own reconnects but
    /// never shows it to JavaScript. A client that reconnects itself (as it must with
    /// single-use tickets) needs the cursor before the first real event; with this on, it
    /// reads it from `position` events. Listeners for other names ignore them. Default off.
    pub fn named_positions(mut self, enabled: bool) -> Self {
        self.config.named_positions = enabled;
        self
    }
}

impl<S> Layer<S> for SseLayer {
    type Service = Sse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Sse {
            inner: Inner::new(inner),
            config: self.config.clone(),
        }
    }
}

/// Service that answers with a `text/event-stream` of the inner service's stream.
///
/// See the [module docs](crate::sse) for an example.
#[derive(Debug, Clone)]
pub struct Sse<S> {
    inner: Inner<S>,
    config: Config,
}

impl<S> Sse<S> {
    /// Wraps `inner`, sending no `retry:`.
    pub fn new(inner: S) -> Self {
        SseLayer::new().layer(inner)
    }

    /// An [`SseLayer`].
    pub fn layer() -> SseLayer {
        SseLayer::new()
    }

    /// Sends `retry: <ms>` first. Default: none. A second call replaces the first.
    #[must_use]
    pub fn retry(mut self, retry: Duration) -> Self {
        self.config = SseLayer {
            config: self.config,
        }
        .retry(retry)
        .config;
        self
    }

    define_transport_accessors!();
}

impl<S, B, St> Service<Request<B>> for Sse<S>
where
    S: Service<Request<B>, Response = St>,
    S::Error: Into<BoxError>,
    St: Stream,
    St::Item: IntoPush,
{
    type Response = Response<PushBody<St>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready::<Request<B>>(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.config.call(&mut self.inner, req)
    }
}
