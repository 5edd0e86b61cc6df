//! Read the client's resume cursor from `Last-Event-ID` or a query parameter.
//!
//! A reconnecting `EventSource` sends the id of the last event it saw in the `Last-Event-ID`
//! header. Long-poll and WebSocket clients cannot always set headers, so they send the same
//! cursor as a query parameter (`lastEventId` by default). [`LastEventIdLayer`] reads either
//! (the header wins), validates it and inserts a [`LastEventId`] into the request extensions,
//! where the inner service (for example [`Subscribe`](crate::hub::Subscribe)) finds it.
//!
//! The transports ([`Sse`](crate::sse::Sse), [`LongPoll`](crate::long_poll::LongPoll),
//! [`Negotiate`](crate::negotiate::Negotiate)) read the cursor themselves with the default
//! settings when no [`LastEventId`] is present, so this layer is only needed to change the
//! settings or to give the cursor to other services.
//!
//! An extension already present is never overwritten. An empty value counts as absent. A value
//! longer than the cap (default 512 bytes) or not valid UTF-8 is refused with
//! `400 Bad Request` and a short text body.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_push::last_event_id::{LastEventId, LastEventIdLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(LastEventIdLayer::new().query_param("cursor"))
//!     .service(service_fn(|req: Request<String>| async move {
//!         let cursor = req.extensions().get::<LastEventId>().map(|c| c.as_str().to_owned());
//!         Ok::<_, Infallible>(Response::new(http_body_util::Full::new(bytes::Bytes::from(
//!             cursor.unwrap_or_default(),
//!         ))))
//!     }));
//!
//! let req = Request::get("/events?cursor=a%2Db").body(String::new()).unwrap();
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! let req = Request::get("/events?cursor=%FF").body(String::new()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::BAD_REQUEST);
//! # }
//! ```
//!
//! [`Last-Event-ID`]: https://html.spec.whatwg.org/multipage/server-sent-events.html#the-last-event-id-header

use crate::{body::GuardBody, guard::ResponseFuture, rejection::Reject};
use http::{Request, Response, StatusCode};
use std::{
    borrow::Cow,
    fmt,
    task::{Context, Poll},
};
use tower_layer::Layer;
use tower_service::Service;

/// The header a reconnecting `EventSource` sends.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// The default query parameter: `lastEventId`.
pub const DEFAULT_QUERY_PARAM: &str = "lastEventId";

/// The default cap on the cursor's length in bytes: 512.
pub const DEFAULT_MAX_LEN: usize = 512;

/// The client's resume cursor, placed in request extensions.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LastEventId(String);

impl LastEventId {
    /// Wraps a cursor.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The cursor.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cursor, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for LastEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LastEventId").field(&self.0).finish()
    }
}

impl fmt::Display for LastEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the cursor is read from and how long it may be.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    query_param: Cow<'static, str>,
    max_len: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            query_param: Cow::Borrowed(DEFAULT_QUERY_PARAM),
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

impl Config {
    /// Inserts a [`LastEventId`] unless one is present. Returns the refusal for a bad value.
    pub(crate) fn apply<B>(&self, req: &mut Request<B>) -> Result<(), Reject> {
        if req.extensions().get::<LastEventId>().is_some() {
            return Ok(());
        }
        if let Some(id) = self.read(req)? {
            req.extensions_mut().insert(id);
        }
        Ok(())
    }

    fn read<B>(&self, req: &Request<B>) -> Result<Option<LastEventId>, Reject> {
        if let Some(value) = req.headers().get(LAST_EVENT_ID) {
            return self.check(value.as_bytes().to_vec(), "Last-Event-ID header");
        }
        let Some(query) = req.uri().query() else {
            return Ok(None);
        };
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if decode(name) != self.query_param.as_bytes() {
                continue;
            }
            // Each byte decodes from at most three: refuse before allocating for a huge value.
            if value.len() > self.max_len.saturating_mul(3) {
                return Err(too_long(&self.query_param, self.max_len));
            }
            let decoded = decode(value);
            return self.check(decoded, &self.query_param);
        }
        Ok(None)
    }

    fn check(&self, bytes: Vec<u8>, what: &str) -> Result<Option<LastEventId>, Reject> {
        if bytes.len() > self.max_len {
            return Err(too_long(what, self.max_len));
        }
        match String::from_utf8(bytes) {
            Ok(s) if s.is_empty() => Ok(None),
            Ok(s) => Ok(Some(LastEventId(s))),
            Err(_) => Err(Reject::new(
                StatusCode::BAD_REQUEST,
                format!("{what} is not valid UTF-8"),
            )),
        }
    }
}

