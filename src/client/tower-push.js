/*!
 * tower-push browser client: WebSocket -> SSE -> long-poll, a fresh ticket before every
 * (re)connect, resume from the last cursor (every topic of the connection). No dependencies.
 * Types: tower-push.d.ts, served beside this script.
 *
 *   const conn = TowerPush.connect({
 *     url: "/api/events",                       // the Negotiate endpoint
 *     ticket: async () => "...",                // optional: a fresh single-use ticket, or
 *                                               //   {ticket, topics} to also set the topics
 *     topics: ["room.lobby", "user:alice"],     // optional: several topics (?topic=..)
 *     transports: ["websocket", "sse", "long-poll"],   // preference, with fallback
 *     lastEventId: null,                        // optional: resume from this cursor
 *     onEvent: (e) => {},                       // {id, event, topic, data}; "reset": reload
 *     onStatus: (status, transport) => {},      // "connecting" | "open" | "reconnecting" | "closed"
 *   });
 *   conn.send(text, extra)  // {text, ...extra} over the WebSocket when open; false otherwise
 *   conn.transport()        // the transport in use
 *   conn.cursor()           // the last cursor (what a reconnect resumes from)
 *   conn.topics()           // the topics of the connection
 *   conn.close()
 *
 * Every event arrives the same way on every transport, whatever its name: SSE is read with
 * fetch (not EventSource), so no event name has to be listed and id-only events move the
 * cursor. With topics, one cursor resumes them all; SSE events named `name@topic` are split
 * into `event` and `topic`, as long-poll and WebSocket events carry them.
 */
(function (global) {
  "use strict";

  function connect(options) {
    var o = Object.assign(
      { transports: ["websocket", "sse", "long-poll"], retry: 500, maxRetry: 10000 },
      options
    );
    var cursor = o.lastEventId || null;
    var topics = (o.topics || []).slice();
    var index = 0;
    var delay = o.retry;
    var closed = false;
    var ws = null, abort = null;

    function status(s) { if (o.onStatus) o.onStatus(s, o.transports[index]); }

    function deliver(e) {
      if (e.id) cursor = e.id;
      // Position frames and events only move the cursor.
      if (e.event === "position" || e.data === undefined || e.data === null) return;
      if (o.onEvent) {
        o.onEvent({ id: e.id || null, event: e.event || "message", topic: e.topic || null, data: e.data });
      }
    }

    async function endpoint() {
      var params = new URLSearchParams();
      if (o.ticket) {
        var t = await o.ticket();
        if (t && typeof t === "object") {
          if (Array.isArray(t.topics)) topics = t.topics.slice();
          t = t.ticket;
        }
        params.set("ticket", t);
      }
      topics.forEach(function (topic) { params.append("topic", topic); });
      if (cursor) params.set("lastEventId", cursor);
      var query = params.toString();
      return o.url + (query ? (o.url.indexOf("?") >= 0 ? "&" : "?") + query : "");
    }

    // After a failure: fall back when the transport never opened, else retry it with backoff.
    function again(neverOpened) {
      if (closed) return;
      if (neverOpened && index < o.transports.length - 1) {
        index += 1;
        delay = o.retry;
        start();
        return;
      }
      status("reconnecting");
      setTimeout(start, delay);
      delay = Math.min(delay * 2, o.maxRetry);
    }

    function opened() {
      delay = o.retry;
      status("open");
    }

    async function start() {
      if (closed) return;
      status("connecting");
      var url;
      try { url = await endpoint(); } catch (err) { again(false); return; }
      var transport = o.transports[index];
      if (transport === "websocket") openWebSocket(url);
      else if (transport === "sse") openStream(url);
      else poll(url, false);
    }

    function openWebSocket(url) {
      var target = new URL(url, global.location.href);
      target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
      var open = false;
      ws = new WebSocket(target.href);
      ws.onopen = function () { open = true; opened(); };
      ws.onmessage = function (m) {
        try { deliver(JSON.parse(m.data)); } catch (err) { /* not an event frame */ }
      };
      ws.onclose = function () { ws = null; again(!open); };
    }

    // SSE over fetch: every event name arrives (EventSource only dispatches the names it was
    // told), id-only events move the cursor, and reconnects are ours, with a fresh ticket.
    async function openStream(url) {
      abort = new AbortController();
      var open = false;
      var res;
      try {
        res = await fetch(url, { signal: abort.signal, cache: "no-store",
                                 headers: { accept: "text/event-stream" } });
      } catch (err) { if (!closed) again(!open); return; }
      if (!res.ok || !res.body) { again(!open); return; }
      open = true;
      opened();
      var reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      var buffer = "", id = null, name = "", data = null;
      function field(line) {
        if (line === "") {
          if (id !== null) cursor = id;
          if (data !== null && name !== "position") {
            var at = name.lastIndexOf("@");
            deliver({ id: id, event: at >= 0 ? name.slice(0, at) : (name || "message"),
                      topic: at >= 0 ? name.slice(at + 1) : null, data: data });
          }
          id = null; name = ""; data = null;
          return;
        }
        if (line.charAt(0) === ":") return; // a comment: heartbeats
        var colon = line.indexOf(":");
        var key = colon >= 0 ? line.slice(0, colon) : line;
        var value = colon >= 0 ? line.slice(colon + 1) : "";
        if (value.charAt(0) === " ") value = value.slice(1);
        if (key === "data") data = data === null ? value : data + "\n" + value;
        else if (key === "event") name = value;
        else if (key === "id" && value.indexOf("\0") < 0) id = value;
      }
      try {
        for (;;) {
          var chunk = await reader.read();
          if (chunk.done) break;
          var text = buffer + chunk.value;
          // A trailing CR may be half of a CRLF split between chunks: wait for the next one.
          var held = text.charAt(text.length - 1) === "\r" ? "\r" : "";
          if (held) text = text.slice(0, -1);
          var lines = text.split(/\r\n|\r|\n/);
          buffer = lines.pop() + held;
          lines.forEach(field);
        }
      } catch (err) { /* aborted or cut: reconnect below */ }
      if (!closed) again(false);
    }

    async function poll(url, open) {
      abort = new AbortController();
      var res;
      try {
        res = await fetch(url, { signal: abort.signal, headers: { accept: "application/json" } });
      } catch (err) { if (!closed) again(!open); return; }
      if (!res.ok) { again(!open); return; }
      var batch;
      try { batch = await res.json(); } catch (err) { again(!open); return; }
      if (!open) opened();
      // The cursor is written once: the last event without an `id` field has it as its id.
      var last = batch.events[batch.events.length - 1];
      if (last && !("id" in last)) last.id = batch.cursor;
      batch.events.forEach(deliver);
      if (batch.cursor) cursor = batch.cursor;
      if (closed) return;
      var next;
      try { next = await endpoint(); } catch (err) { again(false); return; }
      poll(next, true);
    }

    start();
    return {
      send: function (text, extra) {
        if (ws && ws.readyState === 1) {
          ws.send(JSON.stringify(Object.assign({ text: text }, extra || {})));
          return true;
        }
        return false;
      },
      topics: function () { return topics.slice(); },
      transport: function () { return o.transports[index]; },
      cursor: function () { return cursor; },
      close: function () {
        closed = true;
        if (ws) ws.close();
        if (abort) abort.abort();
        status("closed");
      },
    };
  }

  global.TowerPush = { connect: connect };
})(typeof window !== "undefined" ? window : globalThis);
