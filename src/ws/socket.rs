//! The raw WebSocket socket, its messages and the inbound handle.

use super::{close_code, config::Config};
use crate::connection::GuardedIo;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::{fmt, sync::Arc};
use tokio::sync::{mpsc, Mutex};
use tokio_tungstenite::{
    tungstenite::{self, protocol::frame::coding::CloseCode, protocol::CloseFrame, protocol::Role},
    WebSocketStream,
};

pub(crate) type Stream = WebSocketStream<GuardedIo<TokioIo<Upgraded>>>;

/// A data message received from or sent to a WebSocket client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8, checked by the codec).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// A WebSocket error: the connection failed or the peer broke the protocol.
#[derive(Debug)]
pub struct WsError {
    inner: tungstenite::Error,
}

impl WsError {
    /// The close code the server answered this error with, if it closed the connection for
    /// it: [`close_code::TOO_BIG`] for an oversized message, [`close_code::INVALID`] for
    /// invalid UTF-8, [`close_code::PROTOCOL`] for a protocol violation.
    pub fn close_code(&self) -> Option<u16> {
        close_code_for(&self.inner).map(u16::from)
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket error: {}", self.inner)
    }
}

impl std::error::Error for WsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner)
    }
}

impl From<tungstenite::Error> for WsError {
    fn from(inner: tungstenite::Error) -> Self {
        Self { inner }
    }
}

/// The close code a codec error calls for (RFC 6455 §7.4.1).
pub(crate) fn close_code_for(error: &tungstenite::Error) -> Option<CloseCode> {
    match error {
        tungstenite::Error::Capacity(_) => Some(CloseCode::from(close_code::TOO_BIG)),
        tungstenite::Error::Utf8(_) => Some(CloseCode::from(close_code::INVALID)),
        tungstenite::Error::Protocol(_) => Some(CloseCode::from(close_code::PROTOCOL)),
        _ => None,
    }
}

pub(crate) fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: tungstenite::Utf8Bytes::from_static(reason),
    }
}

/// A WebSocket connection after the handshake, for full control over messages.
///
/// Pings are answered and the close handshake is completed for you. Obtained from
/// [`WebSocketUpgrade::on_upgrade`](super::WebSocketUpgrade::on_upgrade).
pub struct WebSocket {
    inner: Stream,
    protocol: Option<String>,
    close_timeout: std::time::Duration,
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl WebSocket {
    pub(crate) fn new(
        inner: Stream,
        protocol: Option<String>,
        close_timeout: std::time::Duration,
    ) -> Self {
        Self {
            inner,
            protocol,
            close_timeout,
        }
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The next data message; `None` once the connection is closed.
    ///
    /// A message over the size limit, invalid UTF-8 in a text message or a protocol violation
    /// closes the connection with the matching code (see [`WsError::close_code`]) and
    /// returns the error.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a Ping's Pong or a close reply may be left unsent if the future is
    /// dropped. Don't use it as a `select!` branch that can lose.
    pub async fn recv(&mut self) -> Option<Result<Message, WsError>> {
        loop {
            match self.inner.next().await? {
                Ok(tungstenite::Message::Text(text)) => {
                    return Some(Ok(Message::Text(text.as_str().to_owned())))
                }
                Ok(tungstenite::Message::Binary(data)) => return Some(Ok(Message::Binary(data))),
                // The codec queued the Pong (or the Close reply): send it now.
                Ok(tungstenite::Message::Ping(_)) => {
                    if let Err(e) = self.inner.flush().await {
                        return Some(Err(e.into()));
                    }
                }
                Ok(tungstenite::Message::Close(_)) => {
                    let _ = self.inner.flush().await;
                    return None;
                }
                Ok(tungstenite::Message::Pong(_) | tungstenite::Message::Frame(_)) => {}
                Err(error) => {
                    if let Some(code) = close_code_for(&error) {
                        let _ = self
                            .inner
                            .close(Some(CloseFrame {
                                code,
                                reason: "".into(),
                            }))
                            .await;
                    }
                    return Some(Err(error.into()));
                }
            }
        }
    }

    /// Sends a message.
    ///
    /// # Errors
    ///
    /// When the connection is closed or fails.
    pub async fn send(&mut self, message: Message) -> Result<(), WsError> {
        let message = match message {
            Message::Text(text) => tungstenite::Message::Text(text.into()),
            Message::Binary(data) => tungstenite::Message::Binary(data),
        };
        Ok(self.inner.send(message).await?)
    }

    /// Starts the close handshake with `code` (see [`close_code`]) and waits for the peer's
    /// reply (up to the layer's close timeout, [`WsLayer::close_timeout`](super::WsLayer::close_timeout)).
    ///
    /// # Errors
    ///
    /// When the connection fails while closing.
    pub async fn close(mut self, code: u16, reason: &'static str) -> Result<(), WsError> {
        self.inner.close(Some(close_frame(code, reason))).await?;
        let drain = async { while let Some(Ok(_)) = self.inner.next().await {} };
        let _ = tokio::time::timeout(self.close_timeout, drain).await;
        Ok(())
    }
}

/// The inbound messages of a WebSocket served by [`Ws`](super::Ws) or
/// [`Negotiate`](crate::negotiate::Negotiate), placed in request extensions before the inner
/// service is called.
///
/// Take it in the inner service (`req.extensions().get::<Inbound>().cloned()`) and read it
/// from a task. Messages wait in a small bounded buffer: a handler that holds the handle but
/// stops reading slows the connection down rather than losing messages. Once every clone is
/// dropped, inbound messages are discarded.
#[derive(Clone)]
pub struct Inbound {
    rx: Arc<Mutex<mpsc::Receiver<Message>>>,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound").finish_non_exhaustive()
    }
}

impl Inbound {
    pub(crate) fn new(rx: mpsc::Receiver<Message>) -> Self {
        Self {
            rx: Arc::new(Mutex::new(rx)),
        }
    }

    /// The next inbound message; `None` once the connection is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a message is never lost when the future is dropped.
    pub async fn recv(&self) -> Option<Message> {
        self.rx.lock().await.recv().await
    }
}

/// The server side of an upgraded connection: the upgrade awaited (a failure logged, `None`),
/// the connection guarded by the stall timeout, and the codec configured. The one upgrade
/// sequence of the raw API and the push transport alike.
pub(crate) async fn accept(on_upgrade: OnUpgrade, config: &Config) -> Option<Stream> {
    match on_upgrade.await {
        Ok(upgraded) => Some(
            WebSocketStream::from_raw_socket(
                GuardedIo::with_stall_timeout(TokioIo::new(upgraded), config.stall_timeout),
                Role::Server,
                Some(config.codec()),
            )
            .await,
        ),
        Err(error) => {
            tracing::debug!(%error, "websocket upgrade failed");
            None
        }
    }
}
