use std::fmt;

/// An event's position in a topic, as an opaque string: the event's id on every transport.
///
/// Cursors are at most 128 bytes of CORS-safe characters (ASCII letters, digits, `-`, `_` and
/// `.`), so a cross-origin `EventSource` reconnect sending it as `Last-Event-ID` needs no
/// preflight, and it needs no escaping in a query string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cursor(Box<str>);

impl Cursor {
    /// Wraps a backend's cursor string.
    ///
    /// # Panics
    ///
    /// In debug builds, when `s` is longer than 128 bytes or holds other characters than
    /// ASCII letters, digits, `-`, `_` and `.` (a backend bug, not bad input).
    pub fn new(s: impl Into<Box<str>>) -> Self {
        let s = s.into();
        debug_assert!(
            s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
            "cursor {s:?} is not CORS-safe"
        );
        Self(s)
    }

    /// The cursor string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cursor").field(&self.0).finish()
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Cursor> for String {
    fn from(cursor: Cursor) -> Self {
        cursor.0.into()
    }
}

impl AsRef<str> for Cursor {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
