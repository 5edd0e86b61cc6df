use super::ResponseFuture;
use crate::{
    body::PushBody, long_poll::LongPollLayer, rejection, sse::SseLayer, transport::Inner, BoxError,
    IntoPush,
};
use futures_core::Stream;
use http::{header, HeaderMap, Method, Request, Response};
use std::{
    convert::Infallible,
    task::{Context, Poll},
};
use tower_layer::Layer;
use tower_service::Service;

/// The transport [`Negotiate`] picks for a request; also placed in the request extensions,
/// so the inner service can see which one serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// Server-Sent Events.
    Sse,
    /// Long polling.
    LongPoll,
    /// WebSocket (HTTP/1.1 upgrade or HTTP/2 extended CONNECT).
    #[cfg(feature = "ws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
    WebSocket,
}

impl Transport {
    /// The transport for a request, or `None` when its method is not served.
    pub fn of<B>(req: &Request<B>) -> Option<Self> {
        #[cfg(feature = "ws")]
        if crate::ws::is_upgrade_request(req) {
            return Some(Transport::WebSocket);
        }
        if req.method() != Method::GET {
            return None;
        }
        if accepts_event_stream(req.headers()) {
            Some(Transport::Sse)
        } else {
            Some(Transport::LongPoll)
        }
    }
}

/// Whether an `Accept` header lists `text/event-stream` (parameters ignored).
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let media = range.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("text/event-stream")
        })
}

/// Layer that applies [`Negotiate`]. See the [module docs](crate::negotiate).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct NegotiateLayer {
    sse: SseLayer,
    long_poll: LongPollLayer,
    #[cfg(feature = "ws")]
    ws: crate::ws::WsLayer,
}

impl NegotiateLayer {
    /// Both transports with their default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The settings of the SSE transport. Default [`SseLayer::new`]. A second call replaces
    /// the first.
    pub fn sse(mut self, sse: SseLayer) -> Self {
        self.sse = sse;
        self
    }

    /// The settings of the long-poll transport. Default [`LongPollLayer::new`]. A second call
    /// replaces the first.
    pub fn long_poll(mut self, long_poll: LongPollLayer) -> Self {
        self.long_poll = long_poll;
        self
    }

    /// The settings of the WebSocket transport. Default [`WsLayer::new`](crate::ws::WsLayer::new).
    /// A second call replaces the first.
    #[cfg(feature = "ws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
    pub fn ws(mut self, ws: crate::ws::WsLayer) -> Self {
        self.ws = ws;
        self
    }
}

impl<S> Layer<S> for NegotiateLayer {
    type Service = Negotiate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Negotiate {
            inner: Inner::new(inner),
            layer: self.clone(),
        }
    }
}

/// Service that serves the inner service's stream over the transport each request asks for.
///
/// See the [module docs](crate::negotiate) for the rules and an example.
#[derive(Debug, Clone)]
pub struct Negotiate<S> {
    inner: Inner<S>,
    layer: NegotiateLayer,
}

impl<S> Negotiate<S> {
    /// Wraps `inner` with both transports at their default settings.
    pub fn new(inner: S) -> Self {
        NegotiateLayer::new().layer(inner)
    }

    /// A [`NegotiateLayer`].
    pub fn layer() -> NegotiateLayer {
        NegotiateLayer::new()
    }

    /// See [`NegotiateLayer::sse`].
    #[must_use]
    pub fn sse(mut self, sse: SseLayer) -> Self {
        self.layer = self.layer.sse(sse);
        self
    }

    /// See [`NegotiateLayer::long_poll`].
    #[must_use]
    pub fn long_poll(mut self, long_poll: LongPollLayer) -> Self {
        self.layer = self.layer.long_poll(long_poll);
        self
    }

    /// See [`NegotiateLayer::ws`].
    #[cfg(feature = "ws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
    #[must_use]
    pub fn ws(mut self, ws: crate::ws::WsLayer) -> Self {
        self.layer = self.layer.ws(ws);
        self
    }

    define_transport_accessors!();
}

impl<S, B, St> Service<Request<B>> for Negotiate<S>
where
    S: Service<Request<B>, Response = St>,
    S::Error: Into<BoxError>,
    St: Stream + Send + 'static,
    St::Item: IntoPush,
{
    type Response = Response<PushBody<St>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future, St>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready::<Request<B>>(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(transport) = Transport::of(&req) else {
            return ResponseFuture::ready(rejection::method_not_allowed("GET"));
        };
        req.extensions_mut().insert(transport);
        match transport {
            Transport::Sse => ResponseFuture::sse(self.layer.sse.config.call(&mut self.inner, req)),
            Transport::LongPoll => {
                ResponseFuture::long_poll(self.layer.long_poll.config.call(&mut self.inner, req))
            }
            #[cfg(feature = "ws")]
            Transport::WebSocket => {
                ResponseFuture::ws(self.layer.ws.config.call(&mut self.inner, req))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(method: Method, accept: Option<&str>) -> Option<Transport> {
        let mut req = Request::builder().method(method);
        if let Some(accept) = accept {
            req = req.header(header::ACCEPT, accept);
        }
        Transport::of(&req.body(()).unwrap())
    }

    #[test]
    fn accept_picks_the_transport() {
        assert_eq!(
            transport(Method::GET, Some("text/event-stream")),
            Some(Transport::Sse)
        );
        assert_eq!(
            transport(
                Method::GET,
                Some("application/json, TEXT/Event-Stream;q=0.9")
            ),
            Some(Transport::Sse)
        );
        assert_eq!(
            transport(Method::GET, Some("*/*")),
            Some(Transport::LongPoll)
        );
        assert_eq!(transport(Method::GET, None), Some(Transport::LongPoll));
        assert_eq!(transport(Method::POST, Some("text/event-stream")), None);
        assert_eq!(transport(Method::HEAD, None), None);
    }
}
