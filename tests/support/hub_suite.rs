//! The behavioural suite every `Hub` backend must pass. Each test takes a factory that makes
//! a fresh hub (a fresh topic namespace for shared backends) and returns it.

use super::within;
use std::{collections::HashSet, sync::Arc, time::Duration};
use tokio_stream::StreamExt as _;
use tower_push::{
    hub::{Hub, RESET_EVENT},
    Event,
};

pub async fn next<S: tokio_stream::Stream<Item = Event> + Unpin>(sub: &mut S) -> Event {
    within(sub.next()).await.expect("subscription ended")
}

/// Subscribing from `None` starts with the current position; live events follow.
pub async fn starts_with_position_then_live<H: Hub>(hub: H) {
    let last = hub.publish("t", Event::new().data("old")).await.unwrap();
    let mut sub = hub.subscribe("t", tower_push::cursor::StartAt::Now);
    let position = next(&mut sub).await;
    assert!(position.is_cursor_only(), "{position:?}");
    assert_eq!(position.get_id(), Some(last.as_str()));
    let cursor = hub.publish("t", Event::new().data("new")).await.unwrap();
    let live = next(&mut sub).await;
    assert_eq!(live.get_data(), Some("new"));
    assert_eq!(live.get_id(), Some(cursor.as_str()));
}

/// Resuming replays exactly what came after the cursor, then continues live.
pub async fn resume_replays_exactly_the_missed_events<H: Hub>(hub: H) {
    let mut cursors = Vec::new();
    for i in 0..15 {
        cursors.push(
            hub.publish("t", Event::new().data(i.to_string()))
                .await
                .unwrap(),
        );
    }
    let mut sub = hub.subscribe(
        "t",
        tower_push::cursor::StartAt::parse(Some(cursors[4].as_str())).unwrap(),
    );
    assert_eq!(next(&mut sub).await.get_id(), Some(cursors[4].as_str()));
    for (i, cursor) in cursors.iter().enumerate().skip(5) {
        let event = next(&mut sub).await;
        assert_eq!(event.get_data(), Some(&*i.to_string()));
        assert_eq!(event.get_id(), Some(cursor.as_str()));
    }
    hub.publish("t", Event::new().data("live")).await.unwrap();
    assert_eq!(next(&mut sub).await.get_data(), Some("live"));
}

/// A cursor that cannot be honoured (another hub's, or one that does not place the topic)
/// starts with a `reset` carrying the current cursor; what is not a cursor at all never
/// reaches a hub (refused at the edge).
pub async fn foreign_cursor_resets<H: Hub>(hub: H, foreign: &str) {
    use tower_push::cursor::StartAt;
    for not_a_cursor in ["not a cursor", "", "_x", "abc", "abc-", "abc-1-2", "a.b-c"] {
        assert!(
            StartAt::parse(Some(not_a_cursor)).is_err(),
            "{not_a_cursor:?}"
        );
    }
    let mut current = hub.publish("t", Event::new().data("x")).await.unwrap();
    for from in [StartAt::parse(Some(foreign)).unwrap(), StartAt::Unplaced] {
        let mut sub = hub.subscribe("t", from);
        let reset = next(&mut sub).await;
        assert_eq!(reset.get_event(), Some(RESET_EVENT), "from {from:?}");
        assert_eq!(reset.get_id(), Some(current.as_str()));
        let data: serde_json::Value = serde_json::from_str(reset.get_data().unwrap()).unwrap();
        assert_eq!(data["cursor"], current.as_str());
        current = hub.publish("t", Event::new().data("after")).await.unwrap();
        assert_eq!(next(&mut sub).await.get_data(), Some("after"));
    }
}

