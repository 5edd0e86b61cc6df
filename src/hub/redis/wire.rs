//! Redis's side of the wire: stream entry ids, cursors, and the replies of `XRANGE`/`XREAD`
//! parsed into entries and events. Pure functions, tested without a Redis.

use crate::{cursor::Cursor, event::Event};
use redis::Value;
use std::{collections::HashMap, fmt};

/// Entries read per `XREAD` / `XRANGE` call.
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
        Some(Rid(ms.parse().ok()?, seq.parse().ok()?))
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

/// Entries of an `XRANGE` reply (or of one stream of an `XREAD` reply).
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

/// Entries of an `XREAD` reply for one stream.
pub(super) fn parse_xread(v: Value) -> Vec<(Rid, HashMap<String, String>)> {
    match v {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => {
                    parse_entries(kv.pop().unwrap_or(Value::Nil))
                }
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, v)| parse_entries(v))
            .collect(),
        _ => Vec::new(),
    }
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
    let mut event = Event::new();
    if let Some(data) = fields.get("d") {
        event = event.data(data.as_str());
    }
    if let Some(name) = fields.get("n") {
        // A name written by another producer may not be valid SSE: drop it rather than fail.
        event = event.clone().event(name.as_str()).unwrap_or(event);
    }
    event.id(cursor(epoch, id).as_str()).ok()
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
    fn xread_replies_in_resp2_and_resp3_shapes() {
        let entries = Value::Array(vec![entry("7-0", &[("p", "e"), ("d", "x")])]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("stream"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk("stream"), entries)]);
        for reply in [resp2, resp3] {
            let got = parse_xread(reply);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].0, Rid(7, 0));
        }
        assert!(parse_xread(Value::Nil).is_empty(), "a timed-out XREAD");
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
}
