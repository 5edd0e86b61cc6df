//! The WebSocket payload of an event: its JSON object as a text message, validated as UTF-8
//! once and shared by every connection it is sent on.

use bytes::Bytes;
use std::sync::OnceLock;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A text message's payload.
pub(crate) type Text = Utf8Bytes;

/// The payload cached in `cache`, made from `json` the first time.
pub(crate) fn text(cache: &OnceLock<Text>, json: impl FnOnce() -> Bytes) -> Text {
    cache
        .get_or_init(|| Utf8Bytes::try_from(json()).expect("JSON of UTF-8 strings is UTF-8"))
        .clone()
}
