//! Cursors: the position a hub gives each event ([`Cursor`], its id on every transport), and
//! the one a client sends back to resume ([`LastEventId`]), with the rules every transport
//! uses to read it from the `Last-Event-ID` header or the `?lastEventId=` query parameter.
//!
//! This is the bottom of the crate beside [`event`](crate::event): the transports and the hub
//! read cursors from here; [`last_event_id`](crate::last_event_id) only adds the optional
//! layer that changes the rules or hands the cursor to other services.

use crate::rejection::Reject;
use http::{Request, StatusCode};
use std::{borrow::Cow, fmt, sync::Arc};

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

    /// `{epoch}-{offset}`, allocated once at its exact size (every event and subscription
    /// makes one).
    #[cfg(feature = "hub")]
    pub(crate) fn join(epoch: &str, offset: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = offset;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut s = String::with_capacity(epoch.len() + 1 + digits.len() - at);
        s.push_str(epoch);
        s.push('-');
        // ASCII digits only.
        s.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
        Self::new(s)
    }

    /// The cursor string, without copying it.
    #[cfg(feature = "hub")]
    pub(crate) fn into_boxed_str(self) -> Box<str> {
        self.0
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

/// Where a subscription starts: what [`Hub::subscribe`](crate::hub::Hub::subscribe) takes. A
/// client's cursor is parsed once, at the edge ([`StartAt::parse`]); one that is not a cursor
/// at all is refused there (`400`), and a hub only ever sees a parsed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartAt {
    /// From now: the events published after the subscription (no cursor).
    Now,
    /// After the event a cursor names.
    After(ParsedCursor),
    /// The client has a cursor, but it does not place this topic (a multi-topic cursor without
    /// the topic's entry): the subscription starts with `reset` (`invalid`), so the client
    /// learns it may have missed events.
    Unplaced,
}

impl StartAt {
    /// The start for a client's cursor: [`Now`](StartAt::Now) without one.
    ///
    /// # Errors
    ///
    /// When `cursor` is not a cursor at all (see [`ParsedCursor::parse`]).
    pub fn parse(cursor: Option<&str>) -> Result<Self, CursorError> {
        match cursor {
            None => Ok(Self::Now),
            Some(cursor) => ParsedCursor::parse(cursor).map(Self::After),
        }
    }
}

/// The longest epoch a cursor may carry.
const MAX_EPOCH: usize = 16;

/// A cursor, parsed: an epoch (1 to 16 ASCII letters and digits, a hub instance's or a
/// stream's incarnation) and an offset in it. Two shapes: `epoch-N` ([`Offset::Seq`], the
/// in-memory and NATS hubs) and `epoch.N-M` ([`Offset::Pair`], Redis stream ids). Digits only,
/// no sign, each fitting a `u64`. Which shape and epoch a hub can place is the hub's business:
/// anything else it answers with `reset`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParsedCursor {
    epoch: [u8; MAX_EPOCH],
    epoch_len: u8,
    offset: Offset,
}

/// The offset of a [`ParsedCursor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Offset {
    /// `epoch-N`.
    Seq(u64),
    /// `epoch.N-M`.
    Pair(u64, u64),
}

/// Why a string is not a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorError(&'static str);

impl fmt::Display for CursorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a cursor: {}", self.0)
    }
}

impl std::error::Error for CursorError {}

/// `400 Bad Request` (counted as a `cursor` refusal), so a handler can `?` a
/// [`StartAt::parse`].
impl From<CursorError> for Reject {
    fn from(error: CursorError) -> Self {
        Reject::new(StatusCode::BAD_REQUEST, error.to_string())
            .cause(crate::reason::Refusal::Cursor)
    }
}

