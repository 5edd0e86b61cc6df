//! Long-poll's answer: `{"events":[..],"cursor":..}`, written per poll or, for an event many
//! polls answer with, made once and shared.

use crate::{
    event::{Encoding, Event, LONG_POLL_SLOT},
    json::json_string,
};
use bytes::{Bytes, BytesMut};

/// Room for `{"events":[`, `],"cursor":`, a cursor and `}` beside the first event.
pub(super) const ANSWER_FRAMING: usize = 64;

/// Holders from which an event's answer is made once and shared, for events no hub marked:
/// a hub-like source keeps an event in its history and its buffer, and one poll holds it; a
/// fourth is a second poll answering it at the same time.
const SHARED_BY: usize = 4;

/// Whether `event`'s answer is worth making once for every poll: it is made already, the hub
/// handed it to more than one subscriber (a topic's fan-out, whose polls are answered one
/// after another), or a second poll holds it now. An event one poll reads (a user's own
/// topic) gets its answer written for that poll, and keeps no second copy in the hub's history.
pub(super) fn shared(event: &Event) -> bool {
    #[cfg(feature = "hub")]
    if event.fans_out() {
        return true;
    }
    event.is_encoded::<Answer>() || event.holders() >= SHARED_BY
}

/// The answer whose last event is this one and whose cursor is its id; for an id-only event,
/// the answer that lists nothing and tells its id.
pub(super) struct Answer;

impl Encoding for Answer {
    type Output = Bytes;
    const SLOT: usize = LONG_POLL_SLOT;
    fn encode(event: &Event) -> Bytes {
        let cursor = event.get_id();
        let json = (!event.is_cursor_only()).then(|| event.to_json());
        let len = json.as_ref().map_or(0, Bytes::len);
        let mut body = BytesMut::with_capacity(ANSWER_FRAMING + len + cursor.map_or(0, str::len));
        body.extend_from_slice(b"{\"events\":[");
        finish(
            &mut body,
            json.as_ref().map(|json| (event, &json[..])),
            cursor,
        );
        body.freeze()
    }
}

/// Ends an answer whose events before the last are in `body`: the last event, then the cursor.
pub(super) fn finish(body: &mut BytesMut, last: Option<(&Event, &[u8])>, cursor: Option<&str>) {
    if let Some((last, json)) = last {
        write_last(body, last, json, cursor);
    }
    body.extend_from_slice(b"],\"cursor\":");
    match cursor {
        Some(cursor) => json_string(body, cursor),
        None => body.extend_from_slice(b"null"),
    }
    body.extend_from_slice(b"}");
}

/// Writes the answer's last event: without its id when that is the answer's `cursor` (the
/// cursor once), with `"id":null` when it has none but the answer has a cursor (so a client
/// never takes the cursor for an id the event did not have), else as it is.
fn write_last(body: &mut BytesMut, last: &Event, json: &[u8], cursor: Option<&str>) {
    match (last.get_id(), cursor) {
        (Some(id), Some(cursor)) if id == cursor => match id_field_end(json) {
            Some(end) => {
                body.extend_from_slice(b"{");
                body.extend_from_slice(&json[end..]);
            }
            None => body.extend_from_slice(json),
        },
        (None, Some(_)) => {
            body.extend_from_slice(b"{\"id\":null,");
            body.extend_from_slice(&json[1..]);
        }
        _ => body.extend_from_slice(json),
    }
}

/// In an event's JSON that starts with its id and has another field after it
/// (`{"id":"..",...`), where the field after the id starts; else `None`.
fn id_field_end(json: &[u8]) -> Option<usize> {
    let rest = json.strip_prefix(b"{\"id\":\"")?;
    let mut escaped = false;
    for (i, &b) in rest.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => {
                let end = json.len() - rest.len() + i + 1;
                return (json.get(end) == Some(&b',')).then_some(end + 1);
            }
            _ => {}
        }
    }
    None
}

/// An event with `data`, and `id` when given (for the long-poll tests).
#[cfg(test)]
pub(super) fn event(id: Option<&str>, data: &str) -> Event {
    let event = Event::new().data(data);
    match id {
        Some(id) => event.id(id).unwrap(),
        None => event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer the general path writes for `events` (in order) and `cursor`.
    fn answer(events: &[Event], cursor: Option<&str>) -> String {
        let mut body = BytesMut::from(&b"{\"events\":["[..]);
        let (last, before) = events
            .split_last()
            .map_or((None, &[][..]), |(l, b)| (Some(l), b));
        for e in before {
            body.extend_from_slice(&e.to_json());
            body.extend_from_slice(b",");
        }
        let json = last.map(Event::to_json);
        finish(&mut body, last.zip(json.as_deref()), cursor);
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[test]
    fn the_cursor_is_written_once() {
        let (a, b) = (event(Some("e-1"), "a"), event(Some("e-2"), "b"));
        assert_eq!(
            answer(&[a.clone(), b], Some("e-2")),
            r#"{"events":[{"id":"e-1","data":"a"},{"data":"b"}],"cursor":"e-2"}"#
        );
        // An id-only event moved the cursor past the last listed one: its id stays.
        assert_eq!(
            answer(&[a], Some("e-3")),
            r#"{"events":[{"id":"e-1","data":"a"}],"cursor":"e-3"}"#
        );
    }

    #[test]
    fn a_last_event_without_an_id_says_so_when_there_is_a_cursor() {
        let (a, b) = (event(Some("e-1"), "a"), event(None, "b"));
        assert_eq!(
            answer(&[a, b.clone()], Some("e-1")),
            r#"{"events":[{"id":"e-1","data":"a"},{"id":null,"data":"b"}],"cursor":"e-1"}"#
        );
        assert_eq!(
            answer(&[b], None),
            r#"{"events":[{"data":"b"}],"cursor":null}"#
        );
    }

    #[test]
    fn an_id_that_json_escapes_is_left_out_whole() {
        let e = event(Some(r#"q"u\o"#), "x");
        let text = answer(std::slice::from_ref(&e), e.get_id());
        assert_eq!(text, r#"{"events":[{"data":"x"}],"cursor":"q\"u\\o"}"#);
        assert_eq!(id_field_end(br#"{"id":"x"}"#), None, "an id-only object");
    }

    #[test]
    fn the_shared_answer_is_the_one_the_general_path_writes() {
        let e = event(Some("e-7"), "hello");
        assert_eq!(
            &e.encoded::<Answer>()[..],
            answer(std::slice::from_ref(&e), Some("e-7")).as_bytes()
        );
        let position = Event::cursor_only("e-7".into());
        assert_eq!(
            &position.encoded::<Answer>()[..],
            br#"{"events":[],"cursor":"e-7"}"#
        );
    }
}
