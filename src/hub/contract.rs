//! The [`Hub`] trait, and the events every backbone's subscriptions begin with.

use crate::{
    cursor::{Cursor, StartAt},
    event::Event,
};
use futures_core::Stream;
use std::future::Future;

/// The name of the event that says a cursor could not be honoured.
/// See the [module docs](crate::hub#the-subscription-stream).
pub const RESET_EVENT: &str = "reset";

/// A backbone that publishes events to topics and subscribes from a cursor.
///
/// Implementations must keep the properties the [module docs](crate::hub) describe; the crate's
/// behavioural test suite runs against each one.
pub trait Hub: Clone + Send + Sync + 'static {
    /// The stream [`subscribe`](Hub::subscribe) returns.
    type Subscription: Stream<Item = Event> + Send + Unpin + 'static;
    /// What [`publish`](Hub::publish) can fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Publishes `event` to `topic`, replacing its id with its cursor, and returns the cursor.
    ///
    /// # Errors
    ///
    /// When the backbone cannot store the event.
    fn publish(
        &self,
        topic: &str,
        event: Event,
    ) -> impl Future<Output = Result<Cursor, Self::Error>> + Send;

    /// Whether the backbone can serve a new subscription now: `Err` while it is known to be
    /// unreachable, so that [`Subscribe`](super::Subscribe) refuses with `503` and `Retry-After` at once
    /// instead of holding a connection that cannot be served. Answers without waiting. The
    /// default (an embedded hub) is always available.
    ///
    /// # Errors
    ///
    /// When the backbone is known to be down.
    fn available(&self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Subscribes to `topic` from `from`: after a parsed cursor, from now, or with `reset` for
    /// a cursor that does not place the topic. A cursor of another shape or epoch than this
    /// hub's, past the topic's head, or older than its history starts with `reset`.
    ///
    /// The subscription is registered before this returns: an event published after it is
    /// always delivered.
    fn subscribe(&self, topic: &str, from: StartAt) -> Self::Subscription;
}

/// Why a subscription starts with a [`RESET_EVENT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetReason {
    Invalid,
    UnknownEpoch,
    Expired,
}

impl ResetReason {
    fn as_str(self) -> &'static str {
        match self {
            ResetReason::Invalid => "invalid",
            ResetReason::UnknownEpoch => "unknown-epoch",
            ResetReason::Expired => "expired",
        }
    }
}

/// A reset event's data: `{"reason":..,"cursor":..}`, and `"topic"` on a multi-topic
/// subscription.
pub(crate) fn reset_data(reason: &str, cursor: &str, topic: Option<&str>) -> String {
    let mut data = bytes::BytesMut::new();
    data.extend_from_slice(b"{\"reason\":");
    crate::json::json_string(&mut data, reason);
    data.extend_from_slice(b",\"cursor\":");
    crate::json::json_string(&mut data, cursor);
    if let Some(topic) = topic {
        data.extend_from_slice(b",\"topic\":");
        crate::json::json_string(&mut data, topic);
    }
    data.extend_from_slice(b"}");
    String::from_utf8(data.to_vec()).expect("JSON of strings is UTF-8")
}

/// The reset event: id = current cursor, data = `{"reason":..,"cursor":..}`.
pub(crate) fn reset_event(reason: ResetReason, current: &Cursor) -> Event {
    crate::observe::reset(reason.as_str());
    Event::new()
        .data(reset_data(reason.as_str(), current.as_str(), None))
        .event(RESET_EVENT)
        .and_then(|e| e.id(current.as_str()))
        .expect("cursors and the reset name hold no line breaks")
}

/// The length of an epoch: 6 base-62 characters (about 36 bits), short because every event's
/// id carries it.
pub(crate) const EPOCH_LEN: usize = 6;

/// A new random epoch: [`EPOCH_LEN`] ASCII letters and digits. Not a secret, only different
/// for every hub instance or stream incarnation (two share one once in ~6 x 10^10 pairs).
pub(crate) fn new_epoch() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(now);
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let mut hash = hasher.finish();
    (0..EPOCH_LEN)
        .map(|_| {
            let c = ALPHABET[(hash % 62) as usize] as char;
            hash /= 62;
            c
        })
        .collect()
}

/// Whether `epoch` looks like one this crate makes ([`EPOCH_LEN`] ASCII letters and digits):
/// a cursor with such an epoch that is not the current one is from another instance
/// (`unknown-epoch`), anything else is `invalid`.
pub(crate) fn well_formed_epoch(epoch: &str) -> bool {
    epoch.len() == EPOCH_LEN && epoch.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The position event: an id-only event.
pub(crate) fn position_event(cursor: Cursor) -> Event {
    Event::cursor_only(cursor.into_boxed_str())
}

#[cfg(test)]
mod tests {
    use crate::cursor::parse_offset;

    #[test]
    fn offsets_are_digits_only() {
        assert_eq!(parse_offset("0"), Some(0));
        assert_eq!(parse_offset("42"), Some(42));
        assert_eq!(parse_offset("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "+0",
            "-1",
            " 1",
            "1 ",
            "1_000",
            "0x10",
            "18446744073709551616",
        ] {
            assert_eq!(parse_offset(bad), None, "{bad:?}");
        }
    }
}
