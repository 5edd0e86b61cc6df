use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

pin_project! {
    /// The response body of the guard layers (Last-Event-ID, and later Origin and tickets):
    /// the inner service's body, or a short text refusal.
    pub struct GuardBody<B> {
        #[pin]
        kind: GuardKind<B>,
    }
}

pin_project! {
    #[project = GuardKindProj]
    enum GuardKind<B> {
        Inner { #[pin] body: B },
        Refused { data: Option<Bytes> },
    }
}

impl<B> GuardBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: GuardKind::Inner { body },
        }
    }

    pub(crate) fn refused(data: Bytes) -> Self {
        Self {
            kind: GuardKind::Refused { data: Some(data) },
        }
    }
}

impl<B> fmt::Debug for GuardBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            GuardKind::Inner { .. } => f
                .debug_struct("GuardBody::Inner")
                .field("body", &std::any::type_name::<B>())
                .finish(),
            GuardKind::Refused { data } => f
                .debug_struct("GuardBody::Refused")
                .field("data", data)
                .finish(),
        }
    }
}

impl<B> http_body::Body for GuardBody<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            GuardKindProj::Inner { body } => body.poll_frame(cx),
            GuardKindProj::Refused { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            GuardKind::Inner { body } => body.is_end_stream(),
            GuardKind::Refused { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            GuardKind::Inner { body } => body.size_hint(),
            GuardKind::Refused { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
