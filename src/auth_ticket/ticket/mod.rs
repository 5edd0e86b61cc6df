//! The ticket itself: minting, the compact signed encoding, and verification.

use crate::topic::TopicGrant;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 16;
/// HMAC-SHA256 truncated to 128 bits (RFC 2104 §5 allows truncation to half the output).
const MAC_LEN: usize = 16;
const BINDING_LEN: usize = 8;
const FLAG_PATH: u8 = 1;
const FLAG_ORIGIN: u8 = 2;
const FLAG_TOPICS: u8 = 4;
/// The most bytes a ticket's topic grant holds (each pattern plus one).
pub const MAX_GRANT_LEN: usize = 512;
/// version, key id, expiry, nonce, flags, principal length.
const HEADER_LEN: usize = 1 + 1 + 8 + NONCE_LEN + 1 + 2;
/// The longest principal a ticket carries, in bytes.
pub const MAX_PRINCIPAL_LEN: usize = 1024;

/// The default lifetime of a ticket: 30 seconds.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// The default clock skew tolerated when checking expiry: 5 seconds.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(5);

/// A secret HMAC key with a one-byte id; the id travels in the ticket so the verifier knows
/// which key signed it (rotation). Use at least 32 random bytes.
#[derive(Clone)]
pub struct Key {
    id: u8,
    secret: Arc<[u8]>,
}

impl Key {
    /// A key `id` with `secret`.
    pub fn new(id: u8, secret: impl AsRef<[u8]>) -> Self {
        Self {
            id,
            secret: secret.as_ref().into(),
        }
    }

    /// A key `id` with 32 fresh random bytes (for a single process; share a configured key
    /// between instances).
    ///
    /// # Panics
    ///
    /// When the operating system has no randomness to give.
    pub fn generate(id: u8) -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system provides randomness");
        Self::new(id, secret)
    }

    /// The key's id.
    pub fn id(&self) -> u8 {
        self.id
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What a ticket is bound to, besides its principal. Default: nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Binding {
    path: Option<String>,
    origin: Option<String>,
    topics: Option<TopicGrant>,
}

impl Binding {
    /// No binding.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only valid on this request path (for example `/api/events`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Only valid from this `Origin` (for example `https://chat.example`).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Only for these topics: the ticket carries the grant, signed, and the
    /// [`AuthTicketLayer`](super::AuthTicketLayer) places it in the request extensions, where
    /// [`hub::Subscribe`](crate::hub::Subscribe), [`hub::Topics`](crate::hub::Topics) and
    /// [`hub::check_access`](crate::hub::check_access) (for hand-written services) refuse any
    /// other topic with `403` (no database call). A ticket minted without topics carries no
    /// grant: it opens every topic the endpoint's own rules allow. At most [`MAX_GRANT_LEN`] bytes of patterns (each pattern's length plus one);
    /// minting a longer grant fails with [`TicketError::GrantTooLong`].
    pub fn topics(mut self, grant: TopicGrant) -> Self {
        self.topics = Some(grant);
        self
    }

    /// The topic grant, when there is one.
    pub fn get_topics(&self) -> Option<&TopicGrant> {
        self.topics.as_ref()
    }

    /// Whether an origin is bound.
    pub(crate) fn has_origin(&self) -> bool {
        self.origin.is_some()
    }
}

/// A minted ticket.
#[derive(Clone)]
pub struct Ticket {
    value: String,
    expires_in: Duration,
}

impl Ticket {
    /// The ticket string: URL-safe base64, no padding (so also a valid subprotocol token).
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The ticket string, owned.
    pub fn into_string(self) -> String {
        self.value
    }

    /// How long the ticket stays valid.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }
}

impl fmt::Debug for Ticket {
    /// Redacted: tickets never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("value", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// What a valid ticket says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Who the ticket was minted for.
    pub principal: String,
    /// Expiry, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// The single-use nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The topics the ticket allows, when it was minted with [`Binding::topics`].
    pub topics: Option<TopicGrant>,
}

/// Why a ticket was refused (or could not be minted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TicketError {
    /// No ticket in the request.
    Missing,
    /// Not a ticket: not base64, truncated, or an unknown version.
    Malformed,
    /// Signed with a key id the verifier does not have (rotated out, or never known).
    UnknownKey,
    /// The signature does not match: forged or altered.
    BadSignature,
    /// Past its expiry (plus the tolerated clock skew).
    Expired,
    /// Bound to another path.
    WrongPath,
    /// Bound to another origin.
    WrongOrigin,
    /// Already redeemed: tickets are single use.
    Replayed,
    /// The single-use store could not be reached.
    StoreUnavailable,
    /// Minting: the principal is empty or longer than [`MAX_PRINCIPAL_LEN`].
    BadPrincipal,
    /// Minting: the topic grant is longer than [`MAX_GRANT_LEN`] bytes.
    GrantTooLong,
}

