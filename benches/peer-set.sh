#!/usr/bin/env bash
# The whole set of issue 20's scenarios for kaoqin in one go: plaintext and TLS;
# 4 and 64 agents sending one event per Report; 4 × 100 and 8 × 500 events per
# Report; optionally the fleet (2 × 9,500 agents, a Report a minute each, a new
# connection per Report). Closed loop (send, wait for the answer, send again)
# for all but the fleet. Each run starts a fresh release collector; every
# acknowledged event is durable before its answer, as in production.
#
#   benches/peer-set.sh [RUNS] [SECONDS]      (default 3 runs of 20 s)
#   FLEET=1 benches/peer-set.sh ...           also the fleet (120 s a run)
#   SCENARIOS="fleet" benches/peer-set.sh 1   only these (4x1 64x1 4x100 8x500 fleet)
#   TRANSPORTS=plain benches/peer-set.sh ...  only these (plain tls)
#   BIN=DIR benches/peer-set.sh ...           binaries from DIR, not built here
#
# Prints a line per run, then a table of medians: events/s, p99 latency, the
# collector's CPU per event and the load generator's CPU per Report (user +
# system time from /proc, from the moment every simulated agent is enrolled to
# the end, as the load generator reports its own: enrolments are not counted),
# so the two can be compared: what is
# measured should be the collector. The fleet comes from 16 loopback source
# addresses and runs over TLS twice: resuming sessions (as agents do) and with
# a full handshake for every connection (`tls-full`), which shows what
# resumption saves.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${2:-20}
ulimit -n 65536 2>/dev/null || true
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet -p kaoqin-collector -p kaoqin-tests --bin kaoqin-collector --bin kaoqin-loadgen
fi
bin=${BIN:-$PWD/target/release}
tick=$(getconf CLK_TCK)
results=$(mktemp)
trap 'rm -f "$results"' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

