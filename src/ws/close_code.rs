//! Close codes (RFC 6455 §7.4.1), as sent in Close frames.

/// 1000: the purpose of the connection was fulfilled (the stream ended).
pub const NORMAL: u16 = 1000;
/// 1001: the server is going away (shutdown) or the browser navigated away.
pub const AWAY: u16 = 1001;
/// 1002: the peer broke the protocol.
pub const PROTOCOL: u16 = 1002;
/// 1003: a data type the endpoint cannot accept.
pub const UNSUPPORTED: u16 = 1003;
/// 1007: data inconsistent with the message type (invalid UTF-8 in a text message).
pub const INVALID: u16 = 1007;
/// 1008: a policy was violated.
pub const POLICY: u16 = 1008;
/// 1009: a message was too big to process.
pub const TOO_BIG: u16 = 1009;
/// 1011: the server hit an unexpected condition (the stream failed).
pub const ERROR: u16 = 1011;
/// 1012: the server is restarting; reconnect.
pub const RESTART: u16 = 1012;