impl TicketError {
    /// A short machine-readable code, as sent in `WWW-Authenticate`.
    pub fn code(self) -> &'static str {
        match self {
            TicketError::Missing => "missing",
            TicketError::Malformed => "malformed",
            TicketError::UnknownKey => "unknown_key",
            TicketError::BadSignature => "bad_signature",
            TicketError::Expired => "expired",
            TicketError::WrongPath => "wrong_path",
            TicketError::WrongOrigin => "wrong_origin",
            TicketError::Replayed => "replayed",
            TicketError::StoreUnavailable => "store_unavailable",
            TicketError::BadPrincipal => "bad_principal",
            TicketError::GrantTooLong => "grant_too_long",
        }
    }
}

impl fmt::Display for TicketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            TicketError::Missing => "auth ticket missing",
            TicketError::Malformed => "auth ticket malformed",
            TicketError::UnknownKey => "auth ticket signed with an unknown key",
            TicketError::BadSignature => "auth ticket signature invalid",
            TicketError::Expired => "auth ticket expired",
            TicketError::WrongPath => "auth ticket not valid for this path",
            TicketError::WrongOrigin => "auth ticket not valid for this origin",
            TicketError::Replayed => "auth ticket already used",
            TicketError::StoreUnavailable => "auth ticket store unavailable",
            TicketError::BadPrincipal => "auth ticket principal empty or too long",
            TicketError::GrantTooLong => "auth ticket topic grant too long",
        };
        f.write_str(text)
    }
}

impl std::error::Error for TicketError {}

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Mints and verifies tickets: one signing key, any number of verifying keys (rotation), a
/// lifetime and a tolerated clock skew. Cheap to clone; share one between the minting
/// endpoint and the [`AuthTicketLayer`](super::AuthTicketLayer).
///
/// ```
/// use tower_push::auth_ticket::{Binding, Key, Tickets};
///
/// let tickets = Tickets::new(Key::new(2, b"a secret of at least 32 bytes!!!"))
///     .verify_with(Key::new(1, b"the previous secret, rotating out")); // still accepted
/// let ticket = tickets.mint("alice", &Binding::new().path("/events")).unwrap();
/// let claims = tickets.verify(ticket.as_str(), "/events", None).unwrap();
/// assert_eq!(claims.principal, "alice");
/// assert!(tickets.verify(ticket.as_str(), "/other", None).is_err());
/// ```
#[derive(Clone)]
pub struct Tickets {
    signing: Key,
    verifying: Arc<[Key]>,
    ttl: Duration,
    skew: Duration,
    clock: Clock,
}

impl fmt::Debug for Tickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tickets")
            .field("signing", &self.signing)
            .field("verifying", &self.verifying)
            .field("ttl", &self.ttl)
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

impl Tickets {
    /// Signs with `signing` (which also verifies), 30 s lifetime, 5 s skew, the system clock.
    pub fn new(signing: Key) -> Self {
        Self {
            verifying: Arc::new([signing.clone()]),
            signing,
            ttl: DEFAULT_TTL,
            skew: DEFAULT_CLOCK_SKEW,
            clock: Arc::new(system_clock),
        }
    }

    /// Also accepts tickets signed with `key` (a key being rotated out). Each call adds one;
    /// a key with the same id as one already present replaces it.
    #[must_use]
    pub fn verify_with(mut self, key: Key) -> Self {
        let mut keys: Vec<Key> = self
            .verifying
            .iter()
            .filter(|k| k.id != key.id)
            .cloned()
            .collect();
        keys.push(key);
        self.verifying = keys.into();
        self
    }

    /// How long a minted ticket is valid. Default 30 s. Keep it short: a ticket only has to
    /// survive the client's next request.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How far past expiry a ticket is still accepted, for clocks that differ between
    /// instances. Default 5 s.
    #[must_use]
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Replaces the clock (seconds since the Unix epoch); for tests.
    #[must_use]
    pub fn clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub(crate) fn now(&self) -> u64 {
        (self.clock)()
    }

    pub(crate) fn skew_secs(&self) -> u64 {
        self.skew.as_secs()
    }

