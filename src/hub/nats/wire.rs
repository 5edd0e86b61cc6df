//! NATS's side of the wire: subjects for topics, cursors, and events in JetStream messages.
//! Pure functions, tested without a server.

use crate::{cursor::Cursor, event::Event};
use async_nats::HeaderMap;
use bytes::Bytes;

/// The header holding the stream sequence of the topic's previous message (0: none). A
/// message whose previous one is newer than a cursor proves history after it was deleted.
pub(super) const PREV: &str = "Tp-Prev";
/// The header holding the event's name.
const NAME: &str = "Tp-Name";
/// Present when the event has no data (an empty payload is empty data).
const NO_DATA: &str = "Tp-No-Data";

/// The subject token of a topic: ASCII letters, digits, `-` and `:` as they are; every other
/// byte (`.`, `_`, spaces, anything a subject token cannot hold) as `_XX` in hex; the empty
/// topic as `_`. Injective, so two topics never share a subject.
pub(super) fn token(topic: &str) -> String {
    if topic.is_empty() {
        return "_".to_owned();
    }
    let mut out = String::with_capacity(topic.len());
    for &b in topic.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b':' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// The topic of a subject token (the inverse of [`token`]); `None` for one `token` never
/// makes.
pub(super) fn topic_of(token: &str) -> Option<String> {
    if token == "_" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'_' {
            let hex = token.get(i + 1..i + 3)?;
            if !hex
                .bytes()
                .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(&h))
            {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b':' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// The stream sequence JetStream's republish gives a live copy (`Nats-Sequence`).
pub(super) fn sequence(headers: Option<&HeaderMap>) -> Option<u64> {
    headers?
        .get(async_nats::header::NATS_SEQUENCE)?
        .as_str()
        .parse()
        .ok()
}

/// The subject of `topic` under `prefix`.
pub(super) fn subject(prefix: &str, topic: &str) -> String {
    format!("{prefix}.{}", token(topic))
}

/// A stream's epoch: 6 base-62 characters of a hash of its creation time (in nanoseconds),
/// the same on every instance. A deleted and recreated stream (or one lost with its store)
/// has another.
pub(super) fn epoch(created_unix_nanos: i128) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // FNV-1a: stable across processes and releases, unlike std's hashers.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in created_unix_nanos.to_le_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (0..crate::hub::contract::EPOCH_LEN)
        .map(|_| {
            let c = ALPHABET[(hash % 62) as usize] as char;
            hash /= 62;
            c
        })
        .collect()
}

pub(super) fn cursor(epoch: &str, seq: u64) -> Cursor {
    Cursor::join(epoch, seq)
}

pub(super) use crate::hub::well_formed_epoch;

/// The headers and payload an event is published as, after `prev`.
pub(super) fn to_message(event: &Event, prev: u64) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
        prev.to_string().as_str(),
    );
    headers.insert(PREV, prev.to_string().as_str());
    if let Some(name) = event.get_event() {
        headers.insert(NAME, name);
    }
    let payload = match event.get_data() {
        Some(data) => Bytes::copy_from_slice(data.as_bytes()),
        None => {
            headers.insert(NO_DATA, "1");
            Bytes::new()
        }
    };
    (headers, payload)
}

/// The previous sequence a message names (0 when it names none).
pub(super) fn prev(headers: Option<&HeaderMap>) -> u64 {
    headers
        .and_then(|h| h.get(PREV))
        .and_then(|v| v.as_str().parse().ok())
        .unwrap_or(0)
}

/// The event of a message at `seq`, its id the cursor. A name that is not valid SSE (from
/// another producer) is dropped rather than failing; so is data that is not UTF-8.
pub(super) fn to_event(
    epoch: &str,
    seq: u64,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Event {
    let mut event = Event::new();
    let no_data = headers.is_some_and(|h| h.get(NO_DATA).is_some());
    if !no_data {
        if let Ok(data) = std::str::from_utf8(payload) {
            event = event.data(data);
        }
    }
    if let Some(name) = headers.and_then(|h| h.get(NAME)) {
        event = event.clone().event(name.as_str()).unwrap_or(event);
    }
    event
        .id(cursor(epoch, seq).as_str())
        .expect("cursors hold no line breaks")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_map_to_one_valid_token_each() {
        assert_eq!(token("room"), "room");
        assert_eq!(token("user:alice"), "user:alice");
        assert_eq!(token("room.lobby"), "room_2Elobby");
        assert_eq!(token("a_b"), "a_5Fb");
        assert_eq!(token("a b*>"), "a_20b_2A_3E");
        assert_eq!(token(""), "_");
        assert_ne!(token("a.b"), token("a_2Eb"), "injective");
        for topic in ["x.y", "é", "a\tb", ">", "*"] {
            let t = token(topic);
            assert!(
                !t.is_empty() && !t.contains(['.', '*', '>', ' ', '\t']),
                "{topic:?} -> {t:?}"
            );
        }
        assert_eq!(subject("chat", "room.lobby"), "chat.room_2Elobby");
        for topic in [
            "room",
            "room.lobby",
            "a_b",
            "a b*>",
            "",
            "é",
            "user:alice",
            "x-y",
        ] {
            assert_eq!(topic_of(&token(topic)).as_deref(), Some(topic), "{topic:?}");
        }
        for bad in ["a.b", "_2", "_zz", "_2e", "a b", "_FF"] {
            assert_eq!(topic_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let c = cursor("00000000000000ff", 42);
        assert_eq!(c.as_str(), "00000000000000ff-42");
        let parsed = crate::cursor::ParsedCursor::parse(c.as_str()).unwrap();
        assert_eq!(parsed.epoch(), "00000000000000ff");
        assert_eq!(parsed.offset(), crate::cursor::Offset::Seq(42));
        let e = epoch(1_700_000_000_123_456_789);
        assert!(well_formed_epoch(&e), "{e}");
        assert_eq!(
            e,
            epoch(1_700_000_000_123_456_789),
            "the same on every instance"
        );
        assert_ne!(e, epoch(1_700_000_000_123_456_790));
    }

    #[test]
    fn events_round_trip_through_messages() {
        for event in [
            Event::new().data("hi").event("message").unwrap(),
            Event::new().data(""),
            Event::new().event("ping").unwrap(),
        ] {
            let (headers, payload) = to_message(&event, 7);
            assert_eq!(prev(Some(&headers)), 7);
            let back = to_event("e", 9, Some(&headers), &payload);
            assert_eq!(back.get_data(), event.get_data());
            assert_eq!(back.get_event(), event.get_event());
            assert_eq!(back.get_id(), Some("e-9"));
        }
    }
}
