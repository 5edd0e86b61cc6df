//! Stream adapters for push streams, reached through [`PushStreamExt`].

mod ext;
#[cfg(feature = "heartbeat")]
mod heartbeat;

pub use ext::PushStreamExt;
#[cfg(feature = "heartbeat")]
#[cfg_attr(docsrs, doc(cfg(feature = "heartbeat")))]
pub use heartbeat::Heartbeat;