    /// Mints a ticket for `principal`, bound as `binding` says.
    ///
    /// # Errors
    ///
    /// [`TicketError::BadPrincipal`] for an empty principal or one over
    /// [`MAX_PRINCIPAL_LEN`] bytes; [`TicketError::GrantTooLong`] for a topic grant over
    /// [`MAX_GRANT_LEN`] bytes.
    ///
    /// # Panics
    ///
    /// When the operating system has no randomness to give.
    pub fn mint(&self, principal: &str, binding: &Binding) -> Result<Ticket, TicketError> {
        if principal.is_empty() || principal.len() > MAX_PRINCIPAL_LEN {
            return Err(TicketError::BadPrincipal);
        }
        let grant_len = binding
            .topics
            .as_ref()
            .map_or(0, |g| 1 + g.patterns().map(|p| p.len() + 1).sum::<usize>());
        if grant_len > MAX_GRANT_LEN + 1 {
            return Err(TicketError::GrantTooLong);
        }
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system provides randomness");
        let expires_at = self.now().saturating_add(self.ttl.as_secs());

        let mut buf = Vec::with_capacity(
            HEADER_LEN + 2 * BINDING_LEN + grant_len + principal.len() + MAC_LEN,
        );
        buf.push(VERSION);
        buf.push(self.signing.id);
        buf.extend_from_slice(&expires_at.to_be_bytes());
        buf.extend_from_slice(&nonce);
        let flags = binding.path.as_ref().map_or(0, |_| FLAG_PATH)
            | binding.origin.as_ref().map_or(0, |_| FLAG_ORIGIN)
            | binding.topics.as_ref().map_or(0, |_| FLAG_TOPICS);
        buf.push(flags);
        if let Some(path) = &binding.path {
            buf.extend_from_slice(&bind_hash(path));
        }
        if let Some(origin) = &binding.origin {
            buf.extend_from_slice(&bind_hash(&origin.to_ascii_lowercase()));
        }
        if let Some(grant) = &binding.topics {
            // Patterns are at most 65 bytes and at most 32 of them (checked by `TopicGrant`).
            buf.push(grant.patterns().len() as u8);
            for pattern in grant.patterns() {
                buf.push(pattern.len() as u8);
                buf.extend_from_slice(pattern.as_bytes());
            }
        }
        buf.extend_from_slice(&(principal.len() as u16).to_be_bytes());
        buf.extend_from_slice(principal.as_bytes());
        let mut mac = self.signing.mac();
        mac.update(&buf);
        buf.extend_from_slice(&mac.finalize().into_bytes()[..MAC_LEN]);
        Ok(Ticket {
            value: URL_SAFE_NO_PAD.encode(&buf),
            expires_in: self.ttl,
        })
    }

    /// Checks a ticket's encoding, signature, expiry and bindings against the request's `path`
    /// and `Origin`. Single use is the [`TicketStore`](super::TicketStore)'s job.
    ///
    /// # Errors
    ///
    /// Why the ticket is refused.
    pub fn verify(
        &self,
        ticket: &str,
        path: &str,
        origin: Option<&str>,
    ) -> Result<Claims, TicketError> {
        // A ticket is short; refuse long input before decoding it.
        let max = (HEADER_LEN + 2 * BINDING_LEN + MAX_GRANT_LEN + 1 + MAX_PRINCIPAL_LEN + MAC_LEN)
            * 4
            / 3
            + 4;
        if ticket.len() > max {
            return Err(TicketError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(ticket)
            .map_err(|_| TicketError::Malformed)?;
        if bytes.len() < HEADER_LEN + MAC_LEN || bytes[0] != VERSION {
            return Err(TicketError::Malformed);
        }
        let key = self
            .verifying
            .iter()
            .find(|k| k.id == bytes[1])
            .ok_or(TicketError::UnknownKey)?;
        let (signed, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut mac = key.mac();
        mac.update(signed);
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(tag)
            .map_err(|_| TicketError::BadSignature)?;

        let expires_at = u64::from_be_bytes(signed[2..10].try_into().expect("8 bytes"));
        let nonce: [u8; NONCE_LEN] = signed[10..26].try_into().expect("16 bytes");
        let flags = signed[26];
        let mut rest = &signed[27..];
        let path_hash = if flags & FLAG_PATH != 0 {
            Some(take(&mut rest, BINDING_LEN)?)
        } else {
            None
        };
        let origin_hash = if flags & FLAG_ORIGIN != 0 {
            Some(take(&mut rest, BINDING_LEN)?)
        } else {
            None
        };
        let topics = if flags & FLAG_TOPICS != 0 {
            let count = take(&mut rest, 1)?[0];
            let mut patterns = Vec::with_capacity(count.into());
            for _ in 0..count {
                let len = take(&mut rest, 1)?[0];
                let pattern = std::str::from_utf8(take(&mut rest, len.into())?)
                    .map_err(|_| TicketError::Malformed)?;
                patterns.push(pattern.to_owned());
            }
            Some(TopicGrant::new(patterns).map_err(|_| TicketError::Malformed)?)
        } else {
            None
        };
        let len = u16::from_be_bytes(take(&mut rest, 2)?.try_into().expect("2 bytes")) as usize;
        let principal =
            std::str::from_utf8(take(&mut rest, len)?).map_err(|_| TicketError::Malformed)?;
        if !rest.is_empty() {
            return Err(TicketError::Malformed);
        }

        if self.now() > expires_at.saturating_add(self.skew.as_secs()) {
            return Err(TicketError::Expired);
        }
        if path_hash.is_some_and(|h| h != bind_hash(path)) {
            return Err(TicketError::WrongPath);
        }
        if let Some(h) = origin_hash {
            let matches = origin.is_some_and(|o| h == bind_hash(&o.to_ascii_lowercase()));
            if !matches {
                return Err(TicketError::WrongOrigin);
            }
        }
        Ok(Claims {
            principal: principal.to_owned(),
            expires_at,
            nonce,
            topics,
        })
    }
}

/// Splits `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], TicketError> {
    if rest.len() < n {
        return Err(TicketError::Malformed);
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn bind_hash(value: &str) -> [u8; BINDING_LEN] {
    let digest = Sha256::digest(value.as_bytes());
    digest[..BINDING_LEN].try_into().expect("8 bytes")
}

#[cfg(test)]
mod tests;
