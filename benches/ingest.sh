#!/usr/bin/env bash
# Ingest throughput and latency of a release collector on loopback, driven by
# kaoqin-loadgen. Runs each scenario RUNS times (default 3) on a fresh database
# and prints every run's summary line; BENCHMARKS.md quotes the medians.
#
#   benches/ingest.sh batched|single|single-health|fleet|fleet-reconnect [RUNS]
#
# fleet-reconnect is the fleet with every agent opening a connection per Report and
# closing it after the answer, as agents do by default (uplink.close_when_idle).
# batched-16 is batched with 16 agents instead of 8.
#
# With BASELINE=DIR (a directory holding another build's kaoqin-collector), every
# run is made twice, first with the baseline collector then with this one, so
# the two share the machine's conditions; the load generator is this build's.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?batched, single or fleet}
runs=${2:-3}
ulimit -n 65536 2>/dev/null || true  # 20,000 connections need more than the usual 1024 files
cargo build --release --quiet -p kaoqin-collector -p kaoqin-tests --bin kaoqin-collector --bin kaoqin-loadgen
bin=$PWD/target/release
one() { # collector bin dir, label
  local cbin=$1 label=$2
  work=$(mktemp -d) second=
  # Measure the collector unthrottled: the per-agent rate limit is a safety
  # net for real fleets, not part of the ingest path being measured.
  printf '[agents]\nreport_rate_per_second = 0\nenroll_rate_per_minute = 0\nmax_reports_in_flight = 100000\n' >"$work/c.toml"
  "$cbin/kaoqin-collector" serve --plaintext --config "$work/c.toml" --data-dir "$work/c" \
    --grpc 127.0.0.1:0 >"$work/out" 2>"$work/err" &
  collector=$!
  trap 'kill "$collector" ${second:+"$second"} 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 1 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
  url="http://$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$work/out")"
  token=$("$cbin/kaoqin-collector" token create --data-dir "$work/c")
  case $scenario in
    batched) args=(--agents 8 --interval 0 --batch 500 --duration 20) ;;
    batched-16) args=(--agents 16 --interval 0 --batch 500 --duration 20) ;;
    single)  args=(--agents 64 --interval 0 --batch 1 --duration 20) ;;
    # The same load on the gRPC health check: what gRPC alone reaches here.
    single-health) args=(--agents 64 --interval 0 --batch 1 --duration 20 --call health) ;;
    # The open-file limit here is 20,000 per process and cannot be raised
    # (no CAP_SYS_RESOURCE), so the fleet is 19,000 agents from two processes.
    fleet)   args=(--agents 9500 --interval 60 --batch 10 --duration 120 --enroll-concurrency 256) ;;
    fleet-reconnect) args=(--agents 9500 --interval 60 --batch 10 --duration 120 --enroll-concurrency 256 --reconnect) ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  if [ "${scenario%-reconnect}" = fleet ]; then
    "$bin/kaoqin-loadgen" --collector "$url" --token "$token" "${args[@]}" --run-id a 2>"$work/lg2.err" | tail -1 >"$work/lg2.out" &
    second=$!
  fi
  # A load generator that fails says why, and the collector is stopped either way.
  if ! line=$("$bin/kaoqin-loadgen" --collector "$url" --token "$token" "${args[@]}" --run-id b 2>"$work/lg.err" | tail -1); then
    echo "$scenario run $run$label: the load generator failed:" >&2
    grep -v "^ *[0-9]*: \|^ *at " "$work/lg.err" | tail -8 >&2
    return 1
  fi
  if [ "${scenario%-reconnect}" = fleet ]; then
    if ! wait "$second"; then
      echo "$scenario run $run$label: the second load generator failed:" >&2
      grep -v "^ *[0-9]*: \|^ *at " "$work/lg2.err" | tail -8 >&2
      return 1
    fi
    line="$line | second process: $(cat "$work/lg2.out")"
  fi
  rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$collector/status")
  wal=$(( $(stat -c %s "$work/c/kaoqin.db-wal" 2>/dev/null || echo 0) / 1048576 ))
  echo "$scenario run $run$label: $line  collector_peak_rss_mib: $rss  wal_mib: $wal"
  kill "$collector"; wait "$collector" 2>/dev/null || true
  rm -rf "$work"
  trap - EXIT
}
for run in $(seq 1 "$runs"); do
  if [ -n "${BASELINE:-}" ]; then one "$BASELINE" " (baseline)"; fi
  one "$bin" ""
done
