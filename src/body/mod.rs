//! Response bodies of the transports and of the guard layers.

mod full;
mod guard;
#[cfg(any(feature = "sse", feature = "long-poll", feature = "ws"))]
mod push;

pub use full::Full;
pub use guard::GuardBody;
#[cfg(any(feature = "sse", feature = "long-poll", feature = "ws"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "sse", feature = "long-poll", feature = "ws")))
)]
pub use push::PushBody;
