//! The transport-neutral [`Event`] and the items a push stream yields.
//!
//! An [`Event`] is what the application pushes: an optional id, an optional event name, text
//! data, an optional `retry` and an optional comment. Every transport renders it:
//!
//! * **SSE** writes it as a `text/event-stream` block (`id:`, `event:`, `data:` lines,
//!   `retry:`, `:` comments), following the [WHATWG rules].
//! * **Long-poll** and **WebSocket** write it as a JSON object
//!   `{"id":"..","event":"..","topic":"..","data":".."}` (absent fields are left out).
//!
//! An event from a multi-topic subscription ([`hub::Topics`](crate::hub::Topics)) also
//! carries its topic ([`Event::topic`]): in the JSON object's `"topic"`, and over SSE in the
//! event name, as `name@topic` (`message@topic` when the event has no name).
//!
//! # Encoded once
//!
//! An event is immutable once built and cheap to clone (one reference count). Each encoding is
//! computed the first time a transport needs it and then shared: an event fanned out to 10,000
//! SSE connections is serialized once, and every connection writes the same [`Bytes`].
//!
//! # Validation
//!
//! Setters that take a line-oriented field return a [`Result`]: CR or LF in an id, event name or
//! comment, and NUL in an id, are refused with an [`EventError`] instead of a panic (axum panics;
//! warp lets a CR in data start a new field). Data may hold anything: it is split into `data:`
//! lines on CR, LF and CRLF, and a leading space survives because every field is written as
//! `name: value`.
//!
//! ```
//! use tower_push::Event;
//!
//! # fn main() -> Result<(), tower_push::EventError> {
//! let event = Event::new().data(" two\nlines").event("tick")?.id("7")?;
//! assert_eq!(&event.to_sse()[..], b"id: 7\nevent: tick\ndata:  two\ndata: lines\n\n");
//! assert_eq!(
//!     &event.to_json()[..],
//!     br#"{"id":"7","event":"tick","data":" two\nlines"}"#,
//! );
//!
//! // Injection through the event name is an error, not a new field.
//! assert!(Event::new().event("a\ndata: evil").is_err());
//! # Ok(())
//! # }
//! ```
//!
//! [WHATWG rules]: https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream

use bytes::Bytes;
use std::{
    any::Any,
    fmt,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

/// One event pushed to clients.
///
/// See the [module docs](crate::event) for the wire formats and an example.
#[derive(Clone, Default)]
pub struct Event {
    inner: Arc<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    id: Option<Box<str>>,
    /// Shared (not boxed): a hub's multi-topic subscription gives every connection its own
    /// copy of the event with its own id, and copies these by reference.
    event: Option<Arc<str>>,
    data: Option<Arc<str>>,
    topic: Option<Arc<str>>,
    retry: Option<Duration>,
    comment: Option<Box<str>>,
    /// Each wire format's encoding, made the first time a transport asks for it.
    encoded: [OnceLock<Arc<dyn Any + Send + Sync>>; FORMATS],
    /// When a hub published it (for the publish-to-write metric); not part of the event.
    #[cfg_attr(not(all(feature = "metrics", feature = "hub")), allow(dead_code))]
    published_at: Option<Instant>,
    /// Whether the hub that published it had more than one subscriber to hand it to: a hint
    /// that transports write it for many connections (their encodings are worth sharing).
    #[cfg_attr(not(all(feature = "long-poll", feature = "hub")), allow(dead_code))]
    fan_out: bool,
}

/// A wire format: how a transport writes an event. Each event is encoded at most once per
/// format, the first time a transport asks ([`Event::encoded`]), and every connection then
/// shares that encoding. The model knows no format: each transport owns its own (SSE's in
/// `sse/wire.rs`, the WebSocket text in `ws/wire.rs`, long-poll's one-event answer in
/// `long_poll/future.rs`; JSON is here, shared by long-poll and WebSocket).
pub(crate) trait Encoding {
    /// The encoded form, cheap to clone (a reference count).
    type Output: Clone + Send + Sync + 'static;
    /// The format's place in an event's cache: one of the `*_SLOT`s below, each format its own.
    const SLOT: usize;
    /// Encodes `event`.
    fn encode(event: &Event) -> Self::Output;
}

/// How many wire formats an event caches.
const FORMATS: usize = 4;
/// The cache slot of the `text/event-stream` block.
pub(crate) const SSE_SLOT: usize = 0;
/// The cache slot of the JSON object.
pub(crate) const JSON_SLOT: usize = 1;
/// The cache slot of the WebSocket text message.
#[cfg_attr(not(feature = "ws"), allow(dead_code))]
pub(crate) const WS_TEXT_SLOT: usize = 2;
/// The cache slot of the long-poll answer that ends with this event (its id the cursor).
#[cfg_attr(not(feature = "long-poll"), allow(dead_code))]
pub(crate) const LONG_POLL_SLOT: usize = 3;

/// The JSON object of an event (long-poll and WebSocket).
struct Json;

impl Encoding for Json {
    type Output = Bytes;
    const SLOT: usize = JSON_SLOT;
    fn encode(event: &Event) -> Bytes {
        let i = &event.inner;
        crate::json::event_object(
            i.id.as_deref(),
            i.event.as_deref(),
            i.topic.as_deref(),
            i.data.as_deref(),
        )
    }
}

/// Why an [`Event`] field was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    field: &'static str,
    reason: &'static str,
}

