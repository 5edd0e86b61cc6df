use super::{
    answer::{finish, shared, Answer, ANSWER_FRAMING},
    service::Config,
};
use crate::{
    body::PushBody,
    cursor::LastEventId,
    error::BoxError,
    event::Event,
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
    sync::LazyLock,
    task::{ready, Context, Poll, Waker},
    time::Duration,
};
use tokio::time::{Instant, Sleep};
use tracing::Span;

pin_project! {
    /// Response future of [`LongPoll`](super::LongPoll): holds the poll and collects the batch.
    pub struct ResponseFuture<F, St> {
        #[pin]
        kind: Kind<F, St>,
        // Beside the state, not in it: the batch (a few hundred bytes) stays where it is made
        // instead of being moved from one state to the next on every poll.
        batch: Option<Batch>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, St> {
        Calling { #[pin] future: F },
        Collecting { #[pin] stream: St, #[pin] sleep: Sleep },
        Ready { response: Option<Response<Bytes>> },
    }
}

/// The event whose id is the answer's cursor. Held once, not cloned per event.
enum Told {
    /// No event told one: the request's cursor.
    Request,
    /// The last listed event.
    Last,
    /// An id-only event, or a listed one before events without an id.
    Event(Event),
}

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
    cursor: Option<LastEventId>,
    /// Where the answer's cursor comes from: the last event that told one (an id).
    told: Told,
    /// The answer's body so far: `{"events":[` and the events' JSON, comma-separated, except
    /// the last event's, which waits in `last` with its JSON (its id may be the cursor,
    /// written once).
    body: BytesMut,
    last: Option<(Event, Bytes)>,
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
    pub(crate) fn new(future: F, config: &Config, cursor: Option<LastEventId>, span: Span) -> Self {
        let batch = Batch {
            deadline: Instant::now() + config.timeout,
            linger: config.linger,
            lingering: false,
            max_events: config.max_events,
            max_bytes: config.max_bytes,
            had_cursor: cursor.is_some(),
            cursor,
            told: Told::Request,
            body: BytesMut::new(),
            last: None,
            events: 0,
            bytes: 0,
            failed: false,
            shutdown: false,
            span,
            connection: None,
        };
        Self {
            kind: Kind::Calling { future },
            batch: Some(batch),
        }
    }

    pub(crate) fn ready(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
            batch: None,
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut kind = this.kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Ready { response } => {
                    let res = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(res.map(PushBody::full)));
                }
                KindProj::Calling { future } => {
                    let batch = this.batch.as_mut().expect("a poll has its batch");
                    let stream = match ready!(batch.span.in_scope(|| future.poll(cx))) {
                        Ok(stream) => stream,
                        Err(error) => {
                            let res = crate::inner_service::inner_error(error.into());
                            return Poll::Ready(Ok(res.map(PushBody::full)));
                        }
                    };
                    batch.connection = Some(Connection::open(batch.span.clone(), "long-poll"));
                    kind.set(Kind::Collecting {
                        stream,
                        sleep: tokio::time::sleep_until(batch.deadline),
                    });
                }
                KindProj::Collecting { mut stream, sleep } => {
                    let batch = this.batch.as_mut().expect("a poll has its batch");
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
        // Once the answer has an event and is not lingering, the stream is asked only what
        // else is ready: with the no-op waker, as nothing will wait for a wake-up (a hub
        // subscription then answers without joining its buffer's wait list).
        let mut ready_only = Context::from_waker(Waker::noop());
        loop {
            let cx = if self.events > 0 && self.linger.is_zero() {
                &mut ready_only
            } else {
                &mut *cx
            };
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => match item.into_push() {
                    Ok(Push::Event(event)) => {
                        // An id-only event moves the cursor without being listed.
                        if event.is_cursor_only() {
                            self.told = Told::Event(event);
                            continue;
                        }
                        let json = event.to_json();
                        let len = json.len();
                        if let Some(connection) = &mut self.connection {
                            connection.delivered(&event, len);
                        }
                        let has_id = event.get_id().is_some();
                        // One buffer for the whole answer: the events' JSON is copied once,
                        // instead of a list of pieces, a list of chunks and a tail.
                        if let Some((before, json)) = self.last.replace((event, json)) {
                            if self.events == 1 {
                                self.body.reserve(ANSWER_FRAMING + 2 * json.len());
                                self.body.extend_from_slice(b"{\"events\":[");
                            }
                            self.body.extend_from_slice(&json);
                            self.body.extend_from_slice(b",");
                            if !has_id && matches!(self.told, Told::Last) {
                                self.told = Told::Event(before);
                            }
                        }
                        if has_id {
                            self.told = Told::Last;
                        }
                        self.bytes += len;
                        self.events += 1;
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
                        if !self.had_cursor && !matches!(self.told, Told::Request) {
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
        let last = self.last.take();
        let cursor = match (&self.told, &last) {
            (Told::Last, Some((event, _))) | (Told::Event(event), _) => event.get_id(),
            _ => self.cursor.as_ref().map(LastEventId::as_str),
        };
        let body = match (&self.told, &last) {
            // The answer of a held poll that one event (or a timeout) completes is the same
            // for every poll: made once per event and shared, as SSE's and WebSocket's
            // encodings are.
            (Told::Event(told), None) if shared(told) => told.encoded::<Answer>(),
            (Told::Last, Some((last, _))) if self.events == 1 && shared(last) => {
                last.encoded::<Answer>()
            }
            _ => {
                let mut body = std::mem::take(&mut self.body);
                if self.events <= 1 {
                    let len = last.as_ref().map_or(0, |(_, json)| json.len());
                    body.reserve(ANSWER_FRAMING + len + cursor.map_or(0, str::len));
                    body.extend_from_slice(b"{\"events\":[");
                }
                finish(
                    &mut body,
                    last.as_ref().map(|(e, json)| (e, &json[..])),
                    cursor,
                );
                body.freeze()
            }
        };
        if let Some(connection) = &mut connection {
            // The framing around the events' JSON (counted as they were taken).
            connection.wrote(body.len().saturating_sub(self.bytes));
        }

        let mut res = Response::new(PushBody::full(body));
        // Copied from one made once: no hashing or growth per answer.
        static HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
            let mut headers = HeaderMap::with_capacity(2);
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            // Caching proxies (Varnish's default TTL, for one) would otherwise keep an answer
            // and give it to the next poll with the same cursor.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers
        });
        *res.headers_mut() = HEADERS.clone();
        res
    }
}

#[cfg(test)]
mod tests {
    use super::super::answer::event;
    use super::*;

    /// The answer `LongPoll` gives for a stream of `events` (without a request cursor).
    async fn polled(events: Vec<Event>) -> String {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let svc = super::super::LongPoll::new(tower::service_fn(move |_req: http::Request<()>| {
            let events = events.clone();
            async move { Ok::<_, std::convert::Infallible>(tokio_stream::iter(events)) }
        }));
        let res = svc.oneshot(http::Request::new(())).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_cursor_is_the_last_event_that_told_one() {
        let told = |id: &str| Event::cursor_only(id.into());
        let cases = [
            (
                vec![event(Some("e-1"), "a"), event(None, "b")],
                r#"{"events":[{"id":"e-1","data":"a"},{"id":null,"data":"b"}],"cursor":"e-1"}"#,
            ),
            (
                vec![told("e-1"), event(None, "b")],
                r#"{"events":[{"id":null,"data":"b"}],"cursor":"e-1"}"#,
            ),
            (
                vec![
                    event(Some("e-1"), "a"),
                    event(Some("e-2"), "b"),
                    told("e-3"),
                ],
                r#"{"events":[{"id":"e-1","data":"a"},{"id":"e-2","data":"b"}],"cursor":"e-3"}"#,
            ),
            (
                vec![
                    event(Some("e-1"), "a"),
                    event(None, "b"),
                    event(Some("e-2"), "c"),
                ],
                r#"{"events":[{"id":"e-1","data":"a"},{"data":"b"},{"data":"c"}],"cursor":"e-2"}"#,
            ),
            (vec![told("e-4")], r#"{"events":[],"cursor":"e-4"}"#),
            (
                vec![event(Some("e-5"), "x")],
                r#"{"events":[{"data":"x"}],"cursor":"e-5"}"#,
            ),
        ];
        for (events, expected) in cases {
            assert_eq!(polled(events).await, expected);
        }
    }

    /// Polls held on one topic when an event comes are answered one after another; the
    /// hub's fan-out mark makes the first write the answer the others share, and an event
    /// only one poll reads gets no shared copy.
    #[cfg(feature = "hub")]
    #[tokio::test]
    async fn a_topic_s_answer_is_made_once_for_all_its_polls() {
        use crate::{
            cursor::StartAt,
            hub::{Hub as _, MemoryHub, Subscribe},
        };
        use tokio_stream::StreamExt as _;
        use tower::ServiceExt as _;
        for polls in [1, 3] {
            let hub = MemoryHub::new();
            let start = hub.publish_now("t", Event::new().data("0")).unwrap();
            let svc = super::super::LongPoll::new(Subscribe::new(hub.clone(), "t"));
            let held: Vec<_> = (0..polls)
                .map(|_| {
                    let req = http::Request::builder()
                        .header("last-event-id", start.as_str())
                        .body(())
                        .unwrap();
                    tokio::spawn(svc.clone().oneshot(req))
                })
                .collect();
            while hub.topic_stats("t").unwrap().subscribers < polls {
                tokio::task::yield_now().await;
            }
            hub.publish_now("t", Event::new().data("1")).unwrap();
            for poll in held {
                let res = poll.await.unwrap().unwrap();
                assert_eq!(res.status(), http::StatusCode::OK);
            }
            let mut replay = hub.subscribe("t", StartAt::parse(Some(start.as_str())).unwrap());
            let mut published = replay.next().await.unwrap();
            while published.is_cursor_only() {
                published = replay.next().await.unwrap();
            }
            assert_eq!(published.get_data(), Some("1"));
            assert_eq!(published.is_encoded::<Answer>(), polls > 1, "{polls} polls");
        }
    }
}
