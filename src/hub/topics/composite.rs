//! The composite cursor of a multi-topic subscription: every topic's own cursor, each behind
//! a short tag of its topic's name, in one CORS-safe string.
//!
//! `_` + entries joined by `_`; an entry is the topic's 5-character tag followed by the
//! topic's cursor. When a cursor has the same epoch (the part before its first `-` or `.`)
//! as the entry before it, the epoch is left out: `_Ab3xZ9f3a0c1d2e4b5a67-42_Qq81k-7`.
//! Hub cursors never hold `_`, so the string splits back unambiguously.

/// A topic's tag: 5 base-62 characters of a fixed hash of its name (the same in every
/// process), about 30 bits: two topics of one connection share a tag once in ~1.8 × 10⁸
/// pairs, and then neither resumes from the cursor (they [`reset`](crate::hub::RESET_EVENT)).
pub(crate) type Tag = [u8; 5];

const TAG_LEN: usize = 5;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The tag of `topic`: FNV-1a (64-bit), stable across processes and releases.
pub(crate) fn tag(topic: &str) -> Tag {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in topic.as_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut tag = [0u8; TAG_LEN];
    for slot in &mut tag {
        *slot = ALPHABET[(hash % 62) as usize];
        hash /= 62;
    }
    tag
}

/// The epoch part of a hub cursor: up to its first `-` or `.`.
fn epoch(cursor: &str) -> &str {
    cursor.find(['-', '.']).map_or(cursor, |at| &cursor[..at])
}

/// Writes the composite of `entries` (tag, the topic's cursor) into `out`, which it clears.
/// Entries without a cursor yet are left out.
pub(crate) fn encode<'a>(
    entries: impl Iterator<Item = (&'a Tag, Option<&'a str>)>,
    out: &mut String,
) {
    out.clear();
    let mut previous = "";
    for (tag, cursor) in entries {
        let Some(cursor) = cursor else { continue };
        debug_assert!(!cursor.contains('_'), "hub cursor {cursor:?} holds '_'");
        out.push('_');
        // The tag is ASCII by construction.
        out.extend(tag.iter().map(|&b| b as char));
        let this = epoch(cursor);
        if !previous.is_empty() && this == previous && this.len() < cursor.len() {
            out.push_str(&cursor[this.len()..]);
        } else {
            out.push_str(cursor);
        }
        previous = this;
    }
}

/// The entries of a composite: (tag, the topic's cursor). `None` when `s` is not one.
pub(crate) fn decode(s: &str) -> Option<Vec<(Tag, String)>> {
    let body = s.strip_prefix('_')?;
    let mut entries = Vec::new();
    let mut previous = String::new();
    for part in body.split('_') {
        if part.len() <= TAG_LEN || !part.is_char_boundary(TAG_LEN) {
            return None;
        }
        let (tag, cursor) = part.split_at(TAG_LEN);
        let tag: Tag = tag.as_bytes().try_into().ok()?;
        if !tag.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let cursor = if cursor.starts_with(['-', '.']) {
            if previous.is_empty() {
                return None;
            }
            format!("{previous}{cursor}")
        } else {
            cursor.to_owned()
        };
        previous = epoch(&cursor).to_owned();
        entries.push((tag, cursor));
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(entries: &[(&str, &str)]) -> String {
        let tagged: Vec<(Tag, &str)> = entries.iter().map(|(t, c)| (tag(t), *c)).collect();
        let mut out = String::new();
        encode(tagged.iter().map(|(t, c)| (t, Some(*c))), &mut out);
        let back = decode(&out).expect("decodes");
        assert_eq!(back.len(), entries.len());
        for ((t, c), (tag_back, c_back)) in tagged.iter().zip(&back) {
            assert_eq!(t, tag_back);
            assert_eq!(c, c_back);
        }
        out
    }

    #[test]
    fn tags_are_stable_and_distinct() {
        // Fixed values: a change here breaks every cursor clients hold.
        assert_eq!(&tag("room"), b"epMQP");
        assert_ne!(tag("room.a"), tag("room.b"));
    }

    #[test]
    fn shared_epochs_are_written_once() {
        let out = round_trip(&[
            ("a", "9f3a0c1d2e4b5a67-42"),
            ("b", "9f3a0c1d2e4b5a67-7"),
            ("c", "0000000000000001-3"),
        ]);
        assert_eq!(out.matches("9f3a0c1d2e4b5a67").count(), 1, "{out}");
        round_trip(&[
            ("a", "9f3a0c1d2e4b5a67.1700000000000-0"),
            ("b", "9f3a0c1d2e4b5a67.1700000000001-3"),
            ("c", "x"),
            ("d", "x"),
        ]);
    }

    #[test]
    fn eight_memory_topics_fit_in_128_bytes() {
        let entries: Vec<(String, String)> = (0..8)
            .map(|i| {
                (
                    format!("topic-{i}"),
                    format!("9f3a0c1d2e4b5a67-{}", 999_999 + i),
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = entries.iter().map(|(a, b)| (&**a, &**b)).collect();
        let out = round_trip(&refs);
        assert!(out.len() <= 128, "{} bytes: {out}", out.len());
        assert!(out
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
    }

    #[test]
    fn eight_topics_with_todays_epochs_stay_short() {
        let epoch = crate::hub::new_epoch();
        let entries: Vec<(String, String)> = (0..8)
            .map(|i| (format!("t{i}"), format!("{epoch}-{}", 999_990 + i)))
            .collect();
        let refs: Vec<(&str, &str)> = entries.iter().map(|(a, b)| (&**a, &**b)).collect();
        let out = round_trip(&refs);
        assert!(out.len() <= 110, "{} bytes: {out}", out.len());
    }

    #[test]
    fn garbage_is_not_a_composite() {
        for bad in [
            "", "abc", "_", "__", "_abc", "_abcde", "_abcde-1", "_ab!de1", "_abcdé1",
        ] {
            assert!(decode(bad).is_none(), "{bad:?}");
        }
        assert!(decode("9f3a0c1d2e4b5a67-1").is_none());
    }
}
