//! One served connection: its task ([`Served`]), the deadline that closes it while it has no
//! request (before its first, and an HTTP/2 connection with no open stream), and the service
//! wrapper ([`Checked`]) that sees its requests, refuses malformed HTTP/1.x heads and counts
//! the responses in flight.

use super::streams::{self, Progress};
use crate::error::BoxError;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::service::{TowerToHyperService, TowerToHyperServiceFuture};
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tower_service::Service;

/// What a connection's requests look like to its task.
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Requests started so far.
    started: AtomicU64,
    /// Responses whose body has not been dropped yet (an extended CONNECT stream, a
    /// WebSocket over HTTP/2, counts for the connection's whole life).
    in_flight: AtomicUsize,
    /// Whether the connection speaks HTTP/2 (seen on its first request).
    http2: AtomicBool,
}

/// One response in flight; dropped with its body (or with its future, when it fails).
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// One served connection, spawned as it is. An `async` block that awaits a connection
    /// moved into it holds the connection twice (a 680-byte hyper HTTP/1.1 connection made a
    /// 1,496-byte task): about 0.7 KiB per idle connection.
    pub(super) struct Served<C> {
        #[pin]
        conn: C,
        // Until it fires: then the connection is asked to finish gracefully.
        #[pin]
        stop: Option<WaitForCancellationFutureOwned>,
        graceful_shutdown: fn(Pin<&mut C>),
        activity: Arc<Activity>,
        // The first-request deadline, then (HTTP/2 only) the idle deadline: the connection is
        // closed when it fires with nothing in flight and no request since it was set. Checked
        // only when it fires, so it costs no wake-up while requests come and go; dropped for
        // an HTTP/1.1 connection once its first request arrived (hyper's header deadline
        // covers the later ones).
        deadline: Option<Pin<Box<Sleep>>>,
        // Requests started when the idle deadline was last set (0: it is still the first
        // request's deadline).
        seen: u64,
        first_request: Duration,
        idle: Duration,
    }
}

impl<C> Served<C> {
    pub(super) fn new(
        conn: C,
        stop: Option<WaitForCancellationFutureOwned>,
        graceful_shutdown: fn(Pin<&mut C>),
        activity: Arc<Activity>,
        first_request: Duration,
        idle: Duration,
    ) -> Self {
        Self {
            conn,
            stop,
            graceful_shutdown,
            activity,
            deadline: Some(Box::pin(tokio::time::sleep(first_request))),
            seen: 0,
            first_request,
            idle,
        }
    }
}

impl<C, E> Future for Served<C>
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        // The first request came (this poll is the connection's progress on it): an HTTP/1.1
        // connection needs no deadline of ours any more, an HTTP/2 one gets its idle deadline.
        // (`seen` is 0 only while the deadline is the first request's.)
        if *this.seen == 0 && this.deadline.is_some() {
            let started = this.activity.started.load(Ordering::Relaxed);
            if started > 0 {
                if this.activity.http2.load(Ordering::Relaxed) {
                    *this.seen = started;
                    if let Some(deadline) = this.deadline.as_mut() {
                        deadline.as_mut().reset(Instant::now() + *this.idle);
                    }
                } else {
                    *this.deadline = None;
                }
            }
        }
        // Only an HTTP/2 connection, or one without a request yet, still has a deadline.
        while let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_pending() {
                break;
            }
            let activity = &this.activity;
            let started = activity.started.load(Ordering::Relaxed);
            if started == 0 {
                tracing::debug!(after = ?this.first_request, "no request head within the deadline; closing the connection");
                return Poll::Ready(());
            }
            if started == *this.seen && activity.in_flight.load(Ordering::Relaxed) == 0 {
                tracing::debug!(after = ?this.idle, "HTTP/2 connection without a stream; closing it");
                return Poll::Ready(());
            }
            *this.seen = started;
            deadline.as_mut().reset(Instant::now() + *this.idle);
        }
        if let Some(stop) = this.stop.as_mut().as_pin_mut() {
            if stop.poll(cx).is_ready() {
                this.stop.set(None);
                (this.graceful_shutdown)(this.conn.as_mut());
            }
        }
        if let Err(error) = ready!(this.conn.poll(cx)) {
            tracing::debug!(%error, "connection ended with an error");
        }
        Poll::Ready(())
    }
}

/// The service of one connection: counts its requests and the responses in flight, and
/// refuses malformed HTTP/1.x request heads (see the [module docs](super)) before they reach
/// the routes.
///
/// A hyper service, not a tower one: hyper calls it in the same poll as it spawns the
/// request's HTTP/2 stream task, which [`streams`] relies on to watch that task (a tower
/// service behind hyper-util's adapter is only called once the task runs).
pub(super) struct Checked<S> {
    inner: TowerToHyperService<S>,
    activity: Arc<Activity>,
}

