//! Rooms and direct messages: one connection reads a room and the user's direct messages,
//! the ticket allows exactly those, and message text arrives exactly as sent on every
//! transport.

use super::*;

/// A ticket for `user` in `room` (`None`: the default room) and the topics it allows.
async fn room_ticket(
    client: &HttpClient,
    addr: SocketAddr,
    user: &str,
    room: Option<&str>,
) -> (String, Vec<String>) {
    let body = match room {
        Some(room) => serde_json::json!({ "user": user, "room": room }),
        None => serde_json::json!({ "user": user }),
    };
    let (status, _, body) = request(client, post(addr, "/api/ticket", &body.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let topics = json["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    (json["ticket"].as_str().unwrap().to_owned(), topics)
}

fn events_path(ticket: &str, topics: &[String], cursor: Option<&str>) -> String {
    let mut path = format!("/api/events?ticket={ticket}");
    for topic in topics {
        path.push_str(&format!("&topic={topic}"));
    }
    if let Some(cursor) = cursor {
        path.push_str(&format!("&lastEventId={cursor}"));
    }
    path
}

fn get_req(addr: SocketAddr, path: &str, accept: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("http://{addr}{path}"))
        .header("accept", accept)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A long-poll: (status, events, cursor).
async fn poll(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
) -> (StatusCode, Vec<serde_json::Value>, Option<String>) {
    let (status, _, body) = request(client, get_req(addr, path, "application/json")).await;
    if status != StatusCode::OK {
        return (status, Vec::new(), None);
    }
    let batch = super::long_poll_answer(&body);
    let events = batch["events"].as_array().unwrap().clone();
    (status, events, batch["cursor"].as_str().map(str::to_owned))
}

fn data(event: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(event["data"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_room_and_direct_messages_on_one_connection_resumed_together() {
    let server = Server::start(memory_app, false).await;
    let addr = server.addr;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let (ticket, topics) = room_ticket(&client, addr, "alice", Some("blue")).await;
    assert_eq!(topics[0], "blue");
    assert!(topics[1].starts_with("dm:"), "{topics:?}");
    let (status, events, cursor) = poll(&client, addr, &events_path(&ticket, &topics, None)).await;
    assert_eq!((status, events.len()), (StatusCode::OK, 0));
    let cursor = cursor.expect("the position");

    for body in [
        r#"{"user":"bob","room":"blue","text":" leading space"}"#,
        r#"{"user":"bob","room":"green","text":"not for alice"}"#,
        r#"{"user":"bob","to":"alice","text":"trailing spaces  "}"#,
        r#"{"user":"carol","to":"dave","text":"not for alice either"}"#,
        r#"{"user":"bob","room":"blue","text":"two\nlines\ttab"}"#,
    ] {
        assert_eq!(
            request(&client, post(addr, "/api/messages", body)).await.0,
            StatusCode::ACCEPTED,
            "{body}"
        );
    }
    let (ticket, _) = room_ticket(&client, addr, "alice", Some("blue")).await;
    let (_, events, _) = poll(&client, addr, &events_path(&ticket, &topics, Some(&cursor))).await;
    let got: Vec<(String, serde_json::Value)> = events
        .iter()
        .map(|e| (e["topic"].as_str().unwrap().to_owned(), data(e)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "blue".into(),
                serde_json::json!({"user":"bob","text":" leading space"})
            ),
            (
                topics[1].clone(),
                serde_json::json!({"user":"bob","text":"trailing spaces  ","to":"alice"})
            ),
            (
                "blue".into(),
                serde_json::json!({"user":"bob","text":"two\nlines\ttab"})
            ),
        ],
        "the room and the direct messages, nothing else, text exactly as sent"
    );

    // Over SSE the topic is in the event name; resuming from the first event's id gives the
    // two after it, from both topics.
    let first = events[0]["id"].as_str().unwrap();
    let (ticket, _) = room_ticket(&client, addr, "alice", Some("blue")).await;
    let sse = open_sse_path(addr, &events_path(&ticket, &topics, Some(first))).await;
    let mut seen = String::new();
    let mut body = sse.into_body();
    // Both topics replay; which comes first between topics is not fixed.
    while !(seen.contains(r"two\nlines") && seen.contains("trailing spaces")) {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&frame.into_data().unwrap()));
    }
    assert!(!seen.contains("leading space"), "{seen}");
    assert!(
        seen.contains(&format!(
            "event: message@{}\ndata: {{\"user\":\"bob\",\"text\":\"trailing spaces  \",\"to\":\"alice\"}}",
            topics[1]
        )),
        "{seen}"
    );
    assert!(seen.contains("event: message@blue\n"), "{seen}");

    // A WebSocket of bob's sends a direct message to alice: both their topics get it.
    let (bob_ticket, bob_topics) = room_ticket(&client, addr, "bob", None).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{addr}{}",
        events_path(&bob_ticket, &bob_topics, None)
    ))
    .await
    .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"text":" hi alice ","to":"alice"}"#.into(),
    ))
    .await
    .unwrap();
    let frame = loop {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = ws.next().await.unwrap().unwrap()
        {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v.get("data").is_some() {
                break v;
            }
        }
    };
    assert_eq!(frame["topic"], bob_topics[1].as_str());
    assert_eq!(
        data(&frame),
        serde_json::json!({"user":"bob","text":" hi alice ","to":"alice"})
    );
    drop(server);
}

