use super::service::Config;
use crate::{
    body::PushBody,
    error::BoxError,
    event::Event,
    json::json_string,
    observe::Connection,
    push::{IntoPush, Push},
    reason::CloseReason,
    rejection,
};
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;
use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};
use tracing::Span;

pin_project! {
    /// Response future of [`LongPoll`](super::LongPoll): holds the poll and collects the batch.
    pub struct ResponseFuture<F, St> {
        #[pin]
        kind: Kind<F, St>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, St> {
        Calling { #[pin] future: F, batch: Option<Batch> },
        Collecting { #[pin] stream: St, #[pin] sleep: Sleep, batch: Batch },
        Ready { response: Option<Response<Bytes>> },
    }
}

/// Room for `{"events":[`, `],"cursor":`, a cursor and `}` beside the first event.
const ANSWER_FRAMING: usize = 64;

/// The events taken so far and the limits of this poll.
struct Batch {
    deadline: Instant,
    /// How long to wait for more after the first event, and whether that wait has begun.
    linger: Duration,
    lingering: bool,
    max_events: usize,
    max_bytes: usize,
    /// Whether the poll came with a cursor.
    had_cursor: bool,
    /// The request's cursor.
    cursor: Option<String>,
    /// The last event that told a cursor (an id): the answer's cursor, else the request's.
    learned: Option<Event>,
    /// The answer's body so far: `{"events":[` and the events' JSON, comma-separated.
    body: BytesMut,
    /// How many events, and the bytes of their JSON.
    events: usize,
    bytes: usize,
    failed: bool,
    shutdown: bool,
    /// The poll's span; its connection opens once the inner service gave the stream.
    span: Span,
    connection: Option<Connection>,
}

impl<F, St> ResponseFuture<F, St> {
    pub(crate) fn new(future: F, config: &Config, cursor: Option<String>, span: Span) -> Self {
        let batch = Batch {
            deadline: Instant::now() + config.timeout,
            linger: config.linger,
            lingering: false,
            max_events: config.max_events,
            max_bytes: config.max_bytes,
            had_cursor: cursor.is_some(),
            cursor,
            learned: None,
            body: BytesMut::new(),
            events: 0,
            bytes: 0,
            failed: false,
            shutdown: false,
            span,
            connection: None,
        };
        Self {
            kind: Kind::Calling {
                future,
                batch: Some(batch),
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

impl<F, St> fmt::Debug for ResponseFuture<F, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Calling { .. } => "Calling",
            Kind::Collecting { .. } => "Collecting",
            Kind::Ready { .. } => "Ready",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, St, E> Future for ResponseFuture<F, St>
where
    F: Future<Output = Result<St, E>>,
    E: Into<BoxError>,
    St: Stream,
    St::Item: IntoPush,
{
    type Output = Result<Response<PushBody<St>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut kind = self.as_mut().project().kind;
            match kind.as_mut().project() {
                KindProj::Ready { response } => {
                    let res = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(res.map(PushBody::full)));
                }
                KindProj::Calling { future, batch } => {
                    let span = &batch.as_ref().expect("batch is present while calling").span;
                    let stream = match ready!(span.in_scope(|| future.poll(cx))) {
                        Ok(stream) => stream,
                        Err(error) => {
                            let res = crate::inner_service::inner_error(error.into());
                            return Poll::Ready(Ok(res.map(PushBody::full)));
                        }
                    };
                    let mut batch = batch.take().expect("batch is present while calling");
                    batch.connection = Some(Connection::open(batch.span.clone(), "long-poll"));
                    kind.set(Kind::Collecting {
                        stream,
                        sleep: tokio::time::sleep_until(batch.deadline),
                        batch,
                    });
                }
                KindProj::Collecting {
                    mut stream,
                    sleep,
                    batch,
                } => {
                    ready!(batch.collect(stream.as_mut(), sleep, cx));
                    return Poll::Ready(Ok(batch.respond()));
                }
            }
        }
    }
}

impl Batch {
    /// Ready when the answer is due.
    fn collect<St>(
        &mut self,
        mut stream: Pin<&mut St>,
        mut sleep: Pin<&mut Sleep>,
        cx: &mut Context<'_>,
    ) -> Poll<()>
    where
        St: Stream,
        St::Item: IntoPush,
    {
        loop {
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => match item.into_push() {
                    Ok(Push::Event(event)) => {
                        // An id-only event moves the cursor without being listed.
                        if event.is_cursor_only() {
                            self.learned = Some(event);
                            continue;
                        }
                        let json = event.to_json();
                        if let Some(connection) = &mut self.connection {
                            connection.delivered(&event, json.len());
                        }
                        // One buffer for the whole answer: the events' JSON is copied once,
                        // instead of a list of pieces, a list of chunks and a tail.
                        if self.events == 0 {
                            self.body.reserve(ANSWER_FRAMING + json.len());
                            self.body.extend_from_slice(b"{\"events\":[");
                        } else {
                            self.body.extend_from_slice(b",");
                        }
                        self.body.extend_from_slice(&json);
                        self.bytes += json.len();
                        self.events += 1;
                        if event.get_id().is_some() {
                            self.learned = Some(event);
                        }
                        if self.events >= self.max_events || self.bytes >= self.max_bytes {
                            return Poll::Ready(());
                        }
                    }
                    Ok(Push::Heartbeat) => {}
                    // Draining: answer now; the client's next poll reaches another instance.
                    Ok(Push::Shutdown) => {
                        self.shutdown = true;
                        return Poll::Ready(());
                    }
                    Err(error) => {
                        let error: BoxError = error.into();
                        tracing::debug!(%error, "push stream failed; answering the poll");
                        self.failed = true;
                        return Poll::Ready(());
                    }
                },
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => {
                    if self.events == 0 {
                        if !self.had_cursor && self.learned.is_some() {
                            return Poll::Ready(());
                        }
                        return sleep.poll(cx);
                    }
                    if self.linger.is_zero() {
                        return Poll::Ready(());
                    }
                    if !self.lingering {
                        // The hold timeout no longer matters: answer at the end of the linger,
                        // or at the hold timeout if that comes first.
                        self.lingering = true;
                        let until = Instant::now() + self.linger;
                        if until < self.deadline {
                            sleep.as_mut().reset(until);
                        }
                    }
                    return sleep.poll(cx);
                }
            }
        }
    }

    fn respond<St>(&mut self) -> Response<PushBody<St>> {
        // The poll's connection ends with this answer.
        let mut connection = self.connection.take();
        if let Some(connection) = &mut connection {
            connection.close_reason(if self.failed {
                CloseReason::Error
            } else if self.shutdown {
                CloseReason::Drain
            } else if self.events == 0 && self.had_cursor && Instant::now() >= self.deadline {
                CloseReason::Timeout
            } else {
                CloseReason::Answered
            });
        }
        if self.failed && self.events == 0 {
            let res = rejection::text(
                StatusCode::SERVICE_UNAVAILABLE,
                Bytes::from_static(b"push stream failed"),
            );
            return res.map(PushBody::full);
        }
        let mut body = std::mem::take(&mut self.body);
        let cursor = match &self.learned {
            Some(event) => event.get_id(),
            None => self.cursor.as_deref(),
        };
        if self.events == 0 {
            body.reserve(ANSWER_FRAMING + cursor.map_or(0, str::len));
            body.extend_from_slice(b"{\"events\":[");
        }
        body.extend_from_slice(b"],\"cursor\":");
        match cursor {
            Some(cursor) => json_string(&mut body, cursor),
            None => body.extend_from_slice(b"null"),
        }
        body.extend_from_slice(b"}");
        if let Some(connection) = &mut connection {
            // The framing around the events' JSON (counted as they were taken).
            connection.wrote(body.len() - self.bytes);
        }

        let mut res = Response::new(PushBody::full(body.freeze()));
        // Sized for its two headers: one allocation, no growth.
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        *res.headers_mut() = headers;
        res
    }
}
