//! Single use: where redeemed tickets are remembered until they would have expired anyway.

use crate::error::BoxError;
use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashSet},
    fmt,
    future::{ready, Future},
    pin::Pin,
    sync::{Arc, Mutex},
};

/// The future [`TicketStore::redeem`] returns.
pub type RedeemFuture = Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send>>;

/// Remembers redeemed tickets so each is accepted once.
///
/// [`MemoryTicketStore`] serves one process; a shared store (Redis) makes tickets single use
/// across instances.
pub trait TicketStore: Clone + Send + Sync + 'static {
    /// Records `nonce`, which stays relevant until `expires_at` (Unix seconds, skew
    /// included). `Ok(true)` the first time, `Ok(false)` for a replay.
    fn redeem(&self, nonce: [u8; 16], expires_at: u64) -> RedeemFuture;
}

/// The in-memory [`TicketStore`]: forgets each entry once its ticket would have expired, so
/// it holds at most the tickets redeemed within one lifetime (plus skew).
#[derive(Clone)]
pub struct MemoryTicketStore {
    inner: Arc<Mutex<Entries>>,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

#[derive(Default)]
struct Entries {
    seen: HashSet<[u8; 16]>,
    by_expiry: BinaryHeap<Reverse<(u64, [u8; 16])>>,
}

impl fmt::Debug for MemoryTicketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTicketStore")
            .field("len", &self.len())
            .finish()
    }
}

impl Default for MemoryTicketStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTicketStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }

    /// An empty store on `clock` (seconds since the Unix epoch); for tests.
    pub fn with_clock(clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::default(),
            clock: Arc::new(clock),
        }
    }

    /// Entries currently remembered.
    pub fn len(&self) -> usize {
        crate::sync::lock(&self.inner).seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn redeem_now(&self, nonce: [u8; 16], expires_at: u64) -> bool {
        let now = (self.clock)();
        let mut entries = crate::sync::lock(&self.inner);
        // Forget what has expired: those tickets are refused as expired anyway.
        while let Some(Reverse((at, _))) = entries.by_expiry.peek() {
            if *at >= now {
                break;
            }
            let Some(Reverse((_, old))) = entries.by_expiry.pop() else {
                break;
            };
            entries.seen.remove(&old);
        }
        if !entries.seen.insert(nonce) {
            return false;
        }
        entries.by_expiry.push(Reverse((expires_at, nonce)));
        true
    }
}

impl TicketStore for MemoryTicketStore {
    fn redeem(&self, nonce: [u8; 16], expires_at: u64) -> RedeemFuture {
        Box::pin(ready(Ok(self.redeem_now(nonce, expires_at))))
    }
}
