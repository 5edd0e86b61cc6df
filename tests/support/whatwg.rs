//! A test-only `text/event-stream` decoder written from the WHATWG HTML standard,
//! §9.2.6 "Interpreting an event stream".
//! <https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>

/// A dispatched event, as `EventSource` would fire it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    pub event_type: String,
    pub data: String,
    pub last_event_id: String,
}

/// The decoder's observable state after a whole stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub events: Vec<Dispatched>,
    pub last_event_id: String,
    pub retry: Option<u64>,
    pub comments: Vec<String>,
}

pub fn decode(stream: &[u8]) -> Decoded {
    // "Streams must be decoded using the UTF-8 decode algorithm" (which strips one BOM).
    let text = String::from_utf8_lossy(stream);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);

    let mut out = Decoded::default();
    let mut data = String::new();
    let mut event_type = String::new();
    let mut id_buffer = String::new();

    // "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF)
    // character pair, a single U+000A LINE FEED (LF) character, or a single U+000D CARRIAGE
    // RETURN (CR) character." A final incomplete line is not processed.
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                lines.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }

    for line in lines {
        if line.is_empty() {
            // Dispatch the event. Step 1: the last event ID string takes the buffer's value
            // even when nothing is dispatched.
            out.last_event_id = id_buffer.clone();
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            out.events.push(Dispatched {
                event_type: if event_type.is_empty() {
                    "message".into()
                } else {
                    std::mem::take(&mut event_type)
                },
                data: std::mem::take(&mut data),
                last_event_id: out.last_event_id.clone(),
            });
            event_type.clear();
            continue;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.comments.push(comment.to_owned());
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match field {
            "event" => event_type = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            // "If the field value does not contain U+0000 NULL, then set the last event ID
            // buffer to the field value. Otherwise, ignore the field."
            "id" if !value.contains('\0') => id_buffer = value.to_owned(),
            // "If the field value consists of only ASCII digits, then interpret the field value
            // as an integer in base ten, and set the event stream's reconnection time to that
            // integer. Otherwise, ignore the field."
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                out.retry = value.parse().ok();
            }
            _ => {}
        }
    }
    out
}
