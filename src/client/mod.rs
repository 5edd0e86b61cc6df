//! The browser client: a small script, served by a tower service, that connects to a
//! [`Negotiate`](crate::negotiate::Negotiate) endpoint.
//!
//! It prefers WebSocket, falls back to SSE and then long-poll when a transport cannot open,
//! fetches a fresh [auth ticket](crate::auth_ticket) before every (re)connect (single-use
//! tickets and reconnects go together), resumes with the last cursor (`lastEventId`), and
//! reports its status. Every event arrives the same way on every transport, whatever its
//! name: SSE is read with `fetch`, not `EventSource`, so no name has to be listed and id-only
//! events (the hub's position) move the cursor. No dependencies; about 6 KB.
//!
//! ```html
//! <script src="/tower-push.js"></script>
//! <script>
//!   const conn = TowerPush.connect({
//!     url: "/api/events",
//!     ticket: async () => (await (await fetch("/api/ticket", { method: "POST" })).json()).ticket,
//!     onEvent: (e) => console.log(e.event, e.topic, e.data),
//!     onStatus: (status, transport) => console.log(status, transport),
//!   });
//! </script>
//! ```
//!
//! # Options
//!
//! | option | default | what |
//! |---|---|---|
//! | `url` | (required) | the push endpoint, absolute or relative to the page |
//! | `ticket` | none | `() => ticket` or `{ticket, topics}` (or a promise of either), called before every connect and reconnect; a failure is retried with backoff |
//! | `topics` | none | topics to read on one connection (`?topic=a&topic=b`); a ticket answer's `topics` replaces them |
//! | `transports` | `["websocket", "sse", "long-poll"]` | preference; a transport that never opens falls back to the next |
//! | `lastEventId` | `null` | resume after this cursor on the first connect |
//! | `retry`, `maxRetry` | `500`, `10000` | reconnect delay in ms, doubled after each failure up to `maxRetry` |
//! | `onEvent` | none | `({id, event, topic, data})` for each event; `event` is `"message"` for an unnamed one, `"reset"` when history was lost (reload your state) |
//! | `onStatus` | none | `(status, transport)`: `"connecting"`, `"open"`, `"reconnecting"`, `"closed"` |
//! | `events` | ignored | (deprecated: every event name arrives on every transport) |
//!
//! The connection: `send(text, extra)` (`{text, ...extra}` as JSON over an open WebSocket;
//! `false` otherwise), `transport()`, `cursor()`, `topics()`, `close()`.
//!
//! # Serving it, and its types
//!
//! [`ClientScript`] serves the script, and its TypeScript declarations ([`TYPES`]) at any path
//! ending in `.d.ts`:
//!
//! ```
//! use tower_push::client::ClientScript;
//!
//! let app: axum::Router = axum::Router::new()
//!     .route_service("/tower-push.js", ClientScript)
//!     .route_service("/tower-push.d.ts", ClientScript);
//! # let _ = app;
//! ```

mod service;

pub use service::{ClientScript, SCRIPT, TYPES};
