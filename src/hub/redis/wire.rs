//! Redis's side of the wire: stream entry ids, cursors, `XRANGE` replies and channel messages
//! parsed into entries and events. Pure functions, tested without a Redis.

use crate::{cursor::Cursor, event::Event};
use redis::Value;
use std::{collections::HashMap, fmt};

/// Entries read per `XRANGE` call.
pub(super) const PAGE: usize = 256;

/// A Redis stream entry id (`ms-seq`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Rid(pub(super) u64, pub(super) u64);

impl Rid {
    pub(super) const ZERO: Rid = Rid(0, 0);

    /// The id just before this one.
    pub(super) fn before(self) -> Rid {
        match self {
            Rid(0, 0) => Rid::ZERO,
            Rid(ms, 0) => Rid(ms - 1, u64::MAX),
            Rid(ms, seq) => Rid(ms, seq - 1),
        }
    }

    pub(super) fn parse(s: &str) -> Option<Rid> {
        let (ms, seq) = s.split_once('-')?;
        Some(Rid(
            crate::cursor::parse_offset(ms)?,
            crate::cursor::parse_offset(seq)?,
        ))
    }
}

impl fmt::Display for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

pub(super) fn cursor(epoch: &str, id: Rid) -> Cursor {
    Cursor::new(format!("{epoch}.{id}"))
}

pub(super) fn as_str(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Entries of an `XRANGE` reply.
pub(super) fn parse_entries(v: Value) -> Vec<(Rid, HashMap<String, String>)> {
    let Value::Array(entries) = v else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(mut parts) = entry else {
                return None;
            };
            if parts.len() != 2 {
                return None;
            }
            let fields = parts.pop()?;
            let id = Rid::parse(&as_str(&parts.pop()?)?)?;
            let Value::Array(flat) = fields else {
                return None;
            };
            let mut map = HashMap::new();
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                map.insert(as_str(&k)?, as_str(&v)?);
            }
            Some((id, map))
        })
        .collect()
}

/// The event of an entry, or `None` for a marker. `epoch_seen` collects an entry's epoch
/// when it differs from `epoch` (the stream was recreated).
pub(super) fn to_event(
    epoch: &str,
    id: Rid,
    fields: &HashMap<String, String>,
    epoch_seen: &mut Option<String>,
) -> Option<Event> {
    let entry_epoch = fields.get("p").or_else(|| fields.get("init"))?;
    if entry_epoch != epoch {
        *epoch_seen = Some(entry_epoch.clone());
        return None;
    }
    if fields.contains_key("init") {
        return None;
    }
    event_of(
        epoch,
        id,
        fields.get("n").map(String::as_str),
        fields.get("d").map(String::as_str),
    )
}

/// The event of an entry with `name` and `data`, its id the cursor of `id` under `epoch`.
fn event_of(epoch: &str, id: Rid, name: Option<&str>, data: Option<&str>) -> Option<Event> {
    let mut event = Event::new();
    if let Some(data) = data {
        event = event.data(data);
    }
    if let Some(name) = name {
        // A name written by another producer may not be valid SSE: drop it rather than fail.
        event = event.clone().event(name).unwrap_or(event);
    }
    event.id(cursor(epoch, id).as_str()).ok()
}

/// An entry as the publish script announces it on the topic's channel:
/// `epoch \n previous-id \n id \n [+name] \n [+data]` (the data last: it may hold newlines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LiveEntry {
    pub(super) epoch: String,
    /// The id of the stream's entry before this one: a reader whose position is not this
    /// one missed something, and reads the stream.
    pub(super) prev: Rid,
    pub(super) id: Rid,
    name: Option<String>,
    data: Option<String>,
}

impl LiveEntry {
    /// The entry's event (as [`to_event`] makes it from the stream).
    pub(super) fn event(&self) -> Option<Event> {
        event_of(
            &self.epoch,
            self.id,
            self.name.as_deref(),
            self.data.as_deref(),
        )
    }
}

