//! What the NATS hub fails with, and the timeout every operation runs under.

use crate::error::BoxError;
use std::{fmt, future::Future, time::Duration};

/// What [`NatsHub`](super::NatsHub) operations fail with: NATS could not be reached in time,
/// or JetStream answered an error.
#[derive(Debug)]
pub struct NatsHubError {
    pub(super) kind: ErrorKind,
}

#[derive(Debug)]
pub(super) enum ErrorKind {
    /// A client or JetStream error, and whether it means NATS is unreachable.
    Nats { error: BoxError, unavailable: bool },
    /// No answer within the hub's timeout.
    TimedOut(Duration),
    /// NATS is known to be unreachable (the last operation failed).
    Down,
}

impl NatsHubError {
    /// Whether NATS could not be reached (no connection, no answer in time, or known to be
    /// down): worth a `503` with `Retry-After` rather than a `500`.
    pub fn is_unavailable(&self) -> bool {
        match &self.kind {
            ErrorKind::Nats { unavailable, .. } => *unavailable,
            ErrorKind::TimedOut(_) | ErrorKind::Down => true,
        }
    }

    /// A client error; `unavailable` when it means NATS could not be reached.
    pub(super) fn nats(error: impl Into<BoxError>, unavailable: bool) -> Self {
        Self {
            kind: ErrorKind::Nats {
                error: error.into(),
                unavailable,
            },
        }
    }

    /// An error whose text says whether it was a connection problem.
    pub(super) fn from_display(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        let text = error.to_string().to_ascii_lowercase();
        let unavailable = [
            "timed out",
            "no responders",
            "disconnected",
            "connection",
            "broken pipe",
        ]
        .iter()
        .any(|needle| text.contains(needle));
        Self::nats(error, unavailable)
    }
}

impl fmt::Display for NatsHubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Nats { error, .. } => write!(f, "nats hub: {error}"),
            ErrorKind::TimedOut(after) => {
                write!(f, "nats hub: NATS did not answer within {after:?}")
            }
            ErrorKind::Down => f.write_str("nats hub: NATS is unreachable; retry later"),
        }
    }
}

impl std::error::Error for NatsHubError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Nats { error, .. } => Some(&**error),
            _ => None,
        }
    }
}

/// `op`, failing with [`ErrorKind::TimedOut`] after `timeout`.
pub(super) async fn within<T, E>(
    timeout: Duration,
    op: impl Future<Output = Result<T, E>>,
) -> Result<T, NatsHubError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(timeout, op).await {
        Ok(result) => result.map_err(NatsHubError::from_display),
        Err(_) => Err(NatsHubError {
            kind: ErrorKind::TimedOut(timeout),
        }),
    }
}
