use super::service::Config;
use crate::{
    body::PushBody,
    error::BoxError,
    json::json_string,
    observe::Connection,
    push::{IntoPush, Push},
    rejection,
};
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::{header, HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;
use std::{
    collections::VecDeque,
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
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

/// The events taken so far and the limits of this poll.
struct Batch {
    deadline: Instant,
    max_events: usize,
    max_bytes: usize,
    /// Whether the poll came with a cursor.
    had_cursor: bool,
    /// The latest cursor: the request's, then the id of each event seen.
    cursor: Option<String>,
    /// Whether the stream told a cursor (an id, on any event).
    learned_cursor: bool,
    events: Vec<Bytes>,
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
            max_events: config.max_events,
            max_bytes: config.max_bytes,
            had_cursor: cursor.is_some(),
            cursor,
            learned_cursor: false,
            events: Vec::new(),
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
                            let res = rejection::from_inner_error(error.into());
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
        sleep: Pin<&mut Sleep>,
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
                        if let Some(id) = event.get_id() {
                            self.cursor = Some(id.to_owned());
                            self.learned_cursor = true;
                        }
                        if event.is_cursor_only() {
                            continue;
                        }
                        let json = event.to_json();
                        if let Some(connection) = &mut self.connection {
                            connection.delivered(&event, json.len());
                        }
                        self.bytes += json.len();
                        self.events.push(json);
                        if self.events.len() >= self.max_events || self.bytes >= self.max_bytes {
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
                    if !self.events.is_empty() || (!self.had_cursor && self.learned_cursor) {
                        return Poll::Ready(());
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
                "error"
            } else if self.shutdown {
                "drain"
            } else if self.events.is_empty() && self.had_cursor && Instant::now() >= self.deadline {
                "timeout"
            } else {
                "answered"
            });
        }
        if self.failed && self.events.is_empty() {
            let res = rejection::text(
                StatusCode::SERVICE_UNAVAILABLE,
                Bytes::from_static(b"push stream failed"),
            );
            return res.map(PushBody::full);
        }
        let events = std::mem::take(&mut self.events);
        let mut chunks = VecDeque::with_capacity(events.len() * 2 + 2);
        chunks.push_back(Bytes::from_static(b"{\"events\":["));
        for (i, event) in events.into_iter().enumerate() {
            if i > 0 {
                chunks.push_back(Bytes::from_static(b","));
            }
            // Each event's JSON is its shared encoding: no per-poll re-encoding.
            chunks.push_back(event);
        }
        let mut tail = BytesMut::with_capacity(16 + self.cursor.as_ref().map_or(4, String::len));
        tail.extend_from_slice(b"],\"cursor\":");
        match &self.cursor {
            Some(cursor) => json_string(&mut tail, cursor),
            None => tail.extend_from_slice(b"null"),
        }
        tail.extend_from_slice(b"}");
        if let Some(connection) = &mut connection {
            // The framing around the events' JSON (counted as they were taken).
            connection
                .wrote(chunks.iter().map(Bytes::len).sum::<usize>() - self.bytes + tail.len());
        }
        chunks.push_back(tail.freeze());

        let mut res = Response::new(PushBody::chunks(chunks));
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}
