#!/usr/bin/env bash
# Scale-out, measured: starts N instances of `examples/cluster.rs` on one port (SO_REUSEPORT)
# and one backbone, spreads CONNS connections over them with the shared load tool
# (benches/load/loadgen), publishes on one instance (the publisher's connection lands on
# one of them) and records, per run, one JSON line with:
#   - delivery completeness and p50/p99 publish-to-delivery latency (from loadgen),
#   - per instance: connections, CPU during the publish phase, CPU per delivery,
#   - backbone work per publish: Redis commands / CPU / bytes, or NATS messages / bytes.
#
#   usage: scripts/scale-out.sh            # the matrix below, from the project root
#   env:   BACKBONES="redis nats"  INSTANCES_LIST="1 4"  CONNS_LIST="2000 10000"
#          TRANSPORT=sse  EVENTS=100  RATE=20  REPS=3  (runs interleaved: rep, conns, backbone, n)
#          BENCH_DIR=benches/load  BENCH_WORK=/tmp/tower-push-bench  OUT=target/scale-out.jsonl
#          REDIS_URL (default redis://127.0.0.1:6379; the shared one is used, keys under a
#          fresh prefix). NATS: the script starts its own `nats-server -js` with monitoring on
#          free ports (the counters come from its /varz), and removes it after.
#   Tables: python3 scripts/scale-out-report.py target/scale-out.jsonl
# See docs/SCALING.md for what the figures mean and a plan for 1,000,000 connections.
set -euo pipefail
set +m
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BACKBONES="${BACKBONES:-redis nats}"
INSTANCES_LIST="${INSTANCES_LIST:-1 4}"
CONNS_LIST="${CONNS_LIST:-2000 10000}"
TRANSPORT="${TRANSPORT:-sse}" EVENTS="${EVENTS:-100}" RATE="${RATE:-20}" REPS="${REPS:-3}"
BENCH_DIR="${BENCH_DIR:-$ROOT/benches/load}"
BENCH_WORK="${BENCH_WORK:-${TMPDIR:-/tmp}/tower-push-bench}"
OUT="${OUT:-$ROOT/target/scale-out.jsonl}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
TMP="$(mktemp -d)"
die() { echo "scale-out: $*" >&2; exit 1; }

# ---- build: the instance binary and the load tool
cargo build --release --quiet --example cluster --features redis,nats
CLUSTER="$ROOT/target/release/examples/cluster"
mkdir -p "$BENCH_WORK"
rsync -a --chmod=u+w --exclude target --exclude logs --exclude results.jsonl "$BENCH_DIR/" "$BENCH_WORK/"
(cd "$BENCH_WORK/loadgen" && cargo build --release --quiet)
LOADGEN="$BENCH_WORK/loadgen/target/release/loadgen"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SUP="" NATS_PID=""
cleanup() {
  [ -n "$SUP" ] && { kill -TERM -- "-$SUP" 2>/dev/null || true; sleep 1; kill -KILL -- "-$SUP" 2>/dev/null || true; }
  [ -n "$NATS_PID" ] && { kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; }
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- NATS: our own server with monitoring, so that its counters are ours alone
start_nats() {
  local port mport
  port="$("$LOADGEN" --pick-port)"; mport="$("$LOADGEN" --pick-port)"
  [ "$port" != "$mport" ] || mport=$((mport + 1))
  command -v nats-server >/dev/null || PATH="$PATH:/usr/sbin"
  nats-server -a 127.0.0.1 -p "$port" -m "$mport" -js -sd "$TMP/nats" >"$TMP/nats.log" 2>&1 &
  NATS_PID=$!
  NATS_URL="nats://127.0.0.1:$port" NATS_MON="http://127.0.0.1:$mport"
  for _ in $(seq 1 100); do curl -sf "$NATS_MON/varz" >/dev/null && return 0; sleep 0.1; done
  die "nats-server did not start; see $TMP/nats.log"
}

# ---- counters: backbone totals and, per instance, CPU ticks and open fds
backbone_counters() { # prints "key value" lines
  case "$1" in
    redis)
      redis-cli -u "$REDIS_URL" INFO all | tr -d '\r' | awk -F'[:=,]' '
        /^cmdstat_/ { calls += $3; usec += $5 }
        /^total_net_input_bytes/ { print "bytes_in", $2 }
        /^total_net_output_bytes/ { print "bytes_out", $2 }
        END { print "commands", calls; print "command_usec", usec }' ;;
    nats)
      curl -sf "$NATS_MON/varz" | python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in ("in_msgs","out_msgs","in_bytes","out_bytes"): print(k, v[k])' ;;
  esac
}
snapshot() { # FILE BACKBONE
  {
    echo "t $(date +%s.%N)"
    for pid in $(cat "$TMP/pids"); do
      echo "cpu $pid $(awk '{print $14 + $15}' "/proc/$pid/stat") $(ls "/proc/$pid/fd" | wc -l)"
    done
    backbone_counters "$2"
  } >"$1"
}