/// A channel message from the publish script; `None` when it is not one.
pub(super) fn parse_live(payload: &[u8]) -> Option<LiveEntry> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(5, '\n');
    let epoch = parts.next()?;
    let prev = Rid::parse(parts.next()?)?;
    let id = Rid::parse(parts.next()?)?;
    let optional = |part: &str| -> Option<Option<String>> {
        match part {
            "" => Some(None),
            _ => part.strip_prefix('+').map(|s| Some(s.to_owned())),
        }
    };
    let name = optional(parts.next()?)?;
    let data = optional(parts.next()?)?;
    if epoch.is_empty() || prev >= id {
        return None;
    }
    Some(LiveEntry {
        epoch: epoch.to_owned(),
        prev,
        id,
        name,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[(&str, &str)]) -> Value {
        let flat = fields
            .iter()
            .flat_map(|(k, v)| [bulk(k), bulk(v)])
            .collect();
        Value::Array(vec![bulk(id), Value::Array(flat)])
    }

    #[test]
    fn ids_parse_order_and_step_back() {
        assert_eq!(
            Rid::parse("1700000000000-3"),
            Some(Rid(1_700_000_000_000, 3))
        );
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "a-1",
            "1-b",
            "1-2-3",
            "18446744073709551616-0",
        ] {
            assert_eq!(Rid::parse(bad), None, "{bad}");
        }
        assert!(Rid(1, 5) < Rid(2, 0) && Rid(2, 0) < Rid(2, 1));
        assert_eq!(Rid(2, 0).before(), Rid(1, u64::MAX));
        assert_eq!(Rid(2, 7).before(), Rid(2, 6));
        assert_eq!(Rid::ZERO.before(), Rid::ZERO);
        assert_eq!(Rid(5, 1).to_string(), "5-1");
        assert_eq!(cursor("abc", Rid(5, 1)).as_str(), "abc.5-1");
    }

    #[test]
    fn xrange_replies_become_entries_and_malformed_entries_are_skipped() {
        let reply = Value::Array(vec![
            entry("1-0", &[("init", "e1")]),
            entry("2-0", &[("p", "e1"), ("n", "msg"), ("d", "hi")]),
            Value::Array(vec![bulk("3-0")]),    // no fields
            entry("not-an-id", &[("p", "e1")]), // bad id
            Value::Array(vec![bulk("4-0"), Value::Int(1)]), // fields not an array
            entry("5-0", &[("p", "e1"), ("d", "last")]),
        ]);
        let entries = parse_entries(reply);
        let ids: Vec<Rid> = entries.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [Rid(1, 0), Rid(2, 0), Rid(5, 0)]);
        assert_eq!(entries[1].1["d"], "hi");
        assert!(parse_entries(Value::Nil).is_empty());
        assert_eq!(
            as_str(&Value::SimpleString("x".into())).as_deref(),
            Some("x")
        );
        assert_eq!(as_str(&Value::Int(1)), None);
    }

    #[test]
    fn entries_become_events_markers_do_not_and_a_new_epoch_is_noticed() {
        let fields = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let mut seen = None;
        let event = to_event(
            "e1",
            Rid(2, 0),
            &fields(&[("p", "e1"), ("n", "msg"), ("d", "hi")]),
            &mut seen,
        )
        .unwrap();
        assert_eq!(event.get_id(), Some("e1.2-0"));
        assert_eq!(event.get_event(), Some("msg"));
        assert_eq!(event.get_data(), Some("hi"));
        assert!(to_event("e1", Rid(1, 0), &fields(&[("init", "e1")]), &mut seen).is_none());
        assert_eq!(seen, None);
        // An invalid name from another producer is dropped, the data kept.
        let event = to_event(
            "e1",
            Rid(3, 0),
            &fields(&[("p", "e1"), ("n", "a\nb"), ("d", "x")]),
            &mut seen,
        )
        .unwrap();
        assert_eq!(event.get_event(), None);
        assert_eq!(event.get_data(), Some("x"));
        // An entry of another incarnation: no event, and its epoch is reported.
        assert!(to_event(
            "e1",
            Rid(4, 0),
            &fields(&[("p", "e2"), ("d", "x")]),
            &mut seen
        )
        .is_none());
        assert_eq!(seen.as_deref(), Some("e2"));
        assert!(to_event("e1", Rid(5, 0), &fields(&[("d", "no epoch")]), &mut seen).is_none());
    }

    #[test]
    fn channel_messages_parse_and_malformed_ones_do_not() {
        let live = parse_live(b"e1\n5-0\n6-1\n+msg\n+a\nb").unwrap();
        assert_eq!((live.prev, live.id), (Rid(5, 0), Rid(6, 1)));
        let event = live.event().unwrap();
        assert_eq!(event.get_id(), Some("e1.6-1"));
        assert_eq!(event.get_event(), Some("msg"));
        assert_eq!(event.get_data(), Some("a\nb"), "data keeps its newlines");
        let bare = parse_live(b"e1\n5-0\n6-0\n\n").unwrap().event().unwrap();
        assert_eq!((bare.get_event(), bare.get_data()), (None, None));
        let empty = parse_live(b"e1\n5-0\n6-0\n\n+").unwrap().event().unwrap();
        assert_eq!(empty.get_data(), Some(""));
        for bad in [
            &b""[..],
            b"e1",
            b"e1\n5-0\n6-0\n",
            b"e1\nx\n6-0\n\n",
            b"e1\n5-0\n6-0\nmsg\n",
            b"\n5-0\n6-0\n\n",
            b"e1\n6-0\n6-0\n\n",
            b"e1\n5-0\n6-0\n\n\xff",
        ] {
            assert_eq!(parse_live(bad), None, "{bad:?}");
        }
    }
}
