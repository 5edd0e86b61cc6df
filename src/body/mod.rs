//! Response bodies of the transports and of the guard layers.

mod full;
mod guard_body;
#[cfg(any(feature = "sse", feature = "long-poll", feature = "ws"))]
mod push;

pub use full::Full;
pub use guard_body::GuardBody;
#[cfg(feature = "sse")]
pub(crate) use push::Framing;
#[cfg(any(feature = "sse", feature = "long-poll", feature = "ws"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "sse", feature = "long-poll", feature = "ws")))
)]
pub use push::PushBody;
