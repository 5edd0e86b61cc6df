//! The WebSocket payload of an event: its JSON object as a text message, validated as UTF-8
//! once and shared by every connection it is sent on.

use crate::event::{Encoding, Event, WS_TEXT_SLOT};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A text message's payload.
pub(crate) type Text = Utf8Bytes;

/// The text message, as an event's cached encoding.
struct WsText;

impl Encoding for WsText {
    type Output = Text;
    const SLOT: usize = WS_TEXT_SLOT;
    fn encode(event: &Event) -> Text {
        Utf8Bytes::try_from(event.to_json()).expect("JSON of UTF-8 strings is UTF-8")
    }
}

impl Event {
    /// The WebSocket text payload (the JSON object), validated as UTF-8 once and shared.
    pub(crate) fn to_ws_text(&self) -> Text {
        self.encoded::<WsText>()
    }
}
