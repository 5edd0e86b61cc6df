//! Rooms and direct messages: which topics a connection reads, who may read them, and the
//! chat's messages as events.

use http::request::Parts;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tower_push::{principal::Principal, topic::TopicGrant, Event};

/// The room every message went to before rooms existed: the default, whose topic is `room`.
pub(crate) const DEFAULT_ROOM: &str = "room";
/// The longest room name, in characters.
pub(crate) const MAX_ROOM: usize = 32;
/// The longest message, in characters.
pub(crate) const MAX_TEXT: usize = 1000;

/// A room name from the client: 1 to 32 ASCII letters, digits, `-` and `_` (so a room is
/// never a direct-message topic); `None` for the default room.
pub(crate) fn room(name: Option<&str>) -> Result<String, &'static str> {
    match name {
        None => Ok(DEFAULT_ROOM.to_owned()),
        Some(name)
            if !name.is_empty()
                && name.len() <= MAX_ROOM
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(name.to_owned())
        }
        Some(_) => Err("\"room\" must be 1 to 32 ASCII letters, digits, '-' or '_'\n"),
    }
}

/// Whether `topic` is a room (any client may read a room).
pub(crate) fn is_room(topic: &str) -> bool {
    room(Some(topic)).is_ok()
}

/// The topic of `user`'s direct messages: `dm:` and 24 hex digits of SHA-256 of the name, so
/// any name makes a valid topic and nobody can pick a name that reads another's messages.
pub(crate) fn dm_topic(user: &str) -> String {
    let digest = Sha256::digest(user.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("dm:{hex}")
}

/// The topics a ticket for `user` in `room` grants: the room and the user's own messages.
pub(crate) fn grant(user: &str, room: &str) -> (Vec<String>, TopicGrant) {
    let topics = vec![room.to_owned(), dm_topic(user)];
    let grant = TopicGrant::new(topics.clone()).expect("rooms and dm topics are valid topics");
    (topics, grant)
}

/// Who may read a topic, on top of the ticket's grant: rooms, everyone; a direct-message
/// topic, only its user.
pub(crate) fn authorize(principal: Option<&Principal>, topic: &str) -> bool {
    is_room(topic) || principal.is_some_and(|p| dm_topic(p.as_str()) == topic)
}

/// Whether a push request asks for topics (`?topic=`); without, it is the single-room
/// connection of the original contract.
pub(crate) fn asks_for_topics(parts: &Parts) -> bool {
    parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.split('=').next() == Some("topic")))
}

/// The room a multi-topic connection reads (where its WebSocket messages go): the first room
/// among its topics (as [`Topics::requested_topics`](tower_push::hub::Topics::requested_topics)
/// decodes them), else the default room.
pub(crate) fn connection_room(topics: &[String]) -> String {
    topics
        .iter()
        .find(|t| is_room(t))
        .map_or(DEFAULT_ROOM, String::as_str)
        .to_owned()
}

/// A chat message as an event: named `message`, data `{"user":..,"text":..}` (and `"to"` for
/// a direct message). The text is kept exactly as sent; empty or whitespace-only text, or
/// more than 1,000 characters, is refused.
pub(crate) fn message(user: &str, text: &str, to: Option<&str>) -> Option<Event> {
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT {
        return None;
    }
    #[derive(Serialize)]
    struct Data<'a> {
        user: &'a str,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<&'a str>,
    }
    Event::new()
        .event("message")
        .ok()?
        .json_data(&Data { user, text, to })
        .ok()
}

/// Where a message goes: a room, or the recipient's and the sender's direct-message topics.
pub(crate) fn destinations(user: &str, room: &str, to: Option<&str>) -> Vec<String> {
    match to {
        None => vec![room.to_owned()],
        Some(to) if to == user => vec![dm_topic(to)],
        Some(to) => vec![dm_topic(to), dm_topic(user)],
    }
}
