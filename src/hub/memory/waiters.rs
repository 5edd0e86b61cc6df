//! The subscriptions of one topic waiting for its next event, woken all at once by a publish.
//!
//! The topic's broadcast buffer still carries the events (with its lag detection), but no
//! subscription waits in the buffer's own wait list: a held long poll would then pay for a
//! waiting future per subscription (allocated, and polled through tokio's budget) and take the
//! buffer's shared lock to join and to leave the list, while every other poll woken by the same
//! event wants that lock too. Here a wait is a slot in a list of wakers, and a subscription
//! woken by a publish leaves without taking any lock.

use crate::sync::lock;
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    task::Waker,
};

/// Where a subscription's waker sits: the wake round it registered in, and its slot.
pub(super) type Slot = Option<(u64, usize)>;

/// The wakers of a topic's waiting subscriptions.
#[derive(Default)]
pub(super) struct Waiters {
    list: Mutex<List>,
    /// The wake round: bumped (under the lock) by every wake, which empties the list, so a
    /// slot from an earlier round is gone. Read without the lock by a leaving subscription.
    round: AtomicU64,
}

#[derive(Default)]
struct List {
    wakers: Vec<Waker>,
    /// Slots whose subscription left before the wake: reused, so a topic whose polls time out
    /// with no event does not grow its list.
    free: Vec<usize>,
    /// The buffer of the last round's list, kept for the next one.
    spare: Vec<Waker>,
}

impl Waiters {
    /// Registers `waker` for the next wake. A subscription polled again in the same round keeps
    /// its slot (and its waker, unless the task's waker changed).
    pub(super) fn register(&self, slot: &mut Slot, waker: &Waker) {
        let mut list = lock(&self.list);
        let round = self.round.load(Ordering::Relaxed);
        if let Some((registered, at)) = *slot {
            if registered == round {
                if !list.wakers[at].will_wake(waker) {
                    list.wakers[at] = waker.clone();
                }
                return;
            }
        }
        let at = match list.free.pop() {
            Some(at) => {
                list.wakers[at] = waker.clone();
                at
            }
            None => {
                list.wakers.push(waker.clone());
                list.wakers.len() - 1
            }
        };
        *slot = Some((round, at));
    }

    /// Gives the slot up (a subscription that leaves before its wake). Lock-free when the
    /// wake came already.
    pub(super) fn unregister(&self, slot: Slot) {
        let Some((registered, at)) = slot else {
            return;
        };
        if self.round.load(Ordering::Acquire) != registered {
            return;
        }
        let mut list = lock(&self.list);
        if self.round.load(Ordering::Relaxed) == registered {
            // Drops the task's waker now rather than at the next wake.
            list.wakers[at] = Waker::noop().clone();
            list.free.push(at);
        }
    }

    /// Wakes every waiting subscription (outside the lock) and starts a new round.
    pub(super) fn wake_all(&self) {
        let mut list = lock(&self.list);
        if list.wakers.is_empty() {
            return;
        }
        self.round.fetch_add(1, Ordering::Release);
        let spare = std::mem::take(&mut list.spare);
        let mut wakers = std::mem::replace(&mut list.wakers, spare);
        list.free.clear();
        drop(list);
        for waker in wakers.drain(..) {
            waker.wake();
        }
        let mut list = lock(&self.list);
        if list.spare.capacity() < wakers.capacity() {
            list.spare = wakers;
        }
    }

    /// How many subscriptions wait now.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        let list = lock(&self.list);
        list.wakers.len() - list.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        task::Wake,
    };

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_wake_reaches_each_waiter_once_and_starts_a_new_round() {
        let waiters = Waiters::default();
        let (a, wa) = counter();
        let (b, wb) = counter();
        let (mut sa, mut sb) = (None, None);
        waiters.register(&mut sa, &wa);
        waiters.register(&mut sa, &wa); // polled again: same slot
        waiters.register(&mut sb, &wb);
        assert_eq!(waiters.waiting(), 2);
        waiters.wake_all();
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        assert_eq!(waiters.waiting(), 0);
        // A slot from the last round is not this round's: registering again takes a new one.
        waiters.register(&mut sa, &wa);
        assert_eq!(waiters.waiting(), 1);
        waiters.unregister(sb); // woken already: nothing to give up
        assert_eq!(waiters.waiting(), 1);
        waiters.wake_all();
        assert_eq!(a.0.load(Ordering::SeqCst), 2);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_waiter_that_leaves_is_not_woken_and_its_slot_is_reused() {
        let waiters = Waiters::default();
        let (a, wa) = counter();
        let (b, wb) = counter();
        for _ in 0..1000 {
            let mut slot = None;
            waiters.register(&mut slot, &wa);
            waiters.unregister(slot);
        }
        assert_eq!(waiters.waiting(), 0);
        assert_eq!(lock(&waiters.list).wakers.len(), 1, "one slot, reused");
        let mut slot = None;
        waiters.register(&mut slot, &wb);
        waiters.wake_all();
        assert_eq!(a.0.load(Ordering::SeqCst), 0);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_new_waker_replaces_the_old_one_in_its_slot() {
        let waiters = Waiters::default();
        let (a, wa) = counter();
        let (b, wb) = counter();
        let mut slot = None;
        waiters.register(&mut slot, &wa);
        waiters.register(&mut slot, &wb);
        assert_eq!(waiters.waiting(), 1);
        waiters.wake_all();
        assert_eq!(a.0.load(Ordering::SeqCst), 0);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
    }
}
