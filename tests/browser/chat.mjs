// Real-browser test of examples/chat.rs, run by that example's test:
//   node chat.mjs <chat url> <chat url with WebSocket refused> <screenshot path>
// Prints "DROP" when the server should drop every connection, and waits for "DROPPED" on
// stdin. Exits non-zero on any failure.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [url, noWebSocketUrl, screenshot] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
const pending = [];
lines.on("line", (line) => pending.shift()?.(line));
const nextLine = () => new Promise((resolve) => pending.push(resolve));

const TIMEOUT = 15_000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

function assert(ok, message) {
  if (!ok) throw new Error(message);
}

async function join(page, base, name, transport) {
  await page.goto(base);
  await page.fill("#name", name);
  await page.selectOption("#transport", transport);
  await page.click("#join");
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("open"), null, { timeout: TIMEOUT });
  return page.textContent("#status");
}

async function say(page, text) {
  await page.waitForFunction(() => !document.getElementById("text").disabled, null, { timeout: TIMEOUT });
  await page.fill("#text", text);
  await page.click("#send");
}

async function waitFor(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent.endsWith(t)),
    text,
    { timeout: TIMEOUT },
  );
}

const messages = (page) => page.$$eval("#messages li:not(.note)", (lis) => lis.map((li) => li.textContent));

try {
  for (const transport of ["websocket", "sse", "long-poll"]) {
    const context = await browser.newContext();
    const alice = await context.newPage();
    const bob = await context.newPage();
    const status = await join(alice, url, "alice", transport);
    assert(status === `open (${transport})`, `alice is on ${transport}: ${status}`);
    await join(bob, url, "bob", transport);

    const sent = [`hello from alice over ${transport}`, `hi alice, bob here over ${transport}`];
    await say(alice, sent[0]);
    await waitFor(bob, sent[0]);
    await say(bob, sent[1]);
    await waitFor(alice, sent[1]);

    // The server drops every connection; bob posts while alice reconnects.
    console.log("DROP");
    assert((await nextLine()) === "DROPPED", "the server dropped the connections");
    sent.push(`while alice reconnects over ${transport}`);
    const posted = await bob.evaluate(async (text) => {
      const res = await fetch("/api/messages", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ user: "bob", text }),
      });
      return res.status;
    }, sent[2]);
    assert(posted === 202, `POST /api/messages answered ${posted}`);
    await waitFor(alice, sent[2]);
    await waitFor(bob, sent[2]);
    sent.push(`after the drop, alice over ${transport}`);
    await say(alice, sent[3]);
    await waitFor(bob, sent[3]);
    await waitFor(alice, sent[3]);

    // Nothing lost, nothing duplicated, same order on both pages.
    for (const [name, page] of [["alice", alice], ["bob", bob]]) {
      const got = await messages(page);
      const texts = got.map((t) => sent.find((s) => t.endsWith(s)));
      assert(texts.every(Boolean), `${name} saw only sent messages over ${transport}: ${JSON.stringify(got)}`);
      assert(JSON.stringify(texts) === JSON.stringify(sent), `${name} saw each message once, in order, over ${transport}: ${JSON.stringify(got)}`);
    }
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
