//! What the shared backbones (`RedisHub`, `NatsHub`) have in common: per topic read in this
//! process, a position and a bounded local buffer its live entries are fanned out through;
//! subscriptions that register with it, replay up to its position and continue live with no
//! gap and no duplicate at the seam, and catch up (or reset) after lagging. Each backbone
//! supplies its ids, its keys, the replay and how live entries reach the topic
//! ([`Backbone`]); the rest is here once.

mod subscription;
mod sync;

pub(crate) use subscription::Subscription;
#[cfg(feature = "nats")]
pub(crate) use sync::sync_all;
pub(crate) use sync::{on_live, request_sync, spawn_workers, SyncQueue, SyncState};

use crate::{
    cursor::{Cursor, ParsedCursor, StartAt},
    event::Event,
    hub::{position_event, reset_event, ResetReason},
};
use std::{
    collections::{HashMap, VecDeque},
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{broadcast, watch};

/// Longest wait between reconnection attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) use crate::sync::lock;

/// Whether a backbone is known to be unreachable: set by an operation that found it so,
/// cleared by the next answer, logged when it changes.
#[derive(Debug, Default)]
pub(crate) struct Health {
    down: std::sync::atomic::AtomicBool,
}

impl Health {
    /// Notes an operation's outcome (`unavailable`: it could not reach the backbone).
    pub(crate) fn record(&self, unavailable: bool, backbone: &str, prefix: &str) {
        use std::sync::atomic::Ordering;
        if self.down.swap(unavailable, Ordering::Relaxed) != unavailable {
            if unavailable {
                tracing::warn!(prefix, backbone, "hub: the backbone is unreachable");
            } else {
                tracing::info!(prefix, backbone, "hub: the backbone answers again");
            }
        }
    }

    /// Whether the last operation found the backbone unreachable.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A shared backbone, as the common machinery sees it.
pub(crate) trait Backbone: Clone + Send + Sync + Sized + 'static {
    /// A position in a topic, ordered as the backbone orders them.
    type Id: Copy + Ord + Default + fmt::Debug + Send + Sync + 'static;
    /// Where a topic lives in the backbone (key names, a subject).
    type Key: Send + Sync + 'static;
    /// What a replay step fails with.
    type Error: fmt::Display + Send;

    /// The backbone's name in logs.
    const NAME: &'static str;

    /// The cursor of `id` under `epoch`.
    fn cursor(epoch: &str, id: Self::Id) -> Cursor;
    /// Where `topic` lives.
    fn key(&self, topic: &str) -> Self::Key;
    /// The topics' readers in this process.
    fn readers(&self) -> &Mutex<HashMap<String, Arc<Reader<Self>>>>;
    /// The readers whose subscriptions ended since the sweeper last looked (see
    /// [`release_idle`]).
    fn released(&self) -> &Mutex<Vec<Arc<Reader<Self>>>>;
    /// The size of a topic's local buffer.
    fn buffer(&self) -> usize;
    /// Starts live delivery for a new reader (it finds the topic's position).
    fn spawn_reader(&self, reader: Arc<Reader<Self>>);
    /// Where topics wait for a [`sync`] worker.
    fn sync_queue(&self) -> &SyncQueue<Self>;
    /// Reads the topic from the backbone: its first position when it has none, else every
    /// entry after its position (fanned out), or a reset when the topic's history was lost.
    fn sync_once(
        &self,
        reader: &Reader<Self>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Notes an operation's outcome (the backbone is down after an unavailable error).
    fn record(&self, error: Option<&Self::Error>);
    /// How long a subscription may wait for its start (the reader's first position, then the
    /// replay) before it gives up and ends, so the client reconnects and resumes instead of
    /// waiting on a stream that never delivers.
    fn start_deadline(&self) -> Duration;
    /// Replays after `from` up to `here` (or resets), as [`start`] describes.
    fn try_start(
        &self,
        reader: &Reader<Self>,
        here: &Position<Self::Id>,
        from: ParsedCursor,
        phase: Phase,
    ) -> impl Future<Output = Result<Start<Self::Id>, Self::Error>> + Send;
}

/// Where a topic's reader is: the epoch and the last id it has fanned out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position<Id> {
    pub(crate) epoch: Arc<str>,
    pub(crate) last: Id,
}

/// What a reader fans out.
#[derive(Debug, Clone)]
pub(crate) enum Live<Id> {
    Entry {
        id: Id,
        event: Event,
    },
    /// History was lost (the store recreated, or deleted while away): continue from here.
    /// Boxed: a reset is rare, and every slot of every topic's buffer is as large as the
    /// largest variant.
    Reset(Box<Position<Id>>),
    /// The backbone refused to carry the topic (for example a `SUBSCRIBE` an ACL forbids):
    /// its subscriptions end, so their clients resume later or elsewhere instead of waiting
    /// for entries that will never arrive.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    End,
}

/// A topic's one reader in this process, as subscriptions see it.
pub(crate) struct Reader<B: Backbone> {
    pub(crate) topic: String,
    pub(crate) key: B::Key,
    pub(crate) tx: broadcast::Sender<Live<B::Id>>,
    /// `None` until the reader has found the topic's end; updated with each fan-out.
    pub(crate) position: watch::Sender<Option<Position<B::Id>>>,
    /// Whether the topic is being read from the backbone.
    pub(crate) sync: SyncState,
}

/// The reader's position when a subscription registered; `None` while the reader has not
/// started (then nothing was fanned out yet, and its first position is the registration point).
pub(crate) struct Registered<Id> {
    pub(crate) at: Option<Position<Id>>,
    pub(crate) watch: watch::Receiver<Option<Position<Id>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Subscribe,
    CatchUp,
}

/// The beginning of a subscription (or a catch-up after lagging): what to deliver first, and
/// from which id live entries count.
pub(crate) struct Start<Id> {
    pub(crate) items: VecDeque<Event>,
    pub(crate) epoch: Arc<str>,
    pub(crate) last: Id,
}

impl<Id: Copy> Start<Id> {
    /// A start at `here` that delivers `event` first (the position, or a reset).
    pub(crate) fn at(here: &Position<Id>, event: Event) -> Self {
        Self {
            items: VecDeque::from([event]),
            epoch: here.epoch.clone(),
            last: here.last,
        }
    }
}

/// `None`: the start gave up ([`Backbone::start_deadline`]); the subscription ends.
pub(crate) type StartFuture<Id> = Pin<Box<dyn Future<Output = Option<Start<Id>>> + Send>>;

/// The topic's reader, started if needed, and a registration with it.
pub(crate) fn register<B: Backbone>(
    backbone: &B,
    topic: &str,
) -> (
    Arc<Reader<B>>,
    broadcast::Receiver<Live<B::Id>>,
    Registered<B::Id>,
) {
    let mut readers = lock(backbone.readers());
    let reader = match readers.get(topic) {
        Some(reader) => reader.clone(),
        None => {
            let reader = Arc::new(Reader {
                topic: topic.to_owned(),
                key: backbone.key(topic),
                tx: broadcast::channel(backbone.buffer()).0,
                position: watch::channel(None).0,
                sync: SyncState::default(),
            });
            readers.insert(topic.to_owned(), reader.clone());
            backbone.spawn_reader(reader.clone());
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

/// The beginning of a subscription (or a catch-up): waits for the reader's first position
/// when it has none yet, then replays, retrying with backoff until the backbone answers, for
/// at most [`Backbone::start_deadline`]; `None` when it gave up (logged at warn, counted as
/// a stalled subscription).
pub(crate) async fn start<B: Backbone>(
    backbone: B,
    reader: Arc<Reader<B>>,
    registered: Registered<B::Id>,
    from: StartAt,
    phase: Phase,
) -> Option<Start<B::Id>> {
    let deadline = backbone.start_deadline();
    let topic = reader.topic.clone();
    match tokio::time::timeout(
        deadline,
        start_unbounded(backbone, reader, registered, from, phase),
    )
    .await
    {
        Ok(start) => Some(start),
        Err(_) => {
            tracing::warn!(
                topic,
                backbone = B::NAME,
                ?deadline,
                "hub: the backbone did not serve a subscription in time; ending it (the client resumes)"
            );
            crate::observe::subscription_stalled(B::NAME);
            None
        }
    }
}

async fn start_unbounded<B: Backbone>(
    backbone: B,
    reader: Arc<Reader<B>>,
    registered: Registered<B::Id>,
    from: StartAt,
    phase: Phase,
) -> Start<B::Id> {
    // Entries up to `here` are replayed (or were published before the subscription), entries
    // after it arrive live.
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
    let current = || B::cursor(&here.epoch, here.last);
    let from = match from {
        StartAt::Now => return Start::at(&here, position_event(current())),
        StartAt::Unplaced => {
            return Start::at(&here, reset_event(ResetReason::Invalid, &current()))
        }
        StartAt::After(from) => from,
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        match backbone.try_start(&reader, &here, from, phase).await {
            Ok(start) => return start,
            Err(error) => {
                tracing::debug!(%error, topic = %reader.topic, backbone = B::NAME, "replay failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Advances the position past `id` and, for an event, hands it to the local subscribers.
pub(crate) fn fan_out<B: Backbone>(reader: &Reader<B>, id: B::Id, event: Option<Event>) {
    reader.position.send_modify(|p| {
        if let Some(p) = p {
            p.last = id;
        }
        // Sent while the position is held: a subscriber registering now sees either this
        // position (and not the entry) or the old one (and the entry).
        if let Some(event) = event {
            let _ = reader.tx.send(Live::Entry {
                id,
                event: event.stamped(reader.tx.receiver_count()),
            });
        }
    });
}

/// Moves the position to `position` and tells the local subscribers history was lost.
pub(crate) fn fan_out_reset<B: Backbone>(reader: &Reader<B>, position: Position<B::Id>) {
    reader.position.send_modify(|p| {
        *p = Some(position.clone());
        let _ = reader.tx.send(Live::Reset(Box::new(position)));
    });
}

/// Ends every subscription of `reader` (see [`Live::End`]) and forgets the reader, so the next
/// subscription to its topic asks the backbone again; each ended subscription is counted as
/// stalled. Returns how many ended (the caller logs, once per batch).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn end_refused<B: Backbone>(backbone: &B, reader: &Arc<Reader<B>>) -> usize {
    remove_current(&mut lock(backbone.readers()), reader);
    let ended = reader.tx.send(Live::End).unwrap_or(0);
    for _ in 0..ended {
        crate::observe::subscription_stalled(B::NAME);
    }
    ended
}

/// Removes `reader` from `readers` if it is still its topic's reader (not a newer one made
/// since); whether it was.
fn remove_current<B: Backbone>(
    readers: &mut HashMap<String, Arc<Reader<B>>>,
    reader: &Arc<Reader<B>>,
) -> bool {
    let current = readers
        .get(&reader.topic)
        .is_some_and(|current| Arc::ptr_eq(current, reader));
    if current {
        readers.remove(&reader.topic);
    }
    current
}

/// Releases the readers left without subscribers: those whose subscriptions ended a sweep
/// period ago (`due`, so a topic lives one to two periods after its last subscriber) are
/// removed from the readers map, under its lock, and handed to `removed`; those that ended
/// since become due. Only readers whose subscriptions ended are looked at, so a sweep costs
/// nothing for the topics that keep theirs.
pub(crate) fn release_idle<B: Backbone>(
    backbone: &B,
    due: &mut Vec<Arc<Reader<B>>>,
    mut removed: impl FnMut(&Reader<B>),
) {
    let checking = std::mem::replace(due, std::mem::take(&mut *lock(backbone.released())));
    if checking.is_empty() {
        return;
    }
    let mut readers = lock(backbone.readers());
    for reader in checking {
        if reader.tx.receiver_count() == 0 && remove_current(&mut readers, &reader) {
            removed(&reader);
        }
    }
}