impl EventError {
    /// The field that was refused: `"id"`, `"event"`, `"comment"` or `"data"`.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid event {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for EventError {}

fn check_line(field: &'static str, value: &str) -> Result<(), EventError> {
    if value.contains(['\r', '\n']) {
        return Err(EventError {
            field,
            reason: "contains a carriage return or line feed",
        });
    }
    Ok(())
}

impl Event {
    /// An empty event: no id, no name, no data.
    ///
    /// An empty event is valid; over SSE it is an empty block, which clients ignore.
    pub fn new() -> Self {
        Self::default()
    }

    /// An id-only event from a hub's cursor string (its characters are checked by
    /// `Cursor::new`), taking the string as it is.
    #[cfg(feature = "hub")]
    pub(crate) fn cursor_only(cursor: Box<str>) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: Some(cursor),
                ..Inner::default()
            }),
        }
    }

    /// Marks the event as published now to `subscribers` subscribers (hubs call this; it does
    /// not change the event).
    #[cfg(feature = "hub")]
    pub(crate) fn stamped(mut self, subscribers: usize) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.published_at = Some(Instant::now());
        inner.fan_out = subscribers > 1;
        self
    }

    /// The bytes this event holds for as long as a hub keeps it: its fields' text and its fixed
    /// part (the encodings transports cache on it come on top, at most one per wire format).
    #[cfg(feature = "hub")]
    pub(crate) fn retained_size(&self) -> usize {
        let i = &*self.inner;
        let len = |s: Option<&str>| s.map_or(0, str::len);
        // The shared allocation: two reference counts and the fields.
        2 * std::mem::size_of::<usize>()
            + std::mem::size_of::<Inner>()
            + len(i.id.as_deref())
            + len(i.event.as_deref())
            + len(i.data.as_deref())
            + len(i.topic.as_deref())
            + len(i.comment.as_deref())
    }

    /// When a hub published the event, in this process.
    #[cfg(feature = "metrics")]
    #[cfg_attr(not(transport), allow(dead_code))]
    pub(crate) fn published_at(&self) -> Option<Instant> {
        self.inner.published_at
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        f(inner);
        // Any edit invalidates the cached encodings, and makes an event of its own.
        inner.encoded = Default::default();
        inner.fan_out = false;
        self
    }

    /// Sets the data (text). Replaces data set before.
    ///
    /// Any text is accepted: SSE splits it into `data:` lines on CR, LF and CRLF; long-poll and
    /// WebSocket carry it as a JSON string. By default an event has no data.
    pub fn data(self, data: impl Into<String>) -> Self {
        let data: Arc<str> = data.into().into();
        self.edit(|i| i.data = Some(data))
    }

    /// Sets the data to the JSON serialization of `value`. Replaces data set before.
    ///
    /// The data is that JSON **as text**, on every transport and every hub: SSE sends it in
    /// `data:` lines, and long-poll and WebSocket frames carry it as the JSON string `"data"`
    /// (the frame's own fields, `id`, `event`, `topic`, stay beside it). So every client reads
    /// it the same way: the browser client hands `data` over as a string on every transport,
    /// to `JSON.parse` once; a raw WebSocket or long-poll client parses the frame, then its
    /// `data` (`JSON.parse(frame.data)`). Kept as text, it is stored and replayed by every hub
    /// unchanged, and encoded once for every connection.
    ///
    /// ```
    /// # fn main() -> Result<(), tower_push::event::EventError> {
    /// let event = tower_push::Event::new().json_data(&serde_json::json!({"status": "paid"}))?;
    /// assert_eq!(event.get_data(), Some(r#"{"status":"paid"}"#));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// When `value` cannot be serialized (for example a map with non-string keys).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json_data<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<Self, EventError> {
        let data = serde_json::to_string(value).map_err(|_| EventError {
            field: "data",
            reason: "value cannot be serialized as JSON",
        })?;
        Ok(self.data(data))
    }

    /// Sets the id (the client's resume cursor). Replaces an id set before.
    ///
    /// An empty id is valid: over SSE it resets the client's last event id.
    ///
    /// # Errors
    ///
    /// When `id` contains CR, LF or NUL.
    pub fn id(self, id: impl Into<String>) -> Result<Self, EventError> {
        let id = id.into();
        check_line("id", &id)?;
        if id.contains('\0') {
            return Err(EventError {
                field: "id",
                reason: "contains NUL",
            });
        }
        let id = id.into_boxed_str();
        Ok(self.edit(|i| i.id = Some(id)))
    }

    /// Sets the event name (the `type` a browser dispatches). Replaces a name set before.
    ///
    /// # Errors
    ///
    /// When `event` contains CR or LF.
    pub fn event(self, event: impl Into<String>) -> Result<Self, EventError> {
        let event = event.into();
        check_line("event", &event)?;
        let event: Arc<str> = event.into();
        Ok(self.edit(|i| i.event = Some(event)))
    }

    /// Sets the topic the event came from. A hub's multi-topic subscription
    /// ([`hub::Topics`](crate::hub::Topics)) sets it on every event; set it yourself only for
    /// streams you merge by hand.
    ///
    /// Over SSE the topic travels in the event name, as `name@topic` (`message@topic` for an
    /// event without a name), so a browser listens with
    /// `addEventListener("message@room.lobby", ..)`; long-poll and WebSocket add a `"topic"`
    /// field to the event's JSON object.
    ///
    /// # Errors
    ///
    /// When `topic` is not a valid [topic name](crate::topic#topic-names).
    pub fn topic(self, topic: impl Into<String>) -> Result<Self, EventError> {
        let topic = topic.into();
        crate::topic::check_topic(&topic).map_err(|_| EventError {
            field: "topic",
            reason: "is not a valid topic name",
        })?;
        let topic: Arc<str> = topic.into();
        Ok(self.edit(|i| i.topic = Some(topic)))
    }

    /// This event with `id` and `topic` (already checked), sharing its name and data: one
    /// allocation for the id and none for the rest.
    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    pub(crate) fn retarget(&self, id: Box<str>, topic: Option<&Arc<str>>) -> Self {
        let i = &*self.inner;
        Self {
            inner: Arc::new(Inner {
                id: Some(id),
                event: i.event.clone(),
                data: i.data.clone(),
                topic: topic.cloned().or_else(|| i.topic.clone()),
                retry: i.retry,
                comment: i.comment.clone(),
                published_at: i.published_at,
                ..Inner::default()
            }),
        }
    }

    /// Sets the comment, sent before the other fields over SSE and ignored by clients.
    /// Other transports do not carry comments. Replaces a comment set before.
    ///
    /// # Errors
    ///
    /// When `comment` contains CR or LF.
    pub fn comment(self, comment: impl Into<String>) -> Result<Self, EventError> {
        let comment = comment.into();
        check_line("comment", &comment)?;
        let comment = comment.into_boxed_str();
        Ok(self.edit(|i| i.comment = Some(comment)))
    }

    /// Sets the reconnection time an SSE client should wait, sent in whole milliseconds.
    /// Other transports do not carry it. Replaces a retry set before.
    pub fn retry(self, retry: Duration) -> Self {
        self.edit(|i| i.retry = Some(retry))
    }

    /// The id, if set.
    pub fn get_id(&self) -> Option<&str> {
        self.inner.id.as_deref()
    }

    /// The event name, if set.
    pub fn get_event(&self) -> Option<&str> {
        self.inner.event.as_deref()
    }

    /// The data, if set.
    pub fn get_data(&self) -> Option<&str> {
        self.inner.data.as_deref()
    }

    /// The topic, if set (see [`Event::topic`]).
    pub fn get_topic(&self) -> Option<&str> {
        self.inner.topic.as_deref()
    }

    /// The retry, if set.
    pub fn get_retry(&self) -> Option<Duration> {
        self.inner.retry
    }

    /// The comment, if set.
    pub fn get_comment(&self) -> Option<&str> {
        self.inner.comment.as_deref()
    }

    /// Whether this event only moves the cursor: it has an id and no name and no data.
    ///
    /// Over SSE such an event updates the client's last event id without dispatching anything;
    /// long-poll reports it as the response's `cursor` instead of listing it.
    pub fn is_cursor_only(&self) -> bool {
        self.inner.id.is_some() && self.inner.event.is_none() && self.inner.data.is_none()
    }

    /// The JSON object `{"id":..,"event":..,"topic":..,"data":..}` (absent fields left out), computed once
    /// and shared by every clone. Retry and comment are not part of it.
    pub fn to_json(&self) -> Bytes {
        self.encoded::<Json>()
    }

    /// Whether the event is already encoded in format `E`.
    #[cfg_attr(not(feature = "long-poll"), allow(dead_code))]
    pub(crate) fn is_encoded<E: Encoding>(&self) -> bool {
        self.inner.encoded[E::SLOT].get().is_some()
    }

    /// Whether a hub handed this event to more than one subscriber when it published it.
    #[cfg(all(feature = "long-poll", feature = "hub"))]
    pub(crate) fn fans_out(&self) -> bool {
        self.inner.fan_out
    }

    /// How many handles share this event now (a hub's history and buffer, and each
    /// subscriber holding it): a hint of how many connections are writing it.
    #[cfg_attr(not(feature = "long-poll"), allow(dead_code))]
    pub(crate) fn holders(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// The event in format `E`, encoded the first time and shared by every clone after.
    pub(crate) fn encoded<E: Encoding>(&self) -> E::Output {
        self.inner.encoded[E::SLOT]
            .get_or_init(|| Arc::new(E::encode(self)))
            .downcast_ref::<E::Output>()
            .expect("each slot holds one format")
            .clone()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.inner.id)
            .field("event", &self.inner.event)
            .field("topic", &self.inner.topic)
            .field("data", &self.inner.data)
            .field("retry", &self.inner.retry)
            .field("comment", &self.inner.comment)
            .finish()
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&*self.inner, &*other.inner);
        a.id == b.id
            && a.event == b.event
            && a.topic == b.topic
            && a.data == b.data
            && a.retry == b.retry
            && a.comment == b.comment
    }
}