one_run() { # BACKBONE INSTANCES CONNS
  local backbone=$1 n=$2 conns=$3 port prefix i
  port="$("$LOADGEN" --pick-port)"
  prefix="scale-out-$$-$RANDOM"
  : >"$TMP/pids"
  # one supervisor (the process loadgen watches; its children are counted) with N instances
  PORT="$port" PREFIX="$prefix" REDIS_URL="$REDIS_URL" NATS_URL="$([ "$backbone" = nats ] && echo "$NATS_URL")" \
    setsid bash -c '[ -n "$NATS_URL" ] || unset NATS_URL
      for i in $(seq 1 '"$n"'); do "$0" & echo $! >>"$1"; done; wait' "$CLUSTER" "$TMP/pids" \
    >"$TMP/instances.log" 2>&1 </dev/null &
  SUP=$!
  for _ in $(seq 1 200); do
    [ "$(grep -c '^instance' "$TMP/instances.log")" -ge "$n" ] && break
    sleep 0.1
  done
  [ "$(grep -c '^instance' "$TMP/instances.log")" -ge "$n" ] || die "instances did not start: $(cat "$TMP/instances.log")"
  snapshot "$TMP/idle" "$backbone"
  echo "scale-out: $backbone x$n, $conns $TRANSPORT connections, $EVENTS events at $RATE/s" >&2
  # loadgen announces its publish phase on stderr: snapshot at its start and its end
  "$LOADGEN" --transport "$TRANSPORT" --conns "$conns" --events "$EVENTS" --rate "$RATE" \
    --url "http://127.0.0.1:$port" --server-pid "$SUP" --peer "cluster-$backbone-x$n" \
    2> >(while IFS= read -r line; do
           echo "$line" >&2
           case "$line" in
             "loadgen: publishing"*) snapshot "$TMP/pub0" "$backbone" ;;
             "loadgen: publish phase"*) snapshot "$TMP/pub1" "$backbone" ;;
           esac
         done) >"$TMP/loadgen.json" || die "loadgen failed"
  sleep 0.5 # the stderr reader's last snapshot
  kill -TERM -- "-$SUP" 2>/dev/null || true
  wait "$SUP" 2>/dev/null || true
  SUP=""
  [ "$backbone" = redis ] && redis-cli -u "$REDIS_URL" --scan --pattern "$prefix:*" | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null
  python3 - "$TMP" "$backbone" "$n" "$OUT" <<'PY'
import json, os, sys
tmp, backbone, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def read(name):
    cpu, kv = {}, {}
    for line in open(os.path.join(tmp, name)):
        f = line.split()
        if f[0] == "cpu":
            cpu[f[1]] = (int(f[2]), int(f[3]))
        elif f[0] != "t":
            kv[f[0]] = int(f[1])
        else:
            kv["t"] = float(f[1])
    return cpu, kv
lg = json.loads(open(os.path.join(tmp, "loadgen.json")).read().strip().splitlines()[-1])
(idle, _), (p0, b0), (p1, b1) = read("idle"), read("pub0"), read("pub1")
hz = os.sysconf("SC_CLK_TCK")
published = lg["published"] + (1 if lg["transport"] == "poll" else 0)
per_instance = []
for pid in sorted(idle):
    conns = p0[pid][1] - idle[pid][1]
    cpu_s = (p1[pid][0] - p0[pid][0]) / hz
    deliveries = conns * lg["published"]
    per_instance.append({"conns": conns, "cpu_s_publish": round(cpu_s, 3),
                         "cpu_us_per_delivery": round(cpu_s * 1e6 / deliveries, 2) if deliveries else None})
backbone_work = {k: round((b1[k] - b0[k]) / published, 2) for k in b0 if k != "t"}
row = {"backbone": backbone, "instances": n, "transport": lg["transport"], "conns": lg["conns"],
       "established": lg["established"], "events": lg["events"], "published": lg["published"],
       "delivered": lg["delivered"], "all_delivered": lg["all_delivered"],
       "completeness": round(lg["delivered"] / max(1, lg["conns"] * lg["events"]), 6),
       "p50_ms": lg.get("p50_ms"), "p99_ms": lg.get("p99_ms"),
       "cpu_us_per_delivery": lg.get("cpu_us_per_event"), "kib_per_conn": lg.get("rss_per_conn_kib"),
       "per_instance": per_instance, "backbone_per_publish": backbone_work, "ts": lg["ts"]}
open(out, "a").write(json.dumps(row) + "\n")
print(json.dumps(row))
PY
}

mkdir -p "$(dirname "$OUT")"
case " $BACKBONES " in *" nats "*) start_nats ;; esac
for rep in $(seq 1 "$REPS"); do
  for conns in $CONNS_LIST; do
    for backbone in $BACKBONES; do
      for n in $INSTANCES_LIST; do
        one_run "$backbone" "$n" "$conns"
        sleep "${COOLDOWN_S:-3}"
      done
    done
  done
done
echo "scale-out: results appended to $OUT; tables: python3 scripts/scale-out-report.py $OUT" >&2
