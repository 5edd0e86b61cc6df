/*!
 * tower-push browser client: WebSocket -> SSE -> long-poll, a fresh ticket before every
 * (re)connect, resume from the last cursor (every topic of the connection). No dependencies.
 *
 *   const conn = TowerPush.connect({
 *     url: "/api/events",                       // the Negotiate endpoint
 *     ticket: async () => "...",                // optional: a fresh single-use ticket, or
 *                                               //   {ticket, topics} to also set the topics
 *     topics: ["room.lobby", "user:alice"],     // optional: several topics (?topic=..)
 *     transports: ["websocket", "sse", "long-poll"],   // preference, with fallback
 *     events: ["message"],                      // SSE event names to listen for
 *     onEvent: (e) => {},                       // {id, event, topic, data}; "reset": reload
 *     onStatus: (status, transport) => {},      // "connecting" | "open" | "reconnecting" | "closed"
 *   });
 *   conn.send(text, extra)  // {text, ...extra} over the WebSocket when open; false otherwise
 *   conn.transport()        // the transport in use
 *   conn.close()
 *
 * With topics, one cursor resumes them all; SSE events named `name@topic` are split into
 * `event` and `topic`, as long-poll and WebSocket events carry them.
 */
(function (global) {
  "use strict";

  function connect(options) {
    var o = Object.assign(
      { transports: ["websocket", "sse", "long-poll"], events: ["message"], retry: 500, maxRetry: 10000 },
      options
    );
    var cursor = o.lastEventId || null;
    var topics = (o.topics || []).slice();
    var index = 0;
    var delay = o.retry;
    var closed = false;
    var ws = null, es = null, abort = null;

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
      else if (transport === "sse") openEventSource(url);
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

    function openEventSource(url) {
      var open = false;
      es = new EventSource(url);
      es.onopen = function () { open = true; opened(); };
      var names = ["reset"].concat(o.events);
      names = names.filter(function (n, i) { return names.indexOf(n) === i; });
      // Without topics events carry their own name; with topics, `name@topic`.
      var types = [["position", "position", null]];
      names.forEach(function (name) {
        types.push([name, name, null]);
        topics.forEach(function (topic) { types.push([name + "@" + topic, name, topic]); });
      });
      types.forEach(function (type) {
        es.addEventListener(type[0], function (e) {
          deliver({ id: e.lastEventId, event: type[1], topic: type[2],
                    data: type[1] === "position" ? undefined : e.data });
        });
      });
      // A ticket is single use, so the browser's own reconnect would be refused: reconnect here
      // with a fresh ticket and the last cursor.
      es.onerror = function () { es.close(); es = null; again(!open); };
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
        if (es) es.close();
        if (abort) abort.abort();
        status("closed");
      },
    };
  }

  global.TowerPush = { connect: connect };
})(typeof window !== "undefined" ? window : globalThis);