impl<S> Checked<S> {
    pub(super) fn new(inner: S) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity::default());
        let service = Self {
            inner: TowerToHyperService::new(inner),
            activity: activity.clone(),
        };
        (service, activity)
    }
}

/// Why an HTTP/1.x request head is refused, if it is.
fn malformed_head<B>(req: &Request<B>) -> Option<&'static str> {
    let version = req.version();
    if version != http::Version::HTTP_11 && version != http::Version::HTTP_10 {
        return None;
    }
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == http::Version::HTTP_11 => {
            return Some("an HTTP/1.1 request needs a Host header");
        }
        (Some(_), Some(_)) => return Some("more than one Host header"),
        _ => {}
    }
    let chunked = req
        .headers()
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .filter(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        .count();
    (chunked > 1).then_some("`chunked` more than once in Transfer-Encoding")
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Checked<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone,
{
    type Response = Response<CheckedBody<B>>;
    type Error = S::Error;
    type Future = CheckedFuture<TowerToHyperServiceFuture<S, Request<Incoming>>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let activity = &self.activity;
        // The protocol first: the connection's task reads it once it sees a request.
        if req.version() == http::Version::HTTP_2 {
            activity.http2.store(true, Ordering::Relaxed);
        }
        activity.started.fetch_add(1, Ordering::Relaxed);
        if let Some(why) = malformed_head(&req) {
            tracing::debug!(why, "malformed request head; answering 400");
            crate::observe::refused(
                http::StatusCode::BAD_REQUEST,
                crate::reason::Refusal::MalformedHead,
            );
            // No body: the routes' body type is all the connection can send, and a `400`
            // with `Connection: close` says enough.
            let mut res = Response::new(());
            *res.status_mut() = http::StatusCode::BAD_REQUEST;
            res.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return CheckedFuture::Refused {
                response: Some(res),
            };
        }
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        // An extended CONNECT (a WebSocket over HTTP/2) lives on after its response body
        // ended: it stays in flight for the connection's life (never idle).
        let connect = req.method() == http::Method::CONNECT;
        let guard = (!connect).then(|| InFlight(activity.clone()));
        // An HTTP/2 stream's task is spawned right after this call: watch it for a stall.
        let progress =
            (req.version() == http::Version::HTTP_2 && !connect).then(streams::watch_next);
        CheckedFuture::Inner {
            future: self.inner.call(req),
            guard,
            progress,
        }
    }
}

pin_project! {
    /// The response future of [`Checked`].
    #[project = CheckedFutureProj]
    pub(super) enum CheckedFuture<F> {
        Inner { #[pin] future: F, guard: Option<InFlight>, progress: Option<Arc<Progress>> },
        Refused { response: Option<Response<()>> },
    }
}

impl<F, B, E> Future for CheckedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<CheckedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CheckedFutureProj::Inner {
                future,
                guard,
                progress,
            } => {
                let res = ready!(future.poll(cx))?;
                let (guard, progress) = (guard.take(), progress.take());
                Poll::Ready(Ok(res.map(|body| CheckedBody::Inner {
                    body,
                    guard,
                    progress,
                })))
            }
            CheckedFutureProj::Refused { response } => {
                let res = response.take().expect("polled after completion");
                Poll::Ready(Ok(res.map(|()| CheckedBody::Refused)))
            }
        }
    }
}

pin_project! {
    /// The body of [`Checked`]'s responses: the routes' own (holding its place in flight),
    /// or a refusal's.
    #[project = CheckedBodyProj]
    pub(super) enum CheckedBody<B> {
        Inner { #[pin] body: B, guard: Option<InFlight>, progress: Option<Arc<Progress>> },
        Refused,
    }
}

impl<B> http_body::Body for CheckedBody<B>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, BoxError>>> {
        match self.project() {
            CheckedBodyProj::Inner { body, progress, .. } => {
                let Some(progress) = progress else {
                    return body
                        .poll_frame(cx)
                        .map(|frame| frame.map(|f| f.map_err(Into::into)));
                };
                progress.polled();
                let frame = ready!(body.poll_frame(cx));
                if matches!(&frame, Some(Ok(frame)) if frame.is_data()) {
                    progress.yielded();
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            CheckedBodyProj::Refused => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner { body, .. } => body.is_end_stream(),
            Self::Refused => true,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Self::Inner { body, .. } => body.size_hint(),
            Self::Refused => http_body::SizeHint::with_exact(0),
        }
    }
}
