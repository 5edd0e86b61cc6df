//! The closed sets of reasons the crate reports: why a request was refused before a stream,
//! and why a push connection closed. Each is an enum, so the set is visible and every match
//! on it exhaustive; [`as_str`](Refusal::as_str) is the label logs and metrics carry.

// Each feature set constructs its part of each set; with every transport and guard on, an
// unused variant or label is a warning.
#![cfg_attr(
    not(all(
        feature = "sse",
        feature = "long-poll",
        feature = "ws",
        feature = "negotiate",
        feature = "auth-ticket",
        feature = "origin",
        feature = "limit",
        feature = "drain",
        feature = "hub",
        feature = "serve"
    )),
    allow(dead_code)
)]

/// Why a request was refused before any stream: the `cause` label of
/// `tower_push_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    /// No valid auth ticket.
    Ticket,
    /// The `Origin` is not allowed.
    Origin,
    /// A connection limit is reached.
    Limit,
    /// The server is draining.
    Drain,
    /// A malformed WebSocket handshake.
    Handshake,
    /// A malformed cursor.
    Cursor,
    /// A method the endpoint does not serve.
    Method,
    /// An `Accept` no transport satisfies.
    Accept,
    /// The hub's backbone is down.
    Backbone,
    /// Bad or forbidden topics.
    Topics,
    /// A malformed HTTP/1.x request head (the serving recipe).
    MalformedHead,
    /// The application's own refusal, or its service's error.
    Inner,
}

impl Refusal {
    /// The label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ticket => "ticket",
            Self::Origin => "origin",
            Self::Limit => "limit",
            Self::Drain => "drain",
            Self::Handshake => "handshake",
            Self::Cursor => "cursor",
            Self::Method => "method",
            Self::Accept => "accept",
            Self::Backbone => "backbone",
            Self::Topics => "topics",
            Self::MalformedHead => "malformed-head",
            Self::Inner => "inner",
        }
    }
}

/// Why a push connection closed: the `reason` of its `push connection closed` event and the
/// label of `tower_push_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CloseReason {
    /// The client closed or vanished, or its connection was cut.
    ClientGone,
    /// The stream ended.
    StreamEnded,
    /// Shutdown.
    Drain,
    /// The stream failed.
    Error,
    /// A WebSocket peer did not answer a ping in time.
    PongTimeout,
    /// Writes made no progress for the stall timeout.
    WriteStalled,
    /// A WebSocket message over the size limit.
    MessageTooBig,
    /// A WebSocket protocol violation.
    ProtocolError,
    /// A long-poll answered with events.
    Answered,
    /// A long-poll held until its timeout.
    Timeout,
}

impl CloseReason {
    /// The label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ClientGone => "client_gone",
            Self::StreamEnded => "stream_ended",
            Self::Drain => "drain",
            Self::Error => "error",
            Self::PongTimeout => "pong_timeout",
            Self::WriteStalled => "write_stalled",
            Self::MessageTooBig => "message_too_big",
            Self::ProtocolError => "protocol_error",
            Self::Answered => "answered",
            Self::Timeout => "timeout",
        }
    }
}
