// Types of the tower-push browser client (tower-push.js), a global script: `TowerPush`.
// Served beside the script by `ClientScript` at any path ending in `.d.ts`.

declare namespace TowerPush {
  /** A transport, in the order `transports` prefers them. */
  type Transport = "websocket" | "sse" | "long-poll";

  /** What `onStatus` reports. */
  type Status = "connecting" | "open" | "reconnecting" | "closed";

  /** One event, the same on every transport. */
  interface PushEvent {
    /** The event's cursor (what a reconnect resumes after); `null` for none. */
    id: string | null;
    /** The event's name: `"message"` when it has none; `"reset"` when history was lost. */
    event: string;
    /** The topic it came from, on a connection with several topics; else `null`. */
    topic: string | null;
    /** The event's data, as published (JSON stays text: `JSON.parse` it). */
    data: string;
  }

  /** What a `ticket` function may answer instead of the bare ticket. */
  interface TicketAnswer {
    ticket: string;
    /** The topics the ticket grants, to read on this connection (`?topic=`). */
    topics?: string[];
  }

  interface Options {
    /** The push endpoint (a `Negotiate` route), absolute or relative to the page. */
    url: string;
    /**
     * Called before every connect and reconnect: a fresh single-use ticket (`?ticket=`), or
     * `{ticket, topics}`. A rejected promise counts as a failed attempt (retried with backoff).
     */
    ticket?: () => string | TicketAnswer | Promise<string | TicketAnswer>;
    /** The topics to read on one connection (`?topic=a&topic=b`); default none. */
    topics?: string[];
    /** Transports in order of preference; a transport that never opens falls back to the next. */
    transports?: Transport[];
    /** Resume after this cursor on the first connect; default `null` (from now). */
    lastEventId?: string | null;
    /** @deprecated Ignored: every event name arrives on every transport. */
    events?: string[];
    /** First reconnect delay in ms, doubled after each failure; default 500. */
    retry?: number;
    /** Longest reconnect delay in ms; default 10000. */
    maxRetry?: number;
    /** Each event. On `"reset"`, reload your state: events may have been missed. */
    onEvent?: (event: PushEvent) => void;
    /** Each status change, with the transport it concerns. */
    onStatus?: (status: Status, transport: Transport) => void;
  }

  interface Connection {
    /** Sends `{text, ...extra}` as JSON over the WebSocket when it is open; else `false`. */
    send(text: string, extra?: Record<string, unknown>): boolean;
    /** The topics of the connection. */
    topics(): string[];
    /** The transport in use (or being tried). */
    transport(): Transport;
    /** The last cursor: what the next reconnect resumes after. */
    cursor(): string | null;
    /** Closes for good (no reconnect). */
    close(): void;
  }

  /** Connects, and keeps reconnecting (with a fresh ticket) until `close()`. */
  function connect(options: Options): Connection;
}
