//! Reading a topic from the backbone whenever live delivery may have missed something (its
//! first position, a gap, a reconnect), on a fixed pool of workers: however many topics ask at
//! once (every topic after a reconnect), the memory in flight is the pool's.

use super::{lock, Backbone, Reader, MAX_BACKOFF};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::mpsc;

/// Workers per hub reading topics from the backbone.
pub(crate) const SYNC_WORKERS: usize = 64;

/// Per topic: whether it is being read, and whether it must be read again after that.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    flags: Mutex<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    running: bool,
    again: bool,
}

/// The topics waiting for a worker.
pub(crate) type SyncQueue<B> = mpsc::UnboundedSender<Arc<Reader<B>>>;

/// Reads the topic from the backbone now, or once more when a read is under way.
pub(crate) fn request_sync<B: Backbone>(backbone: &B, reader: &Arc<Reader<B>>) {
    let mut flags = lock(&reader.sync.flags);
    start(backbone, reader, &mut flags);
}

/// Every topic read in this process reads the backbone from its position.
#[cfg(feature = "nats")]
pub(crate) fn sync_all<B: Backbone>(backbone: &B) {
    let readers: Vec<Arc<Reader<B>>> = lock(backbone.readers()).values().cloned().collect();
    for reader in &readers {
        request_sync(backbone, reader);
    }
}

/// A live entry for `reader`: `deliver` fans it out and says `true` when it follows the
/// topic's position (or was delivered already); else, or while a read is under way, the
/// topic reads the backbone.
pub(crate) fn on_live<B: Backbone>(
    backbone: &B,
    reader: &Arc<Reader<B>>,
    deliver: impl FnOnce(&Reader<B>) -> bool,
) {
    let mut flags = lock(&reader.sync.flags);
    if !flags.running && deliver(reader) {
        return;
    }
    start(backbone, reader, &mut flags);
}

fn start<B: Backbone>(backbone: &B, reader: &Arc<Reader<B>>, flags: &mut Flags) {
    if flags.running {
        flags.again = true;
        return;
    }
    flags.running = true;
    let _ = backbone.sync_queue().send(reader.clone());
}

/// The workers of one hub; they end with it (`upgrade` fails, or the queue closes).
pub(crate) fn spawn_workers<B, U>(upgrade: U, queue: mpsc::UnboundedReceiver<Arc<Reader<B>>>)
where
    B: Backbone,
    U: Fn() -> Option<B> + Clone + Send + Sync + 'static,
{
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    for _ in 0..SYNC_WORKERS {
        let (upgrade, queue) = (upgrade.clone(), queue.clone());
        tokio::spawn(async move {
            loop {
                let Some(reader) = queue.lock().await.recv().await else {
                    return;
                };
                let Some(backbone) = upgrade() else { return };
                run(&backbone, &reader).await;
            }
        });
    }
}

/// Reads the topic until nothing is left to read, retrying with backoff while the backbone
/// does not answer (its subscribers keep their heartbeats meanwhile).
async fn run<B: Backbone>(backbone: &B, reader: &Reader<B>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let result = backbone.sync_once(reader).await;
        backbone.record(result.as_ref().err());
        match result {
            Ok(()) => {
                let mut flags = lock(&reader.sync.flags);
                if flags.again {
                    flags.again = false;
                    continue;
                }
                flags.running = false;
                return;
            }
            Err(error) => {
                if reader.tx.receiver_count() == 0 {
                    // No one is left to read it: the sweeper releases it.
                    lock(&reader.sync.flags).running = false;
                    return;
                }
                tracing::debug!(%error, topic = %reader.topic, backbone = B::NAME, ?backoff, "hub: reading the topic failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
