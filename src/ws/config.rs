//! The WebSocket transport's settings, shared by [`Ws`](super::Ws), [`WebSocketUpgrade`](super::WebSocketUpgrade)
//! and [`Negotiate`](crate::negotiate::Negotiate).

use crate::cursor::ReadCursor;
use http::HeaderValue;
use std::{sync::Arc, time::Duration};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The default message size limit: 64 KiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// The default size of the codec's read buffer: 1 KiB. A push connection mostly writes;
/// what it reads (Pongs, Closes, small messages) fits, and the buffer grows for a larger
/// message (up to the message limit), so this costs reads, never correctness.
pub const DEFAULT_READ_BUFFER_SIZE: usize = 1024;
/// The default pong deadline after a heartbeat Ping: 10 seconds.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// The default wait for the peer's Close: 5 seconds.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the WebSocket transport, shared with [`Negotiate`](crate::negotiate::Negotiate).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) protocols: Arc<[HeaderValue]>,
    pub(crate) max_message_size: usize,
    pub(crate) read_buffer_size: usize,
    pub(crate) pong_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) stall_timeout: Duration,
    pub(crate) inbound_buffer: usize,
    pub(crate) last_event_id: ReadCursor,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            protocols: Arc::new([]),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            read_buffer_size: DEFAULT_READ_BUFFER_SIZE,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            stall_timeout: crate::connection::DEFAULT_STALL_TIMEOUT,
            inbound_buffer: 16,
            last_event_id: ReadCursor::default(),
        }
    }
}

impl Config {
    /// The codec's settings: a small read buffer (1 KiB per idle connection instead of the
    /// 128 KiB tungstenite allocates by default) and the message limit, which also bounds
    /// fragmented messages.
    pub(crate) fn codec(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}
