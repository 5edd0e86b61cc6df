//! Response bodies of the transports and of the guard layers.

mod guard;
#[cfg(any(feature = "sse", feature = "long-poll", feature = "ws"))]
mod push;

pub use guard::GuardBody;
#[cfg(any(feature = "sse", feature = "long-poll", feature = "ws"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "sse", feature = "long-poll", feature = "ws")))
)]
pub use push::PushBody;
