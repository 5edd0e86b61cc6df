//! The [`Hub`] implementation: publish through the Lua script, subscribe through the topic's
//! one reader in this process.

use super::{
    error::{ErrorKind, RedisHubError},
    reader::run_reader,
    shared::{lock, Live, Reader, RedisHub, Registered},
    start::{start, Phase},
    subscription::RedisSubscription,
    wire::{cursor, Rid},
};
use crate::{
    cursor::Cursor,
    event::Event,
    hub::{live::LiveReceiver, new_epoch, Hub},
    observe,
};
use std::{collections::VecDeque, future::Future, sync::atomic::Ordering, sync::Arc};
use tokio::sync::{broadcast, watch};

impl RedisHub {
    /// The topic's reader, started if needed, and a registration with it.
    fn register(&self, topic: &str) -> (Arc<Reader>, broadcast::Receiver<Live>, Registered) {
        let mut readers = lock(&self.inner.readers);
        let reader = match readers.get(topic) {
            Some(reader) => reader.clone(),
            None => {
                let (stream, epoch_key) = self.keys(topic);
                let reader = Arc::new(Reader {
                    topic: topic.to_owned(),
                    stream,
                    epoch_key,
                    tx: broadcast::channel(self.inner.buffer).0,
                    position: watch::channel(None).0,
                });
                readers.insert(topic.to_owned(), reader.clone());
                tokio::spawn(run_reader(self.clone(), reader.clone()));
                reader
            }
        };
        // Under the reader's position lock: the receiver gets exactly the entries after the
        // position read here.
        let position = reader.position.borrow();
        let rx = reader.tx.subscribe();
        let registered = Registered {
            at: position.clone(),
            watch: reader.position.subscribe(),
        };
        drop(position);
        drop(readers);
        (reader, rx, registered)
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
        let (stream, epoch_key) = self.keys(topic);
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
        if self.inner.down.load(Ordering::Relaxed) {
            Err(RedisHubError {
                kind: ErrorKind::Down,
            })
        } else {
            Ok(())
        }
    }

    fn subscribe(&self, topic: &str, from: Option<&str>) -> RedisSubscription {
        observe::record_topic(topic);
        let (reader, rx, registered) = self.register(topic);
        let start = Box::pin(start(
            self.clone(),
            reader.clone(),
            registered,
            from.map(str::to_owned),
            Phase::Subscribe,
        ));
        RedisSubscription {
            start: Some(start),
            pending: VecDeque::new(),
            rx: LiveReceiver::new(rx),
            last: Rid::ZERO,
            epoch: Arc::from(""),
            hub: self.clone(),
            reader,
        }
    }
}
