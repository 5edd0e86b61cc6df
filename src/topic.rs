//! Topic names and topic grants: the rules every topic a client asks for must follow, and
//! [`TopicGrant`], the topics a principal may subscribe to (placed in request extensions by
//! [`auth_ticket`](crate::auth_ticket) from a ticket that carries them, or by your own layer).
//!
//! # Topic names
//!
//! A topic name is 1 to [`MAX_TOPIC_LEN`] (64) bytes of ASCII letters, digits, `-`, `_`, `.`
//! and `:`. Names are case-sensitive. The set leaves out `@` (it separates an event's name
//! from its topic on SSE), `*` (grant patterns), `/`, spaces and anything a URL would have to
//! escape, so a topic reads the same in a query string, a log line, a Redis key and a NATS
//! subject.
//!
//! ```
//! use tower_push::topic::{check_topic, TopicError};
//!
//! assert!(check_topic("room.lobby").is_ok());
//! assert!(check_topic("user:alice").is_ok());
//! assert_eq!(check_topic(""), Err(TopicError::Empty));
//! assert_eq!(check_topic("a b"), Err(TopicError::BadChar(' ')));
//! assert_eq!(check_topic(&"x".repeat(65)), Err(TopicError::TooLong(65)));
//! ```
//!
//! # Grants
//!
//! A [`TopicGrant`] is a list of patterns: a topic name matches itself, and a pattern ending
//! in `*` matches every topic that starts with what comes before the `*` (`room.*` matches
//! `room.lobby`; `*` alone matches every topic).
//!
//! ```
//! use tower_push::topic::TopicGrant;
//!
//! let grant = TopicGrant::new(["room.*", "user:alice"]).unwrap();
//! assert!(grant.allows("room.lobby"));
//! assert!(grant.allows("user:alice"));
//! assert!(!grant.allows("user:bob"));
//! ```

use std::{fmt, sync::Arc};

/// The longest topic name, in bytes: 64.
pub const MAX_TOPIC_LEN: usize = 64;

/// The most patterns a [`TopicGrant`] holds: 32.
pub const MAX_GRANT_PATTERNS: usize = 32;

/// Why a topic name (or a grant pattern) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`] bytes (the length it has).
    TooLong(usize),
    /// The name holds a character outside the documented set (the first one).
    BadChar(char),
    /// A grant holds more than [`MAX_GRANT_PATTERNS`] patterns.
    TooManyPatterns,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => f.write_str("topic name is empty"),
            TopicError::TooLong(len) => {
                write!(f, "topic name is {len} bytes long; at most {MAX_TOPIC_LEN}")
            }
            TopicError::BadChar(c) => write!(
                f,
                "topic name holds {c:?}; only ASCII letters, digits, '-', '_', '.' and ':' are allowed"
            ),
            TopicError::TooManyPatterns => {
                write!(f, "a grant holds at most {MAX_GRANT_PATTERNS} patterns")
            }
        }
    }
}

impl std::error::Error for TopicError {}

/// Whether `b` may appear in a topic name.
pub(crate) fn is_topic_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
}

/// Checks a topic name against the [documented rules](self#topic-names).
///
/// # Errors
///
/// Why the name is refused.
pub fn check_topic(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !c.is_ascii() || !is_topic_byte(*c as u8))
    {
        return Err(TopicError::BadChar(c));
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(name.len()));
    }
    Ok(())
}

fn check_pattern(pattern: &str) -> Result<(), TopicError> {
    match pattern.strip_suffix('*') {
        Some("") => Ok(()),
        Some(prefix) => check_topic(prefix),
        None => check_topic(pattern),
    }
}

/// The topics a principal may subscribe to: exact names and `prefix*` patterns. See the
/// [module docs](self#grants).
///
/// [`auth_ticket`](crate::auth_ticket) places one in the request extensions when the ticket
/// carries topics; [`hub::Subscribe`](crate::hub::Subscribe), [`hub::Topics`](crate::hub::Topics)
/// and [`hub::check_access`](crate::hub::check_access) refuse a topic it does not allow with
/// `403 Forbidden`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TopicGrant {
    patterns: Arc<[Box<str>]>,
}

impl TopicGrant {
    /// A grant of `patterns`.
    ///
    /// # Errors
    ///
    /// When a pattern (without its trailing `*`) is not a valid topic name, or there are more
    /// than [`MAX_GRANT_PATTERNS`].
    pub fn new<I>(patterns: I) -> Result<Self, TopicError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let patterns: Vec<Box<str>> = patterns
            .into_iter()
            .map(|p| p.into().into_boxed_str())
            .collect();
        if patterns.len() > MAX_GRANT_PATTERNS {
            return Err(TopicError::TooManyPatterns);
        }
        for pattern in &patterns {
            check_pattern(pattern)?;
        }
        Ok(Self {
            patterns: patterns.into(),
        })
    }

    /// Whether `topic` matches one of the patterns.
    pub fn allows(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => **p == *topic,
        })
    }

    /// The patterns, in the order given.
    pub fn patterns(&self) -> impl ExactSizeIterator<Item = &str> {
        self.patterns.iter().map(|p| &**p)
    }
}

impl fmt::Debug for TopicGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.patterns()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_set() {
        for ok in [
            "a",
            "room.lobby",
            "user:alice",
            "A-Z_0.9:x",
            &"x".repeat(64),
        ] {
            assert_eq!(check_topic(ok), Ok(()), "{ok}");
        }
        for (bad, error) in [
            ("", TopicError::Empty),
            ("a@b", TopicError::BadChar('@')),
            ("a*", TopicError::BadChar('*')),
            ("a/b", TopicError::BadChar('/')),
            ("é", TopicError::BadChar('é')),
            ("a\nb", TopicError::BadChar('\n')),
        ] {
            assert_eq!(check_topic(bad), Err(error), "{bad:?}");
        }
        assert_eq!(check_topic(&"x".repeat(65)), Err(TopicError::TooLong(65)));
    }

    #[test]
    fn grants_match_names_and_prefixes() {
        let grant = TopicGrant::new(["room.*", "dm", "*"].into_iter().take(2)).unwrap();
        assert!(grant.allows("room."));
        assert!(grant.allows("room.x"));
        assert!(grant.allows("dm"));
        assert!(!grant.allows("dm2"));
        assert!(!grant.allows("roo"));
        assert!(TopicGrant::new(["*"]).unwrap().allows("anything"));
        assert!(TopicGrant::new(Vec::<String>::new())
            .map(|g| !g.allows("x"))
            .unwrap());
        assert_eq!(TopicGrant::new(["a*b"]), Err(TopicError::BadChar('*')));
        assert_eq!(
            TopicGrant::new(vec!["a"; 33]),
            Err(TopicError::TooManyPatterns)
        );
    }
}
