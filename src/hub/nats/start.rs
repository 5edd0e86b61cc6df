//! The beginning of a subscription, or a catch-up after lagging: replay from the cursor with
//! direct gets, or the `reset` event when the cursor cannot be honoured.

use super::{
    error::{ErrorKind, NatsHubError},
    shared::{NatsHub, Position, Reader},
    wire,
};
use crate::cursor::{Offset, ParsedCursor};
use crate::hub::{
    backbone::{Phase, Start},
    position_event, reset_event, ResetReason,
};
use async_nats::jetstream::stream::{DirectGetError, DirectGetErrorKind};
use std::collections::VecDeque;

/// The first message on `subject` at or after `seq`, or `None`.
pub(super) async fn next_on(
    hub: &NatsHub,
    subject: &str,
    seq: u64,
) -> Result<Option<async_nats::jetstream::message::StreamMessage>, NatsHubError> {
    let (stream, _) = hub.stream();
    match hub
        .op(stream.direct_get_next_for_subject(subject.to_owned(), Some(seq)))
        .await
    {
        Ok(message) => Ok(Some(message)),
        Err(NatsHubError {
            kind: ErrorKind::Nats { error, .. },
        }) if error
            .downcast_ref::<DirectGetError>()
            .is_some_and(|e| e.kind() == DirectGetErrorKind::NotFound) =>
        {
            hub.record(None);
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

pub(super) async fn try_start(
    hub: &NatsHub,
    reader: &Reader,
    here: &Position,
    from: ParsedCursor,
    phase: Phase,
) -> Result<Start<u64>, NatsHubError> {
    let reset = |reason| {
        Start::at(
            here,
            reset_event(reason, &wire::cursor(&here.epoch, here.last)),
        )
    };
    let (epoch, Offset::Seq(after)) = (from.epoch(), from.offset()) else {
        return Ok(reset(ResetReason::Invalid));
    };
    if epoch != &*here.epoch {
        return Ok(reset(if wire::well_formed_epoch(epoch) {
            ResetReason::UnknownEpoch
        } else {
            ResetReason::Invalid
        }));
    }
    // Past this reader's position and past the subject's last message: no hub issued it
    // (see the Redis hub's `try_start`).
    if after > here.last && phase == Phase::Subscribe && after > hub.last_on(&reader.key).await? {
        return Ok(reset(ResetReason::Invalid));
    }
    let mut items = VecDeque::new();
    if phase == Phase::Subscribe {
        items.push_back(position_event(wire::cursor(epoch, after)));
    }
    // Replay (after, here.last], one direct get per message. The first one proves nothing
    // was deleted in between: its previous message is at or before the cursor.
    let mut seq = after;
    let mut first = true;
    while seq < here.last {
        let Some(message) = next_on(hub, &reader.key, seq + 1).await? else {
            // Messages up to `here.last` existed and are gone.
            return Ok(reset(ResetReason::Expired));
        };
        if message.sequence > here.last {
            if first {
                return Ok(reset(ResetReason::Expired));
            }
            break;
        }
        if first && wire::prev(Some(&message.headers)) > after {
            return Ok(reset(ResetReason::Expired));
        }
        first = false;
        seq = message.sequence;
        items.push_back(wire::to_event(
            &here.epoch,
            seq,
            Some(&message.headers),
            &message.payload,
        ));
    }
    Ok(Start {
        items,
        epoch: here.epoch.clone(),
        last: here.last.max(after),
    })
}