/// An offset: ASCII digits only (no sign, no space), fitting a `u64`.
pub(crate) fn parse_offset(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    // One pass (every poll parses its cursor): digits, with overflow refused.
    s.bytes().try_fold(0u64, |n, b| {
        let digit = b.wrapping_sub(b'0');
        (digit < 10).then_some(())?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

impl ParsedCursor {
    /// Parses `cursor`.
    ///
    /// # Errors
    ///
    /// When it has no epoch of 1 to 16 letters and digits, or its offset is not `-N` or
    /// `.N-M` in digits.
    pub fn parse(cursor: &str) -> Result<Self, CursorError> {
        let at = cursor
            .bytes()
            .position(|b| b == b'-' || b == b'.')
            .ok_or(CursorError("no offset"))?;
        let (epoch, rest) = cursor.split_at(at);
        if epoch.is_empty()
            || epoch.len() > MAX_EPOCH
            || !epoch.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(CursorError("the epoch is not 1 to 16 letters and digits"));
        }
        let bad_offset = CursorError("the offset is not digits");
        let offset = match rest.split_at(1) {
            ("-", n) => Offset::Seq(parse_offset(n).ok_or(bad_offset)?),
            (_, pair) => {
                let (n, m) = pair
                    .split_once('-')
                    .ok_or(CursorError("no `-` in the offset"))?;
                Offset::Pair(
                    parse_offset(n).ok_or(bad_offset.clone())?,
                    parse_offset(m).ok_or(bad_offset)?,
                )
            }
        };
        let mut bytes = [0; MAX_EPOCH];
        bytes[..epoch.len()].copy_from_slice(epoch.as_bytes());
        Ok(Self {
            epoch: bytes,
            epoch_len: epoch.len() as u8,
            offset,
        })
    }

    /// The epoch.
    pub fn epoch(&self) -> &str {
        std::str::from_utf8(&self.epoch[..usize::from(self.epoch_len)])
            .expect("the epoch is ASCII letters and digits")
    }

    /// The offset.
    pub fn offset(&self) -> Offset {
        self.offset
    }
}

impl fmt::Debug for ParsedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedCursor")
            .field("epoch", &self.epoch())
            .field("offset", &self.offset)
            .finish()
    }
}

/// The header a reconnecting `EventSource` sends.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// The default query parameter: `lastEventId`.
pub const DEFAULT_QUERY_PARAM: &str = "lastEventId";

/// The default cap on the cursor's length in bytes: 512.
pub const DEFAULT_MAX_LEN: usize = 512;

/// The client's resume cursor, placed in request extensions.
///
/// Cloning it shares the text (a reference count), so a transport keeps the request's cursor
/// for its answer without copying it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LastEventId(Arc<str>);

impl LastEventId {
    /// Wraps a cursor.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into())
    }

    /// The cursor.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cursor, owned.
    pub fn into_inner(self) -> String {
        self.0.as_ref().to_owned()
    }
}

impl fmt::Debug for LastEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LastEventId").field(&self.0).finish()
    }
}

impl fmt::Display for LastEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the cursor is read from and how long it may be.
#[derive(Debug, Clone)]
pub(crate) struct ReadCursor {
    pub(crate) query_param: Cow<'static, str>,
    pub(crate) max_len: usize,
}

