//! Graceful shutdown: end every push stream with its transport's signal to come back, and
//! wait for them.
//!
//! [`DrainLayer`] sits between a transport and the service that makes the stream (like
//! [`HeartbeatLayer`](crate::heartbeat::HeartbeatLayer)). When [`Drain::shutdown`] is called,
//! every stream made through it yields [`Push::Shutdown`] and ends, and each transport ends
//! its connection its own way:
//!
//! * **SSE**: the body ends; the browser reconnects after its retry interval (set it with
//!   [`SseLayer::retry`](crate::sse::SseLayer::retry)) with its `Last-Event-ID`, and reaches
//!   another instance.
//! * **WebSocket**: a Close with [`close_code::RESTART`](crate::ws::close_code::RESTART)
//!   (1012, "service restart"), then the close handshake.
//! * **Long-poll**: a held poll answers at once with what it has and its cursor.
//!
//! New requests during the drain get `503 Service Unavailable` with `Retry-After: 1`.
//! `shutdown` then waits (up to a grace period) until every stream is dropped and returns how
//! many were still open. Call it before stopping the HTTP server's own graceful shutdown, so
//! long-lived responses don't hold that up.
//!
//! # Shutdown always finishes
//!
//! A stream whose client stopped reading is not polled any more (its connection waits to
//! write), so it cannot see the signal. When streams are still open at the end of the grace
//! period, `shutdown` closes every connection guarded with this drain by force
//! ([`close_connections`](Drain::close_connections); see
//! [`ConnectionGuard::drain`](crate::connection::ConnectionGuard::drain), which the
//! [`serve`](crate::serve) recipe sets) and waits at most the [close
//! timeout](Drain::close_timeout) more. So `shutdown(grace)` returns within
//! `grace + close_timeout`, whatever the clients do.
//!
//! # Example
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use tower::{service_fn, ServiceBuilder};
//! use tower_push::{drain::Drain, negotiate::NegotiateLayer, Event};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let drain = Drain::new();
//! let endpoint = ServiceBuilder::new()
//!     .layer(NegotiateLayer::new())
//!     .layer(drain.layer())
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, Infallible>(tokio_stream::pending::<Event>())
//!     }));
//! # let _ = endpoint;
//! // On SIGTERM:
//! let still_open = drain.shutdown(Duration::from_secs(10)).await;
//! assert_eq!(still_open, 0);
//! # }
//! ```

use crate::{error::BoxError, push::IntoPush, push::Push, rejection::Reject};
use futures_core::Stream;
use http::{header, HeaderValue, StatusCode};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio_util::{
    sync::{CancellationToken, WaitForCancellationFutureOwned},
    task::{task_tracker::TaskTrackerToken, TaskTracker},
};
use tower_layer::Layer;
use tower_service::Service;

/// The default [close timeout](Drain::close_timeout): 1 second.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The shutdown handle: make layers with [`Drain::layer`], then call [`Drain::shutdown`].
/// Clones share the same drain.
#[derive(Clone)]
pub struct Drain {
    signal: CancellationToken,
    streams: TaskTracker,
    /// Cancelled to close the guarded connections by force.
    force: CancellationToken,
    connections: TaskTracker,
    close_timeout: Duration,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            signal: CancellationToken::new(),
            streams: TaskTracker::new(),
            force: CancellationToken::new(),
            connections: TaskTracker::new(),
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
        }
    }
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("draining", &self.is_draining())
            .field("open", &self.open())
            .field("connections", &self.connections())
            .field("close_timeout", &self.close_timeout)
            .finish()
    }
}

impl Drain {
    /// A drain with no stream yet and the [`DEFAULT_CLOSE_TIMEOUT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// How long [`shutdown`](Drain::shutdown) waits, after closing the guarded connections by
    /// force, for the last streams to be dropped. Default 1 s ([`DEFAULT_CLOSE_TIMEOUT`]).
    /// Set it before cloning the drain into layers and guards: clones keep the value they were
    /// made with.
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The close timeout.
    pub fn get_close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Connections open through a [`ConnectionGuard`](crate::connection::ConnectionGuard)
    /// that names this drain.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Closes every guarded connection by force: each fails its next read or write at once
    /// (waking any that wait), and hyper drops it with its response. [`shutdown`](Drain::shutdown)
    /// calls this when streams outlive the grace period; call it yourself to cut off the
    /// remaining connections of an HTTP server's own graceful shutdown.
    pub fn close_connections(&self) {
        self.force.cancel();
    }

    /// Waits until every guarded connection is closed, at most `timeout`. Returns how many are
    /// still open.
    pub async fn wait_connections(&self, timeout: Duration) -> usize {
        self.connections.close();
        let _ = tokio::time::timeout(timeout, self.connections.wait()).await;
        self.connections()
    }

    #[cfg(feature = "connection")]
    pub(crate) fn link(&self) -> ConnectionLink {
        ConnectionLink {
            closed: Box::pin(self.force.clone().cancelled_owned()),
            _token: self.connections.token(),
        }
    }

