//! The browser client: a small script, served by a tower service, that connects to a
//! [`Negotiate`](crate::negotiate::Negotiate) endpoint.
//!
//! It prefers WebSocket, falls back to SSE and then long-poll when a transport cannot open,
//! fetches a fresh [auth ticket](crate::auth_ticket) before every (re)connect, resumes with
//! the last cursor (`lastEventId`), and reports its status. No dependencies; about 5 KB.
//! Over SSE it reads the cursor from `position` events, so enable
//! [`SseLayer::named_positions`](crate::sse::SseLayer::named_positions) on the endpoint.
//!
//! ```html
//! <script src="/tower-push.js"></script>
//! <script>
//!   const conn = TowerPush.connect({
//!     url: "/api/events",
//!     ticket: async () => (await (await fetch("/api/ticket", { method: "POST" })).json()).ticket,
//!     onEvent: (e) => console.log(e.event, e.data),
//!     onStatus: (status, transport) => console.log(status, transport),
//!   });
//! </script>
//! ```
//!
//! Serve it with [`ClientScript`], e.g. axum's `route_service("/tower-push.js", ClientScript)`.

mod service;

pub use service::{ClientScript, SCRIPT};
