use super::ResponseFuture;
use crate::{
    body::PushBody, cursor::ReadCursor, error::BoxError, inner_service::Inner, observe,
    push::IntoPush,
};
use futures_core::Stream;
use http::{Request, Response};
use std::{
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};
use tower_layer::Layer;
use tower_service::Service;

/// The default hold timeout: 25 seconds.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(25);
/// The default cap on events per answer: 100.
pub const DEFAULT_MAX_EVENTS: usize = 100;
/// The default cap on the JSON bytes of the events per answer: 64 KiB.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// Settings of the long-poll transport, shared with [`Negotiate`](crate::negotiate::Negotiate).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) timeout: Duration,
    pub(crate) max_events: usize,
    pub(crate) max_bytes: usize,
    pub(crate) linger: Duration,
    pub(crate) last_event_id: ReadCursor,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_events: DEFAULT_MAX_EVENTS,
            max_bytes: DEFAULT_MAX_BYTES,
            linger: Duration::ZERO,
            last_event_id: ReadCursor::default(),
        }
    }
}

impl Config {
    pub(crate) fn call<S, B>(
        &self,
        inner: &mut Inner<S>,
        mut req: Request<B>,
    ) -> ResponseFuture<S::Future, S::Response>
    where
        S: Service<Request<B>>,
    {
        if let Some(res) = inner.take_error() {
            return ResponseFuture::ready(res);
        }
        // Shared, not copied: the answer repeats it when no event moves it.
        let cursor = match crate::inner_service::read_cursor(&self.last_event_id, &mut req) {
            Ok(cursor) => cursor,
            Err(res) => return ResponseFuture::ready(res),
        };
        let span = observe::connection_span("long-poll", &req);
        let future = span.in_scope(|| inner.service.call(req));
        ResponseFuture::new(future, self, cursor, span)
    }
}

/// Layer that applies [`LongPoll`]. See the [module docs](crate::long_poll).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LongPollLayer {
    pub(crate) config: Config,
}

impl LongPollLayer {
    /// Holds a poll up to 25 s and answers at most 100 events or 64 KiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a poll is held waiting for the first event. Default 25 s.
    /// A second call replaces the first.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// The most events in one answer. Default 100; at least 1.
    pub fn max_events(mut self, max: usize) -> Self {
        self.config.max_events = max.max(1);
        self
    }

    /// Stop taking events once their JSON reaches this many bytes. Default 64 KiB.
    /// The event that crosses the cap is included, so an event larger than the cap is still
    /// delivered, alone.
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.config.max_bytes = max;
        self
    }

    /// After the first event, wait up to this long for more before answering. Default zero:
    /// answer with the events that are ready.
    ///
    /// Under a steady flow of events, each answer then carries a batch instead of one event,
    /// which saves a request, an answer's headers and their TCP segments per event (and the
    /// server's work for them), at the price of up to `linger` of added latency. An answer
    /// never waits past the hold timeout, and a full batch (`max_events`, `max_bytes`) or a
    /// shutdown answers at once.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }
}

impl<S> Layer<S> for LongPollLayer {
    type Service = LongPoll<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LongPoll {
            inner: Inner::new(inner),
            config: self.config.clone(),
        }
    }
}

/// Service that answers each poll with a JSON batch of the inner service's stream.
///
/// See the [module docs](crate::long_poll) for the format and an example.
#[derive(Debug, Clone)]
pub struct LongPoll<S> {
    inner: Inner<S>,
    config: Config,
}

impl<S> LongPoll<S> {
    /// Wraps `inner` with the default settings.
    pub fn new(inner: S) -> Self {
        LongPollLayer::new().layer(inner)
    }

    /// A [`LongPollLayer`].
    pub fn layer() -> LongPollLayer {
        LongPollLayer::new()
    }

    fn with(mut self, f: impl FnOnce(LongPollLayer) -> LongPollLayer) -> Self {
        self.config = f(LongPollLayer {
            config: self.config,
        })
        .config;
        self
    }

    /// See [`LongPollLayer::timeout`].
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with(|l| l.timeout(timeout))
    }

    /// See [`LongPollLayer::max_events`].
    #[must_use]
    pub fn max_events(self, max: usize) -> Self {
        self.with(|l| l.max_events(max))
    }

    /// See [`LongPollLayer::max_bytes`].
    #[must_use]
    pub fn max_bytes(self, max: usize) -> Self {
        self.with(|l| l.max_bytes(max))
    }

    /// See [`LongPollLayer::linger`].
    #[must_use]
    pub fn linger(self, linger: Duration) -> Self {
        self.with(|l| l.linger(linger))
    }

    define_transport_accessors!();
}

impl<S, B, St> Service<Request<B>> for LongPoll<S>
where
    S: Service<Request<B>, Response = St>,
    S::Error: Into<BoxError>,
    St: Stream,
    St::Item: IntoPush,
{
    type Response = Response<PushBody<St>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future, St>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready::<Request<B>>(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.config.call(&mut self.inner, req)
    }
}
