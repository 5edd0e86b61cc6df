//! Refusals: the responses tower-push answers instead of a stream, and [`Reject`], the error an
//! inner service returns to refuse with a status of its choosing.

use crate::reason::Refusal;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use std::{borrow::Cow, fmt};

/// An error an inner service returns to refuse a push request with a status and a short text.
///
/// The transports turn an inner service's error into a response: a `Reject` (found by
/// downcasting the error) becomes its status and message; any other error becomes
/// `500 Internal Server Error` with a generic message (the error is logged, not shown).
///
/// ```
/// use http::StatusCode;
/// use tower_push::Reject;
///
/// let reject = Reject::new(StatusCode::NOT_FOUND, "no such room");
/// assert_eq!(reject.status(), StatusCode::NOT_FOUND);
/// assert_eq!(reject.to_string(), "no such room");
/// ```
#[derive(Debug, Clone)]
pub struct Reject {
    status: StatusCode,
    message: Cow<'static, str>,
    header: Option<(HeaderName, HeaderValue)>,
    /// The refusal's cause in the metrics (`inner` for an application's own).
    cause: Refusal,
}

impl Reject {
    /// A refusal with `status` and a short `message` (sent as `text/plain`).
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
            header: None,
            cause: Refusal::Inner,
        }
    }

    /// Adds a header to the refusal (for example `WWW-Authenticate` or
    /// `Sec-WebSocket-Version`). A second call replaces the first.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.header = Some((name, value));
        self
    }

    /// The cause the refusal is counted under (see [`observe`](crate::observe)).
    #[cfg_attr(
        not(any(feature = "drain", feature = "limit", feature = "hub")),
        allow(dead_code)
    )]
    pub(crate) fn cause(mut self, cause: Refusal) -> Self {
        self.cause = cause;
        self
    }

    /// The refusal's cause, for the refusal counter.
    #[cfg(transport)]
    pub(crate) fn get_cause(&self) -> Refusal {
        self.cause
    }

    /// The status of the refusal.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message of the refusal.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The refusal as a `text/plain` response (map the body into your framework's type, for
    /// example with `http_body_util::Full::new`). With the `axum` feature, a `Reject` is also
    /// an axum `IntoResponse`, so a handler can return it (or `Result<_, Reject>`) as it is.
    pub fn into_http_response(self) -> Response<Bytes> {
        let message = match self.message {
            Cow::Borrowed(s) => Bytes::from_static(s.as_bytes()),
            Cow::Owned(s) => Bytes::from(s),
        };
        let mut res = text(self.status, message);
        if let Some((name, value)) = self.header {
            res.headers_mut().insert(name, value);
        }
        res
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Reject {}

/// A refusal is an axum response: its status, its headers, and its message as `text/plain`.
///
/// ```
/// use axum::{routing::get, Router};
/// use http::StatusCode;
/// use tower_push::Reject;
///
/// async fn handler() -> Result<&'static str, Reject> {
///     Err(Reject::new(StatusCode::FORBIDDEN, "not your order"))
/// }
/// let app: Router = Router::new().route("/", get(handler));
/// # let _ = app;
/// ```
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum_core::response::IntoResponse for Reject {
    fn into_response(self) -> axum_core::response::Response {
        self.into_http_response().map(axum_core::body::Body::from)
    }
}

/// A `text/plain` response; the message ends with a newline.
pub(crate) fn text(status: StatusCode, message: Bytes) -> Response<Bytes> {
    let mut body = message;
    if !body.ends_with(b"\n") {
        let mut owned = body.to_vec();
        owned.push(b'\n');
        body = Bytes::from(owned);
    }
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// `406 Not Acceptable`: the request's `Accept` allows no transport.
#[cfg(feature = "negotiate")]
pub(crate) fn not_acceptable() -> Response<Bytes> {
    text(
        StatusCode::NOT_ACCEPTABLE,
        Bytes::from_static(
            b"not acceptable: accept text/event-stream (SSE) or application/json (long-poll)",
        ),
    )
}

/// `405 Method Not Allowed` with the `Allow` header.
#[cfg(feature = "negotiate")]
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Bytes> {
    let mut res = text(
        StatusCode::METHOD_NOT_ALLOWED,
        Bytes::from_static(b"method not allowed"),
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}
