#!/usr/bin/env python3
"""The demo chat with many users on one instance, on a private Redis and a private NATS (the
acceptance run of "topics at scale", see docs/SCALING.md).

Each user mints a ticket for its own room (`POST /api/ticket {"user":"uN","room":"rN"}`) and
opens one SSE connection reading its room and its direct-message topic (the two topics the
ticket lists): USERS users are 2 x USERS topics. Then, per backbone:

- open: every stream's status (all must be 200), the time to open them all;
- held: the instance's backbone connections (its TCP sockets to the backbone's port), NATS
  consumers (from the server's /jsz), Redis Pub/Sub channels (`PUBSUB NUMSUB` over them);
- idle: CPU of instance + backbone over IDLE_SECS with nothing published;
- deliver: a message posted to the last user's room reaches that user's stream;
- leave: every client closes; within LEAVE_SECS the backbone holds no channel of the chat
  (Redis), no consumer and no per-topic subscription (NATS, from /connz), and the
  instance reports no open connection (`tower_push_connections` in /metrics).

With MODE=rounds it measures connection churn instead: ROUNDS rounds of USERS SSE
connections opened and closed (backbones "memory redis nats"), and the instance's RSS after
each round's clients left (and SETTLE_SECS passed).

Run from the project root (builds the chat with `--release --features redis,nats,metrics`):

    python3 scripts/chat-scale.py                       # both backbones, 6,000 users
    BACKBONES=redis USERS=500 IDLE_SECS=5 python3 scripts/chat-scale.py
    MODE=rounds ROUNDS=4 USERS=2000 python3 scripts/chat-scale.py

Prints one table; appends one JSON line per backbone to target/chat-scale.jsonl. Exits 1 when
an acceptance check fails.
"""

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _topic_scale():
    """The /proc helpers of scripts/topic-scale.py (a file name Python cannot import)."""
    import importlib.util
    path = os.path.join(ROOT, "scripts", "topic-scale.py")
    spec = importlib.util.spec_from_file_location("topic_scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_ts = _topic_scale()
env, free_port, cpu_seconds, rss_kib, connections_to = (
    _ts.env, _ts.free_port, _ts.cpu_seconds, _ts.rss_kib, _ts.connections_to)


def wait_port(port, deadline=30):
    end = time.time() + deadline
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {deadline} s")


def http_json(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


class Backbone:
    """A private redis-server or nats-server -js on free ports, in a temporary directory."""

    def __init__(self, kind):
        self.kind = kind
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"chat-scale-{kind}-")
        if kind == "redis":
            cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--dir", self.dir]
            self.url = f"redis://127.0.0.1:{self.port}"
        else:
            self.monitor = free_port()
            cmd = ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port),
                   "-m", str(self.monitor), "-sd", self.dir]
            self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        if kind == "nats":
            wait_port(self.monitor)

    def redis(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args],
                             capture_output=True, text=True, timeout=30)
        return out.stdout

    def channels(self):
        """Redis Pub/Sub channels of the chat (its key prefix)."""
        out = self.redis("PUBSUB", "CHANNELS", "tower-push-chat:*")
        return len([line for line in out.splitlines() if line.strip()])

    def consumers(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/jsz", timeout=10) as r:
            return json.load(r).get("consumers", 0)

    def subscriptions(self):
        """Subscriptions the NATS server holds for its clients."""
        url = f"http://127.0.0.1:{self.monitor}/connz?subs=1"
        with urllib.request.urlopen(url, timeout=10) as r:
            return sum(c.get("subscriptions", 0) for c in json.load(r)["connections"])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class User:
    def __init__(self, index):
        self.index = index
        self.status = None
        self.buffer = bytearray()
        self.writer = None
        self.task = None


async def open_user(port, user, tickets):
    ticket, topics = tickets[user.index]
    query = "&".join([f"ticket={ticket}"] + [f"topic={t}" for t in topics])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"GET /api/events?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  f"Accept: text/event-stream\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    user.status = int(head.split(b" ", 2)[1])
    user.writer = writer

    async def read():
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                user.buffer += chunk
                if len(user.buffer) > 1 << 16:
                    del user.buffer[: len(user.buffer) - (1 << 15)]
        except (ConnectionError, asyncio.CancelledError):
            return

    user.task = asyncio.create_task(read())


async def open_users(port, users_n):
    """USERS users, each with a fresh ticket and its SSE connection, 500 at a time (tickets
    expire, so each is minted just before use), 128 connecting at once."""
    loop = asyncio.get_running_loop()
    users = [User(i) for i in range(users_n)]
    tickets = {}
    gate = asyncio.Semaphore(128)

    async def opened(user):
        async with gate:
            await open_user(port, user, tickets)

    for chunk in range(0, users_n, 500):
        batch = range(chunk, min(chunk + 500, users_n))
        minted = await asyncio.gather(*[loop.run_in_executor(None, mint, port, i)
                                        for i in batch])
        tickets.update(zip(batch, minted))
        await asyncio.gather(*[opened(users[i]) for i in batch])
    return users


def mint(port, index):
    status, body = http_json(f"http://127.0.0.1:{port}/api/ticket",
                             {"user": f"u{index}", "room": f"r{index}"})
    answer = json.loads(body)
    return answer["ticket"], answer["topics"]


@contextlib.contextmanager
def chat_on(kind, binary):
    """The chat on a private backbone of `kind` ("memory": none): (backbone, port, process),
    all stopped when the block ends."""
    backbone = Backbone(kind) if kind != "memory" else None
    port = free_port()
    environ = dict(os.environ, PORT=str(port), RUST_LOG="warn")
    environ.pop("REDIS_URL", None)
    environ.pop("NATS_URL", None)
    if backbone:
        environ["REDIS_URL" if kind == "redis" else "NATS_URL"] = backbone.url
    chat = subprocess.Popen([binary], env=environ, stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield backbone, port, chat
    finally:
        chat.terminate()
        try:
            chat.wait(timeout=15)
        except subprocess.TimeoutExpired:
            chat.kill()
        if backbone:
            backbone.stop()


async def run(kind, users_n, idle_secs, leave_secs, binary):
    result = {"backbone": kind, "users": users_n, "topics": 2 * users_n}
    with chat_on(kind, binary) as (backbone, port, chat):
        baseline_subs = backbone.subscriptions() if kind == "nats" else None
        loop = asyncio.get_running_loop()
        started = time.time()
        users = await open_users(port, users_n)
        result["open_secs"] = round(time.time() - started, 1)
        statuses = {}
        for u in users:
            statuses[u.status] = statuses.get(u.status, 0) + 1
        result["statuses"] = {str(k): v for k, v in statuses.items()}
        await asyncio.sleep(2)
        result["backbone_connections"] = connections_to(chat.pid, backbone.port)
        if kind == "redis":
            result["channels"] = backbone.channels()
        else:
            result["consumers"] = backbone.consumers()
            result["subscriptions"] = backbone.subscriptions()
        # Idle.
        before = (cpu_seconds(chat.pid), cpu_seconds(backbone.proc.pid), time.time())
        await asyncio.sleep(idle_secs)
        after = (cpu_seconds(chat.pid), cpu_seconds(backbone.proc.pid), time.time())
        wall = after[2] - before[2]
        result["idle_cpu_instance_pct"] = round(100 * (after[0] - before[0]) / wall, 2)
        result["idle_cpu_backbone_pct"] = round(100 * (after[1] - before[1]) / wall, 2)
        result["idle_cpu_pct"] = round(result["idle_cpu_instance_pct"]
                                       + result["idle_cpu_backbone_pct"], 2)
        # A message to the last user's room.
        last = users[-1]
        marker = f"marker-{time.time_ns()}"
        sent = time.time()
        status, _ = await loop.run_in_executor(None, lambda: http_json(
            f"http://127.0.0.1:{port}/api/messages",
            {"user": "u0", "room": f"r{users_n - 1}", "text": marker}))
        result["post_status"] = status
        delivered = None
        while time.time() - sent < 10:
            if marker.encode() in last.buffer:
                delivered = round((time.time() - sent) * 1000, 1)
                break
            await asyncio.sleep(0.01)
        result["delivered_ms"] = delivered
        # Leave.
        for u in users:
            if u.writer:
                u.writer.close()
            if u.task:
                u.task.cancel()
        await asyncio.sleep(0.5)
        left = time.time()
        while True:
            if kind == "redis":
                held = {"channels": backbone.channels()}
            else:
                held = {"consumers": backbone.consumers(),
                        "subscriptions_beyond_startup": backbone.subscriptions() - baseline_subs}
            held["instance_connections"] = open_connections(port)
            if all(v == 0 for v in held.values()) or time.time() - left > leave_secs:
                break
            await asyncio.sleep(1)
        result["left_after_leave"] = held
        result["released_secs"] = round(time.time() - left, 1)
    return result


async def rounds(kind, users_n, rounds_n, settle_secs, binary):
    """RSS of the chat after each of `rounds_n` rounds of `users_n` connections."""
    result = {"backbone": kind, "mode": "rounds", "users": users_n, "rss_after_kib": []}
    with chat_on(kind, binary) as (_, port, chat):
        result["rss_start_kib"] = rss_kib(chat.pid)
        for _ in range(rounds_n):
            users = await open_users(port, users_n)
            assert all(u.status == 200 for u in users), "every stream opens"
            result.setdefault("rss_open_kib", []).append(rss_kib(chat.pid))
            for u in users:
                u.writer.close()
                u.task.cancel()
            await asyncio.sleep(settle_secs)
            result["rss_after_kib"].append(rss_kib(chat.pid))
    first = result["rss_after_kib"][0]
    result["last_vs_first_pct"] = round(100 * (result["rss_after_kib"][-1] - first) / first, 1)
    return result


def open_connections(port):
    """`tower_push_connections` summed over transports, from the chat's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("tower_push_connections{") or line.startswith("tower_push_connections "):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def acceptance(r):
    failures = []
    if r["statuses"] != {"200": r["users"]}:
        failures.append(f"statuses {r['statuses']}")
    if r["backbone_connections"] > 8:
        failures.append(f"{r['backbone_connections']} backbone connections")
    if r.get("consumers", 0) > 8:
        failures.append(f"{r['consumers']} consumers")
    if r["delivered_ms"] is None:
        failures.append("the last user's message did not arrive")
    if r["idle_cpu_pct"] >= 5:
        failures.append(f"idle CPU {r['idle_cpu_pct']} %")
    if any(v != 0 for v in r["left_after_leave"].values()):
        failures.append(f"left after leave: {r['left_after_leave']}")
    return failures


def main():
    users_n = int(env("USERS", 6000))
    idle_secs = float(env("IDLE_SECS", 30))
    leave_secs = float(env("LEAVE_SECS", 90))
    binary = env("BIN", os.path.join(ROOT, "target", "release", "examples", "chat"))
    if "BIN" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "--example", "chat",
                        "--features", "redis,nats,metrics"], cwd=ROOT, check=True)
    failed = False
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    if env("MODE", "") == "rounds":
        for kind in env("BACKBONES", "memory redis nats").split():
            result = asyncio.run(rounds(kind, users_n, int(env("ROUNDS", 4)),
                                        float(env("SETTLE_SECS", 10)), binary))
            with open(os.path.join(ROOT, "target", "chat-scale.jsonl"), "a") as f:
                f.write(json.dumps(dict(result, at=time.strftime("%Y-%m-%dT%H:%M:%S"))) + "\n")
            for key, value in result.items():
                print(f"{kind:6} {key:28} {value}")
        return
    for kind in env("BACKBONES", "redis nats").split():
        result = asyncio.run(run(kind, users_n, idle_secs, leave_secs, binary))
        failures = acceptance(result)
        result["acceptance"] = failures or "pass"
        failed |= bool(failures)
        with open(os.path.join(ROOT, "target", "chat-scale.jsonl"), "a") as f:
            f.write(json.dumps(dict(result, at=time.strftime("%Y-%m-%dT%H:%M:%S"))) + "\n")
        for key, value in result.items():
            print(f"{kind:6} {key:28} {value}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
