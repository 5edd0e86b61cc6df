//! Response bodies of the transports and of the guard layers.

mod guard;
#[cfg(any(feature = "sse", feature = "long-poll"))]
mod push;

pub use guard::GuardBody;
#[cfg(any(feature = "sse", feature = "long-poll"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sse", feature = "long-poll"))))]
pub use push::PushBody;
