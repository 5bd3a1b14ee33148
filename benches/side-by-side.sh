#!/usr/bin/env bash
# kaoqin-collector and the peer of the performance issue (ActivityWatch's
# aw-server-rust) side by side: single-event requests, closed loop, plaintext on
# loopback, runs alternating peer and kaoqin, a fresh server for every run.
#
#   AW=PATH/aw-server benches/side-by-side.sh [PAIRS] [SECONDS] [CLIENTS...]
#                                             (default 3 pairs of 10 s, 64 and 4)
#   BIN=DIR ...   kaoqin's binaries from DIR, not built here
#
# The peer is built apart (it is not part of this repository):
#   git clone https://github.com/ActivityWatch/aw-server-rust && cd aw-server-rust
#   git checkout 59eaae3 && cargo build --release -p aw-server
# and is driven by wrk (Debian's `wrk`), one thread, one connection per client,
# each POST one event with its own timestamp. kaoqin gets the same concurrency
# from kaoqin-loadgen (one agent per client, one heartbeat per Report), each
# Report durable before its answer; the peer answers before it commits.
# Prints a line per run, then the medians: requests/s, p99, and each server's
# CPU per request (user + system time from /proc over the run; kaoqin's counted
# from the moment every simulated agent is enrolled).
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-3}
secs=${2:-10}
shift 2 2>/dev/null || shift $#
clients=("${@:-64 4}")
read -r -a clients <<<"${clients[*]}"
: "${AW:?set AW to the aw-server binary}"
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet -p kaoqin-collector -p kaoqin-tests --bin kaoqin-collector --bin kaoqin-loadgen
fi
bin=${BIN:-$PWD/target/release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/post.lua" <<'EOF'
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local f = math.floor
  local ts = string.format("2026-12-01T%02d:%02d:%02d.%03dZ", f(counter / 3600000) % 24,
    f(counter / 60000) % 60, f(counter / 1000) % 60, counter % 1000)
  return wrk.format(nil, nil, nil,
    '[{"timestamp":"' .. ts .. '","duration":1.0,"data":{"app":"x","title":"y"}}]')
end
EOF

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
per() { echo "scale=1; $1 * 1000000 / $(getconf CLK_TCK) / ($2 * $secs)" | bc; }

peer() { # clients
  local dir port pid t0 out rps p99
  dir=$(mktemp -d -p "$work")
  port=$((20000 + RANDOM % 20000))
  "$AW" --port "$port" --dbpath "$dir/aw.db" --no-legacy-import >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/api/0/info" >/dev/null && break; sleep 0.05; done
  curl -sf -X POST -H 'Content-Type: application/json' "http://127.0.0.1:$port/api/0/buckets/b" \
    -d '{"client":"bench","type":"x","hostname":"h"}' >/dev/null
  t0=$(ticks $pid)
  out=$(wrk -t1 -c"$1" -d"${secs}s" --latency -s "$work/post.lua" "http://127.0.0.1:$port/api/0/buckets/b/events")
  local used=$(($(ticks $pid) - t0))
  kill $pid; wait $pid 2>/dev/null || true
  if echo "$out" | grep -q "Non-2xx"; then echo "peer: $(echo "$out" | grep Non-2xx)" >&2; exit 1; fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else {sub(/s$/, "", v); v *= 1000}; print v}')
  echo "peer $1 $rps $p99 $(per $used $rps)"
}

kaoqin() { # clients
  local dir pid url token lg t0 out
  dir=$(mktemp -d -p "$work")
  printf '[agents]\nreport_rate_per_second = 0\nenroll_rate_per_minute = 0\nmax_reports_in_flight = 100000\n' >"$dir/c.toml"
  KAOQIN_LOG=warn "$bin/kaoqin-collector" serve --config "$dir/c.toml" --data-dir "$dir/c" \
    --grpc 127.0.0.1:0 --plaintext >"$dir/out" 2>"$dir/err" &
  pid=$!
  for _ in $(seq 1 200); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.05; done
  url="http://$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$dir/out")"
  token=$("$bin/kaoqin-collector" token create --data-dir "$dir/c" --uses 100000 2>/dev/null)
  "$bin/kaoqin-loadgen" --collector "$url" --token "$token" --agents "$1" --interval 0 --batch 1 \
    --duration "$secs" >"$dir/lg.out" 2>"$dir/lg.err" &
  lg=$!
  until grep -q '^enrolled' "$dir/lg.err" 2>/dev/null; do kill -0 $lg 2>/dev/null || break; sleep 0.05; done
  t0=$(ticks $pid)
  wait $lg
  local used=$(($(ticks $pid) - t0))
  kill $pid; wait $pid 2>/dev/null || true
  out=$(cat "$dir/lg.out")
  local rps p99
  rps=$(echo "$out" | sed -n 's/.*events\/s: \([0-9]*\).*/\1/p')
  p99=$(echo "$out" | sed -n 's/.*p99_ms: \([0-9.]*\).*/\1/p')
  echo "kaoqin $1 $rps $p99 $(per $used $rps)"
}

results=$work/results
for c in "${clients[@]}"; do
  for _ in $(seq 1 "$pairs"); do
    peer "$c" | tee -a "$results"
    kaoqin "$c" | tee -a "$results"
  done
done
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
echo "| clients | peer req/s | kaoqin events/s | kaoqin / peer | CPU µs/request, kaoqin / peer | p99 ms, kaoqin / peer |"
echo "|---|---|---|---|---|---|"
for c in "${clients[@]}"; do
  col() { awk -v who="$1" -v c="$c" -v f="$2" '$1 == who && $2 == c {print $f}' "$results" | median; }
  p=$(col peer 3); k=$(col kaoqin 3)
  echo "| $c | $p | $k | $(printf '%.2f' "$(echo "scale=4; $k / $p" | bc)") | $(col kaoqin 5) / $(col peer 5) | $(col kaoqin 4) / $(col peer 4) |"
done
