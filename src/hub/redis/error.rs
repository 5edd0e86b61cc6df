//! What the Redis hub fails with, and the timeout every operation runs under.

use std::{fmt, future::Future, time::Duration};

/// What [`RedisHub`](super::RedisHub) operations fail with: Redis could not be reached in time, or answered
/// an error.
#[derive(Debug)]
pub struct RedisHubError {
    pub(super) kind: ErrorKind,
}

#[derive(Debug)]
pub(super) enum ErrorKind {
    Redis(redis::RedisError),
    /// No answer within the hub's timeout.
    TimedOut(Duration),
    /// Redis is known to be unreachable (the last operation failed).
    Down,
}

impl RedisHubError {
    /// Whether Redis could not be reached (no connection, no answer in time, or known to be
    /// down): worth a `503` with `Retry-After` rather than a `500`.
    pub fn is_unavailable(&self) -> bool {
        match &self.kind {
            ErrorKind::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
            }
            ErrorKind::TimedOut(_) | ErrorKind::Down => true,
        }
    }
}

impl fmt::Display for RedisHubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Redis(e) => write!(f, "redis hub: {e}"),
            ErrorKind::TimedOut(after) => {
                write!(f, "redis hub: Redis did not answer within {after:?}")
            }
            ErrorKind::Down => f.write_str("redis hub: Redis is unreachable; retry later"),
        }
    }
}

impl std::error::Error for RedisHubError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Redis(e) => Some(e),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for RedisHubError {
    fn from(inner: redis::RedisError) -> Self {
        Self {
            kind: ErrorKind::Redis(inner),
        }
    }
}

/// `op`, failing with [`ErrorKind::TimedOut`] after `timeout`.
pub(super) async fn within<T, E>(
    timeout: Duration,
    op: impl Future<Output = Result<T, E>>,
) -> Result<T, RedisHubError>
where
    RedisHubError: From<E>,
{
    match tokio::time::timeout(timeout, op).await {
        Ok(result) => result.map_err(RedisHubError::from),
        Err(_) => Err(RedisHubError {
            kind: ErrorKind::TimedOut(timeout),
        }),
    }
}