impl Eq for Event {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse(event: &Event) -> String {
        String::from_utf8(event.to_sse().to_vec()).unwrap()
    }

    #[test]
    fn all_fields_encode_in_order() {
        let event = Event::new()
            .comment("hi")
            .unwrap()
            .id("7")
            .unwrap()
            .event("tick")
            .unwrap()
            .retry(Duration::from_millis(1500))
            .data("a");
        assert_eq!(
            sse(&event),
            ": hi\nid: 7\nevent: tick\nretry: 1500\ndata: a\n\n"
        );
    }

    #[test]
    fn data_splits_on_cr_lf_and_crlf() {
        let event = Event::new().data("a\nb\rc\r\nd\n\ne\r\r");
        assert_eq!(
            sse(&event),
            "data: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: e\ndata: \ndata: \n\n"
        );
    }

    #[test]
    fn leading_space_and_empty_data_survive() {
        assert_eq!(sse(&Event::new().data("  x")), "data:   x\n\n");
        assert_eq!(sse(&Event::new().data("")), "data: \n\n");
    }

    #[test]
    fn id_only_event_is_cursor_only() {
        let event = Event::new().id("c").unwrap();
        assert!(event.is_cursor_only());
        assert_eq!(sse(&event), "id: c\n\n");
        assert!(!Event::new().id("c").unwrap().data("x").is_cursor_only());
    }

