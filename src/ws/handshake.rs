//! Validation of the opening handshake: RFC 6455 §4.2.1 over HTTP/1.1, RFC 8441 §5 over HTTP/2.

use crate::rejection::Reject;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;

/// The subprotocol agreed in the handshake, placed in request extensions for the inner service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subprotocol(pub String);

/// Whether the request asks for a WebSocket: an HTTP/1.1 `GET` with `Upgrade: websocket`, or
/// an HTTP/2 extended `CONNECT` with `:protocol websocket`. (It may still be refused.)
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    is_upgrade(req)
}

/// What an accepted handshake answers with.
#[derive(Debug, Clone)]
pub(crate) struct Handshake {
    /// `Sec-WebSocket-Accept` for HTTP/1.1; `None` for HTTP/2 extended CONNECT.
    pub(crate) accept: Option<HeaderValue>,
    /// The chosen subprotocol, if any.
    pub(crate) protocol: Option<HeaderValue>,
}

impl Handshake {
    /// The chosen subprotocol, as text.
    pub(crate) fn protocol_str(&self) -> Option<&str> {
        self.protocol.as_ref().and_then(|p| p.to_str().ok())
    }
}

/// Validates the handshake and takes the connection's upgrade handle from the request.
pub(crate) fn accept<B>(
    req: &mut Request<B>,
    protocols: &[HeaderValue],
) -> Result<(Handshake, OnUpgrade), Reject> {
    let handshake = validate(req, protocols).inspect_err(|reject| {
        crate::observe::refused(reject.status(), crate::reason::Refusal::Handshake);
    })?;
    let on_upgrade = req.extensions_mut().remove::<OnUpgrade>().ok_or_else(|| {
        Reject::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this connection cannot be upgraded (serve it with upgrades enabled)",
        )
    })?;
    Ok((handshake, on_upgrade))
}

/// Whether any comma-separated token of the `name` headers equals `token`, ignoring ASCII case.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// RFC 8441: `CONNECT` with a `:protocol` pseudo-header (any protocol: one other than
/// `websocket` is refused by [`validate`], not routed elsewhere).
fn is_extended_connect<B>(req: &Request<B>) -> bool {
    req.method() == Method::CONNECT && req.extensions().get::<hyper::ext::Protocol>().is_some()
}

/// Whether an extended CONNECT asks for `websocket`.
fn is_websocket_protocol<B>(req: &Request<B>) -> bool {
    req.extensions()
        .get::<hyper::ext::Protocol>()
        .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// Whether the request asks for a WebSocket (valid or not): what `Negotiate` routes on.
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    is_extended_connect(req)
        || (req.method() == Method::GET && has_token(req.headers(), header::UPGRADE, "websocket"))
}

/// RFC 6455 §4.1: the key is "a randomly selected 16-byte value that has been base64-encoded",
/// i.e. 22 base64 characters and `==`.
fn valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

pub(crate) fn validate<B>(
    req: &Request<B>,
    protocols: &[HeaderValue],
) -> Result<Handshake, Reject> {
    let h2 = is_extended_connect(req);
    let headers = req.headers();
    if h2 && !is_websocket_protocol(req) {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            "unsupported :protocol; this endpoint speaks websocket",
        ));
    }
    if !h2 && req.method() != Method::GET {
        return Err(
            Reject::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header(header::ALLOW, HeaderValue::from_static("GET")),
        );
    }
    // RFC 6455 §4.1: the handshake is an HTTP/1.1 (or later) request; HTTP/1.0 has no upgrade.
    if !h2 && req.version() < http::Version::HTTP_11 {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            "a WebSocket handshake needs HTTP/1.1",
        ));
    }
    let h1_upgrade = has_token(headers, header::UPGRADE, "websocket")
        && has_token(headers, header::CONNECTION, "upgrade");
    if !h2 && !h1_upgrade {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            "not a WebSocket upgrade: expected `Upgrade: websocket` and `Connection: upgrade`",
        ));
    }
    // RFC 6455 §4.2.2: an unsupported version is answered 426 with the versions supported.
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(Reject::new(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported Sec-WebSocket-Version; use 13",
        )
        .header(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        ));
    }
    let accept = if h2 {
        // RFC 8441 §5: no Sec-WebSocket-Key / Sec-WebSocket-Accept over HTTP/2.
        None
    } else {
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .map(HeaderValue::as_bytes);
        match key {
            Some(key) if valid_key(key) => {
                // RFC 6455 §4.2.2: Sec-WebSocket-Accept = base64(SHA-1(key + GUID)).
                let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
                Some(HeaderValue::from_str(&accept).expect("base64 is a valid header value"))
            }
            _ => {
                return Err(Reject::new(
                    StatusCode::BAD_REQUEST,
                    "Sec-WebSocket-Key must be 16 base64-encoded bytes",
                ))
            }
        }
    };
    Ok(Handshake {
        accept,
        protocol: choose_protocol(headers, protocols),
    })
}

