//! The crate's one way to take a `std` mutex or read-write lock: poison-tolerant.

use std::sync::{Mutex, MutexGuard, PoisonError};
#[cfg(feature = "hub")]
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, taking the state over from a thread that panicked while holding it: every state
/// the crate guards is updated in steps that leave it consistent, so a panic elsewhere must
/// not turn every later lock into a panic too.
#[cfg_attr(not(any(feature = "hub", feature = "auth-ticket")), allow(dead_code))]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `l`, poison-tolerant like [`lock`].
#[cfg(feature = "hub")]
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `l`, poison-tolerant like [`lock`].
#[cfg(feature = "hub")]
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
