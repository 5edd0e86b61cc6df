use crate::{body::PushBody, error::BoxError, observe::Connection, push::IntoPush};
use bytes::Bytes;
use futures_core::Stream;
use http::Response;
use pin_project_lite::pin_project;
use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};
use tracing::Span;

pin_project! {
    /// Response future of [`Sse`](super::Sse).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F, head: Option<Bytes>, named_positions: bool, span: Span },
        Ready { response: Option<Response<Bytes>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F, head: Option<Bytes>, named_positions: bool, span: Span) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                head,
                named_positions,
                span,
            },
        }
    }

    pub(crate) fn ready(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
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
    St: Stream,
    St::Item: IntoPush,
{
    type Output = Result<Response<PushBody<St>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let res = match self.project().kind.project() {
            KindProj::Inner {
                future,
                head,
                named_positions,
                span,
            } => match ready!(span.in_scope(|| future.poll(cx))) {
                Ok(stream) => {
                    let connection = Connection::open(span.clone(), "sse");
                    super::service::response(stream, head.take(), *named_positions, connection)
                }
                Err(error) => PushBody::inner_error(error.into()),
            },
            KindProj::Ready { response } => PushBody::refusal(response),
        };
        Poll::Ready(Ok(res))
    }
}