/// Several publishers, many subscribers joining at random moments: each subscriber's
/// sequence is gap-free and duplicate-free from its start. Bounded: 4 × 300 events.
pub async fn concurrent_publishers_and_joining_subscribers<H: Hub>(hub: H) {
    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: usize = 300;
    const SUBSCRIBERS: usize = 40;
    let start = hub.publish("t", Event::new().data("start")).await.unwrap();

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let hub = hub.clone();
            tokio::spawn(async move {
                for i in 0..PER_PUBLISHER {
                    hub.publish("t", Event::new().data(format!("{p}-{i}")))
                        .await
                        .unwrap();
                    if i % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();

    let total = PUBLISHERS * PER_PUBLISHER;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|s| {
            let hub = hub.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                // Join at a pseudo-random moment.
                for _ in 0..(s * 7919) % 13 {
                    tokio::task::yield_now().await;
                }
                let mut sub = hub.subscribe("t", tower_push::cursor::StartAt::Now);
                let position = next(&mut sub).await;
                let mut ids = vec![position.get_id().unwrap().to_owned()];
                let mut datas = Vec::new();
                // Read until the publishers are done: the last event is "done".
                loop {
                    let event = next(&mut sub).await;
                    if event.get_data() == Some("done") {
                        break;
                    }
                    ids.push(event.get_id().unwrap().to_owned());
                    datas.push(event.get_data().unwrap().to_owned());
                }
                seen.lock().unwrap().push((ids, datas));
            })
        })
        .collect();

    for p in publishers {
        within(p).await.unwrap();
    }
    hub.publish("t", Event::new().data("done")).await.unwrap();
    for s in subscribers {
        within(s).await.unwrap();
    }

    // The reference order: everything after `start`, read from history.
    let mut reference = hub.subscribe(
        "t",
        tower_push::cursor::StartAt::parse(Some(start.as_str())).unwrap(),
    );
    next(&mut reference).await;
    let mut order = Vec::new();
    for _ in 0..total {
        let event = next(&mut reference).await;
        order.push((
            event.get_id().unwrap().to_owned(),
            event.get_data().unwrap().to_owned(),
        ));
    }
    let all: HashSet<_> = order.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(
        all.len(),
        total,
        "every published event is in the history once"
    );

    for (ids, datas) in seen.lock().unwrap().iter() {
        // Where the subscriber started: right after its position cursor.
        let begin = if ids[0] == start.as_str() {
            0
        } else {
            order
                .iter()
                .position(|(id, _)| *id == ids[0])
                .map_or(0, |i| i + 1)
        };
        let expected: Vec<_> = order[begin..].iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(
            datas, &expected,
            "gap-free and duplicate-free from its start"
        );
    }
}

/// Gives publishers time to run when a test needs a settled state.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Opens a multi-topic subscription to `topics` through [`Topics`], after `cursor`.
pub async fn topics<H: Hub>(
    hub: &H,
    topics: &[&str],
    cursor: Option<&str>,
) -> tower_push::hub::TopicsSubscription<H::Subscription> {
    use tower::ServiceExt as _;
    let mut req = http::Request::get("/").body(()).unwrap();
    if let Some(cursor) = cursor {
        req.extensions_mut()
            .insert(tower_push::cursor::LastEventId::new(cursor));
    }
    let service = tower_push::hub::Topics::fixed(hub.clone(), topics.iter().copied());
    service.oneshot(req).await.expect("topics accepted")
}

/// The next `n` events with data: (topic, data, id).
pub async fn read<S: tokio_stream::Stream<Item = Event> + Unpin>(
    sub: &mut S,
    n: usize,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let e = next(sub).await;
        if e.is_cursor_only() {
            continue;
        }
        out.push((
            e.get_topic().unwrap_or("").to_owned(),
            e.get_data().unwrap_or("").to_owned(),
            e.get_id().unwrap().to_owned(),
        ));
    }
    out
}

