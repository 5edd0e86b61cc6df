// Type-checked in CI (`tsc --noEmit --strict`): the client's declarations describe how it is
// used, and misuse fails to compile.
/// <reference path="../../src/client/tower-push.d.ts" />

const conn: TowerPush.Connection = TowerPush.connect({
  url: "/api/events",
  ticket: async () => {
    const res = await fetch("/api/ticket", { method: "POST" });
    const body: { ticket: string; topics: string[] } = await res.json();
    return { ticket: body.ticket, topics: body.topics };
  },
  topics: ["room.lobby", "user:alice"],
  transports: ["websocket", "sse", "long-poll"],
  lastEventId: null,
  retry: 250,
  maxRetry: 5000,
  onEvent: (e: TowerPush.PushEvent) => {
    if (e.event === "reset") location.reload();
    const where: string = e.topic ?? "default";
    console.log(where, e.event, e.data, e.id);
  },
  onStatus: (status: TowerPush.Status, transport: TowerPush.Transport) => {
    console.log(status, transport);
  },
});

const sent: boolean = conn.send("hi", { to: "bob" });
const transport: TowerPush.Transport = conn.transport();
const cursor: string | null = conn.cursor();
const topics: string[] = conn.topics();
console.log(sent, transport, cursor, topics);
conn.close();

// A plain ticket string works too.
TowerPush.connect({ url: "/events", ticket: () => "t" });

// @ts-expect-error: "sse2" is not a transport
TowerPush.connect({ url: "/events", transports: ["sse2"] });
// @ts-expect-error: url is required
TowerPush.connect({ transports: ["sse"] });