/// The server's most preferred subprotocol among those offered (comma lists and repeated
/// headers); never one that was not offered.
fn choose_protocol(headers: &HeaderMap, preference: &[HeaderValue]) -> Option<HeaderValue> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    preference
        .iter()
        .find(|p| offered.iter().any(|o| o.as_bytes() == p.as_bytes()))
        .cloned()
}

/// The answer to an accepted handshake.
pub(crate) fn response<B: Default>(handshake: &Handshake) -> Response<B> {
    let mut res = Response::new(B::default());
    // RFC 8441 §5: extended CONNECT is answered 200 (the default), with no accept key.
    if let Some(accept) = &handshake.accept {
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = res.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept.clone());
    }
    if let Some(protocol) = &handshake.protocol {
        res.headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol.clone());
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> http::request::Builder {
        Request::get("/")
            .header("upgrade", "WebSocket")
            .header("connection", "keep-alive, Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    fn status(r: Request<()>) -> StatusCode {
        validate(&r, &[]).map_or_else(|e| e.status(), |_| StatusCode::SWITCHING_PROTOCOLS)
    }

    #[test]
    fn rfc_6455_sample_key_gives_the_sample_accept() {
        let hs = validate(&req().body(()).unwrap(), &[]).unwrap();
        // RFC 6455 §1.3.
        assert_eq!(hs.accept.unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn refusals() {
        assert_eq!(
            status(req().method("POST").body(()).unwrap()),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let no_key = Request::get("/")
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        assert_eq!(status(no_key), StatusCode::BAD_REQUEST);
        for key in [
            "AAAA",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZQ!=",
            "dGhlIHNhbXBsZSBub25jZSBub25jZQ==",
        ] {
            let r = Request::get("/")
                .header("upgrade", "websocket")
                .header("connection", "upgrade")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", key)
                .body(())
                .unwrap();
            assert_eq!(status(r), StatusCode::BAD_REQUEST, "{key}");
        }
        let v8 = Request::get("/")
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-version", "8")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap();
        assert_eq!(status(v8), StatusCode::UPGRADE_REQUIRED);
        let not_upgrade = Request::get("/").body(()).unwrap();
        assert_eq!(status(not_upgrade), StatusCode::BAD_REQUEST);
        let http10 = req().version(http::Version::HTTP_10).body(()).unwrap();
        assert_eq!(status(http10), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn extended_connect_other_than_websocket_is_refused() {
        let connect = |protocol: &str| {
            let mut r = Request::builder()
                .method(Method::CONNECT)
                .version(http::Version::HTTP_2)
                .header("sec-websocket-version", "13")
                .body(())
                .unwrap();
            r.extensions_mut()
                .insert(hyper::ext::Protocol::from(protocol));
            r
        };
        assert!(is_upgrade(&connect("webtransport")));
        assert_eq!(status(connect("webtransport")), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(connect("websocket")),
            StatusCode::SWITCHING_PROTOCOLS
        );
    }

    #[test]
    fn subprotocol_is_the_servers_preference_among_those_offered() {
        let prefs = [
            HeaderValue::from_static("chat.v2"),
            HeaderValue::from_static("chat.v1"),
        ];
        let pick = |offers: &[&str]| {
            let mut r = req();
            for o in offers {
                r = r.header("sec-websocket-protocol", *o);
            }
            validate(&r.body(()).unwrap(), &prefs).unwrap().protocol
        };
        assert_eq!(pick(&["chat.v1, chat.v2"]).unwrap(), "chat.v2");
        assert_eq!(pick(&["chat.v1", "other"]).unwrap(), "chat.v1");
        assert_eq!(pick(&["other", "x, y"]), None);
        assert_eq!(pick(&[]), None);
        assert_eq!(
            pick(&["CHAT.V2"]),
            None,
            "subprotocol tokens are case-sensitive"
        );
    }
}
