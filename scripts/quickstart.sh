#!/usr/bin/env bash
# Brings the whole system up on this machine: a collector on embedded SQLite and
# an agent on this PC reporting into it (plus a scripted office day from a second,
# simulated PC, so there is something to look at at once). Ctrl-C stops both.
#
#   scripts/quickstart.sh            # state in ./kaoqin-demo
#   KAOQIN_DEMO_DIR=/tmp/kq scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

demo=${KAOQIN_DEMO_DIR:-$PWD/kaoqin-demo}
addr=${KAOQIN_DEMO_GRPC:-127.0.0.1:50051}
http=${KAOQIN_DEMO_HTTP:-127.0.0.1:8080}
mkdir -p "$demo"

echo "==> building (release)"
cargo build --release --quiet -p kaoqin-collector -p kaoqin-agent
bin=$PWD/target/release

echo "==> TLS: a private CA and a certificate for ${addr%:*}"
ca=$("$bin/kaoqin-collector" tls init --data-dir "$demo/collector" --name "${addr%:*}" --name localhost 2>/dev/null)

echo "==> starting the collector on $addr (data in $demo/collector)"
# --allow-replay: the simulated PC plays a day in the past (never in production).
"$bin/kaoqin-collector" serve --data-dir "$demo/collector" --grpc "$addr" --http "$http" --allow-replay \
  >"$demo/collector.out" 2>"$demo/collector.log" &
collector=$!
agent=""
cleanup() {
  [ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
  kill "$collector" 2>/dev/null && wait "$collector" 2>/dev/null
  echo "==> stopped; everything is kept in $demo"
}
trap cleanup EXIT INT TERM
for _ in $(seq 1 100); do
  grep -q "listening" "$demo/collector.out" 2>/dev/null && break
  kill -0 "$collector" 2>/dev/null || { cat "$demo/collector.log"; exit 1; }
  sleep 0.1
done

token=$("$bin/kaoqin-collector" token create --data-dir "$demo/collector" --ttl 1d)
"$bin/kaoqin-collector" staff import tests/fixtures/staff.csv --data-dir "$demo/collector" >/dev/null
password=$("$bin/kaoqin-collector" user add --username officer --role officer --data-dir "$demo/collector" 2>/dev/null || true)

echo "==> a simulated PC plays a scripted day (tests/fixtures/day.jsonl)"
KAOQIN_MACHINE_ID=demo-replay-pc "$bin/kaoqin-agent" enroll \
  --collector "https://$addr" --ca "$ca" --token "$token" --state-dir "$demo/replay-pc" >/dev/null
KAOQIN_LOG=warn "$bin/kaoqin-agent" run --state-dir "$demo/replay-pc" \
  --probe "replay:$PWD/tests/fixtures/day.jsonl" --once

echo "==> this PC's agent enrols and starts observing this machine"
"$bin/kaoqin-agent" enroll --collector "https://$addr" --ca "$ca" --token "$token" --state-dir "$demo/this-pc"
"$bin/kaoqin-agent" run --state-dir "$demo/this-pc" 2>"$demo/agent.log" &
agent=$!

cat <<INFO

kaoqin is running.
  collector     gRPC over TLS on $addr (CA: $ca), database $demo/collector/kaoqin.db, log $demo/collector.log
  this PC       state $demo/this-pc, log $demo/agent.log
  web pages     https://$http/  (user "officer", one-time password: ${password:-already set in an earlier run})
                the scripted day at a glance:   https://$http/today?date=2026-11-24
                and 张三's day in detail:        https://$http/person/E001?month=2026-11&day=2026-11-24
                HTTPS with the gRPC certificate: the browser warns once about the private CA ($ca)

Where to look (in another terminal):
  $bin/kaoqin-collector events --data-dir $demo/collector      # every stored event, one JSON a line
  $bin/kaoqin-collector report daily --date 2026-11-24 --data-dir $demo/collector   # the verdicts
  $bin/kaoqin-agent show   --state-dir $demo/replay-pc         # what the simulated PC recorded and sent
  $bin/kaoqin-agent show   --state-dir $demo/this-pc           # what this PC reports, in plain words
  $bin/kaoqin-agent status --state-dir $demo/this-pc           # spool depth, collector reachable

Press Ctrl-C to stop.
INFO
wait "$agent"
