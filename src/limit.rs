//! Cap the number of open push connections; each holds its place for the life of its stream.
//!
//! [`ConnectionLimitLayer`] sits between a transport and the service that makes the stream.
//! Each accepted request takes a permit that the *stream* keeps, so an SSE response, a
//! WebSocket or a held long-poll counts until it ends, not just while the request is being
//! answered. Over the limit, the request gets `503 Service Unavailable` with
//! `Retry-After: 1` (before any upgrade for a WebSocket). Clones of the layer share the
//! limit, so one limit can cover several routes.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder};
//! use tower_push::{limit::ConnectionLimitLayer, negotiate::NegotiateLayer, Event};
//!
//! let limit = ConnectionLimitLayer::new(10_000);
//! let endpoint = ServiceBuilder::new()
//!     .layer(NegotiateLayer::new())
//!     .layer(limit.clone())
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, Infallible>(tokio_stream::pending::<Event>())
//!     }));
//! # let _ = endpoint;
//! assert_eq!(limit.available(), 10_000);
//! ```

use crate::{error::BoxError, rejection::Reject};
use futures_core::Stream;
use http::{header, HeaderValue, StatusCode};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_layer::Layer;
use tower_service::Service;

/// Layer that applies [`ConnectionLimit`]. See the [module docs](crate::limit).
#[derive(Debug, Clone)]
pub struct ConnectionLimitLayer {
    permits: Arc<Semaphore>,
}

impl ConnectionLimitLayer {
    /// At most `max` streams open at once (clones share them).
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Places left.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

impl<S> Layer<S> for ConnectionLimitLayer {
    type Service = ConnectionLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConnectionLimit {
            inner,
            permits: self.permits.clone(),
        }
    }
}

/// Middleware that refuses with `503` when the limit is reached; the stream keeps its permit.
///
/// See the [module docs](crate::limit) for an example.
#[derive(Debug, Clone)]
pub struct ConnectionLimit<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S> ConnectionLimit<S> {
    define_inner_service_accessors!();
}

impl<S, R> Service<R> for ConnectionLimit<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    S::Response: Stream,
{
    type Response = Limited<S::Response>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        // Taken before the inner service runs, so a refused request costs it nothing.
        let permit = self.permits.clone().try_acquire_owned().ok();
        let future = permit.is_some().then(|| self.inner.call(req));
        ResponseFuture { future, permit }
    }
}

pin_project! {
    /// Response future of [`ConnectionLimit`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: Option<F>,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, St, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<St, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Limited<St>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            let reject = Reject::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections; retry",
            )
            .header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            .cause(crate::reason::Refusal::Limit);
            return Poll::Ready(Err(reject.into()));
        };
        let stream = std::task::ready!(future.poll(cx)).map_err(Into::into)?;
        let permit = this
            .permit
            .take()
            .expect("ResponseFuture polled after completion");
        Poll::Ready(Ok(Limited {
            stream,
            _permit: permit,
        }))
    }
}

pin_project! {
    /// A stream that holds its connection permit until it is dropped.
    #[must_use = "streams do nothing unless polled"]
    pub struct Limited<St> {
        #[pin]
        stream: St,
        _permit: OwnedSemaphorePermit,
    }
}

impl<St> fmt::Debug for Limited<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limited")
            .field("stream", &std::any::type_name::<St>())
            .finish_non_exhaustive()
    }
}

impl<St: Stream> Stream for Limited<St> {
    type Item = St::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<St::Item>> {
        self.project().stream.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}
