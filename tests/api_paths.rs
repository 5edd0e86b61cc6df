#![cfg(all(
    feature = "sse",
    feature = "long-poll",
    feature = "negotiate",
    feature = "hub",
    feature = "ws",
    feature = "client",
    feature = "heartbeat",
    feature = "origin"
))]
//! The canonical public paths: each item has one (the crate root re-exports what a user
//! needs daily, modules own the rest; CHANGELOG lists the second paths that went). The rule
//! that no module re-exports another's items is checked in `tests/architecture.rs`.

use std::time::Duration;

#[tokio::test]
async fn each_item_has_its_one_path() {
    // The daily items, at the root.
    let _: Option<tower_push::BoxError> = None;
    let push: tower_push::Push = tower_push::Event::new().data("x").into();
    fn takes_into_push<T: tower_push::IntoPush>(_: T) {}
    takes_into_push(push);
    // Cursors and the Last-Event-ID value live in `cursor`; `last_event_id` holds the layer.
    let id = tower_push::cursor::LastEventId::new("c");
    assert_eq!(id.as_str(), "c");
    assert_eq!(tower_push::cursor::LAST_EVENT_ID, "last-event-id");
    assert_eq!(tower_push::cursor::DEFAULT_QUERY_PARAM, "lastEventId");
    assert_eq!(tower_push::cursor::DEFAULT_MAX_LEN, 512);
    let _ = tower_push::last_event_id::LastEventIdLayer::new();
    let cursor = tower_push::cursor::Cursor::new("e.1");
    assert_eq!(cursor.as_str(), "e.1");
    assert_eq!(tower_push::hub::RESET_EVENT, "reset");
    // Who a connection belongs to, and which topics it may read.
    let _ = tower_push::principal::Principal::new("alice");
    let _ = tower_push::topic::TopicGrant::new(["room"]);
    // `ws` items that moved out of `ws/mod.rs`.
    assert_eq!(tower_push::ws::close_code::RESTART, 1012);
    assert_eq!(tower_push::ws::DEFAULT_MAX_MESSAGE_SIZE, 64 * 1024);
    assert_eq!(
        tower_push::ws::DEFAULT_PONG_TIMEOUT,
        Duration::from_secs(10)
    );
    assert_eq!(
        tower_push::ws::DEFAULT_CLOSE_TIMEOUT,
        Duration::from_secs(5)
    );
    let _ = tower_push::ws::Subprotocol("chat".into());
    let req = http::Request::get("/").body(()).unwrap();
    assert!(!tower_push::ws::is_upgrade_request(&req));
    // `long_poll` constants, `client`, `stream` and the guard types.
    assert_eq!(
        tower_push::long_poll::DEFAULT_TIMEOUT,
        Duration::from_secs(25)
    );
    assert_eq!(tower_push::long_poll::DEFAULT_MAX_EVENTS, 100);
    assert_eq!(tower_push::long_poll::DEFAULT_MAX_BYTES, 64 * 1024);
    assert!(tower_push::client::SCRIPT.contains("TowerPush"));
    let _ = tower_push::client::ClientScript;
    use tower_push::stream::PushStreamExt as _;
    let _ = tokio_stream::iter([tower_push::Event::new()]).heartbeat(Duration::from_secs(1));
    fn guard_types<F, B>(
        _: Option<tower_push::GuardResponseFuture<F>>,
        _: Option<tower_push::body::GuardBody<B>>,
    ) {
    }
    guard_types::<(), ()>(None, None);
}
