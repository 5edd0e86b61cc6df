use super::{
    access::{check_grant, check_name, AuthorizeFn},
    Hub,
};
use crate::{
    cursor::{LastEventId, StartAt},
    principal::Principal,
    rejection::Reject,
};
use http::{header, request::Parts, HeaderValue, Request, StatusCode};
use std::{
    fmt,
    future::{ready, Ready},
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

type TopicFn = dyn Fn(&Parts) -> Result<String, Reject> + Send + Sync;

#[derive(Clone)]
enum Source {
    Fixed(Arc<str>),
    Custom(Arc<TopicFn>),
}

/// Service that answers each request with a subscription to one topic of a [`Hub`], starting
/// after the request's [`LastEventId`] (placed there by the transports).
///
/// The topic is fixed ([`Subscribe::new`]) or taken from the request
/// ([`Subscribe::from_fn`]: a path parameter, a query parameter, the user). Either way the
/// wire format is the same: each event's id is the topic's own cursor, and named events keep
/// their names.
///
/// Before any stream starts (so before a WebSocket upgrade), it refuses:
///
/// * `400 Bad Request` for a topic taken from the request that breaks the
///   [topic rules](crate::topic#topic-names);
/// * `403 Forbidden` for a topic the request's [`TopicGrant`](crate::topic::TopicGrant) (from
///   its ticket) does not cover, or that the [`authorize`](Subscribe::authorize) function
///   refuses;
/// * `503 Service Unavailable` with `Retry-After: 1` while the hub is known to be down
///   ([`Hub::available`]).
///
/// Each is a [`Reject`], which the transports turn into that response.
///
/// ```
/// use tower_push::{hub::{MemoryHub, Subscribe}, negotiate::Negotiate};
///
/// let hub = MemoryHub::new();
/// let endpoint = Negotiate::new(Subscribe::new(hub.clone(), "room"));
/// # let _ = endpoint;
/// ```
///
/// # The topic from the request
///
/// `GET /orders/{id}/events` subscribes to `order:{id}`; with axum, the path parameter is in
/// the request's extensions, and the same function works with a plain path split anywhere:
///
/// ```
/// use http::StatusCode;
/// use tower_push::{hub::{MemoryHub, Subscribe}, negotiate::Negotiate, Reject};
///
/// let hub = MemoryHub::new();
/// let orders = Subscribe::from_fn(hub.clone(), |parts| {
///     // "/orders/42/events" -> "order:42"; anything else is a 404.
///     let id = parts
///         .uri
///         .path()
///         .strip_prefix("/orders/")
///         .and_then(|rest| rest.strip_suffix("/events"))
///         .ok_or_else(|| Reject::new(StatusCode::NOT_FOUND, "no such order stream"))?;
///     Ok(format!("order:{id}"))
/// });
/// let app: axum::Router =
///     axum::Router::new().route_service("/orders/{id}/events", Negotiate::new(orders));
/// # let _ = app;
/// ```
///
/// A hand-written inner service makes the same checks with
/// [`check_access`](super::check_access) before [`Hub::subscribe`].
#[derive(Clone)]
pub struct Subscribe<H> {
    hub: H,
    source: Source,
    authorize: Option<Arc<AuthorizeFn>>,
}

/// `Ok` while `hub` can serve a new subscription; else the `503` (with `Retry-After: 1`) that
/// [`Subscribe`] and [`Topics`](super::Topics) answer at once.
pub(crate) fn available<H: Hub>(hub: &H) -> Result<(), Reject> {
    hub.available().map_err(|error| {
        tracing::warn!(%error, "backbone unavailable; refusing the subscription");
        Reject::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backbone unavailable; retry",
        )
        .header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        .cause(crate::reason::Refusal::Backbone)
    })
}

impl<H: Hub> Subscribe<H> {
    /// Subscribes every request to `topic` (a request whose grant does not allow it gets
    /// `403`).
    pub fn new(hub: H, topic: impl Into<Arc<str>>) -> Self {
        Self {
            hub,
            source: Source::Fixed(topic.into()),
            authorize: None,
        }
    }

    /// Subscribes each request to the topic `topic` picks from the request's head (its path,
    /// query, headers, or the [`Principal`] in its extensions). A [`Reject`] it returns is the
    /// answer. The topic is then checked like any other: its name (`400`), the request's
    /// grant and [`authorize`](Subscribe::authorize) (`403`).
    pub fn from_fn<F>(hub: H, topic: F) -> Self
    where
        F: Fn(&Parts) -> Result<String, Reject> + Send + Sync + 'static,
    {
        Self {
            hub,
            source: Source::Custom(Arc::new(topic)),
            authorize: None,
        }
    }

    /// Decides whether the request's principal may subscribe to the topic (`false`: `403`).
    /// It runs after the ticket's [`TopicGrant`](crate::topic::TopicGrant), when there is
    /// one, has allowed the topic. Default: every topic the grant allows (every topic without
    /// a grant).
    #[must_use]
    pub fn authorize<F>(mut self, authorize: F) -> Self
    where
        F: Fn(Option<&Principal>, &str) -> bool + Send + Sync + 'static,
    {
        self.authorize = Some(Arc::new(authorize));
        self
    }

    /// The hub.
    pub fn hub(&self) -> &H {
        &self.hub
    }

    fn subscribe(&self, parts: &Parts) -> Result<H::Subscription, Reject> {
        let picked;
        let topic: &str = match &self.source {
            Source::Fixed(topic) => topic,
            Source::Custom(pick) => {
                picked = pick(parts)?;
                check_name(&picked)?;
                &picked
            }
        };
        check_grant(&parts.extensions, topic, self.authorize.as_deref())?;
        available(&self.hub)?;
        let from = start_at(&parts.extensions)?;
        Ok(self.hub.subscribe(topic, from))
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
        let (parts, _body) = req.into_parts();
        ready(self.subscribe(&parts))
    }
}

impl<H: fmt::Debug> fmt::Debug for Subscribe<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topic = match &self.source {
            Source::Fixed(topic) => format!("{topic:?}"),
            Source::Custom(_) => "from the request".to_owned(),
        };
        f.debug_struct("Subscribe")
            .field("hub", &self.hub)
            .field("topic", &topic)
            .field("authorize", &self.authorize.is_some())
            .finish()
    }
}

/// Where the request's cursor starts a subscription; `400` for one that is not a cursor at
/// all (the edge parses it once: hubs see only parsed cursors).
pub(super) fn start_at(extensions: &http::Extensions) -> Result<StartAt, Reject> {
    let last_event_id = extensions.get::<LastEventId>().map(LastEventId::as_str);
    Ok(StartAt::parse(last_event_id)?)
}
