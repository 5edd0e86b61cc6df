//! The beginning of a subscription, or a catch-up after lagging: replay from the cursor with
//! `XRANGE`, or the `reset` event when the cursor cannot be honoured.

use super::{
    shared::{Position, Reader, RedisHub},
    wire::{as_str, cursor, parse_entries, to_event, Rid, PAGE},
};
use crate::cursor::{Offset, ParsedCursor};
use crate::hub::{
    backbone::{Phase, Start},
    position_event, reset_event, ResetReason,
};
use redis::{aio::ConnectionManager, Value};
use std::collections::VecDeque;

pub(super) async fn try_start(
    hub: &RedisHub,
    reader: &Reader,
    here: &Position,
    from: ParsedCursor,
    phase: Phase,
) -> Result<Start<Rid>, redis::RedisError> {
    let reset = |reason| Start::at(here, reset_event(reason, &cursor(&here.epoch, here.last)));
    let (epoch, Offset::Pair(ms, seq)) = (from.epoch(), from.offset()) else {
        return Ok(reset(ResetReason::Invalid));
    };
    let id = Rid(ms, seq);
    if epoch != &*here.epoch {
        let well_formed = crate::hub::well_formed_epoch(epoch);
        return Ok(reset(if well_formed {
            ResetReason::UnknownEpoch
        } else {
            ResetReason::Invalid
        }));
    }
    let mut conn = hub.inner.conn.clone();
    // Past this reader's position: the stream may be ahead of it (the cursor came from an
    // instance that read further), or the cursor points past anything the stream holds,
    // which no hub issued: `reset`, not a stream that swallows every message until the
    // stream reaches it.
    if id > here.last
        && phase == Phase::Subscribe
        && id > stream_end(&mut conn, &reader.key.stream).await?
    {
        return Ok(reset(ResetReason::Invalid));
    }
    if history_lost_after(&mut conn, &reader.key.stream, id).await? {
        return Ok(reset(ResetReason::Expired));
    }
    let mut items = VecDeque::new();
    if phase == Phase::Subscribe {
        items.push_back(position_event(cursor(epoch, id)));
    }
    // Replay (id, here.last] in pages.
    let mut after = id;
    while after < here.last {
        let page: Value = redis::cmd("XRANGE")
            .arg(&reader.key.stream)
            .arg(format!("({after}"))
            .arg(here.last.to_string())
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await?;
        let entries = parse_entries(page);
        if entries.is_empty() {
            break;
        }
        for (rid, fields) in entries {
            after = rid;
            if let Some(event) = to_event(&here.epoch, rid, &fields, &mut None) {
                items.push_back(event);
            }
        }
    }
    Ok(Start {
        items,
        epoch: here.epoch.clone(),
        last: here.last.max(id),
    })
}

/// The id of the stream's last entry (`Rid::ZERO` when it has none).
async fn stream_end(conn: &mut ConnectionManager, stream: &str) -> Result<Rid, redis::RedisError> {
    let last: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(parse_entries(last).pop().map_or(Rid::ZERO, |(id, _)| id))
}

/// Whether entries after `id` may have been removed, from `XINFO STREAM`: an entry newer
/// than `id` was deleted (`max-deleted-entry-id`, set by `XDEL`), or the oldest kept entry is
/// newer than `id` and is not the stream's creation marker (trimming removed the front).
/// Conservative: a cursor exactly at the trim boundary is reset too, never a silent gap.
async fn history_lost_after(
    conn: &mut ConnectionManager,
    stream: &str,
    id: Rid,
) -> Result<bool, redis::RedisError> {
    let info: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(conn)
        .await?;
    let pairs: Vec<(Value, Value)> = match info {
        Value::Map(pairs) => pairs,
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        _ => Vec::new(),
    };
    for (k, v) in pairs {
        match as_str(&k).as_deref() {
            Some("max-deleted-entry-id")
                if as_str(&v)
                    .and_then(|s| Rid::parse(&s))
                    .is_some_and(|deleted| deleted > id) =>
            {
                return Ok(true);
            }
            Some("first-entry") => {
                if let Some((first, fields)) = parse_entries(Value::Array(vec![v])).pop() {
                    if first > id && !fields.contains_key("init") {
                        return Ok(true);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(false)
}
