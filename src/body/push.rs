use crate::{
    error::BoxError,
    event::Event,
    observe::Connection,
    push::{IntoPush, Push},
    reason::CloseReason,
};
use bytes::Bytes;
use futures_core::Stream;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    convert::Infallible,
    fmt,
    pin::Pin,
    task::{ready, Context, Poll},
};

pin_project! {
    /// The response body of the push transports ([`Sse`](crate::sse::Sse),
    /// [`LongPoll`](crate::long_poll::LongPoll) and [`Negotiate`](crate::negotiate::Negotiate)).
    ///
    /// For SSE it streams the events of `St` as they come, one frame per event, each frame the
    /// event's shared encoding (no copy). For long-poll and for refusals it is a fixed body.
    /// Its error type is [`Infallible`]: an error item of the stream ends the body cleanly.
    pub struct PushBody<St> {
        #[pin]
        kind: Kind<St>,
    }
}

/// How a streaming transport writes what its stream yields: the transport owns its format
/// (SSE's is `sse::wire::FRAMING`), the body only moves frames.
#[derive(Debug)]
pub(crate) struct Framing {
    /// An event's frame (shared by every connection).
    pub(crate) event: fn(&Event) -> Bytes,
    /// A cursor-only event shown as a visible position frame, from its id.
    pub(crate) position: fn(&str) -> Bytes,
    /// What a heartbeat writes.
    pub(crate) heartbeat: &'static [u8],
}

pin_project! {
    #[project = KindProj]
    enum Kind<St> {
        Stream {
            #[pin]
            stream: St,
            head: Option<Bytes>,
            named_positions: bool,
            done: bool,
            framing: &'static Framing,
            connection: Connection,
        },
        Full {
            data: Option<Bytes>,
        },
    }
}

impl<St> PushBody<St> {
    /// A streaming body: `head` first, then each item of `stream` as `framing` writes it.
    #[cfg(feature = "sse")]
    pub(crate) fn stream(
        stream: St,
        head: Option<Bytes>,
        named_positions: bool,
        framing: &'static Framing,
        connection: Connection,
    ) -> Self {
        Self {
            kind: Kind::Stream {
                stream,
                head,
                named_positions,
                done: false,
                framing,
                connection,
            },
        }
    }

    /// The answer for an inner service's error (a `Reject`'s status, else a logged `500`).
    #[cfg(any(feature = "sse", feature = "ws"))]
    pub(crate) fn inner_error(error: BoxError) -> http::Response<Self> {
        crate::inner_service::inner_error(error).map(Self::full)
    }

    /// A refusal that was ready at once, taken from a response future's state.
    #[cfg(any(feature = "sse", feature = "ws"))]
    pub(crate) fn refusal(response: &mut Option<http::Response<Bytes>>) -> http::Response<Self> {
        response
            .take()
            .expect("ResponseFuture polled after completion")
            .map(Self::full)
    }

    pub(crate) fn full(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Full {
                data: (!bytes.is_empty()).then_some(bytes),
            },
        }
    }
}

impl<St> fmt::Debug for PushBody<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Stream { done, .. } => f
                .debug_struct("PushBody::Stream")
                .field("stream", &std::any::type_name::<St>())
                .field("done", done)
                .finish(),
            Kind::Full { data } => f
                .debug_struct("PushBody::Full")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

impl<St> http_body::Body for PushBody<St>
where
    St: Stream,
    St::Item: IntoPush,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Stream {
                stream,
                head,
                named_positions,
                done,
                framing,
                connection,
            } => {
                if let Some(head) = head.take() {
                    connection.wrote(head.len());
                    return Poll::Ready(Some(Ok(Frame::data(head))));
                }
                if *done {
                    return Poll::Ready(None);
                }
                // The stream's work runs in the connection's span (no clone of the span: it is
                // entered for the poll only).
                let polled = {
                    let _entered = connection.span().enter();
                    stream.poll_next(cx)
                };
                // One frame per ready event: hyper polls again at once and writes the frames
                // back to back (vectored), flushing only when the stream is pending.
                let frame = match ready!(polled).map(IntoPush::into_push) {
                    Some(Ok(Push::Event(event))) if *named_positions && event.is_cursor_only() => {
                        let block = (framing.position)(event.get_id().unwrap_or_default());
                        connection.wrote(block.len());
                        block
                    }
                    Some(Ok(Push::Event(event))) => {
                        let bytes = (framing.event)(&event);
                        connection.delivered(&event, bytes.len());
                        bytes
                    }
                    Some(Ok(Push::Heartbeat)) => {
                        connection.wrote(framing.heartbeat.len());
                        Bytes::from_static(framing.heartbeat)
                    }
                    Some(Ok(Push::Shutdown)) => {
                        connection.close_reason(CloseReason::Drain);
                        *done = true;
                        return Poll::Ready(None);
                    }
                    Some(Err(error)) => {
                        let error: BoxError = error.into();
                        tracing::debug!(%error, "push stream failed; ending the SSE body");
                        connection.close_reason(CloseReason::Error);
                        *done = true;
                        return Poll::Ready(None);
                    }
                    None => {
                        connection.close_reason(CloseReason::StreamEnded);
                        *done = true;
                        return Poll::Ready(None);
                    }
                };
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Stream { head, done, .. } => *done && head.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Stream { .. } => SizeHint::default(),
        }
    }
}
