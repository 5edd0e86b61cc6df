use super::Hub;
use crate::{cursor::LastEventId, rejection::Reject};
use http::{header, HeaderValue, Request, StatusCode};
use std::{
    future::{ready, Ready},
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// Service that answers each request with a subscription to one topic of a [`Hub`], starting
/// after the request's [`LastEventId`] (placed there by the transports). While the hub is
/// known to be down ([`Hub::available`]), it refuses with `503 Service Unavailable` and
/// `Retry-After: 1` (a [`Reject`], which the transports turn into that response).
///
/// This is the inner service the transports wrap in the common case:
///
/// ```
/// use tower_push::{hub::{MemoryHub, Subscribe}, negotiate::Negotiate};
///
/// let hub = MemoryHub::new();
/// let endpoint = Negotiate::new(Subscribe::new(hub.clone(), "room"));
/// # let _ = endpoint;
/// ```
///
/// For a topic that depends on the request (a path segment, the user), write the few lines
/// yourself with `tower::service_fn`: read the [`LastEventId`] extension and call
/// [`Hub::subscribe`].
#[derive(Debug, Clone)]
pub struct Subscribe<H> {
    hub: H,
    topic: Arc<str>,
}

/// `Ok` while `hub` can serve a new subscription; else the `503` (with `Retry-After: 1`) that
/// [`Subscribe`] and [`Topics`](super::Topics) answer at once.
pub(crate) fn available<H: Hub>(hub: &H) -> Result<(), Reject> {
    hub.available().map_err(|error| {
        tracing::debug!(%error, "backbone unavailable; refusing the subscription");
        Reject::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backbone unavailable; retry",
        )
        .header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        .cause("backbone")
    })
}

impl<H: Hub> Subscribe<H> {
    /// Subscribes every request to `topic`.
    pub fn new(hub: H, topic: impl Into<Arc<str>>) -> Self {
        Self {
            hub,
            topic: topic.into(),
        }
    }
}

impl<H: Hub, B> Service<Request<B>> for Subscribe<H> {
    type Response = H::Subscription;
    type Error = Reject;
    type Future = Ready<Result<H::Subscription, Reject>>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if let Err(reject) = available(&self.hub) {
            return ready(Err(reject));
        }
        let from = req
            .extensions()
            .get::<LastEventId>()
            .map(LastEventId::as_str);
        ready(Ok(self.hub.subscribe(&self.topic, from)))
    }
}
