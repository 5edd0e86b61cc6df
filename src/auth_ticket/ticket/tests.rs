//! Unit tests of minting and verification.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

fn tickets() -> Tickets {
    Tickets::new(Key::new(1, b"0123456789abcdef0123456789abcdef"))
}

#[test]
fn topic_grants_are_signed_into_the_ticket() {
    let grant = TopicGrant::new(["room.*", "user:alice"]).unwrap();
    let t = tickets()
        .mint("alice", &Binding::new().topics(grant.clone()))
        .unwrap();
    let claims = tickets().verify(t.as_str(), "/", None).unwrap();
    assert_eq!(claims.topics, Some(grant));
    let plain = tickets().mint("alice", &Binding::new()).unwrap();
    assert_eq!(
        tickets().verify(plain.as_str(), "/", None).unwrap().topics,
        None
    );
    let huge = TopicGrant::new((0..32).map(|i| format!("{i:0>60}"))).unwrap();
    assert_eq!(
        tickets()
            .mint("alice", &Binding::new().topics(huge))
            .unwrap_err(),
        TicketError::GrantTooLong
    );
    let most = TopicGrant::new((0..8).map(|i| format!("{i:0>63}"))).unwrap();
    let t = tickets()
        .mint("a", &Binding::new().topics(most.clone()))
        .unwrap();
    assert_eq!(
        tickets().verify(t.as_str(), "/", None).unwrap().topics,
        Some(most)
    );
}

#[test]
fn round_trip_and_compact() {
    let t = tickets().mint("alice", &Binding::new()).unwrap();
    assert!(t.as_str().len() < 100, "{}", t.as_str().len());
    assert!(t
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let claims = tickets().verify(t.as_str(), "/any", None).unwrap();
    assert_eq!(claims.principal, "alice");
    assert_ne!(
        tickets().mint("alice", &Binding::new()).unwrap().as_str(),
        t.as_str(),
        "nonces differ"
    );
}

#[test]
fn refusals_have_the_right_reason() {
    let t = tickets()
        .mint(
            "alice",
            &Binding::new().path("/a").origin("https://A.example"),
        )
        .unwrap();
    let v = tickets();
    assert_eq!(
        v.verify(t.as_str(), "/a", Some("https://a.example"))
            .unwrap()
            .principal,
        "alice"
    );
    assert_eq!(
        v.verify(t.as_str(), "/b", Some("https://a.example")),
        Err(TicketError::WrongPath)
    );
    assert_eq!(
        v.verify(t.as_str(), "/a", Some("https://b.example")),
        Err(TicketError::WrongOrigin)
    );
    assert_eq!(
        v.verify(t.as_str(), "/a", None),
        Err(TicketError::WrongOrigin)
    );
    assert_eq!(
        v.verify("not base64!", "/a", None),
        Err(TicketError::Malformed)
    );
    assert_eq!(
        v.verify(&t.as_str()[..20], "/a", None),
        Err(TicketError::Malformed)
    );
    let other = Tickets::new(Key::new(1, b"another secret, another secret!!"))
        .mint("alice", &Binding::new())
        .unwrap();
    assert_eq!(
        v.verify(other.as_str(), "/a", None),
        Err(TicketError::BadSignature)
    );
    let unknown = Tickets::new(Key::new(9, b"x"))
        .mint("alice", &Binding::new())
        .unwrap();
    assert_eq!(
        v.verify(unknown.as_str(), "/a", None),
        Err(TicketError::UnknownKey)
    );
    assert_eq!(
        tickets().mint("", &Binding::new()).unwrap_err(),
        TicketError::BadPrincipal
    );
    assert!(format!("{t:?}").contains("redacted") && !format!("{t:?}").contains(t.as_str()));
}

#[test]
fn expiry_honours_ttl_and_skew() {
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock = {
        let now = now.clone();
        move || now.load(Ordering::Relaxed)
    };
    let v = tickets()
        .ttl(Duration::from_secs(30))
        .clock_skew(Duration::from_secs(5))
        .clock(clock);
    let t = v.mint("alice", &Binding::new()).unwrap();
    now.store(1_000_035, Ordering::Relaxed);
    assert!(v.verify(t.as_str(), "/", None).is_ok(), "within ttl + skew");
    now.store(1_000_036, Ordering::Relaxed);
    assert_eq!(v.verify(t.as_str(), "/", None), Err(TicketError::Expired));
}
