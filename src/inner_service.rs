//! Pieces every transport shares: the inner service's readiness errors become responses.

use crate::{error::BoxError, rejection};
use bytes::Bytes;
use http::Response;
use std::{
    convert::Infallible,
    task::{ready, Context, Poll},
};
use tower_service::Service;

/// The inner service and an error its `poll_ready` returned, answered by the next `call`.
///
/// The transports have `Error = Infallible` (so they mount directly in axum): an inner error
/// is answered as a response instead of being returned.
pub(crate) struct Inner<S> {
    pub(crate) service: S,
    error: Option<BoxError>,
}

impl<S> Inner<S> {
    pub(crate) fn new(service: S) -> Self {
        Self {
            service,
            error: None,
        }
    }

    #[inline]
    pub(crate) fn poll_ready<R>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>>
    where
        S: Service<R>,
        S::Error: Into<BoxError>,
    {
        if self.error.is_none() {
            if let Err(error) = ready!(self.service.poll_ready(cx)) {
                self.error = Some(error.into());
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The response owed for a readiness error, if there is one.
    pub(crate) fn take_error(&mut self) -> Option<Response<Bytes>> {
        self.error.take().map(rejection::from_inner_error)
    }
}

impl<S: Clone> Clone for Inner<S> {
    fn clone(&self) -> Self {
        Self::new(self.service.clone())
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Inner<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.service.fmt(f)
    }
}
