//! Response bodies of the transports and of the guard layers.

mod full;
mod guard_body;
#[cfg(transport)]
mod push;

pub use full::Full;
pub use guard_body::GuardBody;
#[cfg(feature = "sse")]
pub(crate) use push::Framing;
#[cfg(transport)]
#[cfg_attr(docsrs, doc(cfg(transport)))]
pub use push::PushBody;