    /// A layer whose streams this drain ends.
    pub fn layer(&self) -> DrainLayer {
        DrainLayer {
            drain: self.clone(),
        }
    }

    /// Streams currently open through this drain's layers.
    pub fn open(&self) -> usize {
        self.streams.len()
    }

    /// Whether [`shutdown`](Drain::shutdown) was called.
    pub fn is_draining(&self) -> bool {
        self.signal.is_cancelled()
    }

    /// Ends every stream (and refuses new ones), then waits up to `grace` for them to be
    /// dropped. Streams still open then (their clients stopped reading, so they are not
    /// polled) have their guarded connections closed by force
    /// ([`close_connections`](Drain::close_connections)), and `shutdown` waits at most the
    /// [close timeout](Drain::close_timeout) more. Returns how many streams were still open
    /// when the wait ended (0: all closed); it returns within `grace + close_timeout`.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.signal.cancel();
        self.streams.close();
        if tokio::time::timeout(grace, self.streams.wait())
            .await
            .is_err()
        {
            tracing::debug!(
                open = self.open(),
                "push streams outlived the grace period; closing their connections"
            );
            self.close_connections();
            let _ = tokio::time::timeout(self.close_timeout, self.streams.wait()).await;
        }
        self.open()
    }
}

/// A guarded connection's tie to its drain: counted while open, closed by force on demand.
#[cfg(feature = "connection")]
pub(crate) struct ConnectionLink {
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    _token: TaskTrackerToken,
}

#[cfg(feature = "connection")]
impl ConnectionLink {
    /// Ready once the drain closes connections by force.
    pub(crate) fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.closed.as_mut().poll(cx)
    }
}

/// Layer that applies [`AddDrain`]. See the [module docs](crate::drain).
#[derive(Debug, Clone)]
pub struct DrainLayer {
    drain: Drain,
}

impl<S> Layer<S> for DrainLayer {
    type Service = AddDrain<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AddDrain {
            inner,
            drain: self.drain.clone(),
        }
    }
}

/// Middleware that makes the inner service's streams end when the drain is signalled.
///
/// See the [module docs](crate::drain) for an example.
#[derive(Debug, Clone)]
pub struct AddDrain<S> {
    inner: S,
    drain: Drain,
}

impl<S> AddDrain<S> {
    define_inner_service_accessors!();
}

impl<S, R> Service<R> for AddDrain<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    S::Response: Stream,
    <S::Response as Stream>::Item: IntoPush,
{
    type Response = Draining<S::Response>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let drain = if self.drain.is_draining() {
            None
        } else {
            Some(self.drain.clone())
        };
        ResponseFuture {
            future: self.inner.call(req),
            drain,
        }
    }
}

pin_project! {
    /// Response future of [`AddDrain`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        drain: Option<Drain>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

fn draining() -> BoxError {
    Reject::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down; retry")
        .header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        .cause(crate::reason::Refusal::Drain)
        .into()
}

impl<F, St, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<St, E>>,
    E: Into<BoxError>,
    St: Stream,
    St::Item: IntoPush,
{
    type Output = Result<Draining<St>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(drain) = this.drain.take() else {
            return Poll::Ready(Err(draining()));
        };
        let stream = match this.future.poll(cx) {
            Poll::Ready(result) => result.map_err(Into::into)?,
            Poll::Pending => {
                *this.drain = Some(drain);
                return Poll::Pending;
            }
        };
        if drain.is_draining() {
            return Poll::Ready(Err(draining()));
        }
        Poll::Ready(Ok(Draining {
            stream,
            signal: drain.signal.clone().cancelled_owned(),
            _token: drain.streams.token(),
            ended: false,
        }))
    }
}

pin_project! {
    /// A stream that yields [`Push::Shutdown`] and ends when its drain is signalled.
    #[must_use = "streams do nothing unless polled"]
    pub struct Draining<St> {
        #[pin]
        stream: St,
        #[pin]
        signal: WaitForCancellationFutureOwned,
        // Counted by the drain until this stream is dropped.
        _token: TaskTrackerToken,
        ended: bool,
    }
}

impl<St> fmt::Debug for Draining<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Draining")
            .field("stream", &std::any::type_name::<St>())
            .field("ended", &self.ended)
            .finish()
    }
}

impl<St> Stream for Draining<St>
where
    St: Stream,
    St::Item: IntoPush,
{
    type Item = Result<Push, <St::Item as IntoPush>::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if this.signal.poll(cx).is_ready() {
            *this.ended = true;
            return Poll::Ready(Some(Ok(Push::Shutdown)));
        }
        match ready!(this.stream.poll_next(cx)) {
            Some(item) => Poll::Ready(Some(item.into_push())),
            None => {
                *this.ended = true;
                Poll::Ready(None)
            }
        }
    }
}