/// Several topics on one subscription: the last id resumes each exactly, whatever the
/// interleaving; a topic the cursor does not name (added on resume) resets to now.
pub async fn several_topics_resume_exactly<H: Hub>(hub: H) {
    let mut sub = topics(&hub, &["a", "b"], None).await;
    let position = next(&mut sub).await;
    assert!(position.is_cursor_only(), "{position:?}");
    settle().await;
    hub.publish("a", Event::new().data("a1")).await.unwrap();
    hub.publish("b", Event::new().data("b1")).await.unwrap();
    let first = read(&mut sub, 2).await;
    let mut seen: Vec<_> = first
        .iter()
        .map(|(t, d, _)| (t.clone(), d.clone()))
        .collect();
    seen.sort();
    assert_eq!(seen, [("a".into(), "a1".into()), ("b".into(), "b1".into())]);
    // The id of the event read last covers both topics.
    let last = first[1].2.clone();
    drop(sub);

    for (topic, data) in [
        ("b", "b2"),
        ("a", "a2"),
        ("b", "b3"),
        ("c", "c1"),
        ("a", "a3"),
    ] {
        hub.publish(topic, Event::new().data(data)).await.unwrap();
    }
    let mut sub = topics(&hub, &["a", "b", "c"], Some(&last)).await;
    // c is not in the cursor: it cannot be placed (an entry lost, or a topic added), so it
    // resets to now and the client knows.
    let reset = next(&mut sub).await;
    assert_eq!(reset.get_event(), Some(RESET_EVENT), "{reset:?}");
    assert_eq!(reset.get_topic(), Some("c"));
    let got = read(&mut sub, 4).await;
    let per = |topic: &str| -> Vec<String> {
        got.iter()
            .filter(|(t, _, _)| t == topic)
            .map(|(_, d, _)| d.clone())
            .collect()
    };
    assert_eq!(per("a"), ["a2", "a3"]);
    assert_eq!(per("b"), ["b2", "b3"]);
    assert_eq!(
        per("c"),
        Vec::<String>::new(),
        "c was not in the cursor: it starts now, after its reset"
    );
    settle().await;
    hub.publish("c", Event::new().data("c2")).await.unwrap();
    hub.publish("a", Event::new().data("a4")).await.unwrap();
    let live = read(&mut sub, 2).await;
    assert_eq!(
        live.iter()
            .map(|(t, d, _)| format!("{t}:{d}"))
            .collect::<Vec<_>>()
            .len(),
        2
    );
    assert!(
        live.iter().any(|(t, d, _)| t == "c" && d == "c2"),
        "{live:?}"
    );
    assert!(
        live.iter().any(|(t, d, _)| t == "a" && d == "a4"),
        "{live:?}"
    );
}

/// A topic whose history no longer reaches the cursor resets alone; the other resumes. The
/// hub must keep fewer than `overflow` events per topic.
pub async fn a_trimmed_topic_resets_alone<H: Hub>(hub: H, overflow: usize) {
    let mut sub = topics(&hub, &["a", "b"], None).await;
    next(&mut sub).await;
    settle().await;
    hub.publish("a", Event::new().data("a0")).await.unwrap();
    let last = read(&mut sub, 1).await[0].2.clone();
    drop(sub);
    for i in 0..overflow {
        hub.publish("a", Event::new().data(format!("a{i}")))
            .await
            .unwrap();
    }
    hub.publish("b", Event::new().data("b1")).await.unwrap();
    let mut sub = topics(&hub, &["a", "b"], Some(&last)).await;
    let reset = next(&mut sub).await;
    assert_eq!(reset.get_event(), Some(RESET_EVENT), "{reset:?}");
    assert_eq!(reset.get_topic(), Some("a"));
    let data: serde_json::Value = serde_json::from_str(reset.get_data().unwrap()).unwrap();
    assert_eq!(data["reason"], "expired");
    assert_eq!(data["topic"], "a");
    let got = read(&mut sub, 1).await;
    assert_eq!((got[0].0.as_str(), got[0].1.as_str()), ("b", "b1"));
}

/// A small deterministic generator for the damage below (xorshift64*), so a failure names
/// its seed and reruns exactly.
struct Damage(u64);

