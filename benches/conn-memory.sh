#!/usr/bin/env bash
# The collector's memory per open connection: enrols AGENTS simulated agents
# (default 9,500) on persistent connections, or closing them after each call
# with --reconnect, and prints the collector's resident memory once they are
# enrolled and 30 s later. Extra arguments go to kaoqin-loadgen.
#
#   benches/conn-memory.sh [AGENTS] [--reconnect]
#
# With HEAPTRACK=FILE the collector runs under heaptrack (Debian's package),
# writing FILE.zst; `heaptrack_print -f FILE.zst --print-flamegraph OUT
# --flamegraph-cost-type peak` then lists the peak's allocations by stack.
set -euo pipefail
cd "$(dirname "$0")/.."
agents=${1:-9500}
shift || true
ulimit -n 65536 2>/dev/null || true
cargo build --release --quiet -p kaoqin-collector -p kaoqin-tests --bin kaoqin-collector --bin kaoqin-loadgen
bin=$PWD/target/release
work=$(mktemp -d)
printf '[agents]\nreport_rate_per_second = 0\nenroll_rate_per_minute = 0\nmax_reports_in_flight = 100000\n' >"$work/c.toml"
wrap=()
if [ -n "${HEAPTRACK:-}" ]; then wrap=(heaptrack -o "$HEAPTRACK"); fi
"${wrap[@]}" "$bin/kaoqin-collector" serve --plaintext --config "$work/c.toml" --data-dir "$work/c" \
  --grpc 127.0.0.1:0 >"$work/out" 2>"$work/err" &
runner=$!
trap 'kill -INT "$runner" 2>/dev/null; wait "$runner" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
collector=$(pgrep -n -f "serve --plaintext --config $work/c.toml")
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$collector/status"; }
url="http://$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$work/out")"
token=$("$bin/kaoqin-collector" token create --data-dir "$work/c")
echo "collector idle: rss_mib: $(rss)"
"$bin/kaoqin-loadgen" --collector "$url" --token "$token" --agents "$agents" --interval 60 \
  --batch 10 --duration 45 --enroll-concurrency 256 "$@" 2>"$work/lg.err" | tail -1 >"$work/lg.out" &
lg=$!
until grep -q enrolled "$work/lg.err" 2>/dev/null; do
  kill -0 "$lg" 2>/dev/null || { cat "$work/lg.err" >&2; exit 1; }
  sleep 0.5
done
echo "$(grep enrolled "$work/lg.err"): rss_mib: $(rss)"
sleep 30
echo "30 s later: rss_mib: $(rss)  open_files: $(ls "/proc/$collector/fd" | wc -l)"
wait "$lg"
grep "slowest" "$work/lg.err" || true
cat "$work/lg.out"
