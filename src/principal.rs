//! [`Principal`]: who a push connection belongs to, placed in request extensions by an
//! authentication layer ([`auth_ticket`](crate::auth_ticket) after verifying a ticket, or your
//! own), read by the mint service, by your inner service and by the connection's tracing span.

/// The principal a verified ticket was minted for, placed in request extensions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal(String);

impl Principal {
    /// Wraps a principal (for an upstream auth layer that puts it where
    /// `auth_ticket::MintTicket` finds it).
    pub fn new(principal: impl Into<String>) -> Self {
        Self(principal.into())
    }

    /// The principal.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The principal, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}