impl Damage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// `cursor` damaged once: cut short, a character inserted, removed or replaced, or its
    /// trailing number replaced by a huge one, signed, or emptied.
    fn damage(&mut self, cursor: &str) -> String {
        const CHARS: &[u8] = b"0123456789-._+ xZ!";
        let mut bytes = cursor.as_bytes().to_vec();
        let digits = bytes
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let tail = bytes.len() - digits;
        match self.below(7) {
            0 => bytes.truncate(self.below(bytes.len())),
            1 => {
                let at = self.below(bytes.len() + 1);
                bytes.insert(at, CHARS[self.below(CHARS.len())]);
            }
            2 if !bytes.is_empty() => {
                bytes.remove(self.below(bytes.len()));
            }
            3 if !bytes.is_empty() => {
                let at = self.below(bytes.len());
                bytes[at] = CHARS[self.below(CHARS.len())];
            }
            4 => {
                bytes.truncate(tail);
                bytes.extend_from_slice(b"99999999999999");
            }
            5 => bytes.insert(tail, b'+'),
            _ => bytes.truncate(tail),
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Damaged cursors (randomly cut, altered, pushed far ahead, signed): a subscription from
/// one either starts with a `reset` (the hub cannot place it), or places it and then
/// delivers a suffix of the topic's events, in order, followed by what is published next. It
/// never swallows new events (a cursor ahead of the topic) nor skips to a point without
/// saying so; one that is no longer a cursor at all is refused before the hub. `cases`
/// damaged cursors from `seed`; returns how many were not placed (reset or refused).
pub async fn damaged_cursors_reset_or_resume_exactly<H: Hub>(
    hub: H,
    seed: u64,
    cases: usize,
) -> usize {
    let mut published = Vec::new();
    for i in 0..3 {
        let cursor = hub
            .publish("t", Event::new().data(format!("e{i}")))
            .await
            .unwrap();
        published.push((format!("e{i}"), cursor.as_str().to_owned()));
    }
    let mut damage = Damage(seed | 1);
    let mut resets = 0;
    for case in 0..cases {
        let (_, base) = &published[damage.below(published.len())];
        let from = damage.damage(base);
        if published.iter().any(|(_, c)| *c == from) {
            continue; // undamaged after all
        }
        let Ok(start) = tower_push::cursor::StartAt::parse(Some(&from)) else {
            resets += 1;
            continue;
        };
        let mut sub = hub.subscribe("t", start);
        let first = next(&mut sub).await;
        let marker = format!("live{case}");
        if first.get_event() == Some(RESET_EVENT) {
            resets += 1;
            let cursor = hub
                .publish("t", Event::new().data(marker.clone()))
                .await
                .unwrap();
            published.push((marker.clone(), cursor.as_str().to_owned()));
            assert_eq!(
                next(&mut sub).await.get_data(),
                Some(marker.as_str()),
                "seed {seed} case {case}: {from:?}"
            );
            continue;
        }
        assert!(
            first.is_cursor_only(),
            "seed {seed} case {case}: {from:?} -> {first:?}"
        );
        let cursor = hub
            .publish("t", Event::new().data(marker.clone()))
            .await
            .unwrap();
        let mut got = Vec::new();
        loop {
            let event = next(&mut sub).await;
            let data = event.get_data().unwrap_or("").to_owned();
            if data == marker {
                break;
            }
            got.push(data);
        }
        let all: Vec<String> = published.iter().map(|(d, _)| d.clone()).collect();
        assert!(
            all.ends_with(&got),
            "seed {seed} case {case}: {from:?} placed, then {got:?} is not a suffix of {all:?}"
        );
        published.push((marker, cursor.as_str().to_owned()));
    }
    resets
}

/// A composite cursor that lost an entry, or gained one the hub never issued, resets the
/// topics it cannot place and resumes the others exactly.
pub async fn a_damaged_composite_resets_what_it_cannot_place<H: Hub>(hub: H) {
    let mut sub = topics(&hub, &["a", "b"], None).await;
    next(&mut sub).await;
    settle().await;
    hub.publish("a", Event::new().data("a1")).await.unwrap();
    hub.publish("b", Event::new().data("b1")).await.unwrap();
    let last = read(&mut sub, 2).await[1].2.clone();
    drop(sub);
    hub.publish("a", Event::new().data("a2")).await.unwrap();
    hub.publish("b", Event::new().data("b2")).await.unwrap();
    // The composite is `_` + entries joined by `_`: drop the last entry.
    let cut = &last[..last.rfind('_').unwrap()];
    assert!(cut.len() > 1, "{last}");
    let mut sub = topics(&hub, &["a", "b"], Some(cut)).await;
    let reset = next(&mut sub).await;
    assert_eq!(reset.get_event(), Some(RESET_EVENT), "{cut}: {reset:?}");
    let lost = reset.get_topic().unwrap().to_owned();
    let kept = if lost == "a" { "b" } else { "a" };
    let got = read(&mut sub, 1).await;
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str()),
        (kept, &*format!("{kept}2"))
    );
    drop(sub);
    // An entry whose cursor is not a cursor of its topic: that topic resets too.
    let damaged = format!("{last}x");
    let mut sub = topics(&hub, &["a", "b"], Some(&damaged)).await;
    let reset = next(&mut sub).await;
    assert_eq!(reset.get_event(), Some(RESET_EVENT), "{damaged}: {reset:?}");
}
