//! [`WebSocketUpgrade`]: the handshake for handlers that want the raw [`WebSocket`].

use super::{config::Config, handshake, service::WsLayer, socket::WebSocket};
use crate::rejection::Reject;
use http::{Request, Response};
use hyper::upgrade::OnUpgrade;
use std::{fmt, future::Future};

/// A validated WebSocket handshake, not yet answered; for handlers that drive the socket
/// themselves (an echo server, a custom protocol). The stream-driven transport
/// [`Ws`](super::Ws) is built on it.
///
/// ```
/// use http::Request;
/// use tower_push::ws::{WebSocketUpgrade, WsLayer};
///
/// async fn echo(mut req: Request<()>) -> http::Response<String> {
///     let upgrade = match WebSocketUpgrade::from_request(&mut req, &WsLayer::new()) {
///         Ok(upgrade) => upgrade,
///         Err(refusal) => {
///             return refusal.into_http_response().map(|b| String::from_utf8_lossy(&b).into_owned())
///         }
///     };
///     upgrade.on_upgrade(|mut socket| async move {
///         while let Some(Ok(message)) = socket.recv().await {
///             if socket.send(message).await.is_err() {
///                 break;
///             }
///         }
///     })
/// }
/// # let _ = echo;
/// ```
pub struct WebSocketUpgrade {
    handshake: handshake::Handshake,
    on_upgrade: OnUpgrade,
    config: Config,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("protocol", &self.protocol())
            .finish_non_exhaustive()
    }
}

impl WebSocketUpgrade {
    /// Validates the handshake of `req` (RFC 6455 over HTTP/1.1, RFC 8441 over HTTP/2) with the
    /// settings of `layer`, and takes the connection's upgrade handle from it.
    ///
    /// # Errors
    ///
    /// The refusal to answer (see [`Reject::into_http_response`]): `405` (with `Allow`) for a method other than GET (or HTTP/2
    /// CONNECT), `400` for a request that is not a valid upgrade, `426` (with
    /// `Sec-WebSocket-Version: 13`) for another version, `500` when the server connection
    /// cannot be upgraded (serve with upgrades enabled).
    pub fn from_request<B>(req: &mut Request<B>, layer: &WsLayer) -> Result<Self, Reject> {
        Self::new(req, &layer.config)
    }

    pub(crate) fn new<B>(req: &mut Request<B>, config: &Config) -> Result<Self, Reject> {
        let (handshake, on_upgrade) = handshake::accept(req, &config.protocols)?;
        Ok(Self {
            handshake,
            on_upgrade,
            config: config.clone(),
        })
    }

    /// The subprotocol chosen: the server's most preferred one among those the client offered.
    pub fn protocol(&self) -> Option<&str> {
        self.handshake.protocol_str()
    }

    /// Answers the handshake (`101 Switching Protocols`, or `200` over HTTP/2) and runs `f`
    /// with the socket once the connection is upgraded, on a spawned task.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn on_upgrade<F, Fut, B>(self, f: F) -> Response<B>
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        B: Default,
    {
        let res = handshake::response(&self.handshake);
        let protocol = self.protocol().map(str::to_owned);
        let (on_upgrade, config) = (self.on_upgrade, self.config);
        tokio::spawn(async move {
            if let Some(ws) = super::socket::accept(on_upgrade, &config).await {
                f(WebSocket::new(ws, protocol, config.close_timeout)).await;
            }
        });
        res
    }
}