    #[test]
    fn line_breaks_in_line_fields_are_rejected() {
        for bad in ["a\nb", "a\rb", "\r\n", "\n"] {
            assert_eq!(Event::new().id(bad).unwrap_err().field(), "id");
            assert_eq!(Event::new().event(bad).unwrap_err().field(), "event");
            assert_eq!(Event::new().comment(bad).unwrap_err().field(), "comment");
        }
        assert_eq!(Event::new().id("a\0b").unwrap_err().field(), "id");
        assert!(Event::new().event("a\0b").is_ok());
        assert_eq!(
            Event::new().id("a\nb").unwrap_err().to_string(),
            "invalid event id: contains a carriage return or line feed"
        );
    }

    #[test]
    fn retry_is_whole_milliseconds() {
        let event = Event::new().retry(Duration::from_micros(2_500_900));
        assert_eq!(sse(&event), "retry: 2500\n\n");
        assert_eq!(sse(&Event::new().retry(Duration::ZERO)), "retry: 0\n\n");
    }

    #[test]
    fn encoding_is_shared_by_clones_and_reset_by_edits() {
        let event = Event::new().data("x");
        let clone = event.clone();
        let a = event.to_sse();
        let b = clone.to_sse();
        assert_eq!(a.as_ptr(), b.as_ptr(), "clones share one encoding");
        let edited = clone.id("1").unwrap();
        assert_eq!(&edited.to_sse()[..], b"id: 1\ndata: x\n\n");
        assert_eq!(
            &event.to_sse()[..],
            b"data: x\n\n",
            "the original is untouched"
        );
    }

    #[test]
    fn json_escapes_and_omits_absent_fields() {
        let event = Event::new().data("q\"b\\\n\u{1}é").event("e").unwrap();
        let json = event.to_json();
        assert_eq!(
            &json[..],
            r#"{"event":"e","data":"q\"b\\\n\u0001é"}"#.as_bytes()
        );
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed["data"], "q\"b\\\n\u{1}é");
        assert_eq!(&Event::new().to_json()[..], b"{}");
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_data_serializes() {
        let event = Event::new().json_data(&[1, 2]).unwrap();
        assert_eq!(event.get_data(), Some("[1,2]"));
    }
}
