use crate::{body::PushBody, error::BoxError, long_poll, push::IntoPush, sse};
use bytes::Bytes;
use futures_core::Stream;
use http::Response;
use pin_project_lite::pin_project;
use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

pin_project! {
    /// Response future of [`Negotiate`](super::Negotiate).
    pub struct ResponseFuture<F, St> {
        #[pin]
        kind: Kind<F, St>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, St> {
        Sse { #[pin] future: sse::ResponseFuture<F> },
        LongPoll { #[pin] future: long_poll::ResponseFuture<F, St> },
        Ws { #[pin] future: WsFuture<F> },
    }
}

#[cfg(feature = "ws")]
type WsFuture<F> = crate::ws::ResponseFuture<F>;
/// Without the `ws` feature the variant cannot be built.
#[cfg(not(feature = "ws"))]
type WsFuture<F> = std::marker::PhantomData<(F, std::convert::Infallible)>;

impl<F, St> ResponseFuture<F, St> {
    #[cfg(feature = "ws")]
    pub(crate) fn ws(future: crate::ws::ResponseFuture<F>) -> Self {
        Self {
            kind: Kind::Ws { future },
        }
    }

    pub(crate) fn sse(future: sse::ResponseFuture<F>) -> Self {
        Self {
            kind: Kind::Sse { future },
        }
    }

    pub(crate) fn long_poll(future: long_poll::ResponseFuture<F, St>) -> Self {
        Self {
            kind: Kind::LongPoll { future },
        }
    }

    pub(crate) fn ready(response: Response<Bytes>) -> Self {
        Self::sse(sse::ResponseFuture::ready(response))
    }
}

impl<F, St> fmt::Debug for ResponseFuture<F, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Sse { future } => future.fmt(f),
            Kind::LongPoll { future } => future.fmt(f),
            Kind::Ws { future } => future.fmt(f),
        }
    }
}

impl<F, St, E> Future for ResponseFuture<F, St>
where
    F: Future<Output = Result<St, E>>,
    E: Into<BoxError>,
    St: Stream + Send + 'static,
    St::Item: IntoPush,
{
    type Output = Result<Response<PushBody<St>>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Sse { future } => future.poll(cx),
            KindProj::LongPoll { future } => future.poll(cx),
            #[cfg(feature = "ws")]
            KindProj::Ws { future } => future.poll(cx),
            #[cfg(not(feature = "ws"))]
            KindProj::Ws { .. } => unreachable!("the WebSocket variant needs the `ws` feature"),
        }
    }
}