fn too_long(what: &str, max: usize) -> Reject {
    Reject::new(
        StatusCode::BAD_REQUEST,
        format!("{what} is longer than {max} bytes"),
    )
}

/// Percent-decodes a query component (`+` is a space, as in HTML forms).
fn decode(s: &str) -> Vec<u8> {
    let bytes: Cow<'_, [u8]> = if s.contains('+') {
        Cow::Owned(s.replace('+', " ").into_bytes())
    } else {
        Cow::Borrowed(s.as_bytes())
    };
    percent_encoding::percent_decode(&bytes).collect()
}

/// Layer that applies [`SetLastEventId`]. See the [module docs](crate::last_event_id).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LastEventIdLayer {
    config: Config,
}

impl LastEventIdLayer {
    /// Reads `Last-Event-ID`, else `?lastEventId=`, up to 512 bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The query parameter read when the header is absent. Default `lastEventId`.
    /// A second call replaces the first.
    pub fn query_param(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.config.query_param = name.into();
        self
    }

    /// The longest cursor accepted, in bytes; longer ones get `400`. Default 512.
    pub fn max_len(mut self, max: usize) -> Self {
        self.config.max_len = max;
        self
    }
}

impl<S> Layer<S> for LastEventIdLayer {
    type Service = SetLastEventId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetLastEventId {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Middleware that puts the client's cursor in request extensions as a [`LastEventId`].
///
/// See the [module docs](crate::last_event_id) for an example.
#[derive(Debug, Clone)]
pub struct SetLastEventId<S> {
    inner: S,
    config: Config,
}

impl<S> SetLastEventId<S> {
    /// Wraps `inner` with the default settings.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            config: Config::default(),
        }
    }

    /// A [`LastEventIdLayer`] with the default settings.
    pub fn layer() -> LastEventIdLayer {
        LastEventIdLayer::new()
    }

    define_inner_service_accessors!();
}

impl<S, B, ResBody> Service<Request<B>> for SetLastEventId<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.config.apply(&mut req) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(refusal) => ResponseFuture::refused(refusal.into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(req: Request<()>) -> Result<Option<String>, StatusCode> {
        Config::default()
            .read(&req)
            .map(|id| id.map(LastEventId::into_inner))
            .map_err(|reject| reject.status())
    }

    fn get(uri: &str) -> http::request::Builder {
        Request::get(uri)
    }

    #[test]
    fn header_wins_over_query() {
        let req = get("/?lastEventId=q")
            .header(LAST_EVENT_ID, "h")
            .body(())
            .unwrap();
        assert_eq!(read(req), Ok(Some("h".into())));
    }

    #[test]
    fn query_is_percent_decoded() {
        let req = get("/?a=1&lastEventId=x%2Dy+z&b").body(()).unwrap();
        assert_eq!(read(req), Ok(Some("x-y z".into())));
    }

    #[test]
    fn empty_value_counts_as_absent() {
        assert_eq!(read(get("/?lastEventId=").body(()).unwrap()), Ok(None));
        let req = get("/").header(LAST_EVENT_ID, "").body(()).unwrap();
        assert_eq!(read(req), Ok(None));
        assert_eq!(read(get("/").body(()).unwrap()), Ok(None));
    }

    #[test]
    fn over_long_or_non_utf8_is_refused() {
        let long = "a".repeat(DEFAULT_MAX_LEN + 1);
        let req = get(&format!("/?lastEventId={long}")).body(()).unwrap();
        assert_eq!(read(req), Err(StatusCode::BAD_REQUEST));
        let req = get("/")
            .header(LAST_EVENT_ID, long.as_str())
            .body(())
            .unwrap();
        assert_eq!(read(req), Err(StatusCode::BAD_REQUEST));
        let req = get("/?lastEventId=%C3%28").body(()).unwrap();
        assert_eq!(read(req), Err(StatusCode::BAD_REQUEST));
        let bad = http::HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        let req = get("/").header(LAST_EVENT_ID, bad).body(()).unwrap();
        assert_eq!(read(req), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn an_existing_extension_is_kept() {
        let mut req = get("/?lastEventId=new").body(()).unwrap();
        req.extensions_mut().insert(LastEventId::new("old"));
        Config::default().apply(&mut req).unwrap();
        assert_eq!(
            req.extensions().get::<LastEventId>().unwrap().as_str(),
            "old"
        );
    }
}
