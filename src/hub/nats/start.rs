//! The beginning of a subscription, or a catch-up after lagging: replay from the cursor with
//! direct gets, or the `reset` event when the cursor cannot be honoured.

use super::{
    error::{ErrorKind, NatsHubError},
    shared::{NatsHub, Position, Reader, Registered, MAX_BACKOFF},
    wire,
};
use crate::{
    event::Event,
    hub::{position_event, reset_event, ResetReason},
};
use async_nats::jetstream::stream::{DirectGetError, DirectGetErrorKind};
use std::{collections::VecDeque, future::Future, pin::Pin, sync::Arc, time::Duration};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Subscribe,
    CatchUp,
}

/// What to deliver first, and from which sequence live messages count.
pub(super) struct Start {
    pub(super) items: VecDeque<Event>,
    pub(super) epoch: Arc<str>,
    pub(super) last: u64,
}

pub(super) type StartFuture = Pin<Box<dyn Future<Output = Start> + Send>>;

pub(super) async fn start(
    hub: NatsHub,
    reader: Arc<Reader>,
    registered: Registered,
    from: Option<String>,
    phase: Phase,
) -> Start {
    // Messages up to `here` are replayed (or came before the subscription), later ones live.
    let here = match registered.at {
        Some(at) => at,
        None => {
            let mut watch = registered.watch;
            loop {
                if let Some(p) = watch.borrow_and_update().clone() {
                    break p;
                }
                if watch.changed().await.is_err() {
                    // The reader is gone: nothing will ever arrive.
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        match try_start(&hub, &reader, &here, from.as_deref(), phase).await {
            Ok(start) => return start,
            Err(error) => {
                tracing::debug!(%error, topic = %reader.topic, "nats hub: replay failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The first message on `subject` at or after `seq`, or `None`.
async fn next_on(
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

async fn try_start(
    hub: &NatsHub,
    reader: &Reader,
    here: &Position,
    from: Option<&str>,
    phase: Phase,
) -> Result<Start, NatsHubError> {
    let reset = |reason| Start {
        items: VecDeque::from([reset_event(reason, &wire::cursor(&here.epoch, here.last))]),
        epoch: here.epoch.clone(),
        last: here.last,
    };
    let Some(from) = from else {
        return Ok(Start {
            items: VecDeque::from([position_event(&wire::cursor(&here.epoch, here.last))]),
            epoch: here.epoch.clone(),
            last: here.last,
        });
    };
    let Some((epoch, after)) = wire::parse_cursor(from) else {
        return Ok(reset(ResetReason::Invalid));
    };
    if epoch != &*here.epoch {
        return Ok(reset(if wire::well_formed_epoch(epoch) {
            ResetReason::UnknownEpoch
        } else {
            ResetReason::Invalid
        }));
    }
    let mut items = VecDeque::new();
    if phase == Phase::Subscribe {
        items.push_back(position_event(&wire::cursor(epoch, after)));
    }
    // Replay (after, here.last], one direct get per message. The first one proves nothing
    // was deleted in between: its previous message is at or before the cursor.
    let mut seq = after;
    let mut first = true;
    while seq < here.last {
        let Some(message) = next_on(hub, &reader.subject, seq + 1).await? else {
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
