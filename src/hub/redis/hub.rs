//! The [`Hub`] implementation: publish through the Lua script, subscribe through the topic's
//! one reader in this process.

use super::{
    error::{ErrorKind, RedisHubError},
    live::{shard_of, sync_once},
    shared::{Command, Keys, Position, Reader, RedisHub},
    start::try_start,
    subscription::RedisSubscription,
    wire::{cursor, Rid},
};
use crate::cursor::{ParsedCursor, StartAt};
use crate::{
    cursor::Cursor,
    event::Event,
    hub::{
        backbone::{request_sync, Backbone, Phase, Start, Subscription, SyncQueue},
        new_epoch, Hub,
    },
    observe,
};
use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

impl Backbone for RedisHub {
    type Id = Rid;
    type Key = Keys;
    type Error = RedisHubError;
    const NAME: &'static str = "redis";

    fn cursor(epoch: &str, id: Rid) -> Cursor {
        cursor(epoch, id)
    }

    fn key(&self, topic: &str) -> Keys {
        self.keys(topic)
    }

    fn readers(&self) -> &Mutex<HashMap<String, Arc<Reader>>> {
        &self.inner.readers
    }

    fn released(&self) -> &Mutex<Vec<Arc<Reader>>> {
        &self.inner.released
    }

    fn buffer(&self) -> usize {
        self.inner.buffer
    }

    fn spawn_reader(&self, reader: Arc<Reader>) {
        // Called under the readers lock: ordered with the sweeper's unsubscribes.
        // Its position is read now, beside the `SUBSCRIBE` (one round trip for a new topic,
        // not two); the read after the confirmation catches up whatever came in between.
        request_sync(self, &reader);
        let shard = shard_of(&reader.topic, self.inner.shards.len());
        let _ = self.inner.shards[shard].send(Command::Subscribe(reader));
    }

    fn sync_queue(&self) -> &SyncQueue<Self> {
        &self.inner.syncs
    }

    async fn sync_once(&self, reader: &Reader) -> Result<(), RedisHubError> {
        sync_once(self, reader).await.map_err(RedisHubError::from)
    }

    fn record(&self, error: Option<&RedisHubError>) {
        RedisHub::record(self, error);
    }

    fn start_deadline(&self) -> Duration {
        (self.inner.timeout * 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    async fn try_start(
        &self,
        reader: &Reader,
        here: &Position,
        from: ParsedCursor,
        phase: Phase,
    ) -> Result<Start<Rid>, RedisHubError> {
        // Each command is bounded by the connection's response timeout (the hub's timeout);
        // the replay as a whole is not, as a long one is legitimate.
        let result = try_start(self, reader, here, from, phase)
            .await
            .map_err(RedisHubError::from);
        self.record(result.as_ref().err());
        result
    }
}

impl Hub for RedisHub {
    type Subscription = RedisSubscription;
    type Error = RedisHubError;

    fn publish(
        &self,
        topic: &str,
        event: Event,
    ) -> impl Future<Output = Result<Cursor, RedisHubError>> + Send {
        let keys = self.keys(topic);
        let epoch_key = keys.epoch_key();
        let stream = keys.stream;
        let hub = self.clone();
        async move {
            let mut conn = hub.inner.conn.clone();
            let mut invocation = hub.inner.publish.key(stream);
            invocation
                .key(epoch_key)
                .arg(new_epoch())
                .arg(hub.idle_ms())
                .arg(hub.inner.maxlen)
                .arg(u8::from(event.get_event().is_some()))
                .arg(event.get_event().unwrap_or(""))
                .arg(u8::from(event.get_data().is_some()))
                .arg(event.get_data().unwrap_or(""));
            let (epoch, id): (String, String) = hub.op(invocation.invoke_async(&mut conn)).await?;
            let id = Rid::parse(&id).ok_or_else(|| {
                redis::RedisError::from((redis::ErrorKind::Parse, "XADD returned an unexpected id"))
            })?;
            observe::published("redis");
            Ok(cursor(&epoch, id))
        }
    }

    fn available(&self) -> Result<(), RedisHubError> {
        if self.inner.health.is_down() {
            Err(RedisHubError {
                kind: ErrorKind::Down,
            })
        } else {
            Ok(())
        }
    }

    fn subscribe(&self, topic: &str, from: StartAt) -> RedisSubscription {
        RedisSubscription(Subscription::new(self, topic, from))
    }
}
