use super::ResponseFuture;
use crate::{
    body::PushBody, error::BoxError, inner_service::Inner, long_poll::LongPollLayer, observe,
    push::IntoPush, rejection, sse::SseLayer,
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
    /// The transport for a request, or `None` when its method is not served or its `Accept`
    /// header allows none of the transports.
    pub fn of<B>(req: &Request<B>) -> Option<Self> {
        choose(req).ok()
    }
}

/// Why [`choose`] found no transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoTransport {
    Method,
    NotAcceptable,
}

fn choose<B>(req: &Request<B>) -> Result<Transport, NoTransport> {
    #[cfg(feature = "ws")]
    if crate::ws::is_upgrade_request(req) {
        return Ok(Transport::WebSocket);
    }
    if req.method() != Method::GET {
        return Err(NoTransport::Method);
    }
    let accept = Accept(req.headers());
    if !accept.present() {
        return Ok(Transport::LongPoll);
    }
    // SSE only when asked for by name: `*/*` is what every fetch sends.
    if accept.quality("text", "event-stream", true) > 0 {
        Ok(Transport::Sse)
    } else if accept.quality("application", "json", false) > 0 {
        Ok(Transport::LongPoll)
    } else {
        Err(NoTransport::NotAcceptable)
    }
}

/// The `Accept` headers of a request (RFC 9110 §12.5.1).
struct Accept<'a>(&'a HeaderMap);

impl Accept<'_> {
    fn present(&self) -> bool {
        self.0.contains_key(header::ACCEPT)
    }

    /// The q-value (in thousandths) the most specific matching range gives `type/subtype`; 0
    /// when no range matches. With `exact`, only a range naming the type itself counts.
    fn quality(&self, ty: &str, subtype: &str, exact: bool) -> u16 {
        let mut best: Option<(u8, u16)> = None;
        let ranges = self
            .0
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        for range in ranges {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let Some((t, st)) = media.split_once('/') else {
                continue;
            };
            let (t, st) = (t.trim(), st.trim());
            let specificity = if t.eq_ignore_ascii_case(ty) && st.eq_ignore_ascii_case(subtype) {
                3
            } else if exact {
                continue;
            } else if t.eq_ignore_ascii_case(ty) && st == "*" {
                2
            } else if t == "*" && st == "*" {
                1
            } else {
                continue;
            };
            let mut q = Some(1000);
            for param in parts {
                if let Some((name, value)) = param.split_once('=') {
                    if name.trim().eq_ignore_ascii_case("q") {
                        q = parse_q(value.trim());
                    }
                }
            }
            // A malformed q-value makes the range unusable, not acceptable.
            let Some(q) = q else { continue };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, q));
            }
        }
        best.map_or(0, |(_, q)| q)
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
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
    /// Wraps `inner` with the three transports (WebSocket, SSE, long-poll) at their default
    /// settings.
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
        let transport = match choose(&req) {
            Ok(transport) => transport,
            Err(NoTransport::Method) => {
                observe::refused(
                    http::StatusCode::METHOD_NOT_ALLOWED,
                    crate::reason::Refusal::Method,
                );
                return ResponseFuture::ready(rejection::method_not_allowed("GET"));
            }
            Err(NoTransport::NotAcceptable) => {
                observe::refused(
                    http::StatusCode::NOT_ACCEPTABLE,
                    crate::reason::Refusal::Accept,
                );
                return ResponseFuture::ready(rejection::not_acceptable());
            }
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

    #[test]
    fn q_values_decide_and_zero_means_not_acceptable() {
        let get = |accept: &str| transport(Method::GET, Some(accept));
        assert_eq!(
            get("text/event-stream;q=0, application/json"),
            Some(Transport::LongPoll)
        );
        assert_eq!(
            get("text/event-stream; q=0.000, */*"),
            Some(Transport::LongPoll)
        );
        assert_eq!(get("text/event-stream;q=0.001"), Some(Transport::Sse));
        assert_eq!(get("text/event-stream;q=0"), None);
        assert_eq!(get("text/html"), None);
        assert_eq!(get("application/json;q=0, */*"), None, "most specific wins");
        assert_eq!(get("application/*"), Some(Transport::LongPoll));
        assert_eq!(
            get("text/html,application/xhtml+xml,*/*;q=0.8"),
            Some(Transport::LongPoll)
        );
        assert_eq!(
            get("text/event-stream;q=2, application/json"),
            Some(Transport::LongPoll),
            "a malformed q-value makes its range unusable"
        );
        for q in ["1.0001", "1.5", "-0", "0.1x", ""] {
            assert_eq!(parse_q(q), None, "{q}");
        }
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("1.000"), Some(1000));
    }
}
