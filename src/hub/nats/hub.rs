//! The [`Hub`] implementation: publish with the topic's previous sequence, subscribe through
//! the hub's one live subscription.

use super::{
    error::{ErrorKind, NatsHubError},
    live::sync_once,
    shared::{lock, NatsHub, Position, Reader, PUBLISH_CACHE},
    start::try_start,
    subscription::NatsSubscription,
    wire,
};
use crate::cursor::{ParsedCursor, StartAt};
use crate::{
    cursor::Cursor,
    event::Event,
    hub::{
        backbone::{request_sync, Backbone, Phase, Start, Subscription, SyncQueue},
        Hub,
    },
    observe,
};
use async_nats::jetstream::{context::PublishErrorKind, stream::DirectGetErrorKind};
use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
};

/// Attempts at a publish whose expected previous sequence was stale (another instance
/// published to the topic in between).
const PUBLISH_ATTEMPTS: usize = 16;
/// Publishes to one topic from one process go one at a time (so they never race for the
/// previous sequence); topics are spread over this many locks.
const PUBLISH_STRIPES: usize = 64;

fn stripe(topic: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(topic) as usize % PUBLISH_STRIPES
}

/// The last sequence a "wrong last sequence: N" refusal names.
fn actual_last(error: &async_nats::jetstream::context::PublishError) -> Option<u64> {
    let text = std::error::Error::source(error)?.to_string();
    text.rsplit(": ").next()?.trim().parse().ok()
}

impl NatsHub {
    /// The sequence of the last message on `subject` (0: none).
    pub(super) async fn last_on(&self, subject: &str) -> Result<u64, NatsHubError> {
        let (stream, _) = self.stream();
        match self
            .op(stream.direct_get_last_for_subject(subject.to_owned()))
            .await
        {
            Ok(message) => Ok(message.sequence),
            Err(NatsHubError {
                kind: ErrorKind::Nats { error, .. },
            }) if error
                .downcast_ref::<async_nats::jetstream::stream::DirectGetError>()
                .is_some_and(|e| e.kind() == DirectGetErrorKind::NotFound) =>
            {
                self.record(None);
                Ok(0)
            }
            Err(error) => Err(error),
        }
    }

    async fn publish_inner(&self, topic: &str, event: Event) -> Result<Cursor, NatsHubError> {
        // Never queue a publish in the client while disconnected: it would be sent after the
        // reconnect although the caller was told it failed.
        if self.inner.client.connection_state() != async_nats::connection::State::Connected {
            self.record(Some(&NatsHubError {
                kind: ErrorKind::Down,
            }));
            return Err(NatsHubError {
                kind: ErrorKind::Down,
            });
        }
        let subject = self.subject(topic);
        let _turn = self.inner.publishing[stripe(topic)].lock().await;
        let mut last_error = None;
        for _ in 0..PUBLISH_ATTEMPTS {
            let cached = lock(&self.inner.last).get(topic).copied();
            let (prev, epoch) = match cached {
                Some(prev) => (prev, self.stream().1),
                None => {
                    // Unknown topic here: check the stream (another instance may have
                    // recreated it) and ask for the topic's last message.
                    let (_, epoch) = self.refresh().await?;
                    (self.last_on(&subject).await?, epoch)
                }
            };
            let (headers, payload) = wire::to_message(&event, prev);
            let sent = self
                .op(self
                    .inner
                    .js
                    .publish_with_headers(subject.clone(), headers, payload))
                .await?;
            match self.op(std::future::IntoFuture::into_future(sent)).await {
                Ok(ack) => {
                    let mut last = lock(&self.inner.last);
                    if last.len() >= PUBLISH_CACHE {
                        last.clear();
                    }
                    last.insert(topic.to_owned(), ack.sequence);
                    drop(last);
                    observe::published("nats");
                    return Ok(wire::cursor(&epoch, ack.sequence));
                }
                Err(error) => {
                    let kind = match &error.kind {
                        ErrorKind::Nats { error, .. } => error
                            .downcast_ref::<async_nats::jetstream::context::PublishError>()
                            .map(|e| e.kind()),
                        _ => None,
                    };
                    match kind {
                        // Another publisher went first, or the stream was recreated.
                        Some(PublishErrorKind::WrongLastSequence) => {
                            let actual = match &error.kind {
                                ErrorKind::Nats { error, .. } => error
                                    .downcast_ref::<async_nats::jetstream::context::PublishError>()
                                    .and_then(actual_last),
                                _ => None,
                            };
                            let mut last = lock(&self.inner.last);
                            match actual {
                                Some(actual) => last.insert(topic.to_owned(), actual),
                                None => last.remove(topic),
                            };
                            drop(last);
                            self.record(None);
                        }
                        Some(PublishErrorKind::StreamNotFound) => {
                            lock(&self.inner.last).clear();
                        }
                        _ => return Err(error),
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }
}

impl Backbone for NatsHub {
    type Id = u64;
    type Key = String;
    type Error = NatsHubError;
    const NAME: &'static str = "nats";

    fn cursor(epoch: &str, seq: u64) -> Cursor {
        wire::cursor(epoch, seq)
    }

    fn key(&self, topic: &str) -> String {
        self.subject(topic)
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

    fn sync_queue(&self) -> &SyncQueue<Self> {
        &self.inner.syncs
    }

    async fn sync_once(&self, reader: &Reader) -> Result<(), NatsHubError> {
        sync_once(self, reader).await
    }

    fn record(&self, error: Option<&NatsHubError>) {
        NatsHub::record(self, error);
    }

    fn start_deadline(&self) -> std::time::Duration {
        (self.inner.timeout * 10).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(60),
        )
    }

    fn spawn_reader(&self, reader: Arc<Reader>) {
        // The live subscription is in place: find the topic's position; what is published
        // from then on arrives live.
        request_sync(self, &reader);
    }

    async fn try_start(
        &self,
        reader: &Reader,
        here: &Position,
        from: ParsedCursor,
        phase: Phase,
    ) -> Result<Start<u64>, NatsHubError> {
        try_start(self, reader, here, from, phase).await
    }
}

impl Hub for NatsHub {
    type Subscription = NatsSubscription;
    type Error = NatsHubError;

    fn publish(
        &self,
        topic: &str,
        event: Event,
    ) -> impl Future<Output = Result<Cursor, NatsHubError>> + Send {
        let hub = self.clone();
        let topic = topic.to_owned();
        async move { hub.publish_inner(&topic, event).await }
    }

    fn available(&self) -> Result<(), NatsHubError> {
        if self.is_down() {
            Err(NatsHubError {
                kind: ErrorKind::Down,
            })
        } else {
            Ok(())
        }
    }

    fn subscribe(&self, topic: &str, from: StartAt) -> NatsSubscription {
        NatsSubscription(Subscription::new(self, topic, from))
    }
}
