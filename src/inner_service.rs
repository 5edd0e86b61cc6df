//! Pieces every transport shares at its edge: the inner service's errors and a bad cursor
//! become responses, counted as refusals.

use crate::{
    cursor::{LastEventId, ReadCursor},
    error::BoxError,
    observe,
    rejection::{self, Reject},
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
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
        self.error.take().map(inner_error)
    }
}

/// The response for an inner service's error: its [`Reject`], else a logged 500; counted.
pub(crate) fn inner_error(error: BoxError) -> Response<Bytes> {
    match error.downcast::<Reject>() {
        Ok(reject) => {
            observe::refused(reject.status(), reject.get_cause());
            reject.into_http_response()
        }
        Err(error) => {
            tracing::error!(%error, "push service failed");
            observe::refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::reason::Refusal::Inner,
            );
            rejection::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(b"internal server error"),
            )
        }
    }
}

/// Puts the request's cursor in its extensions (see [`ReadCursor`]) and returns it; for a bad
/// one, the refusal to answer instead (counted).
#[inline]
#[allow(clippy::result_large_err)] // the refusal is the answer, handed straight back
pub(crate) fn read_cursor<B>(
    config: &ReadCursor,
    req: &mut Request<B>,
) -> Result<Option<LastEventId>, Response<Bytes>> {
    config.apply(req).map_err(|reject| {
        observe::refused(reject.status(), crate::reason::Refusal::Cursor);
        reject.into_http_response()
    })
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
