//! Keep idle push streams alive through proxies.
//!
//! [`HeartbeatLayer`] wraps a service whose response is a stream of events and adds a
//! [`Push::Heartbeat`](crate::push::Push::Heartbeat) item whenever the stream has been idle for the
//! interval (default 15 s, under the 30–60 s idle timeouts of common proxies and load
//! balancers). The timer restarts on every event, so a busy stream carries no heartbeats.
//!
//! Each transport renders a heartbeat its own way: SSE writes a comment line (`:`), which
//! `EventSource` ignores; WebSocket sends a Ping; long-poll skips it (a poll is short anyway).
//! The same adapter is available on any stream as
//! [`PushStreamExt::heartbeat`].
//!
//! # Example
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use tower::{service_fn, ServiceBuilder};
//! use tower_push::{heartbeat::HeartbeatLayer, sse::SseLayer, Event};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(SseLayer::new())
//!     .layer(HeartbeatLayer::new(Duration::from_secs(20)))
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, Infallible>(tokio_stream::pending::<Event>())
//!     }));
//! # let _ = svc;
//! ```

use crate::push::IntoPush;
use crate::stream::{Heartbeat, PushStreamExt};
use futures_core::Stream;
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};
use tower_layer::Layer;
use tower_service::Service;

/// The default idle interval: 15 seconds.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// Layer that applies [`AddHeartbeat`]. See the [module docs](crate::heartbeat).
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct HeartbeatLayer {
    every: Duration,
}

impl HeartbeatLayer {
    /// Heartbeats after `every` of idleness.
    pub fn new(every: Duration) -> Self {
        Self { every }
    }
}

impl Default for HeartbeatLayer {
    /// Heartbeats after 15 s of idleness.
    fn default() -> Self {
        Self::new(DEFAULT_INTERVAL)
    }
}

impl<S> Layer<S> for HeartbeatLayer {
    type Service = AddHeartbeat<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AddHeartbeat {
            inner,
            every: self.every,
        }
    }
}

/// Middleware that wraps the inner service's stream in a [`Heartbeat`].
///
/// See the [module docs](crate::heartbeat) for an example.
#[derive(Debug, Clone)]
pub struct AddHeartbeat<S> {
    inner: S,
    every: Duration,
}

impl<S> AddHeartbeat<S> {
    /// Wraps `inner`, heartbeating after `every` of idleness.
    pub fn new(inner: S, every: Duration) -> Self {
        Self { inner, every }
    }

    /// A [`HeartbeatLayer`].
    pub fn layer(every: Duration) -> HeartbeatLayer {
        HeartbeatLayer::new(every)
    }

    define_inner_service_accessors!();
}

impl<S, R> Service<R> for AddHeartbeat<S>
where
    S: Service<R>,
    S::Response: Stream,
    <S::Response as Stream>::Item: IntoPush,
{
    type Response = Heartbeat<S::Response>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        ResponseFuture {
            future: self.inner.call(req),
            every: self.every,
        }
    }
}

pin_project! {
    /// Response future of [`AddHeartbeat`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        every: Duration,
    }
}

impl<F, St, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<St, E>>,
    St: Stream,
    St::Item: IntoPush,
{
    type Output = Result<Heartbeat<St>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let stream = ready!(this.future.poll(cx))?;
        Poll::Ready(Ok(stream.heartbeat(*this.every)))
    }
}
