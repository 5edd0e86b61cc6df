#!/usr/bin/env python3
"""Topics at scale: one instance of `examples/topic_scale.rs` holding many small topics on a
private Redis or NATS, measured from /proc (see docs/SCALING.md).

For each backbone it runs the example's server and client twice: once with every connection
reading its own topics (CONNS x TOPICS_PER_CONN distinct topics) and once with every
connection reading the same few topics (the connections' cost without the topics'), and
samples the instance and the backbone at each phase boundary the client prints:

- subscribe: time to open every connection with its topics, the instance's backbone
  connections, NATS consumers;
- idle: CPU of instance + backbone over IDLE_SECS with nothing published, and memory;
- publish: publish-to-delivery latency, PUBLISH_RATE publishes/s on random topics;
- churn: CHURN_RATE new topics/s (and as many leaving) for CHURN_SECS, memory before/after;
- leave: what the backbone still holds once every client left.

Run from the project root:

    python3 scripts/topic-scale.py                         # both backbones, 12,500 x 8
    BACKBONES=redis CONNS=2000 IDLE_SECS=10 python3 scripts/topic-scale.py
    MODE=single CONNS=1000 python3 scripts/topic-scale.py  # the single-topic reference

Each run appends one JSON line to target/topic-scale.jsonl and prints a table. BIN overrides
the example binary (to measure another build of it the same way).
"""

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
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def env(name, default):
    return os.environ.get(name, str(default))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE // 1024


def connections_to(pid, port):
    """The process's TCP connections whose remote port is `port`."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    remote_port = int(parts[2].split(":")[1], 16)
                    if remote_port == port and parts[9] in inodes and parts[3] == "01":
                        count += 1
        except FileNotFoundError:
            pass
    return count


class Backbone:
    def __init__(self, kind):
        self.kind = kind
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"topic-scale-{kind}-")
        if kind == "redis":
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", self.dir],
                stdout=subprocess.DEVNULL)
            self.url = f"redis://127.0.0.1:{self.port}"
        else:
            self.monitor = free_port()
            binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
            self.proc = subprocess.Popen(
                [binary, "-js", "-a", "127.0.0.1", "-p", str(self.port),
                 "-m", str(self.monitor), "-sd", self.dir],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.url = f"nats://127.0.0.1:{self.port}"
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)

    def left(self):
        """What the backbone still holds for topics: Redis channels, NATS consumers."""
        if self.kind == "redis":
            out = subprocess.run(["redis-cli", "-p", str(self.port), "PUBSUB", "NUMPAT"],
                                 capture_output=True, text=True).stdout
            channels = subprocess.run(["redis-cli", "-p", str(self.port), "PUBSUB", "CHANNELS"],
                                      capture_output=True, text=True).stdout
            return {"channels": len([l for l in channels.splitlines() if l.strip()]),
                    "patterns": int(out.strip() or 0)}
        return {"consumers": self.consumers()}

    def consumers(self):
        if self.kind != "nats":
            return None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/jsz") as r:
            return json.load(r).get("consumers", 0)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def sample(server, backbone):
    return {
        "t": time.monotonic(),
        "server_cpu": cpu_seconds(server.pid),
        "server_rss_kib": rss_kib(server.pid),
        "backbone_cpu": cpu_seconds(backbone.proc.pid),
        "backbone_conns": connections_to(server.pid, backbone.port),
        "consumers": backbone.consumers(),
    }


def run(binary, kind, shared, conns, per, extra=None):
    backbone = Backbone(kind)
    prefix = f"ts{int(time.time() * 1000)}"
    port = free_port()
    base = dict(os.environ, BACKBONE=kind, URL=backbone.url, PREFIX=prefix, PORT=str(port),
                ADDR=f"127.0.0.1:{port}", CONNS=str(conns), TOPICS_PER_CONN=str(per),
                SHARED="1" if shared else "0")
    base.update(extra or {})
    server = subprocess.Popen([binary, "server"], env=base, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    assert line.startswith("READY"), line
    time.sleep(1)
    samples = {"start": sample(server, backbone)}
    results = {}
    client = subprocess.Popen([binary, "client"], env=base, stdout=subprocess.PIPE, text=True)
    for line in client.stdout:
        line = line.strip()
        if line.startswith("PHASE "):
            _, name, edge = line.split()
            samples[f"{name}_{edge}"] = sample(server, backbone)
            print(f"  {kind} {'shared' if shared else 'distinct'}: {name} {edge}", flush=True)
        elif line.startswith("RESULT "):
            r = json.loads(line[7:])
            results[r.pop("measure")] = r
    client.wait()
    left = backbone.left()
    server.terminate()
    server.wait(20)
    backbone.stop()
    s = samples
    idle_wall = s["idle_end"]["t"] - s["idle_start"]["t"]
    record = {
        "backbone": kind,
        "shared": shared,
        "connections": results["subscribe"]["connections"],
        "topics": per if shared else results["subscribe"]["topics"],
        "subscribe_s": results["subscribe"]["seconds"],
        "open_p99_ms": results["subscribe"]["open_p99_ms"],
        "backbone_conns": s["subscribe_end"]["backbone_conns"],
        "backbone_conns_start": s["start"]["backbone_conns"],
        "consumers": s["subscribe_end"]["consumers"],
        "rss_start_kib": s["start"]["server_rss_kib"],
        "rss_idle_kib": s["idle_start"]["server_rss_kib"],
        "idle_s": round(idle_wall, 1),
        "idle_server_cpu_pct": round(100 * (s["idle_end"]["server_cpu"] - s["idle_start"]["server_cpu"]) / idle_wall, 2),
        "idle_backbone_cpu_pct": round(100 * (s["idle_end"]["backbone_cpu"] - s["idle_start"]["backbone_cpu"]) / idle_wall, 2),
        "publish": results["publish"],
        "churn": results["churn"],
        "churn_rss_start_kib": s["churn_start"]["server_rss_kib"],
        "churn_rss_end_kib": s["churn_end"]["server_rss_kib"],
        "left": left,
        "left_backbone_conns": s["leave_end"]["backbone_conns"],
    }
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "topic-scale.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def main():
    binary = os.environ.get("BIN")
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "topic_scale",
                        "--features", "redis,nats"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target", "release", "examples", "topic_scale")
    conns = int(env("CONNS", 12500))
    per = int(env("TOPICS_PER_CONN", 8))
    if env("MODE", "scale") == "single":
        # The single-topic reference: CONNS connections on one topic, one publish per second
        # (as many deliveries per second as PUBLISH_RATE publishes on distinct topics).
        for kind in env("BACKBONES", "redis nats").split():
            r = run(binary, kind, True, int(env("CONNS", 1000)), 1,
                    {"PUBLISH_RATE": "1", "IDLE_SECS": "5", "CHURN_SECS": "0"})
            print(json.dumps(r))
        return
    for kind in env("BACKBONES", "redis nats").split():
        distinct = run(binary, kind, False, conns, per)
        # The connections' own cost: the same connections, all on the same few topics.
        shared = run(binary, kind, True, conns, per,
                     {"IDLE_SECS": "5", "PUBLISH_SECS": "0", "CHURN_SECS": "0"})
        per_topic = (distinct["rss_idle_kib"] - shared["rss_idle_kib"]) * 1024 / max(1, distinct["topics"] - shared["topics"])
        print(json.dumps({"backbone": kind, "bytes_per_idle_topic": round(per_topic)}))
        for r in (distinct, shared):
            print(json.dumps(r))


if __name__ == "__main__":
    sys.exit(main())
