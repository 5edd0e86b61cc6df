use super::{
    config::Config,
    driver,
    future::ResponseFuture,
    handshake::{self, Subprotocol},
    socket::Inbound,
};
use crate::{body::PushBody, error::BoxError, inner_service::Inner, observe, push::IntoPush};
use futures_core::Stream;
use http::{HeaderValue, Request, Response};
use std::{
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};
use tokio::sync::mpsc;
use tower_layer::Layer;
use tower_service::Service;

impl Config {
    /// Validates the handshake, reads the cursor, and calls the inner service with the
    /// `Inbound` handle (and the chosen `Subprotocol`) in the request's extensions.
    pub(crate) fn call<S, B>(
        &self,
        inner: &mut Inner<S>,
        mut req: Request<B>,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<B>>,
    {
        if let Some(res) = inner.take_error() {
            return ResponseFuture::ready(res);
        }
        let (handshake, on_upgrade) = match handshake::accept(&mut req, &self.protocols) {
            Ok(accepted) => accepted,
            Err(reject) => return ResponseFuture::ready(reject.into_http_response()),
        };
        if let Err(res) = crate::inner_service::read_cursor(&self.last_event_id, &mut req) {
            return ResponseFuture::ready(res);
        }
        let (tx, rx) = mpsc::channel(self.inbound_buffer);
        req.extensions_mut().insert(Inbound::new(rx));
        if let Some(protocol) = handshake.protocol_str() {
            req.extensions_mut()
                .insert(Subprotocol(protocol.to_owned()));
        }
        let span = observe::connection_span("websocket", &req);
        let future = span.in_scope(|| inner.service.call(req));
        ResponseFuture::new(
            future,
            driver::Pending {
                handshake,
                on_upgrade,
                inbound: tx,
                config: self.clone(),
                span,
            },
        )
    }
}

/// Layer that applies [`Ws`]. See the [module docs](crate::ws).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct WsLayer {
    pub(crate) config: Config,
}

impl WsLayer {
    /// No subprotocols, 64 KiB messages, a 10 s pong deadline, a 5 s close timeout, a 30 s
    /// write stall deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// The subprotocols the server speaks, most preferred first. The handshake picks the first
    /// of these that the client offered and never answers one it did not offer. Default: none.
    /// A second call replaces the first.
    ///
    /// # Panics
    ///
    /// When a name is not a valid header value (a programming error).
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.config.protocols = protocols
            .into_iter()
            .map(|p| {
                HeaderValue::from_str(p.as_ref())
                    .expect("a subprotocol name is a valid header value")
            })
            .collect();
        self
    }

    /// The largest message accepted, in bytes, whole or fragmented; a larger one closes the
    /// connection with [`close_code::TOO_BIG`](super::close_code::TOO_BIG). Default 64 KiB
    /// (axum and warp accept 64 MiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// The codec's read buffer, allocated for every connection and grown for larger messages.
    /// Default [`DEFAULT_READ_BUFFER_SIZE`](super::DEFAULT_READ_BUFFER_SIZE) (1 KiB): the
    /// memory of an idle WebSocket is mostly this buffer. Raise it for clients that send
    /// large messages often (fewer reads per message).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.config.read_buffer_size = bytes;
        self
    }

    /// How long after a heartbeat Ping some frame must arrive before the peer is declared
    /// dead and the connection dropped. Default 10 s. Pings are sent for the stream's
    /// heartbeat items (see [`heartbeat`](crate::heartbeat)).
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.config.pong_timeout = timeout;
        self
    }

    /// How long the closing handshake may take: sending our Close and waiting for the
    /// peer's. Default 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_timeout = timeout;
        self
    }

    /// How long a write may make no progress (the peer stopped reading and the socket
    /// buffers are full) before the connection is dropped. Default 30 s
    /// ([`DEFAULT_STALL_TIMEOUT`](crate::connection::DEFAULT_STALL_TIMEOUT)); at least 1 ms.
    /// The pong deadline is also checked while a write waits.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.config.stall_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How many inbound messages wait for the application before reading pauses. Default 16.
    pub fn inbound_buffer(mut self, messages: usize) -> Self {
        self.config.inbound_buffer = messages.max(1);
        self
    }
}

impl<S> Layer<S> for WsLayer {
    type Service = Ws<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Ws {
            inner: Inner::new(inner),
            config: self.config.clone(),
        }
    }
}

/// Service that upgrades the request to a WebSocket and sends the inner service's stream
/// over it, one text frame per event, while inbound messages reach the inner service through
/// the [`Inbound`] handle.
///
/// See the [module docs](crate::ws) for the frame format and an example.
#[derive(Debug, Clone)]
pub struct Ws<S> {
    inner: Inner<S>,
    config: Config,
}

impl<S> Ws<S> {
    /// Wraps `inner` with the default settings.
    pub fn new(inner: S) -> Self {
        WsLayer::new().layer(inner)
    }

    /// A [`WsLayer`].
    pub fn layer() -> WsLayer {
        WsLayer::new()
    }

    define_transport_accessors!();
}

impl<S, B, St> Service<Request<B>> for Ws<S>
where
    S: Service<Request<B>, Response = St>,
    S::Error: Into<BoxError>,
    St: Stream + Send + 'static,
    St::Item: IntoPush,
{
    type Response = Response<PushBody<St>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready::<Request<B>>(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.config.call(&mut self.inner, req)
    }
}
