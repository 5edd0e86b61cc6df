//! The `text/event-stream` wire format: each event's block, the visible `position` block,
//! and the heartbeat comment. (Compiled without the `sse` feature too:
//! [`Event::to_sse`](crate::event::Event::to_sse) is always available.)

use crate::event::{Encoding, Event, SSE_SLOT};
use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;

/// The `text/event-stream` block, as an event's cached encoding.
struct Sse;

impl Encoding for Sse {
    type Output = Bytes;
    const SLOT: usize = SSE_SLOT;
    fn encode(event: &Event) -> Bytes {
        encode(
            event.get_comment(),
            event.get_id(),
            event.get_event(),
            event.get_topic(),
            event.get_retry(),
            event.get_data(),
        )
    }
}

impl Event {
    /// The `text/event-stream` encoding, computed once and shared by every clone.
    pub fn to_sse(&self) -> Bytes {
        self.encoded::<Sse>()
    }
}

/// An event's `text/event-stream` block (WHATWG): comment, `id`, `event`, `retry`, then one
/// `data` field per line of data, and the blank line that dispatches it. With a topic, the
/// event name is `name@topic` (`message@topic` without a name).
pub(crate) fn encode(
    comment: Option<&str>,
    id: Option<&str>,
    name: Option<&str>,
    topic: Option<&str>,
    retry: Option<Duration>,
    data: Option<&str>,
) -> Bytes {
    // Reserve the exact size: one allocation per event.
    let line = |v: Option<&str>, name: usize| v.map_or(0, |v| name + 2 + v.len() + 1);
    let data_cap = data.map_or(0, |d| {
        let lines = memchr::memchr2_iter(b'\r', b'\n', d.as_bytes()).count() + 1;
        d.len() + lines * 7
    });
    let topic_cap = topic.map_or(0, |t| t.len() + 1 + if name.is_none() { 16 } else { 0 });
    let capacity = line(comment, 0)
        + line(id, 2)
        + line(name, 5)
        + topic_cap
        + retry.map_or(0, |_| 48)
        + data_cap
        + 1;
    let mut buf = BytesMut::with_capacity(capacity);
    if let Some(comment) = comment {
        buf.put_slice(b": ");
        buf.put_slice(comment.as_bytes());
        buf.put_u8(b'\n');
    }
    if let Some(id) = id {
        field(&mut buf, b"id", id);
    }
    match (name, topic) {
        (Some(name), None) => field(&mut buf, b"event", name),
        (name, Some(topic)) => {
            buf.put_slice(b"event: ");
            buf.put_slice(name.unwrap_or("message").as_bytes());
            buf.put_u8(b'@');
            buf.put_slice(topic.as_bytes());
            buf.put_u8(b'\n');
        }
        (None, None) => {}
    }
    if let Some(retry) = retry {
        buf.put_slice(b"retry: ");
        let mut digits = [0u8; 40];
        buf.put_slice(format_u128(retry.as_millis(), &mut digits));
        buf.put_u8(b'\n');
    }
    if let Some(data) = data {
        // WHATWG: a line ends at CRLF, lone CR or lone LF; each line becomes one `data:` field.
        let bytes = data.as_bytes();
        let mut start = 0;
        while let Some(pos) = memchr::memchr2(b'\r', b'\n', &bytes[start..]) {
            let end = start + pos;
            field_bytes(&mut buf, b"data", &bytes[start..end]);
            start = end + 1;
            if bytes[end] == b'\r' && bytes.get(start) == Some(&b'\n') {
                start += 1;
            }
        }
        field_bytes(&mut buf, b"data", &bytes[start..]);
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

fn field(buf: &mut BytesMut, name: &[u8], value: &str) {
    field_bytes(buf, name, value.as_bytes());
}

fn field_bytes(buf: &mut BytesMut, name: &[u8], value: &[u8]) {
    buf.put_slice(name);
    // Always `name: value`: the parser strips exactly one space, so a leading space survives.
    buf.put_slice(b": ");
    buf.put_slice(value);
    buf.put_u8(b'\n');
}

fn format_u128(mut n: u128, out: &mut [u8; 40]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &out[i..]
}

/// A cursor-only event as a visible `position` event, for clients that must read the cursor
/// (an `EventSource` cannot see the id of a block without data).
#[cfg(feature = "sse")]
pub(crate) fn position_block(id: &str) -> Bytes {
    let mut block = Vec::with_capacity(id.len() + 32);
    block.extend_from_slice(b"id: ");
    block.extend_from_slice(id.as_bytes());
    block.extend_from_slice(b"\nevent: position\ndata: \n\n");
    Bytes::from(block)
}

/// What an SSE heartbeat writes: an empty comment line and a blank line.
#[cfg(feature = "sse")]
pub(crate) const HEARTBEAT: &[u8] = b":\n\n";

/// How an SSE body writes its stream.
#[cfg(feature = "sse")]
pub(crate) static FRAMING: crate::body::Framing = crate::body::Framing {
    event: Event::to_sse,
    position: position_block,
    heartbeat: HEARTBEAT,
};
