// Real-browser test of the chat over HTTPS with HTTP/2, run by that example's test:
//   node h2.mjs <https url> <http url> <https url, WebSocket over HTTP/2 turned off>
// Prints "ok <step>" per step and "BROWSER H2 OK" at the end; exits non-zero on any failure.
import { assert, join, launch, say, waitFor } from "./page.mjs";

const [h2Url, h1Url, noExtendedConnectUrl] = process.argv.slice(2);
const STREAMS = 12;

// The test's certificate is self-signed; the browser still negotiates h2 by ALPN.
const browser = await launch(["--ignore-certificate-errors"]);

// Opens `STREAMS` EventSource streams to the chat's room (one ticket each, fetched first),
// waits `settle` ms, then returns how many are open and, if `message`, how many received it.
async function eventSources(page, settle, message) {
  return page.evaluate(async ({ n, settle, message }) => {
    const tickets = [];
    for (let i = 0; i < n; i++) {
      const res = await fetch("/api/ticket", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ user: `reader${i}`, room: "h2room" }),
      });
      tickets.push(await res.json());
    }
    const got = new Array(n).fill(false);
    const sources = tickets.map((t, i) => {
      const params = new URLSearchParams({ ticket: t.ticket });
      t.topics.forEach((topic) => params.append("topic", topic));
      const es = new EventSource(`/api/events?${params}`);
      es.addEventListener("message@h2room", (e) => {
        if (message && e.data.includes(message)) got[i] = true;
      });
      return es;
    });
    const open = () => sources.filter((es) => es.readyState === EventSource.OPEN).length;
    const deadline = Date.now() + settle;
    while (Date.now() < deadline && open() < n) await new Promise((r) => setTimeout(r, 50));
    if (settle > 1000) await new Promise((r) => setTimeout(r, 500));
    const opened = open();
    let received = 0;
    if (message && opened === n) {
      await fetch("/api/messages", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ user: "writer", room: "h2room", text: message }),
      });
      const until = Date.now() + 10_000;
      while (Date.now() < until && got.some((g) => !g)) await new Promise((r) => setTimeout(r, 50));
      received = got.filter(Boolean).length;
    }
    const protocols = [...new Set(performance.getEntriesByType("resource")
      .filter((e) => e.name.includes("/api/")).map((e) => e.nextHopProtocol))];
    sources.forEach((es) => es.close());
    return { opened, received, protocols };
  }, { n: STREAMS, settle, message });
}

// The chat's counter of push requests for `transport` over `version`, from its /metrics.
async function requests(page, transport, version) {
  const text = await page.evaluate(async () => (await fetch("/metrics")).text());
  const line = text.split("\n").find((l) => l.startsWith("tower_push_requests_total{")
    && l.includes(`transport="${transport}"`) && l.includes(`http_version="${version}"`));
  return line ? Number(line.split(" ").pop()) : 0;
}

async function sayAndSee(page, text) {
  await say(page, text);
  await waitFor(page, text);
}

try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });

  // HTTP/2: twelve streams on one connection, every one gets the message.
  let page = await context.newPage();
  await page.goto(h2Url);
  const h2 = await eventSources(page, 5_000, "to all twelve");
  console.log(`h2: ${JSON.stringify(h2)}`);
  assert(h2.opened === STREAMS, `all ${STREAMS} streams open over h2: ${JSON.stringify(h2)}`);
  assert(h2.received === STREAMS, `all ${STREAMS} streams received the message: ${JSON.stringify(h2)}`);
  assert(JSON.stringify(h2.protocols) === JSON.stringify(["h2"]), `h2 only: ${JSON.stringify(h2.protocols)}`);
  assert(await requests(page, "sse", "2") >= STREAMS, "the server saw the streams over HTTP/2");
  console.log("ok h2 twelve streams");

  // HTTP/1.1: the browser's six-connection limit holds the seventh stream back.
  const h1Page = await context.newPage();
  await h1Page.goto(h1Url);
  const h1 = await eventSources(h1Page, 3_000, null);
  console.log(`http/1.1: ${JSON.stringify(h1)}`);
  assert(h1.opened === 6, `six streams open over HTTP/1.1, the seventh waits: ${JSON.stringify(h1)}`);
  await h1Page.close();
  console.log("ok http/1.1 six streams");

  // The chat's WebSocket rides the page's HTTP/2 connection (RFC 8441).
  page = await context.newPage();
  await join(page, `${h2Url}?room=ws`, "wendy", "websocket");
  await sayAndSee(page, "websocket over h2");
  assert(await requests(page, "websocket", "2") >= 1, "the server saw the WebSocket over HTTP/2");
  assert(await requests(page, "websocket", "1.1") === 0, "and none over HTTP/1.1");
  console.log("ok websocket over h2");

  // Long-poll over HTTP/2.
  page = await context.newPage();
  await join(page, `${h2Url}?room=lp`, "lena", "long-poll");
  await sayAndSee(page, "long-poll over h2");
  assert(await requests(page, "long-poll", "2") >= 1, "the server saw the polls over HTTP/2");
  console.log("ok long-poll over h2");

  // Extended CONNECT turned off: the WebSocket falls back to HTTP/1.1 and still works.
  page = await context.newPage();
  await join(page, `${noExtendedConnectUrl}?room=ws`, "walt", "websocket");
  await sayAndSee(page, "websocket over http/1.1");
  assert(await requests(page, "websocket", "1.1") >= 1, "the WebSocket came over HTTP/1.1");
  assert(await requests(page, "websocket", "2") === 0, "not over HTTP/2");
  console.log("ok websocket falls back to http/1.1");

  console.log("BROWSER H2 OK");
} finally {
  await browser.close();
}
