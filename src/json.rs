//! The JSON the crate writes by hand (events for long-poll and WebSocket, reset data,
//! ticket answers): RFC 8259 strings, no serde on the hot path.

use bytes::{BufMut, Bytes, BytesMut};

/// An event's JSON object `{"id":..,"event":..,"topic":..,"data":..}`, absent fields left out.
pub(crate) fn event_object(
    id: Option<&str>,
    event: Option<&str>,
    topic: Option<&str>,
    data: Option<&str>,
) -> Bytes {
    let len = |v: Option<&str>| v.map_or(0, |v| v.len() + 10);
    let data_len = data.map_or(0, str::len);
    let mut buf =
        BytesMut::with_capacity(8 + len(id) + len(event) + len(topic) + data_len + data_len / 8);
    buf.put_u8(b'{');
    let mut first = true;
    for (name, value) in [
        ("id", id),
        ("event", event),
        ("topic", topic),
        ("data", data),
    ] {
        if let Some(value) = value {
            if !first {
                buf.put_u8(b',');
            }
            first = false;
            json_string(&mut buf, name);
            buf.put_u8(b':');
            json_string(&mut buf, value);
        }
    }
    buf.put_u8(b'}');
    buf.freeze()
}

/// Writes `s` as a JSON string (RFC 8259 §7): quotes, backslash and control characters escaped.
pub(crate) fn json_string(buf: &mut BytesMut, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.put_u8(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.put_slice(&bytes[start..i]);
        if escape.is_empty() {
            buf.put_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            buf.put_slice(escape);
        }
        start = i + 1;
    }
    buf.put_slice(&bytes[start..]);
    buf.put_u8(b'"');
}
