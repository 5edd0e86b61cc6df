#![cfg(all(
    feature = "sse",
    feature = "negotiate",
    feature = "hub",
    feature = "ws",
    feature = "origin",
    feature = "auth-ticket"
))]
//! Property tests for everything that parses or encodes what crosses the network: the SSE
//! encoding round-trips through the WHATWG parser for arbitrary strings, and cursors,
//! tickets, `Last-Event-ID`, `Accept`, `Origin` and handshake headers never panic on
//! arbitrary input (they answer, or refuse with a 4xx).

mod support;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use http::{HeaderValue, Request, Response, StatusCode};
use proptest::prelude::*;
use std::convert::Infallible;
use support::whatwg;
use tokio_stream::StreamExt as _;
use tower::{service_fn, Layer as _, ServiceExt as _};
use tower_push::{
    auth_ticket::{Binding, Key, Tickets},
    cursor::LastEventId,
    hub::{Hub as _, MemoryHub},
    last_event_id::LastEventIdLayer,
    negotiate::{Negotiate, Transport},
    origin::OriginLayer,
    ws::{WebSocketUpgrade, WsLayer},
    Event,
};

/// What `EventSource` makes of the data lines: CRLF and lone CR become LF.
fn normalized(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Any string, with the characters that matter to the wire format made likely.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            1 => prop::sample::select(vec!['\r', '\n', '\0', ' ', ':', '\u{feff}', '"', '\\']),
        ],
        0..64,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Any header value bytes hyper would accept.
fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop::collection::vec(any::<u8>(), 0..80)
        .prop_filter_map("a valid header value", |b| HeaderValue::from_bytes(&b).ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Data, name and id as `EventSource` sees them after our encoding: exactly what was
    /// given (line breaks normalized), or a typed error for names and ids that cannot be sent.
    #[test]
    fn sse_encoding_round_trips_through_the_whatwg_parser(
        data in text(),
        name in proptest::option::of(text()),
        id in proptest::option::of(text()),
    ) {
        let mut event = Event::new().data(data.clone());
        if let Some(name) = &name {
            match event.clone().event(name.clone()) {
                Ok(e) => event = e,
                Err(_) => {
                    prop_assert!(name.contains(['\r', '\n']), "refused a valid name {name:?}");
                    return Ok(());
                }
            }
        }
        if let Some(id) = &id {
            match event.clone().id(id.clone()) {
                Ok(e) => event = e,
                Err(_) => {
                    prop_assert!(id.contains(['\r', '\n', '\0']), "refused a valid id {id:?}");
                    return Ok(());
                }
            }
        }
        let decoded = whatwg::decode(&event.to_sse());
        prop_assert_eq!(decoded.events.len(), 1, "{:?}", event.to_sse());
        let got = &decoded.events[0];
        prop_assert_eq!(&got.data, &normalized(&data));
        let expected_type = match name.as_deref() {
            Some(n) if !n.is_empty() => n,
            _ => "message",
        };
        prop_assert_eq!(&got.event_type, expected_type);
        prop_assert_eq!(&got.last_event_id, id.as_deref().unwrap_or(""));
    }

    /// The JSON encoding (long-poll and WebSocket) parses back to the same strings.
    #[test]
    fn json_encoding_round_trips(data in text(), name in text(), id in text()) {
        let mut event = Event::new().data(data.clone());
        if let Ok(e) = event.clone().event(name.clone()) {
            event = e;
        }
        if let Ok(e) = event.clone().id(id.clone()) {
            event = e;
        }
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        prop_assert_eq!(json["data"].as_str(), Some(data.as_str()));
        prop_assert_eq!(json["event"].as_str(), event.get_event());
        prop_assert_eq!(json["id"].as_str(), event.get_id());
    }

    /// Any cursor a client sends is refused at the edge (not a cursor at all), or starts the
    /// subscription with a position or a `reset`: never a panic or a silent start.
    #[test]
    fn any_cursor_starts_with_a_position_or_a_reset(cursor in text()) {
        let Ok(start) = tower_push::cursor::StartAt::parse(Some(&cursor)) else {
            return Ok(());
        };
        let hub = MemoryHub::new();
        hub.publish_now("room", Event::new().data("one")).unwrap();
        let first = runtime().block_on(async { hub.subscribe("room", start).next().await.unwrap() });
        prop_assert!(
            first.is_cursor_only() || first.get_event() == Some("reset"),
            "{first:?}"
        );
    }

    /// Cursors parse back to what they say: any epoch of 1 to 16 letters and digits and any
    /// offsets, in both shapes.
    #[test]
    fn cursors_parse_to_their_epoch_and_offset(
        epoch in "[A-Za-z0-9]{1,16}",
        n in any::<u64>(),
        m in any::<u64>(),
    ) {
        use tower_push::cursor::{Offset, ParsedCursor};
        let seq = ParsedCursor::parse(&format!("{epoch}-{n}")).unwrap();
        prop_assert_eq!((seq.epoch(), seq.offset()), (epoch.as_str(), Offset::Seq(n)));
        let pair = ParsedCursor::parse(&format!("{epoch}.{n}-{m}")).unwrap();
        prop_assert_eq!((pair.epoch(), pair.offset()), (epoch.as_str(), Offset::Pair(n, m)));
        let (signed, trailing) = (format!("{epoch}-+{n}"), format!("{epoch}-{n}x"));
        prop_assert!(ParsedCursor::parse(&signed).is_err());
        prop_assert!(ParsedCursor::parse(&trailing).is_err());
    }

    /// Any ticket string, and any bytes behind a well-formed base64 envelope, are refused
    /// with a typed error.
    #[test]
    fn tickets_never_panic(
        ticket in text(),
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        version in 0u8..3,
        path in text(),
        origin in proptest::option::of(text()),
    ) {
        let tickets = Tickets::new(Key::new(1, b"property test secret, 32 bytes!!"));
        prop_assert!(tickets.verify(&ticket, &path, origin.as_deref()).is_err());
        let mut enveloped = vec![version];
        enveloped.extend_from_slice(&bytes);
        let enveloped = URL_SAFE_NO_PAD.encode(&enveloped);
        prop_assert!(tickets.verify(&enveloped, &path, origin.as_deref()).is_err());
        // A real ticket, mutated at one byte, is refused too.
        let real = tickets.mint("alice", &Binding::new()).unwrap().into_string();
        if !bytes.is_empty() {
            let mut mutated = real.clone().into_bytes();
            let at = bytes[0] as usize % mutated.len();
            mutated[at] = if mutated[at] == b'A' { b'B' } else { b'A' };
            let mutated = String::from_utf8(mutated).unwrap();
            prop_assert!(tickets.verify(&mutated, "/", None).is_err());
        }
    }

    /// Any `Last-Event-ID` header or query: passed on as the cursor, or refused with 400.
    #[test]
    fn last_event_id_never_panics(value in header_value(), query in text()) {
        let svc = LastEventIdLayer::new().layer(service_fn(|req: Request<()>| async move {
            let seen = req.extensions().get::<LastEventId>().map(|c| c.as_str().to_owned());
            Ok::<_, Infallible>(Response::new(seen.unwrap_or_default()))
        }));
        let query = percent_encoding::utf8_percent_encode(&query, percent_encoding::NON_ALPHANUMERIC);
        let req = Request::get(format!("/?lastEventId={query}"))
            .header("last-event-id", value)
            .body(())
            .unwrap();
        let status = runtime().block_on(svc.oneshot(req)).unwrap().status();
        prop_assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{status}");
    }

    /// Any `Accept` header: a transport, or 406; never a panic.
    #[test]
    fn accept_never_panics(values in prop::collection::vec(header_value(), 0..3)) {
        let mut req = Request::get("/");
        for v in &values {
            req = req.header("accept", v.clone());
        }
        let req = req.body(()).unwrap();
        let transport = Transport::of(&req);
        let svc = Negotiate::new(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(tokio_stream::iter([Event::new().data("x").id("1").unwrap()]))
        }));
        let status = runtime().block_on(svc.oneshot(req)).unwrap().status();
        match transport {
            Some(_) => prop_assert_eq!(status, StatusCode::OK),
            None => prop_assert_eq!(status, StatusCode::NOT_ACCEPTABLE),
        }
    }

    /// Any `Origin` headers: allowed only when every one is the allowed origin.
    #[test]
    fn origin_never_panics(values in prop::collection::vec(header_value(), 0..3)) {
        let svc = OriginLayer::new(["https://chat.example"]).layer(service_fn(
            |_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) },
        ));
        let mut req = Request::get("/");
        for v in &values {
            req = req.header("origin", v.clone());
        }
        let status = runtime().block_on(svc.oneshot(req.body(()).unwrap())).unwrap().status();
        let allowed = values
            .iter()
            .all(|v| v.to_str().is_ok_and(|o| o.eq_ignore_ascii_case("https://chat.example")));
        prop_assert_eq!(status == StatusCode::OK, allowed, "{:?}: {}", values, status);
    }

    /// Any handshake headers: accepted, or refused with 400/405/426. (These requests come
    /// from no server connection, so an otherwise valid handshake is refused with 500: the
    /// connection cannot be upgraded.)
    #[test]
    fn handshake_headers_never_panic(
        upgrade in header_value(),
        connection in header_value(),
        version in header_value(),
        key in header_value(),
        protocols in prop::collection::vec(header_value(), 0..3),
        get in any::<bool>(),
    ) {
        let mut req = Request::builder()
            .method(if get { "GET" } else { "POST" })
            .uri("/")
            .header("upgrade", upgrade)
            .header("connection", connection)
            .header("sec-websocket-version", version)
            .header("sec-websocket-key", key);
        for p in protocols {
            req = req.header("sec-websocket-protocol", p);
        }
        let mut req = req.body(()).unwrap();
        let layer = WsLayer::new().protocols(["chat.v1"]);
        if let Err(refusal) = WebSocketUpgrade::from_request(&mut req, &layer) {
            let status = refusal.status();
            prop_assert!(
                [400, 405, 426].contains(&status.as_u16())
                    || (status == 500 && refusal.message().contains("cannot be upgraded")),
                "{status}: {}",
                refusal.message()
            );
        }
    }
}
