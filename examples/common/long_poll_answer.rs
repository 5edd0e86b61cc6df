//! Reading a long-poll answer as a client does (shared by the examples' and the crate's tests).

/// Parses a long-poll answer: the cursor is written once, so the last event without an `id`
/// field has the answer's `cursor` as its id (`"id":null`: it has none).
#[allow(dead_code, unreachable_pub)]
pub fn long_poll_answer(body: &[u8]) -> serde_json::Value {
    let mut answer: serde_json::Value = serde_json::from_slice(body).expect("valid JSON");
    let cursor = answer["cursor"].clone();
    if let Some(last) = answer["events"]
        .as_array_mut()
        .and_then(|events| events.last_mut())
        .and_then(serde_json::Value::as_object_mut)
    {
        last.entry("id").or_insert(cursor);
    }
    answer
}
