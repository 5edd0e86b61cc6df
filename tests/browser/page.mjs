// What the browser tests share: launching Debian's chromium, and driving the chat page
// (join as a user over a transport, send a message, wait for one to show).
import { chromium } from "playwright-core";

export const TIMEOUT = 15_000;

export function assert(ok, message) {
  if (!ok) throw new Error(message);
}

// Headless chromium; `extraArgs` add to the usual flags.
export function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           ...extraArgs],
  });
}

// Opens the chat at `base`, joins as `name` over `transport`; returns the status line.
export async function join(page, base, name, transport) {
  await page.goto(base);
  await page.fill("#name", name);
  await page.selectOption("#transport", transport);
  await page.click("#join");
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("open"), null, { timeout: TIMEOUT });
  return page.textContent("#status");
}

export async function say(page, text) {
  await page.waitForFunction(() => !document.getElementById("text").disabled, null, { timeout: TIMEOUT });
  await page.fill("#text", text);
  await page.click("#send");
}

export async function waitFor(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent.endsWith(t)),
    text,
    { timeout: TIMEOUT },
  );
}
