//! Refuse requests from origins that are not on an allow-list, before any upgrade or stream.
//!
//! Browsers let any web page open a WebSocket to any server, with the user's cookies
//! (cross-site WebSocket hijacking), and an `EventSource` with credentials behaves alike.
//! Browsers always say where the request comes from in the `Origin` header, so
//! [`OriginLayer`] answers `403 Forbidden` to every request whose `Origin` is not listed.
//!
//! Requests without `Origin` (non-browser clients, and same-origin `GET`s, which browsers send
//! without it) are allowed by default; [`OriginLayer::allow_missing`] switches that.
//! Comparison ignores ASCII case; the opaque origin `null` (sandboxed frames, `file:` pages)
//! is refused unless it is listed. A request with several `Origin` headers that differ is
//! refused (`403`); repeated identical ones count as one.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_push::origin::OriginLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(OriginLayer::new(["https://chat.example"]))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//!     }));
//!
//! let foreign = Request::get("/ws").header("origin", "https://evil.example").body(()).unwrap();
//! assert_eq!(svc.clone().oneshot(foreign).await.unwrap().status(), StatusCode::FORBIDDEN);
//! let ours = Request::get("/ws").header("origin", "https://chat.example").body(()).unwrap();
//! assert_eq!(svc.oneshot(ours).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```

use crate::{body::GuardBody, guard_future::ResponseFuture, rejection::Reject};
use http::{header, HeaderValue, Request, Response, StatusCode};
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_layer::Layer;
use tower_service::Service;

/// Layer that applies [`CheckOrigin`]. See the [module docs](crate::origin).
#[derive(Debug, Clone)]
#[must_use]
pub struct OriginLayer {
    allowed: Arc<[Box<str>]>,
    allow_missing: bool,
}

impl OriginLayer {
    /// Allows exactly these origins (`scheme://host[:port]`, as browsers send them), and
    /// requests without `Origin`.
    pub fn new<I>(origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self {
            allowed: origins
                .into_iter()
                .map(|o| {
                    o.as_ref()
                        .trim_end_matches('/')
                        .to_ascii_lowercase()
                        .into_boxed_str()
                })
                .collect(),
            allow_missing: true,
        }
    }

    /// Whether a request without `Origin` passes. Default `true`: non-browser clients and
    /// same-origin `GET`s send none. Set `false` when every client is a browser making
    /// cross-origin or WebSocket requests.
    pub fn allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// Checks every `Origin` header: several that differ are refused (a browser sends one;
    /// a proxy or attacker that adds a second must not get the first one judged alone).
    fn check_all(&self, headers: &http::HeaderMap) -> Result<(), Reject> {
        let mut all = headers.get_all(header::ORIGIN).iter();
        let first = all.next();
        if let Some(first) = first {
            if all.any(|other| other != first) {
                return Err(Reject::new(
                    StatusCode::FORBIDDEN,
                    "several different Origin headers",
                ));
            }
        }
        self.check(first)
    }

    fn check(&self, origin: Option<&HeaderValue>) -> Result<(), Reject> {
        let Some(origin) = origin else {
            return if self.allow_missing {
                Ok(())
            } else {
                Err(Reject::new(StatusCode::FORBIDDEN, "missing Origin header"))
            };
        };
        let allowed = origin.to_str().is_ok_and(|o| {
            self.allowed
                .iter()
                .any(|a| a.eq_ignore_ascii_case(o.trim_end_matches('/')))
        });
        if allowed {
            Ok(())
        } else {
            Err(Reject::new(StatusCode::FORBIDDEN, "origin not allowed"))
        }
    }
}

impl<S> Layer<S> for OriginLayer {
    type Service = CheckOrigin<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CheckOrigin {
            inner,
            layer: self.clone(),
        }
    }
}

/// Middleware that answers `403` to requests from origins not on the allow-list.
///
/// See the [module docs](crate::origin) for an example.
#[derive(Debug, Clone)]
pub struct CheckOrigin<S> {
    inner: S,
    layer: OriginLayer,
}

impl<S> CheckOrigin<S> {
    /// Wraps `inner`, allowing `layer`'s origins.
    pub fn new(inner: S, layer: OriginLayer) -> Self {
        Self { inner, layer }
    }

    define_inner_service_accessors!();
}

impl<S, B, ResBody> Service<Request<B>> for CheckOrigin<S>
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.layer.check_all(req.headers()) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(reject) => {
                crate::observe::refused(reject.status(), crate::reason::Refusal::Origin);
                ResponseFuture::refused(reject.into_http_response())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(layer: &OriginLayer, origin: Option<&'static str>) -> bool {
        layer
            .check(origin.map(HeaderValue::from_static).as_ref())
            .is_ok()
    }

    #[test]
    fn allow_list_is_exact_but_case_insensitive() {
        let layer = OriginLayer::new(["https://Chat.example/", "http://127.0.0.1:3000"]);
        assert!(check(&layer, Some("https://chat.example")));
        assert!(check(&layer, Some("HTTPS://CHAT.EXAMPLE")));
        assert!(check(&layer, Some("http://127.0.0.1:3000")));
        assert!(
            !check(&layer, Some("http://chat.example")),
            "scheme matters"
        );
        assert!(!check(&layer, Some("https://chat.example.evil")));
        assert!(
            !check(&layer, Some("http://127.0.0.1:3001")),
            "port matters"
        );
        assert!(!check(&layer, Some("null")));
        assert!(check(&layer, None), "missing is allowed by default");
        assert!(!check(&layer.clone().allow_missing(false), None));
    }

    #[test]
    fn several_origin_headers_that_differ_are_refused() {
        let layer = OriginLayer::new(["https://chat.example"]);
        let headers = |origins: &[&'static str]| {
            let mut h = http::HeaderMap::new();
            for o in origins {
                h.append(header::ORIGIN, HeaderValue::from_static(o));
            }
            h
        };
        let refused = layer
            .check_all(&headers(&["https://chat.example", "https://evil.example"]))
            .unwrap_err();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(layer
            .check_all(&headers(&["https://evil.example", "https://chat.example"]))
            .is_err());
        assert!(layer
            .check_all(&headers(&["https://chat.example", "https://chat.example"]))
            .is_ok());
        assert!(layer.check_all(&headers(&["https://chat.example"])).is_ok());
        assert!(layer.check_all(&headers(&[])).is_ok());
    }
}