#[tokio::test]
async fn tickets_allow_only_their_room_and_user() {
    let server = Server::start(memory_app, false).await;
    let addr = server.addr;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let (_, bob_topics) = room_ticket(&client, addr, "bob", Some("green")).await;
    for (topics, expected) in [
        (vec!["blue".to_owned()], StatusCode::OK),
        (vec!["green".to_owned()], StatusCode::FORBIDDEN),
        (vec![bob_topics[1].clone()], StatusCode::FORBIDDEN),
        (vec!["no spaces".to_owned()], StatusCode::BAD_REQUEST),
    ] {
        let (ticket, _) = room_ticket(&client, addr, "alice", Some("blue")).await;
        let path = events_path(&ticket, &topics, None).replace(' ', "%20");
        for (accept, upgrade) in [
            ("application/json", false),
            ("text/event-stream", false),
            ("", true),
        ] {
            let status = if upgrade {
                let (ticket, _) = room_ticket(&client, addr, "alice", Some("blue")).await;
                let path = events_path(&ticket, &topics, None).replace(' ', "%20");
                match tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await {
                    Ok(_) => StatusCode::OK,
                    Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status(),
                    Err(other) => panic!("{other}"),
                }
            } else {
                let (ticket, _) = room_ticket(&client, addr, "alice", Some("blue")).await;
                let path = events_path(&ticket, &topics, None).replace(' ', "%20");
                let res = tokio::time::timeout(
                    Duration::from_secs(10),
                    client.request(get_req(addr, &path, accept)),
                )
                .await
                .unwrap()
                .unwrap();
                res.status()
            };
            assert_eq!(
                status, expected,
                "{topics:?} accept {accept:?} upgrade {upgrade}"
            );
        }
        let _ = path;
    }
    for bad in [
        r#"{"user":"alice","text":"   "}"#,
        r#"{"user":"alice","text":"\t\n"}"#,
        r#"{"user":"alice","room":"no spaces","text":"x"}"#,
        r#"{"user":"alice","room":"","text":"x"}"#,
        r#"{"user":"alice","to":" ","text":"x"}"#,
    ] {
        assert_eq!(
            request(&client, post(addr, "/api/messages", bad)).await.0,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    assert_eq!(
        request(
            &client,
            post(addr, "/api/ticket", r#"{"user":"alice","room":"a.b"}"#)
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    drop(server);
}

/// A WebSocket that asks for its room percent-encoded (`?topic=%62lue` is `blue`) reads that
/// room and sends its messages to it, not to the default room: the room is decoded once, the
/// way the topics are.
#[tokio::test]
async fn a_percent_encoded_room_is_the_room_a_websocket_reads_and_sends_to() {
    let server = Server::start(memory_app, false).await;
    let addr = server.addr;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let (ticket, topics) = room_ticket(&client, addr, "alice", Some("blue")).await;
    assert_eq!(topics[0], "blue");
    let encoded = vec!["%62lue".to_owned(), topics[1].replace(':', "%3A")];
    let path = events_path(&ticket, &encoded, None);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap(); // position
                                       // A reader of the default room, to see that nothing goes there.
    let (watcher, _) = room_ticket(&client, addr, "carol", None).await;
    let mut default_room = open_ws(addr, &watcher).await;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"text":"to blue"}"#.into(),
    ))
    .await
    .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the message arrives in the room the connection reads")
        .unwrap()
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(event["topic"], "blue", "{event}");
    assert_eq!(data(&event)["text"], "to blue");
    let stray = tokio::time::timeout(Duration::from_millis(300), default_room.next()).await;
    assert!(
        stray.is_err(),
        "nothing reaches the default room: {stray:?}"
    );
    drop(server);
}
