#!/usr/bin/env bash
# Memory per idle SSE stream over HTTPS: HTTP/2 with many streams per connection, HTTP/2 with
# one stream per connection, and HTTP/1.1, at STREAMS streams (default 10,000), held by
# h2load (Debian's nghttp2-client, installed if missing) against examples/https.rs.
# Prints one line per mode: streams, connections, RSS before and with the streams, per stream.
# Run from the project root: scripts/h2-memory.sh
set -euo pipefail
STREAMS=${STREAMS:-10000}
PER_CONN=${PER_CONN:-100}
PORT=${PORT:-3443}
if ! command -v h2load >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client
fi
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
cargo build --quiet --release --example https --features tls
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
open_streams() { curl -sk "https://127.0.0.1:$PORT/streams" || echo 0; }

measure() { # name, h2load arguments...
  local name=$1; shift
  TLS_CERT="$dir/cert.pem" TLS_KEY="$dir/key.pem" TICK_MS=0 PORT=$PORT \
    target/release/examples/https >/dev/null &
  local server=$!
  for _ in $(seq 100); do curl -sk "https://127.0.0.1:$PORT/streams" >/dev/null && break; sleep 0.1; done
  sleep 1
  local before; before=$(rss_kib $server)
  h2load -n "$STREAMS" -H 'accept: text/event-stream' "$@" \
    "https://127.0.0.1:$PORT/events" \
    >"$dir/h2load.log" 2>&1 &
  local load=$!
  local open=0
  for _ in $(seq 600); do
    open=$(open_streams); [ "$open" -ge "$STREAMS" ] && break; sleep 0.5
  done
  sleep 3
  local after; after=$(rss_kib $server)
  if [ "$open" -lt 1 ]; then echo "$name: no stream opened"; cat "$dir/h2load.log"; exit 1; fi
  printf '%-28s streams %6s  rss %7s KiB -> %8s KiB  %6.1f KiB per stream\n' \
    "$name" "$open" "$before" "$after" "$(awk -v a="$after" -v b="$before" -v n="$open" 'BEGIN { print (a - b) / n }')"
  kill $load 2>/dev/null || true; wait $load 2>/dev/null || true
  kill -TERM $server; wait $server 2>/dev/null || true
}

conns=$((STREAMS / PER_CONN))
measure "h2, $PER_CONN streams/conn" -c "$conns" -m "$PER_CONN"
# One stream per connection: connections are opened RATE a second. All at once, h2load's one
# thread finishes their TLS handshakes one by one, and those still waiting after 10 s are
# closed by the server's first-request deadline (as they should be).
measure "h2, 1 stream/conn" -c "$STREAMS" -m 1 -r "${RATE:-500}"
measure "http/1.1, 1 stream/conn" --h1 -c "$STREAMS" -m 1 -r "${RATE:-500}"
