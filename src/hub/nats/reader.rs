//! Each topic's one reader in this process: an ordered push consumer on the topic's subject,
//! fanned out locally, restarted with backoff from the last sequence it fanned out.

use super::{
    error::NatsHubError,
    shared::{NatsHub, Position, Reader, MAX_BACKOFF},
    wire,
};
use crate::{
    hub::backbone::{fan_out, fan_out_reset, stop_if_idle},
    observe,
};
use async_nats::jetstream::consumer::{push::OrderedConfig, DeliverPolicy};
use futures_util::StreamExt as _;
use std::{sync::Arc, time::Duration};

/// The topic's one reader in this process.
pub(super) async fn run_reader(hub: NatsHub, reader: Arc<Reader>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match read_until_error(&hub, &reader).await {
            Ok(()) => return, // idle: stopped
            Err(error) => {
                hub.record(Some(&error));
                if stop_if_idle(&hub, &reader) {
                    return;
                }
                observe::backbone_reconnect("nats");
                tracing::debug!(%error, topic = %reader.topic, ?backoff, "nats hub: reader restarting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn read_until_error(hub: &NatsHub, reader: &Arc<Reader>) -> Result<(), NatsHubError> {
    let (stream, epoch) = hub.refresh().await?;
    let current = reader.position.borrow().clone();
    let last = match current {
        // First start: live messages begin after the topic's last one.
        None => {
            let last = hub.last_on(&reader.key).await?;
            reader.position.send_replace(Some(Position {
                epoch: epoch.clone(),
                last,
            }));
            last
        }
        // The stream was lost while we were away: subscribers reset, then get everything the
        // new stream holds (all of it came after the loss).
        Some(p) if *p.epoch != *epoch => {
            fan_out_reset(
                reader,
                Position {
                    epoch: epoch.clone(),
                    last: 0,
                },
            );
            0
        }
        Some(p) => p.last,
    };
    let config = OrderedConfig {
        deliver_subject: hub.inner.client.new_inbox(),
        filter_subject: reader.key.clone(),
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: last + 1,
        },
        ..Default::default()
    };
    let consumer = hub.op(stream.create_consumer(config)).await?;
    let mut messages = hub.op(consumer.messages()).await?;
    loop {
        if stop_if_idle(hub, reader) {
            return Ok(());
        }
        let next = match tokio::time::timeout(hub.inner.block, messages.next()).await {
            Ok(next) => next,
            Err(_) => {
                // Quiet: check that the stream is still the same one (one check per hub per
                // block period, however many topics are quiet).
                let now = hub.recent_epoch().await?;
                if now != epoch {
                    return Err(NatsHubError::nats("stream recreated; restarting", false));
                }
                continue;
            }
        };
        let message = match next {
            None => return Err(NatsHubError::nats("consumer ended", true)),
            Some(Err(error)) => return Err(NatsHubError::from_display(error)),
            Some(Ok(message)) => message,
        };
        let Ok(info) = message.info() else {
            continue;
        };
        let seq = info.stream_sequence;
        let Some(position) = reader.position.borrow().clone() else {
            return Ok(());
        };
        if seq <= position.last {
            continue; // already fanned out (a restarted consumer)
        }
        let event = wire::to_event(&epoch, seq, message.headers.as_ref(), &message.payload);
        if wire::prev(message.headers.as_ref()) > position.last && position.last > 0 {
            // Messages between were deleted while no one read them: reset subscribers just
            // before this one.
            fan_out_reset(
                reader,
                Position {
                    epoch: epoch.clone(),
                    last: seq - 1,
                },
            );
        }
        fan_out(reader, seq, Some(event));
    }
}