impl Default for ReadCursor {
    fn default() -> Self {
        Self {
            query_param: Cow::Borrowed(DEFAULT_QUERY_PARAM),
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

impl ReadCursor {
    /// Inserts a [`LastEventId`] unless one is present, and returns the request's cursor (a
    /// clone: it shares its text). Returns the refusal for a bad value.
    pub(crate) fn apply<B>(&self, req: &mut Request<B>) -> Result<Option<LastEventId>, Reject> {
        if let Some(id) = req.extensions().get::<LastEventId>() {
            return Ok(Some(id.clone()));
        }
        let id = self.read(req)?;
        if let Some(id) = &id {
            req.extensions_mut().insert(id.clone());
        }
        Ok(id)
    }

    fn read<B>(&self, req: &Request<B>) -> Result<Option<LastEventId>, Reject> {
        // A `HeaderName` constant: looked up without parsing the name on every request.
        static NAME: http::HeaderName = http::HeaderName::from_static(LAST_EVENT_ID);
        if let Some(value) = req.headers().get(&NAME) {
            return self.check(value.as_bytes(), "Last-Event-ID header");
        }
        let Some(query) = req.uri().query() else {
            return Ok(None);
        };
        for (name, value) in query_pairs(query) {
            if name != self.query_param && *decode(name) != *self.query_param.as_bytes() {
                continue;
            }
            // Each byte decodes from at most three: refuse before allocating for a huge value.
            if value.len() > self.max_len.saturating_mul(3) {
                return Err(too_long(&self.query_param, self.max_len));
            }
            return self.check(&decode(value), &self.query_param);
        }
        Ok(None)
    }

    fn check(&self, bytes: &[u8], what: &str) -> Result<Option<LastEventId>, Reject> {
        if bytes.len() > self.max_len {
            return Err(too_long(what, self.max_len));
        }
        match std::str::from_utf8(bytes) {
            Ok("") => Ok(None),
            Ok(s) => Ok(Some(LastEventId(s.into()))),
            Err(_) => Err(Reject::new(
                StatusCode::BAD_REQUEST,
                format!("{what} is not valid UTF-8"),
            )),
        }
    }
}

fn too_long(what: &str, max: usize) -> Reject {
    Reject::new(
        StatusCode::BAD_REQUEST,
        format!("{what} is longer than {max} bytes"),
    )
}

/// A query's `name=value` pairs, split at `&` (a pair without `=` has an empty value), not yet
/// decoded. Bytes are searched with `memchr`: `str::split` and `split_once` on a `char` went
/// through the pattern searcher, about 150 instructions each on every poll's query.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = Some(query);
    std::iter::from_fn(move || {
        let query = rest?;
        let pair = match memchr::memchr(b'&', query.as_bytes()) {
            Some(at) => {
                rest = Some(&query[at + 1..]);
                &query[..at]
            }
            None => {
                rest = None;
                query
            }
        };
        // `&` and `=` are ASCII, so each split falls on a character boundary.
        Some(match memchr::memchr(b'=', pair.as_bytes()) {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, ""),
        })
    })
}

/// Percent-decodes a query component (`+` is a space, as in HTML forms); borrowed when there
/// is nothing to decode (a cursor never needs it, so a poll's cursor costs no copy here).
pub(crate) fn decode(s: &str) -> Cow<'_, [u8]> {
    // One scan for either byte (a cursor has neither): cheaper than `percent_decode`'s own
    // look for escapes, which goes through its iterator byte by byte.
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s.as_bytes());
    }
    if s.contains('+') {
        let spaced = s.replace('+', " ");
        Cow::Owned(percent_encoding::percent_decode(spaced.as_bytes()).collect())
    } else {
        // Borrowed when there is no `%` escape.
        percent_encoding::percent_decode(s.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(req: Request<()>) -> Result<Option<String>, StatusCode> {
        ReadCursor::default()
            .read(&req)
            .map(|id| id.map(LastEventId::into_inner))
            .map_err(|reject| reject.status())
    }

    fn get(uri: &str) -> http::request::Builder {
        Request::get(uri)
    }

    #[cfg(feature = "hub")]
    #[test]
    fn join_writes_epoch_dash_offset_at_exact_size() {
        for (offset, text) in [
            (0, "k3Xq9Z-0"),
            (42, "k3Xq9Z-42"),
            (u64::MAX, "k3Xq9Z-18446744073709551615"),
        ] {
            let cursor = Cursor::join("k3Xq9Z", offset);
            assert_eq!(cursor.as_str(), text);
            assert_eq!(cursor.into_boxed_str().len(), text.len());
        }
    }

    #[test]
    fn header_wins_over_query() {
        let req = get("/?lastEventId=q")
            .header(LAST_EVENT_ID, "h")
            .body(())
            .unwrap();
        assert_eq!(read(req), Ok(Some("h".into())));
    }

    #[test]
    fn query_is_percent_decoded() {
        let req = get("/?a=1&lastEventId=x%2Dy+z&b").body(()).unwrap();
        assert_eq!(read(req), Ok(Some("x-y z".into())));
    }

    #[test]
    fn query_pairs_split_at_ampersands_then_the_first_equals_sign() {
        let pairs: Vec<_> = query_pairs("a=1&b&=c&&d=e=f&").collect();
        assert_eq!(
            pairs,
            [
                ("a", "1"),
                ("b", ""),
                ("", "c"),
                ("", ""),
                ("d", "e=f"),
                ("", "")
            ]
        );
        assert_eq!(query_pairs("").collect::<Vec<_>>(), [("", "")]);
        // A multi-byte character beside the separators.
        let pairs: Vec<_> = query_pairs("é=ü&x=é").collect();
        assert_eq!(pairs, [("é", "ü"), ("x", "é")]);
    }

    #[test]
    fn empty_value_counts_as_absent() {
        assert_eq!(read(get("/?lastEventId=").body(()).unwrap()), Ok(None));
        let req = get("/").header(LAST_EVENT_ID, "").body(()).unwrap();
        assert_eq!(read(req), Ok(None));
        assert_eq!(read(get("/").body(()).unwrap()), Ok(None));
    }

    #[test]
    fn over_long_or_non_utf8_is_refused() {
        let long = "a".repeat(DEFAULT_MAX_LEN + 1);
        let req = get(&format!("/?lastEventId={long}")).body(()).unwrap();
        assert_eq!(read(req), Err(StatusCode::BAD_REQUEST));
        let req = get("/")
            .header(LAST_EVENT_ID, long.as_str())
            .body(())
            .unwrap();
        assert_eq!(read(req), Err(StatusCode::BAD_REQUEST));
        let req = get("/?lastEventId=%C3%28").body(()).unwrap();
        assert_eq!(read(req), Err(StatusCode::BAD_REQUEST));
        let bad = http::HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        let req = get("/").header(LAST_EVENT_ID, bad).body(()).unwrap();
        assert_eq!(read(req), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn an_existing_extension_is_kept() {
        let mut req = get("/?lastEventId=new").body(()).unwrap();
        req.extensions_mut().insert(LastEventId::new("old"));
        ReadCursor::default().apply(&mut req).unwrap();
        assert_eq!(
            req.extensions().get::<LastEventId>().unwrap().as_str(),
            "old"
        );
    }
}
