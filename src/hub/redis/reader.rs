//! Each topic's one reader in this process: blocking `XREAD`s on its own connection, fanned
//! out locally, reconnecting with backoff.

use super::{
    error::RedisHubError,
    shared::{Position, Reader, RedisHub, MAX_BACKOFF},
    wire::{parse_entries, parse_xread, to_event, Rid, PAGE},
};
use crate::{
    hub::{
        backbone::{fan_out, fan_out_reset, stop_if_idle},
        new_epoch,
    },
    observe,
};
use redis::{aio::MultiplexedConnection, AsyncConnectionConfig, Value};
use std::{sync::Arc, time::Duration};

async fn reader_connection(hub: &RedisHub) -> Result<MultiplexedConnection, redis::RedisError> {
    // Blocking reads hold the connection: a dedicated one per topic reader, with a response
    // timeout above the block time so a vanished server is noticed.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(hub.inner.timeout))
        .set_response_timeout(Some(hub.inner.block + Duration::from_secs(3)));
    hub.inner
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// The topic's one reader in this process: blocking `XREAD`s, fanned out locally.
pub(super) async fn run_reader(hub: RedisHub, reader: Arc<Reader>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match read_until_error(&hub, &reader).await {
            Ok(()) => return, // idle: stopped
            Err(error) => {
                hub.record(Some(&RedisHubError::from(error.clone())));
                observe::backbone_reconnect("redis");
                tracing::debug!(%error, topic = %reader.topic, ?backoff, "redis hub: reader reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn read_until_error(hub: &RedisHub, reader: &Arc<Reader>) -> Result<(), redis::RedisError> {
    let mut conn = reader_connection(hub).await?;
    let epoch: String = hub
        .inner
        .ensure
        .key(&reader.key.stream)
        .key(&reader.key.epoch_key)
        .arg(new_epoch())
        .arg(hub.idle_ms())
        .invoke_async(&mut conn)
        .await?;
    hub.record(None);
    let current = reader.position.borrow().clone();
    match current {
        // First start: live entries begin after the stream's current end.
        None => {
            let last = stream_end(&mut conn, &reader.key.stream).await?;
            reader.position.send_replace(Some(Position {
                epoch: epoch.into(),
                last,
            }));
        }
        // The stream was lost while we were away: subscribers reset, then get everything the
        // new stream holds (all of it came after the loss).
        Some(p) if *p.epoch != *epoch => {
            fan_out_reset(
                reader,
                Position {
                    epoch: epoch.into(),
                    last: Rid::ZERO,
                },
            );
        }
        // Reconnected to the same stream: resume from the last id fanned out.
        Some(_) => {}
    }
    loop {
        if stop_if_idle(hub, reader) {
            return Ok(());
        }
        let Some(position) = reader.position.borrow().clone() else {
            return Ok(());
        };
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(PAGE)
            .arg("BLOCK")
            .arg(hub.inner.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&reader.key.stream)
            .arg(position.last.to_string())
            .query_async(&mut conn)
            .await?;
        let entries = parse_xread(reply);
        if entries.is_empty() {
            // Idle: check that the stream still exists under the same epoch.
            let epoch: Option<String> = redis::cmd("GET")
                .arg(&reader.key.epoch_key)
                .query_async(&mut conn)
                .await?;
            let exists: bool = redis::cmd("EXISTS")
                .arg(&reader.key.stream)
                .query_async(&mut conn)
                .await?;
            if !exists || epoch.as_deref() != Some(&*position.epoch) {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "stream lost; restarting the reader",
                )));
            }
            // Subscribed here: keep the topic from expiring.
            if hub.idle_ms() > 0 {
                redis::pipe()
                    .cmd("PEXPIRE")
                    .arg(&reader.key.stream)
                    .arg(hub.idle_ms())
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&reader.key.epoch_key)
                    .arg(hub.idle_ms())
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            continue;
        }
        let mut new_epoch_seen = None;
        for (id, fields) in entries {
            let event = to_event(&position.epoch, id, &fields, &mut new_epoch_seen);
            if let Some(epoch) = new_epoch_seen.take() {
                // Recreated under our feet: reset subscribers just before this entry, which
                // the next read returns again.
                fan_out_reset(
                    reader,
                    Position {
                        epoch: epoch.into(),
                        last: id.before(),
                    },
                );
                break;
            }
            fan_out(reader, id, event);
        }
    }
}

/// The id of the stream's last entry (`0-0` when empty).
async fn stream_end(
    conn: &mut MultiplexedConnection,
    stream: &str,
) -> Result<Rid, redis::RedisError> {
    let last: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(parse_entries(last).first().map_or(Rid::ZERO, |(id, _)| *id))
}
