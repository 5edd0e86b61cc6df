#!/usr/bin/env bash
# Instructions per long-poll delivery, for the shared load tool's peers, under callgrind.
#
#   usage: scripts/poll-callgrind.sh [PEER...]        (default: tower-push axum)
#
# Each peer (built by the load tool in benches/load, or BENCH) runs under
# `valgrind --tool=callgrind` twice, with CONNS long-poll clients (default 200) and
# LOW then HIGH events (default 10 and 50) at RATE events/s (default 5). The whole server's
# instructions of the HIGH run less the LOW run's, over the deliveries between them, is the
# cost of one delivery with start-up and connections taken out. Instruction counts do not
# depend on what else the machine runs (unlike CPU time on this 2-core machine); they move
# about 2 % between runs of one binary (lock spinning). The callgrind.out files stay in OUT
# (default /tmp/poll-callgrind) for `callgrind_annotate --inclusive=yes`.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH="${BENCH:-benches/load}"
CONNS="${CONNS:-200}" LOW="${LOW:-10}" HIGH="${HIGH:-50}" RATE="${RATE:-5}"
OUT="${OUT:-/tmp/poll-callgrind}"
LOADGEN="$BENCH/loadgen/target/release/loadgen"
[ -x "$LOADGEN" ] || { echo "build the load tool first (its README)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
mkdir -p "$OUT"
peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(tower-push axum)

# A peer's server binary (peers with a Cargo project of their own: tower-push, axum, ...).
binary() { echo "$BENCH/peers/$1/target/release/peer-$1"; }

# Runs PEER under callgrind with EVENTS events; prints the server's total instructions.
one() {
  local peer=$1 events=$2 bin port pid file
  bin="$(binary "$peer")"
  [ -x "$bin" ] || { echo "no $bin: build the peer first" >&2; exit 2; }
  port="$("$LOADGEN" --pick-port)"
  file="$OUT/callgrind.out.$peer.$events"
  PORT=$port valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" \
    >"$OUT/$peer.$events.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  "$LOADGEN" --transport poll --conns "$CONNS" --events "$events" --rate "$RATE" \
    --url "http://127.0.0.1:$port" --connect-timeout-s 60 >"$OUT/$peer.$events.json" 2>/dev/null
  kill -INT "$pid" 2>/dev/null || true
  sleep 1
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # "summary: N" (or "totals: N") is the whole run's instruction count.
  grep -E '^(summary|totals):' "$file" | head -1 | awk '{print $2}'
}

deliveries() {
  python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["delivered"])' "$1"
}

for peer in "${peers[@]}"; do
  low=$(one "$peer" "$LOW")
  high=$(one "$peer" "$HIGH")
  d_low=$(deliveries "$OUT/$peer.$LOW.json")
  d_high=$(deliveries "$OUT/$peer.$HIGH.json")
  python3 - "$peer" "$low" "$high" "$d_low" "$d_high" <<'EOF'
import sys
peer, low, high, dl, dh = sys.argv[1], *map(int, sys.argv[2:])
print(f"{peer}: {high:,} - {low:,} instructions over {dh - dl:,} deliveries = "
      f"{(high - low) / (dh - dl):,.0f} per delivery")
EOF
done
