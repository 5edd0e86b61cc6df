// Real-browser test of examples/chat.rs, run by that example's test:
//   node chat.mjs <chat url> <chat url with WebSocket refused> <screenshot path>
// Prints "DROP" when the server should drop every connection, and waits for "DROPPED" on
// stdin. Exits non-zero on any failure.
import { assert, join, launch, say, waitFor } from "./page.mjs";
import { createInterface } from "node:readline";

const [url, noWebSocketUrl, screenshot] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
const pending = [];
lines.on("line", (line) => pending.shift()?.(line));
const nextLine = () => new Promise((resolve) => pending.push(resolve));

const browser = await launch();

// Every message on a page: its topic and its text exactly as shown.
const messages = (page) => page.$$eval("#messages li:not(.note)", (lis) =>
  lis.map((li) => ({ topic: li.dataset.topic, text: li.querySelector(".text").textContent })));

async function post(page, body) {
  return page.evaluate(async (body) => {
    const res = await fetch("/api/messages", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    return res.status;
  }, body);
}

// Each expected text exactly once, and each topic's texts in the order sent.
async function expectExactly(page, who, transport, expected) {
  const got = await messages(page);
  const texts = got.map((m) => m.text);
  for (const t of expected) {
    const n = texts.filter((x) => x === t).length;
    assert(n === 1, `${who} saw ${JSON.stringify(t)} ${n} times over ${transport}: ${JSON.stringify(got)}`);
  }
  assert(got.length === expected.length, `${who} saw only what was sent to them over ${transport}: ${JSON.stringify(got)}`);
  const topics = [...new Set(got.map((m) => m.topic))];
  for (const topic of topics) {
    const inTopic = got.filter((m) => m.topic === topic).map((m) => m.text);
    const order = expected.filter((t) => inTopic.includes(t));
    assert(JSON.stringify(inTopic) === JSON.stringify(order), `${who}'s ${topic} in order over ${transport}: ${JSON.stringify(got)}`);
  }
}

try {
  for (const transport of ["websocket", "sse", "long-poll"]) {
    const context = await browser.newContext();
    const alice = await context.newPage();
    const bob = await context.newPage();
    // Two rooms: alice in "blue", bob in "green"; each also reads their direct messages.
    const status = await join(alice, new URL("/?room=blue", url).href, "alice", transport);
    assert(status === `open (${transport})`, `alice is on ${transport}: ${status}`);
    await join(bob, new URL("/?room=green", url).href, "bob", transport);

    const blue = [`hello blue from alice over ${transport}`];
    const green = [`hello green from bob over ${transport}`];
    const direct = [`psst bob, alice here over ${transport}`];
    await say(alice, blue[0]);
    await say(bob, green[0]);
    await alice.fill("#to", "bob");
    await say(alice, direct[0]);
    await alice.fill("#to", "");
    await waitFor(bob, direct[0]);
    await waitFor(alice, direct[0]);
    await waitFor(alice, blue[0]);
    await waitFor(bob, green[0]);

    // The server drops every connection; bob writes to alice's room, to his own and to her
    // directly while she reconnects. Spaces around the text must survive.
    console.log("DROP");
    assert((await nextLine()) === "DROPPED", "the server dropped the connections");
    blue.push(`  while alice reconnects, over ${transport}  `);
    direct.push(`bob to alice directly over ${transport}`);
    green.push(`green again over ${transport}`);
    for (const body of [
      { user: "bob", room: "blue", text: blue[1] },
      { user: "bob", to: "alice", text: direct[1] },
      { user: "bob", room: "green", text: green[1] },
    ]) {
      const posted = await post(bob, body);
      assert(posted === 202, `POST /api/messages ${JSON.stringify(body)} answered ${posted}`);
    }
    assert((await post(bob, { user: "bob", text: " \t " })) === 400, "blank text is refused");
    await waitFor(alice, blue[1]);
    await waitFor(alice, direct[1]);
    await waitFor(bob, direct[1]);
    await waitFor(bob, green[1]);
    blue.push(`after the drop, alice over ${transport}`);
    await say(alice, blue[2]);
    await waitFor(alice, blue[2]);

    // Nothing lost, nothing duplicated, nothing from a room not joined; exact text.
    await expectExactly(alice, "alice", transport, [blue[0], direct[0], blue[1], direct[1], blue[2]]);
    await expectExactly(bob, "bob", transport, [green[0], direct[0], direct[1], green[1]]);
    if (transport === "websocket") {
      await alice.screenshot({ path: screenshot });
    }
    console.log(`ok ${transport}`);
    await context.close();
  }

  // WebSocket refused: the client falls back to SSE.
  const page = await browser.newPage();
  const status = await join(page, noWebSocketUrl, "carol", "auto");
  assert(status === "open (sse)", `fell back to SSE: ${status}`);
  await say(page, "carol over the fallback");
  await waitFor(page, "carol over the fallback");
  console.log("ok fallback");
  console.log("BROWSER OK");
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await browser.close();
  lines.close();
}