one() { # transport scenario
  local transport=$1 scenario=$2 work collector url ca_args=() args=() lines
  work=$(mktemp -d)
  printf '[agents]\nreport_rate_per_second = 0\nenroll_rate_per_minute = 0\nmax_reports_in_flight = 100000\n' >"$work/c.toml"
  local serve=(--config "$work/c.toml" --data-dir "$work/c" --grpc 127.0.0.1:0)
  if [ "$transport" != plain ]; then
    "$bin/kaoqin-collector" tls init --name 127.0.0.1 --data-dir "$work/c" >/dev/null 2>&1
    ca_args=(--ca "$work/c/tls/ca.pem")
  else
    serve+=(--plaintext)
  fi
  KAOQIN_LOG=warn "$bin/kaoqin-collector" serve "${serve[@]}" >"$work/out" 2>"$work/err" &
  collector=$!
  for _ in $(seq 1 200); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.05; done
  local scheme=http; [ "$transport" != plain ] && scheme=https
  url="$scheme://$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$work/out")"
  local token
  token=$("$bin/kaoqin-collector" token create --data-dir "$work/c" --uses 100000 2>/dev/null)
  case $scenario in
    4x1) args=(--agents 4 --interval 0 --batch 1 --duration "$secs") ;;
    64x1) args=(--agents 64 --interval 0 --batch 1 --duration "$secs") ;;
    4x100) args=(--agents 4 --interval 0 --batch 100 --duration "$secs") ;;
    8x500) args=(--agents 8 --interval 0 --batch 500 --duration "$secs") ;;
    fleet) args=(--agents 9500 --interval 60 --batch 10 --duration 120 --enroll-concurrency 256 --reconnect) ;;
  esac
  local before after second= lg_args=()
  [ "$transport" = tls-full ] && lg_args=(--no-tls-resumption)
  [ "$scenario" = fleet ] && lg_args+=(--source-addresses 16)
  if [ "$scenario" = fleet ]; then
    "$bin/kaoqin-loadgen" --collector "$url" --token "$token" "${ca_args[@]}" "${args[@]}" "${lg_args[@]}" --run-id a \
      >"$work/lg2.out" 2>"$work/lg2.err" &
    second=$!
  fi
  "$bin/kaoqin-loadgen" --collector "$url" --token "$token" "${ca_args[@]}" "${args[@]}" "${lg_args[@]}" --run-id b \
    >"$work/lg.out" 2>"$work/lg.err" &
  local lg=$!
  until grep -q '^enrolled' "$work/lg.err" 2>/dev/null && { [ -z "$second" ] || grep -q '^enrolled' "$work/lg2.err" 2>/dev/null; }; do
    kill -0 "$lg" 2>/dev/null || break
    sleep 0.1
  done
  before=$(cpu_ticks "$collector")
  wait "$lg" || true
  [ -n "$second" ] && wait "$second"
  after=$(cpu_ticks "$collector")
  kill "$collector"; wait "$collector" 2>/dev/null || true
  lines=$(tail -1 "$work/lg.out")
  local eps batches p99 lg_cpu events
  eps=$(sed -n 's/.*events\/s: \([0-9]*\).*/\1/p' <<<"$lines")
  batches=$(sed -n 's/.*batches\/s: \([0-9]*\).*/\1/p' <<<"$lines")
  p99=$(sed -n 's/.*p99_ms: \([0-9.]*\).*/\1/p' <<<"$lines")
  if [ "$scenario" = fleet ]; then
    local eps2 b2
    eps2=$(sed -n 's/.*events\/s: \([0-9]*\).*/\1/p' "$work/lg2.out")
    b2=$(sed -n 's/.*batches\/s: \([0-9]*\).*/\1/p' "$work/lg2.out")
    eps=$((eps + eps2)); batches=$((batches + b2))
  fi
  # The load generator reports its own CPU while sending (from /proc/self).
  local lg_ticks
  lg_ticks=$(sed -n 's/^cpu ticks while sending: \([0-9]*\)$/\1/p' "$work/lg.err")
  lg_cpu=$(awk -v t="${lg_ticks:-0}" -v hz="$tick" 'BEGIN {print t / hz}')
  local dur=$secs; [ "$scenario" = fleet ] && dur=120
  events=$((eps * dur)); local reports=$((batches * dur))
  # Collector µs per event; load generator µs per Report (its own process only).
  local c_us lg_us
  c_us=$(awk -v t="$((after - before))" -v hz="$tick" -v n="$events" 'BEGIN {printf "%.1f", n ? t / hz * 1e6 / n : 0}')
  lg_us=$(awk -v s="$lg_cpu" -v n="$reports" 'BEGIN {printf "%.1f", n ? s * 1e6 / n : 0}')
  echo "$transport $scenario: $lines  collector_cpu_us_per_event: $c_us  loadgen_cpu_us_per_report: $lg_us"
  echo "$transport $scenario $eps $p99 $c_us $lg_us" >>"$results"
  rm -rf "$work"
}

read -r -a scenarios <<<"${SCENARIOS:-4x1 64x1 4x100 8x500}"
read -r -a transports <<<"${TRANSPORTS:-plain tls}"
[ -n "${FLEET:-}" ] && scenarios+=(fleet)
for run in $(seq 1 "$runs"); do
  for s in "${scenarios[@]}"; do
    for t in "${transports[@]}"; do one "$t" "$s"; done
    if [ "$s" = fleet ]; then one tls-full fleet; fi
  done
done

echo
echo "| transport | scenario | events/s | p99 ms | collector CPU µs/event | loadgen CPU µs/Report |"
echo "|---|---|---|---|---|---|"
for s in "${scenarios[@]}"; do
  for t in plain tls tls-full; do
    awk -v t="$t" -v s="$s" '$1 == t && $2 == s {print $3, $4, $5, $6}' "$results" |
      awk -v t="$t" -v s="$s" '
        {e[NR] = $1; p[NR] = $2; c[NR] = $3; l[NR] = $4}
        function med(a, n,   i, j, x) {
          for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
          return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        END { if (NR) printf "| %s | %s | %d | %.2f | %.1f | %.1f |\n", t, s, med(e, NR), med(p, NR), med(c, NR), med(l, NR) }'
  done
done
